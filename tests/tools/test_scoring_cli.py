"""The score / classify / eval-markers / eval-classify verbs on the tiny profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.fakes import cli
from tools.eval_datasets import make_synthetic_dataset

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ["--config", str(ROOT / "configs" / "tiny.yaml")]


pytestmark = pytest.mark.usefixtures("tiny_env")


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "shapes.png"
    im = Image.new("RGB", (80, 64), (180, 190, 180))
    ImageDraw.Draw(im).rectangle((8, 8, 36, 36), fill=(40, 60, 210))
    im.save(path)
    return path


def run(capsys, *argv):
    return cli(capsys, *argv, *CONFIG)


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_score_json(capsys, image_path):
    data = run_json(capsys, "score", image_path, "--label", "cat", "--label", "dog", "--label", "cat")
    assert sorted(data["labels"]) == ["cat", "dog"] and data["mode"] == "softmax"
    assert abs(sum(data["scores"]) - 1) < 1e-5 and data["region"] is False


def test_score_siglip_with_points_and_chart(capsys, image_path, tmp_path):
    chart = tmp_path / "chart.png"
    data = run_json(capsys, "score", image_path, "--label", "a blue square", "--model", "siglip",
                    "--point", "20,20", "--chart", chart)
    assert data["mode"] == "sigmoid" and data["region"] is True and 0 < data["scores"][0] < 1
    assert Image.open(chart).size[0] > 100


def test_score_text_output_is_a_table(capsys, image_path):
    code, out, _ = run(capsys, "score", image_path, "--label", "cat", "--label", "dog")
    assert code == 0 and out.startswith("| label |")


def test_classify_json(capsys, image_path):
    data = run_json(capsys, "classify", image_path, "--rounds", "2")
    assert isinstance(data["label"], str) and data["label"]
    assert len(data["rounds"]) == 2 and all(r["candidates"] and r["scores"] for r in data["rounds"])


def test_eval_verbs_json(capsys, tmp_path):
    markers = make_synthetic_dataset(tmp_path / "markers", "markers", n=2)
    data = run_json(capsys, "eval-markers", markers)
    assert data["n"] == 2 and set(data["accuracy"]) == {"circle", "ellipse", "box", "arrow", "cross", "point", "contour"}
    assert set(data["variants"]) == {"no marker", "crop", "blur outside", "grey outside"}
    folders = make_synthetic_dataset(tmp_path / "classify", "classify", n=3)
    data = run_json(capsys, "eval-classify", folders, "--rounds", "1")
    assert data["n"] == 3 and len(data["accuracy"]) == 2
    code, out, _ = run(capsys, "eval-markers", markers)
    assert code == 0 and "| shape \\ colour | red |" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["score", "{img}"], "--label"),
        (["score", "{img}", "--label", "  "], "label 1 is empty"),
        (["score", "{img}", "--label", "cat", "--point", "500,5"], "outside the image (80x64)"),
        (["score", "{img}", "--label", "cat", "--point", "a,b"], "is not a point"),
        (["score", "{img}", "--label", "cat", "--model", "dino"], "invalid choice"),
        (["score", "{missing}", "--label", "cat"], "does not exist"),
        (["classify", "{img}", "--rounds", "0"], "--rounds must be between 1 and 10"),
        (["eval-markers", "{missing}"], "does not exist"),
        (["eval-markers", "{bad}"], "line 1: not valid JSON"),
        (["eval-classify", "{bad}"], "at least two subfolders"),
        (["eval-classify", "{bad}", "--rounds", "11"], "--rounds must be between 1 and 10"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, image_path, tmp_path, argv, needle):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "data.jsonl").write_text("{oops\n")
    names = {"img": image_path, "missing": tmp_path / "missing.png", "bad": bad}
    code, out, err = run(capsys, *[a.format(**names) for a in argv])
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err
