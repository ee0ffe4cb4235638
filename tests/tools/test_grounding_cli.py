"""``mmchat find`` and ``mmchat eval-grounding`` through the CLI entry point, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from tests.fakes import cli as run

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "tiny.yaml")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("find") / "coffee.png"
    Image.fromarray(data.coffee()).save(path)  # 600 x 400
    return path


@pytest.mark.parametrize("verb, words", [("find", ["PHRASE", "--method", "--top", "-o", "--json", "--config"]),
                                         ("eval-grounding", ["DIR", "--methods", "--make-synthetic", "--n",
                                                             "--from-refcoco", "--json"])])
def test_help(capsys, verb, words):
    code, out, _ = run(capsys, verb, "--help")
    assert code == 0 and all(w.lower() in out.lower() for w in words)


def test_find_json_and_overlay(capsys, tiny_dir, photo, tmp_path):
    out = tmp_path / "found.png"
    code, stdout, err = run(capsys, "find", photo, "the coffee cup", "--top", "4", "--config", TINY, "--json",
                            "-o", out)
    assert code == 0, err
    payload = json.loads(stdout)
    assert payload["method"] == "ensemble" and isinstance(payload["ambiguous"], bool) and payload["image"] == str(out)
    assert len(payload["regions"]) == 4
    scores = [r["score"] for r in payload["regions"]]
    assert scores == sorted(scores, reverse=True)
    for r in payload["regions"]:
        x0, y0, x1, y1 = r["bbox"]
        assert 0 <= x0 < x1 <= 600 and 0 <= y0 < y1 <= 400
    overlay = np.asarray(Image.open(out).convert("RGB")).astype(int)
    base = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    assert overlay.shape == base.shape
    x0, y0, x1, y1 = payload["regions"][0]["bbox"]
    assert (overlay[y0:y1, x0:x1] != base[y0:y1, x0:x1]).any()  # the best region is highlighted


def test_find_text_output_and_method(capsys, tiny_dir, photo):
    code, stdout, err = run(capsys, "find", photo, "the spoon", "--method", "circle", "--top", "1", "--no-sam",
                            "--config", TINY)
    assert code == 0, err
    assert stdout.startswith("'the spoon' (circle,") and "1. [1] box " in stdout and "2. " not in stdout
    assert "note" not in stdout  # --no-sam is no surprise


@pytest.mark.parametrize("args, words", [
    (["", ], "empty"),
    (["   "], "empty"),
    (["x" * 201], "201 characters"),
    (["the cup", "--top", "0"], "top_k"),
    (["the cup", "--margin", "-1"], "margin"),
])
def test_find_bad_phrase_or_options_exit_2_with_one_line(capsys, photo, args, words):
    code, stdout, err = run(capsys, "find", photo, *args, "--config", TINY)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("mmchat: ") and words in err


def test_find_llava_asks_the_chat_model_and_refuses_an_unusable_box(capsys, tiny_dir, photo):
    code, stdout, err = run(capsys, "find", photo, "the cup", "--method", "llava", "--config", TINY)
    assert code == 2 and stdout == ""  # the tiny LLaVA-1.5 was asked (it loaded); its random box is empty
    assert "[llava] loaded" in err and err.splitlines()[-1].startswith("mmchat: The chat model's box")


def test_find_unreadable_image_exits_2_with_one_line(capsys, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    for path in (bad, tmp_path / "missing.png"):
        code, stdout, err = run(capsys, "find", path, "the cup", "--config", TINY)
        assert code == 2 and stdout == "" and err.count("\n") == 1 and str(path.name) in err


def test_eval_grounding_on_a_synthetic_set(capsys, tiny_dir, tmp_path):
    folder = tmp_path / "refs"
    code, stdout, err = run(capsys, "eval-grounding", "--make-synthetic", folder, "--n", "4", "--json")
    assert code == 0, err
    assert json.loads(stdout) == {"dir": str(folder), "examples": 4}
    assert len((folder / "refs.jsonl").read_text().splitlines()) == 4
    code, stdout, err = run(capsys, "eval-grounding", folder, "--no-sam", "--config", TINY)
    assert code == 0, err
    rows = [line for line in stdout.splitlines() if line.startswith("| ")]
    assert rows[0] == "| method | acc@0.5 | acc@0.5 no prior | mean IoU |"
    assert [r.split(" | ")[0][2:] for r in rows[1:5]] == ["circle", "blur", "grey", "ensemble"]
    assert "candidate recall" in stdout and "n = 4" in stdout and "[eval] 4/4" in err
    code, stdout, err = run(capsys, "eval-grounding", folder, "--no-sam", "--methods", "grey", "--json",
                            "--config", TINY)
    assert code == 0, err
    assert list(json.loads(stdout)["accuracy"]) == ["grey"]


def test_eval_grounding_errors_exit_2_with_one_line(capsys, tmp_path):
    (tmp_path / "refs.jsonl").write_text('{"image": "x.png", "expression": "a cat", "bbox": [0, 0, 1, 1]}\n')
    for argv in (["eval-grounding", tmp_path / "nowhere", "--config", TINY],
                 ["eval-grounding", tmp_path, "--config", TINY],
                 ["eval-grounding", "--config", TINY],
                 ["eval-grounding", "--make-synthetic", tmp_path / "s", "--n", "0"]):
        code, stdout, err = run(capsys, *argv)
        assert code == 2 and stdout == "" and err.count("\n") == 1 and err.startswith("mmchat: "), (argv, err)


# -- editing what a phrase names --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def square(tmp_path_factory):
    from PIL import ImageDraw

    path = tmp_path_factory.mktemp("remove") / "square.png"
    image = Image.fromarray(data.coffee()).resize((300, 200))
    ImageDraw.Draw(image).rectangle((200, 120, 259, 179), fill=(30, 60, 220))
    image.save(path)
    return path


@pytest.mark.parametrize("verb, words", [("remove", ["PHRASE", "--choice", "--steps", "--seed", "-o", "--json"]),
                                         ("edit", ["--target", "--choice"])])
def test_help_of_editing_by_words(capsys, verb, words):
    code, out, _ = run(capsys, verb, "--help")
    assert code == 0 and all(w.lower() in out.lower() for w in words)


def test_remove_by_phrase_asks_when_ambiguous_then_edits_only_the_chosen_place(capsys, tiny_dir, square, tmp_path):
    from tools.edit import feather_mask
    from tools.grounding import box_mask

    out = tmp_path / "out.png"
    code, stdout, err = run(capsys, "remove", square, "the blue square", "--steps", "2", "--seed", "3", "-o", out,
                            "--config", TINY)  # random weights: another place scores within the margin
    candidates = tmp_path / "out.candidates.png"
    last = err.splitlines()[-1]  # after the models' loading lines: one sentence
    assert code == 2 and stdout == "" and not out.exists() and last.startswith("mmchat: ")
    assert "More than one place could be 'the blue square'" in last and str(candidates) in last and "--choice" in last
    assert Image.open(candidates).size == (300, 200)
    code, stdout, err = run(capsys, "remove", square, "the blue square", "--steps", "2", "--seed", "3",
                            "--choice", "2", "-o", out, "--config", TINY, "--json")
    assert code == 0, err
    payload = json.loads(stdout)
    assert payload["mode"] == "remove" and payload["seed"] == 3 and len(payload["bbox"]) == 4
    before = np.asarray(Image.open(square).convert("RGB"))
    after = np.asarray(Image.open(out).convert("RGB"))
    outside = feather_mask(box_mask(payload["bbox"], (300, 200)), 8, 6) == 0  # tools.mask_dilate/feather defaults
    assert np.array_equal(before[outside], after[outside]) and not np.array_equal(before, after)


def test_edit_with_a_target_repaints_the_found_place(capsys, tiny_dir, square, tmp_path):
    out = tmp_path / "tiger.png"
    code, stdout, err = run(capsys, "edit", square, "a tiger", "--target", "the blue square", "--choice", "1",
                            "--steps", "2", "-o", out, "--config", TINY)
    assert code == 0, err
    assert stdout.startswith(f"{out} (inpaint, found at ") and Image.open(out).size == (300, 200)


@pytest.mark.parametrize("argv, words", [
    (["remove", "IMG", "", "-o", "x.png"], "empty"),
    (["remove", "IMG", "the cup", "--choice", "0", "-o", "x.png"], "--choice"),
    (["edit", "IMG", "a tiger", "--choice", "2", "-o", "x.png"], "give --target"),
    (["edit", "IMG", "a tiger", "--target", "the cat", "--point", "3,4", "-o", "x.png"], "instead of --point"),
])
def test_editing_by_words_refuses_bad_input_in_one_line(capsys, square, tmp_path, argv, words):
    argv = [str(square) if a == "IMG" else str(tmp_path / a) if a == "x.png" else a for a in argv]
    code, stdout, err = run(capsys, *argv, "--config", TINY)
    assert code == 2 and stdout == "" and err.count("\n") == 1 and words in err
