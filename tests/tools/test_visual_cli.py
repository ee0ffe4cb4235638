"""``mmchat mark`` and ``mmchat som`` through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.fakes import cli as run

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "tiny.yaml")


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("visual") / "scene.png"
    image = Image.new("RGB", (160, 120), (200, 205, 210))
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 10, 70, 60), fill=(40, 60, 210))
    draw.ellipse((90, 50, 150, 110), fill=(30, 160, 60))
    image.save(path)
    return path


def red_pixels(path) -> np.ndarray:
    arr = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return (arr[..., 0] > 200) & (arr[..., 1] < 60) & (arr[..., 2] < 60)


def test_mark_json_draws_a_red_ring_at_the_point(capsys, image_path, tmp_path):
    out = tmp_path / "marked.png"
    code, stdout, err = run(capsys, "mark", image_path, "--point", "40,35", "--radius", "20", "-o", out, "--json")
    assert code == 0, err
    assert json.loads(stdout)["image"] == str(out)
    ys, xs = np.nonzero(red_pixels(out))
    assert abs(xs.mean() - 40) <= 2 and abs(ys.mean() - 35) <= 2
    assert abs(np.hypot(xs - 40, ys - 35).mean() - 20) <= 2
    assert Image.open(out).size == (160, 120)


def test_mark_shapes_colours_and_outside(capsys, image_path, tmp_path):
    out = tmp_path / "arrows.png"
    code, stdout, err = run(capsys, "mark", image_path, "--point", "40,35", "--point", "120,80", "--shape", "arrow",
                            "--color", "yellow", "--outside", "grey", "-o", out)
    assert code == 0, err
    assert str(out) in stdout
    arr = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert ((arr[..., 0] > 200) & (arr[..., 1] > 200) & (arr[..., 2] < 60)).sum() > 30
    assert arr[5, 155, 0] == arr[5, 155, 1] == arr[5, 155, 2]  # a far corner turned grey


def test_mark_radius_from_the_config(capsys, image_path, tmp_path):
    out = tmp_path / "config.png"
    code, _, err = run(capsys, "mark", image_path, "--point", "80,60", "-o", out, "--config", TINY)
    assert code == 0, err
    ys, xs = np.nonzero(red_pixels(out))
    assert xs.size and abs(np.hypot(xs - 80, ys - 60).max() - 40) <= 3  # tools.click_radius = 40, clipped


@pytest.mark.parametrize("argv, message", [
    (["--point", "900,40"], "Point (900, 40) is outside the image (160x120)."),
    ([], "at least one --point"),
    (["--point", "5,5", "--radius", "0"], "--radius must be at least 1"),
])
def test_mark_user_errors_are_one_line(capsys, image_path, tmp_path, argv, message):
    code, stdout, err = run(capsys, "mark", image_path, *argv, "-o", tmp_path / "x.png")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_mark_unreadable_image(capsys, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    code, _, err = run(capsys, "mark", bad, "--point", "1,1", "-o", tmp_path / "x.png")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_mark_bad_shape_is_an_argparse_error(capsys, image_path, tmp_path):
    code, _, err = run(capsys, "mark", image_path, "--point", "1,1", "--shape", "star", "-o", tmp_path / "x.png")
    assert code == 2 and "star" in err


def test_som_json_lists_marks_with_boxes(capsys, image_path, tmp_path):
    out = tmp_path / "som.png"
    code, stdout, err = run(capsys, "som", image_path, "--max-regions", "8", "-o", out, "--json")
    assert code == 0, err
    data = json.loads(stdout)
    assert data["image"] == str(out) and Image.open(out).size == (160, 120)
    ids = [m["id"] for m in data["marks"]]
    assert ids == list(range(1, len(ids) + 1)) and 2 <= len(ids) <= 8
    for mark in data["marks"]:
        x0, y0, x1, y1 = mark["bbox"]
        assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 120


def test_som_text_output_and_bad_max_regions(capsys, image_path, tmp_path):
    code, stdout, err = run(capsys, "som", image_path, "--fill", "-o", tmp_path / "s.png")
    assert code == 0, err
    assert "[1]" in stdout
    code, _, err = run(capsys, "som", image_path, "--max-regions", "0", "-o", tmp_path / "s.png")
    assert code == 2 and "--max-regions must be between 1 and 200" in err


def test_som_with_sam_on_the_tiny_profile(capsys, image_path, tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv("MMCHAT_TINY_DIR", str(tiny_dir))
    out = tmp_path / "som_sam.png"
    code, stdout, err = run(capsys, "som", image_path, "--method", "sam", "--max-regions", "6", "-o", out,
                            "--config", TINY, "--json")
    assert code == 0, err
    data = json.loads(stdout)
    assert data["method"] == "sam" and len(data["marks"]) <= 6 and Image.open(out).size == (160, 120)
