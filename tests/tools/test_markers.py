"""Visual prompts as a person sees them: where the ink goes, what it looks like, what stays untouched."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from PIL import Image

from chat.errors import UserError
from tools.markers import (
    COLORS, SHAPES, Marker, arrow_geometry, default_radius, draw_markers, region_mask, stroke_width, union_mask,
)

BG = (90, 110, 130)


def plain(w=240, h=200) -> Image.Image:
    return Image.new("RGB", (w, h), BG)


def noise(w=200, h=200, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def changed(a: Image.Image, b: Image.Image) -> np.ndarray:
    return np.any(np.asarray(a, dtype=int) != np.asarray(b, dtype=int), axis=-1)


def distance_from(x, y, size) -> np.ndarray:
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    return np.hypot(xx - x, yy - y)


def test_red_ring_is_centred_on_the_click_and_nothing_else_is_drawn():
    image = plain()
    out = draw_markers(image, [Marker(x=90, y=70, radius=30)])
    arr = np.asarray(out).astype(int)
    red = (arr[..., 0] > 200) & (arr[..., 1] < 60) & (arr[..., 2] < 60)
    ys, xs = np.nonzero(red)
    assert xs.size > 100
    assert abs(xs.mean() - 90) <= 2 and abs(ys.mean() - 70) <= 2
    assert abs(np.hypot(xs - 90, ys - 70).mean() - 30) <= 2
    s = stroke_width(image.size)
    dist = distance_from(90, 70, image.size)
    band = (dist >= 30 - s / 2 - 2) & (dist <= 30 + s / 2 + 2)
    assert not changed(image, out)[~band].any()  # the inside and everything else untouched
    assert red[np.abs(dist - 30) <= 0.5].mean() > 0.95  # a closed ring


def test_input_is_never_mutated_and_output_is_rgb():
    image = noise().convert("RGBA")
    before = image.tobytes()
    out = draw_markers(image, [Marker(x=50, y=50), Marker(x=120, y=150, shape="box")], outside="blur")
    assert image.tobytes() == before and out.mode == "RGB" and out.size == image.size and out is not image


@pytest.mark.parametrize("color", list(COLORS))
@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_and_colour_renders_near_the_marker_only(shape, color):
    image = plain()
    x, y, r = 120, 100, 20
    masks = None
    if shape == "contour":
        mask = np.zeros((200, 240), dtype=bool)
        mask[85:115, 100:140] = True
        masks = {0: mask}
    out = draw_markers(image, [Marker(x=x, y=y, shape=shape, color=color, radius=r)], masks=masks)
    diff = changed(image, out)
    assert diff.sum() >= 20, f"{shape}/{color} drew almost nothing"
    assert not diff[distance_from(x, y, image.size) > 3 * r].any(), f"{shape}/{color} drew far from the marker"
    pixels = np.asarray(out)[diff]
    values, counts = np.unique(pixels, axis=0, return_counts=True)
    assert tuple(int(v) for v in values[np.argmax(counts)]) == COLORS[color]


def test_arrow_points_at_the_click_from_outside_its_region():
    size = (320, 240)
    for x, y in [(160, 120), (5, 5), (315, 235), (300, 10), (10, 200)]:
        marker = Marker(x=x, y=y, shape="arrow", radius=25)
        (tx, ty), (sx, sy) = arrow_geometry(marker, size)
        tip, tail = math.hypot(tx - x, ty - y), math.hypot(sx - x, sy - y)
        assert 25 <= tip <= 25 + stroke_width(size) + 1, (x, y, tip)
        assert tail > tip + 20 and 0 <= sx < size[0] and 0 <= sy < size[1], (x, y, sx, sy)
        out = draw_markers(Image.new("RGB", size, BG), [marker])
        diff = changed(Image.new("RGB", size, BG), out)
        dist = distance_from(x, y, size)
        assert not diff[dist < 23].any()  # the clicked spot itself stays visible
        assert diff[dist < 25 + 3 * stroke_width(size)].any()  # the head reaches the region's edge


def test_arrow_with_a_bbox_stops_at_the_box():
    size = (320, 240)
    marker = Marker(x=160, y=120, shape="arrow", bbox=(130, 100, 190, 140))
    out = draw_markers(Image.new("RGB", size, BG), [marker])
    diff = changed(Image.new("RGB", size, BG), out)
    assert diff.any() and not diff[100:140, 130:190].any()


def test_point_outside_the_image_is_a_user_error_with_the_coordinates():
    with pytest.raises(UserError, match=r"Point \(900, 40\) is outside the image \(640x480\)\."):
        draw_markers(Image.new("RGB", (640, 480)), [Marker(x=900, y=40)])
    with pytest.raises(UserError, match=r"\(-1, 3\)"):
        draw_markers(Image.new("RGB", (64, 48)), [Marker(x=-1, y=3, shape="box")])


def test_markers_past_the_edge_are_clamped_not_refused():
    image = plain(100, 80)
    for shape in ("circle", "ellipse", "box", "cross", "arrow"):
        out = draw_markers(image, [Marker(x=2, y=78, shape=shape, radius=60, bbox=None)])
        assert out.size == image.size and changed(image, out).any()
    out = draw_markers(image, [Marker(x=50, y=40, shape="box", bbox=(-20, -20, 500, 500))])
    assert out.size == image.size


def test_blur_changes_outside_the_region_only():
    image = noise()
    s = stroke_width(image.size)
    out = draw_markers(image, [Marker(x=100, y=100, radius=40)], outside="blur")
    diff, dist = changed(image, out), distance_from(100, 100, image.size)
    assert not diff[dist < 40 - s / 2 - 1].any()
    assert diff[dist > 40 + s / 2 + 2].mean() > 0.9


def test_grey_turns_the_outside_grey_and_keeps_the_inside():
    image = noise()
    out = np.asarray(draw_markers(image, [Marker(x=100, y=100, radius=40, shape="box")], outside="grey")).astype(int)
    outside = ~region_mask(Marker(x=100, y=100, radius=40, shape="box"), image.size)
    outside[55:146, 55:146] = False  # the box outline
    assert (out[outside][:, 0] == out[outside][:, 1]).all() and (out[outside][:, 1] == out[outside][:, 2]).all()
    assert (out[70:130, 70:130] == np.asarray(image)[70:130, 70:130]).all()


def test_several_markers_are_numbered_and_labels_can_be_turned_off():
    image = plain(320, 240)
    markers = [Marker(x=80, y=120, radius=20), Marker(x=240, y=120, radius=20, color="blue")]
    numbered = changed(image, draw_markers(image, markers)).sum()
    plain_count = changed(image, draw_markers(image, markers, number=False)).sum()
    assert numbered > plain_count + 40
    single = changed(image, draw_markers(image, markers[:1])).sum()
    labelled = changed(image, draw_markers(image, [markers[0].model_copy(update={"label": "A"})])).sum()
    assert labelled > single + 20


def test_contour_outlines_the_mask_without_covering_it():
    image = noise(120, 100)
    mask = np.zeros((100, 120), dtype=bool)
    mask[30:70, 40:90] = True
    out = draw_markers(image, [Marker(x=60, y=50, shape="contour", color="green")], masks={0: mask})
    diff = changed(image, out)
    assert not diff[mask].any() and diff[28:30, 40:90].all()
    with pytest.raises(UserError, match="no mask"):
        draw_markers(image, [Marker(x=60, y=50, shape="contour"), Marker(x=5, y=5, shape="contour")], masks={0: mask})


def test_regions_designated_by_each_shape():
    size = (200, 160)
    circle = region_mask(Marker(x=100, y=80, radius=30), size)
    assert abs(circle.sum() - math.pi * 30 ** 2) < 0.05 * math.pi * 30 ** 2 and circle[80, 100]
    box = region_mask(Marker(x=60, y=50, shape="box", bbox=(40, 30, 80, 70)), size)
    assert box.sum() == 40 * 40 and box[30, 40] and not box[70, 80]
    ellipse = region_mask(Marker(x=60, y=50, shape="ellipse", bbox=(40, 30, 80, 70)), size)
    assert ellipse[50, 60] and ellipse[32, 60] and not ellipse[0, 0]
    point = region_mask(Marker(x=10, y=10, shape="point"), size)
    assert point.sum() > 0.9 * math.pi * default_radius(size) ** 2 * 0.25  # clipped by the corner
    union = union_mask([Marker(x=30, y=30, radius=10), Marker(x=150, y=120, radius=10)], size)
    assert union[30, 30] and union[120, 150] and not union[80, 100]


def test_sizes_scale_with_the_image():
    assert stroke_width((336, 336)) == 3 and stroke_width((2048, 2048)) == 12 and stroke_width((20, 20)) == 2
    assert default_radius((640, 480)) < default_radius((2048, 2048))


def test_bbox_is_normalised_and_extra_fields_are_refused():
    assert Marker(x=1, y=1, bbox=(50, 40, 10, 5)).bbox == (10, 5, 50, 40)
    with pytest.raises(Exception):
        Marker(x=1, y=1, size=3)
    with pytest.raises(Exception):
        Marker(x=1, y=1, shape="star")


def test_drawing_on_a_2048_image_is_fast():
    image = noise(2048, 2048)
    markers = [Marker(x=500, y=500), Marker(x=1500, y=600, shape="arrow", color="green"),
               Marker(x=1000, y=1500, shape="ellipse", bbox=(800, 1300, 1200, 1700))]
    draw_markers(image, markers, outside="blur")  # warm up (font loading)
    start = time.perf_counter()
    for outside in ("none", "blur", "grey"):
        draw_markers(image, markers, outside=outside)
    assert (time.perf_counter() - start) / 3 < 0.5
