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
    (["the cup", "--method", "llava"], "llava"),
])
def test_find_bad_phrase_or_options_exit_2_with_one_line(capsys, photo, args, words):
    code, stdout, err = run(capsys, "find", photo, *args, "--config", TINY)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("mmchat: ") and words in err


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
