"""Regions from clicks: circles (the default) or, with tools.click_region: sam, the object under the clicks
segmented by the tiny SAM with the marker fitted around its mask; through chat.clicks, the page's handlers
and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from chat.cli import main
from chat.clicks import place_points
from chat.errors import UserError
from tests.conftest import TINY_CONFIG
from tools.markers import region_mask
from tools.regions import mask_bbox, sam_region

SIZE = (120, 90)


def scene() -> Image.Image:
    image = Image.new("RGB", SIZE, (200, 210, 220))
    ImageDraw.Draw(image).ellipse((20, 20, 60, 60), fill=(200, 40, 30))
    return image


@pytest.fixture(scope="module")
def sam_config(tiny_config, tmp_path_factory):
    config = tiny_config.model_copy(deep=True)
    config.tools.click_region = "sam"
    config.data_dir = str(tmp_path_factory.mktemp("sam-data"))
    return config


@pytest.fixture(scope="module")
def sam_assistant(sam_config):
    from chat.assistant import Assistant

    return Assistant(sam_config)


@pytest.fixture(scope="module")
def sam(sam_assistant):
    return sam_assistant.registry.get("sam")


@pytest.mark.parametrize("shape", ["box", "ellipse", "circle", "contour"])
def test_a_sam_click_fits_the_marker_around_the_mask(sam_assistant, sam, shape):
    image = scene()
    mask = sam_region(sam, image, positive=[(40, 40)])
    placed = place_points(sam_assistant.config, sam_assistant.registry, image, [(40, 40)], shape=shape, color="blue")
    (marker,), (got,) = placed.markers, placed.masks
    assert placed.note is None and np.array_equal(got, mask)
    assert marker.shape == shape and marker.color == "blue" and marker.clicks == [(40, 40, True)]
    x0, y0, x1, y1 = mask_bbox(mask)
    assert (marker.x, marker.y) == ((x0 + x1) // 2, (y0 + y1) // 2) or shape == "contour"
    if shape == "box":
        assert marker.bbox == (x0, y0, x1, y1)
    if shape != "contour":  # the marked region holds the whole object
        assert region_mask(marker, SIZE)[mask].all()
    else:
        assert np.array_equal(region_mask(marker, SIZE, placed.contour_masks, index=0), mask)


def test_a_negative_click_changes_the_mask(sam_assistant, sam):
    image = scene()
    config, registry = sam_assistant.config, sam_assistant.registry
    plain = place_points(config, registry, image, [(40, 40)], shape="contour")
    cut = place_points(config, registry, image, [(40, 40)], negative=[(100, 80)], shape="contour")
    assert not np.array_equal(plain.masks[0], cut.masks[0])
    assert np.array_equal(cut.masks[0], sam_region(sam, image, [(40, 40)], [(100, 80)]))
    assert cut.markers[0].clicks == [(40, 40, True), (100, 80, False)]
    with pytest.raises(UserError, match="give at least one --point"):
        place_points(config, registry, image, [], negative=[(100, 80)])


def test_circle_mode_is_unchanged(tiny_config):
    image = scene()
    placed = place_points(tiny_config, None, image, [(40, 40), (90, 20)], shape="circle")
    assert [(m.x, m.y, m.shape, m.radius, m.bbox, m.clicks) for m in placed.markers] == [
        (40, 40, "circle", tiny_config.tools.click_radius, None, None),
        (90, 20, "circle", tiny_config.tools.click_radius, None, None)]
    assert placed.note is None and placed.contour_masks == {}
    ignored = place_points(tiny_config, None, image, [(40, 40)], negative=[(9, 9)])
    assert len(ignored.markers) == 1 and "--negative needs SAM regions" in ignored.note


def test_sam_failure_falls_back_to_circles_with_a_note(sam_config):
    from chat.registry import ModelRegistry

    config = sam_config.model_copy(deep=True)
    del config.models["sam"]
    placed = place_points(config, ModelRegistry(config), scene(), [(40, 40)], shape="ellipse")
    assert placed.note.startswith("SAM could not be used, so the clicks are marked with circles instead")
    assert "No model named 'sam'" in placed.note
    marker, = placed.markers
    assert (marker.x, marker.y, marker.radius, marker.clicks) == (40, 40, config.tools.click_radius, None)


# --------------------------------------------------------------------------------------------
# The page: new object, add to it, exclude from it
# --------------------------------------------------------------------------------------------
def on_screen(x: int, y: int) -> list[float]:
    """Where pixel (x, y) of the scene is on the page's display copy (a small image is shown enlarged)."""
    from chat.ui.views import display_scale

    scale = display_scale(SIZE)
    return [x * scale, y * scale]


def _session_with_image(handlers):
    session = handlers.store.create()
    session.add_image(scene(), name="scene")
    handlers.store.save(session)
    return session.id


def test_clicks_on_the_page_build_one_object_until_a_new_one(sam_assistant):
    from chat.ui.handlers import Handlers

    h = Handlers(sam_assistant)
    sid = _session_with_image(h)
    first = h.click(sid, on_screen(40, 40), "ellipse", "red", "new")
    assert "fitted around the object SAM found under 1 click on img1.v1" in first.status
    h.click(sid, on_screen(30, 30), "ellipse", "red", "add")
    view = h.click(sid, on_screen(100, 80), "ellipse", "red", "exclude")
    markers = h.store.get(sid).record("img1").markers
    assert len(markers) == 1 and markers[0].clicks == [(40, 40, True), (30, 30, True), (100, 80, False)]
    assert "refined around the object SAM found under 2 clicks, 1 excluded" in view.status
    assert region_mask(markers[0], SIZE)[sam_region(sam_assistant.registry.get("sam"), scene(),
                                                    [(40, 40), (30, 30)], [(100, 80)])].all()
    h.click(sid, on_screen(70, 20), "box", "green", "new")
    h.add_point(sid, 5, 85, "box", "green", negative=True)  # the API twin: refines the latest object
    markers = h.store.get(sid).record("img1").markers
    assert len(markers) == 2 and markers[1].clicks == [(70, 20, True), (5, 85, False)] and markers[1].bbox
    with pytest.raises(UserError, match="Unknown click mode"):
        h.click(sid, on_screen(4, 4), "box", "green", "sideways")


def test_exclude_needs_sam_and_an_object(assistant, sam_assistant):
    from chat.ui.handlers import Handlers

    circles = Handlers(assistant)
    sid = _session_with_image(circles)
    with pytest.raises(UserError, match="Exclude clicks need SAM regions; set tools.click_region: sam"):
        circles.add_point(sid, 10, 10, negative=True)
    view = circles.click(sid, on_screen(40, 40), "circle", "red", "add")  # circle mode: every click is a marker
    assert "Marker 1 (circle, red) at (40, 40)" in view.status
    with pytest.raises(UserError, match="no object to exclude from yet"):
        Handlers(sam_assistant).add_point(_session_with_image(Handlers(sam_assistant)), 10, 10, negative=True)


def test_the_page_has_the_click_mode_control(sam_assistant):
    from chat.ui.layout import build

    app = build(sam_assistant)
    modes = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == "click-mode"]
    assert len(modes) == 1 and [value for _, value in modes[0].choices] == ["new", "add", "exclude"]


# --------------------------------------------------------------------------------------------
# The CLI
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sam_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "sam.yaml"
    text = TINY_CONFIG.read_text().replace("click_region: circle", "click_region: sam")
    assert "click_region: sam" in text
    path.write_text(text)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_mark_with_sam_fits_the_marker_and_negative_points_count(tiny_dir, sam, sam_yaml, tmp_path, capsys):
    image = tmp_path / "scene.png"
    scene().save(image)
    code, out, err = run(capsys, "mark", image, "--point", "40,40", "--shape", "box", "-o", tmp_path / "a.png",
                         "--config", sam_yaml, "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["region"] == "sam" and payload["markers"][0]["bbox"] == list(mask_bbox(
        sam_region(sam, scene(), [(40, 40)])))
    drawn = {}
    for name, extra in (("plain", []), ("cut", ["--negative", "100,80"])):
        assert run(capsys, "mark", image, "--point", "40,40", *extra, "--shape", "contour", "-o",
                   tmp_path / f"{name}.png", "--config", sam_yaml)[0] == 0
        drawn[name] = np.asarray(Image.open(tmp_path / f"{name}.png"))
    assert not np.array_equal(drawn["plain"], drawn["cut"])  # the contour traces a different mask
    code, out, err = run(capsys, "mark", image, "--point", "40,40", "--negative", "100,80", "-o", tmp_path / "c.png",
                         "--config", TINY_CONFIG, "--json")
    assert code == 0 and json.loads(out)["region"] == "circle"
    assert err.strip() == ("mmchat: note: --negative needs SAM regions (tools.click_region: sam in the config), "
                           "so the --negative points were ignored.")


def test_cli_ask_and_score_use_sam_when_configured(tiny_dir, sam_yaml, tmp_path, capsys):
    image = tmp_path / "scene.png"
    scene().save(image)
    code, out, err = run(capsys, "ask", image, "What is it?", "--point", "40,40", "--negative", "100,80",
                         "--config", sam_yaml, "--json")
    assert code == 0 and isinstance(json.loads(out)["answer"], str) and "note" not in err
    code, out, err = run(capsys, "score", image, "--label", "cat", "--label", "dog", "--point", "40,40",
                         "--negative", "100,80", "--config", sam_yaml, "--json")
    payload = json.loads(out)
    assert code == 0 and payload["region"] is True and abs(sum(payload["scores"]) - 1) < 1e-5


# -- the click radius grows with big images ---------------------------------------------------------
def ring_radius(image: Image.Image, centre: tuple[float, float]) -> float:
    """The median distance of the red ring's pixels from ``centre``."""
    arr = np.asarray(image.convert("RGB")).astype(int)
    ys, xs = np.nonzero((arr[..., 0] > 200) & (arr[..., 1] < 70) & (arr[..., 2] < 70))
    assert xs.size > 50, "a red ring is drawn"
    return float(np.median(np.hypot(xs - centre[0], ys - centre[1])))


def test_page_marker_keeps_its_size_on_a_phone_photo(assistant, tmp_path):
    """A click on a 4000x3000 photo marks 4x the radius of one on an 800x600 image: on the (downscaled)
    display the two rings look the same size, instead of a 4x smaller one on the photo."""
    from chat.ui.handlers import Handlers
    from tests.fakes import ScriptedRouter

    h = Handlers(assistant, router=ScriptedRouter(delay=0))
    radius, shown = {}, {}
    for size in [(800, 600), (4000, 3000), (300, 200)]:
        path = tmp_path / f"{size[0]}.png"
        Image.new("RGB", size, (200, 210, 220)).save(path)
        sid = h.upload(None, [str(path)]).session_id
        view = h.add_point(sid, size[0] // 2, size[1] // 2)
        radius[size] = assistant.sessions.get(sid).images["img1"].markers[0].radius
        display = Image.open(view.image)
        shown[size] = ring_radius(display, (display.width / 2, display.height / 2))
    click = assistant.config.tools.click_radius
    assert radius[(800, 600)] == radius[(300, 200)] == click  # small images: as configured
    assert radius[(4000, 3000)] == 4 * click
    assert abs(shown[(4000, 3000)] - shown[(800, 600)]) < 0.15 * shown[(800, 600)], shown


def test_cli_point_radius_grows_with_the_image(tiny_dir, tmp_path, capsys):
    big = tmp_path / "big.png"
    Image.new("RGB", (4000, 3000), (200, 210, 220)).save(big)
    out = tmp_path / "marked.png"
    code, printed, err = run(capsys, "mark", big, "--point", "2000,1500", "-o", out, "--config", TINY_CONFIG)
    assert code == 0, err
    assert abs(ring_radius(Image.open(out), (2000, 1500)) - 160) < 12  # tools.click_radius 40, x4
