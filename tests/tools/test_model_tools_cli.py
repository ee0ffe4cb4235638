"""The caption / edit / generate verbs on the tiny profile (--json), and their argument errors (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.conftest import ROOT
from tests.fakes import cli

CONFIG = ["--config", str(ROOT / "configs" / "tiny.yaml")]


pytestmark = pytest.mark.usefixtures("tiny_env")


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "scene.png"
    im = Image.new("RGB", (90, 70), (170, 190, 200))
    ImageDraw.Draw(im).ellipse((20, 15, 60, 55), fill=(200, 50, 40))
    im.save(path)
    return path


def run(capsys, *argv):
    return cli(capsys, *argv, *CONFIG)


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def test_caption_and_question(capsys, image_path):
    data, _ = run_json(capsys, "caption", image_path)
    assert isinstance(data["caption"], str)
    data, _ = run_json(capsys, "caption", image_path, "--prefix", "a drawing of")
    assert data["caption"].startswith("a drawing of")
    data, _ = run_json(capsys, "caption", image_path, "--question", "what color is the ball?")
    assert isinstance(data["answer"], str) and "caption" not in data


def test_edit_pix2pix(capsys, image_path, tmp_path):
    out = tmp_path / "edited.png"
    data, err = run_json(capsys, "edit", image_path, "make it winter", "--steps", "2", "--seed", "9", "-o", out)
    assert data == {"image": str(out), "seed": 9, "mode": "pix2pix", "size": [90, 70], "guidance": 7.5}
    assert Image.open(out).size == (90, 70)
    assert "step 1/2" in err and "step 2/2" in err


def test_edit_guidance_changes_the_result(capsys, image_path, tmp_path):
    pixels = {}
    for guidance in ("7.5", "0"):
        out = tmp_path / f"g{guidance}.png"
        data, _ = run_json(capsys, "edit", image_path, "make it winter", "--steps", "2", "--seed", "9",
                           "--guidance", guidance, "-o", out)
        assert data["guidance"] == float(guidance) and data["seed"] == 9
        pixels[guidance] = np.asarray(Image.open(out))
    assert not np.array_equal(pixels["7.5"], pixels["0"])  # same seed, different guidance


def test_edit_with_a_mask_file_repaints_only_the_white_region(capsys, image_path, tmp_path):
    mask = Image.new("L", (90, 70), 0)
    ImageDraw.Draw(mask).rectangle((5, 5, 24, 24), fill=255)
    mask.save(tmp_path / "mask.png")
    out = tmp_path / "masked.png"
    data, _ = run_json(capsys, "edit", image_path, "a blue ball", "--mask", tmp_path / "mask.png", "--seed", "2",
                       "-o", out)
    assert data["mode"] == "inpaint"
    before = np.asarray(Image.open(image_path).convert("RGB")).astype(int)
    after = np.asarray(Image.open(out).convert("RGB")).astype(int)
    far = np.ones((70, 90), dtype=bool)
    far[: 25 + 16, : 25 + 16] = False  # the white square grown by mask_dilate + mask_feather (8 + 6) and a pixel
    assert np.array_equal(before[far], after[far]) and not np.array_equal(before[:25, :25], after[:25, :25])
    Image.new("L", (40, 40), 255).save(tmp_path / "small.png")
    code, _, err = run(capsys, "edit", image_path, "x", "--mask", tmp_path / "small.png", "-o", out)
    assert code == 2 and "is 40x40 but the image is 90x70" in err


def test_edit_inpaint_and_remove_at_points(capsys, image_path, tmp_path):
    out = tmp_path / "inpainted.png"
    data, _ = run_json(capsys, "edit", image_path, "a blue ball", "--point", "40,35", "-o", out)
    assert data["mode"] == "inpaint" and isinstance(data["seed"], int) and Image.open(out).size == (90, 70)
    out2 = tmp_path / "removed.png"
    data, _ = run_json(capsys, "edit", image_path, "the ball", "--point", "40,35", "--remove", "--seed", "1",
                       "-o", out2)
    assert data["mode"] == "remove" and data["seed"] == 1 and Image.open(out2).size == (90, 70)


def test_generate_text_and_sketch(capsys, image_path, tmp_path):
    out = tmp_path / "gen.png"
    data, err = run_json(capsys, "generate", "a lighthouse", "--size", "72x64", "--seed", "4", "-o", out)
    assert data == {"image": str(out), "seed": 4, "mode": "txt2img", "size": [72, 64]}
    assert "step 1/" in err
    out2 = tmp_path / "sketch.png"
    data, _ = run_json(capsys, "generate", "a ball", "--sketch", image_path, "-o", out2)
    assert data["mode"] == "sketch" and data["size"] == [90, 70] and Image.open(out2).size == (90, 70)


@pytest.mark.parametrize("argv, message", [
    (["caption", "{img}", "--question", "  "], "question is empty"),
    (["caption", "{missing}"], "does not exist"),
    (["edit", "{img}", " ", "-o", "{out}"], "instruction is empty"),
    (["edit", "{img}", "x", "--steps", "0", "-o", "{out}"], "--steps"),
    (["edit", "{img}", "x", "--seed", "-2", "-o", "{out}"], "--seed"),
    (["edit", "{img}", "x", "--point", "500,5", "-o", "{out}"], "outside the image (90x70)"),
    (["edit", "{img}", "x", "--guidance", "51", "-o", "{out}"], "--guidance must be between 0 and 50"),
    (["edit", "{img}", "x", "--point", "5,5", "--mask", "{img}", "-o", "{out}"], "not both"),
    (["edit", "{img}", "x", "--mask", "{missing}", "-o", "{out}"], "does not exist"),
    (["edit", "{img}", "x", "--remove", "-o", "{out}"], "--remove needs"),
    (["edit", "{img}", "x", "--point", "abc", "-o", "{out}"], "is not a point"),
    (["edit", "{img}", "x"], "-o/--output"),
    (["generate", "", "-o", "{out}"], "prompt is empty"),
    (["generate", "a cat", "--size", "32x32", "-o", "{out}"], "64 to 1024"),
    (["generate", "a cat", "--steps", "151", "-o", "{out}"], "--steps"),
    (["generate", "a cat", "--sketch", "{missing}", "-o", "{out}"], "does not exist"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, image_path, tmp_path, argv, message):
    subst = {"img": image_path, "out": tmp_path / "out.png", "missing": tmp_path / "nope.png"}
    code, out, err = run(capsys, *[a.format(**subst) for a in argv])
    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if not line.startswith("[")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
