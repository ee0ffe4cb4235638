"""Evaluation harnesses end to end on generated datasets, and their error messages."""

from __future__ import annotations

import json

import pytest

from chat.errors import UserError
from tools.eval_datasets import make_synthetic_dataset
from tools.evaluation import COLORS, SHAPES, VARIANTS, EvalTable, eval_classify, eval_markers
from tools.scoring import EmbeddingCache


class ScriptedChat:
    def __init__(self, answer: str):
        self.answer = answer
        self.calls = 0

    def generate(self, turns):
        self.calls += 1
        return self.answer


@pytest.fixture(scope="module")
def registry(assistant):
    return assistant.registry


@pytest.fixture(scope="module")
def marker_dir(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("markers"), "markers", n=3)


@pytest.fixture(scope="module")
def classify_dir(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("classify"), "classify", n=6)


def test_synthetic_datasets_have_the_documented_layout(marker_dir, classify_dir):
    lines = (marker_dir / "data.jsonl").read_text().splitlines()
    assert len(lines) == 3
    example = json.loads(lines[0])
    assert set(example) == {"image", "box", "labels", "answer"} and example["answer"] in example["labels"]
    assert (marker_dir / example["image"]).is_file()
    folders = sorted(p.name for p in classify_dir.iterdir())
    assert folders == ["disk", "square", "triangle"]
    assert sum(len(list((classify_dir / f).glob("*.png"))) for f in folders) == 6


def test_eval_markers_end_to_end(registry, marker_dir):
    cache = EmbeddingCache()
    seen = []
    table = eval_markers(registry, marker_dir, cache=cache, progress=lambda done, total, msg: seen.append(done))
    assert isinstance(table, EvalTable) and table.n == 3 and seen == [1, 2, 3]
    assert list(table.rows) == list(SHAPES) and table.columns == list(COLORS)
    assert all(0.0 <= v <= 1.0 and (v * 3).is_integer() for row in table.rows.values() for v in row)
    assert list(table.variants) == list(VARIANTS)
    assert cache.image_encodes == 3 * (len(SHAPES) * len(COLORS) + len(VARIANTS))
    text = table.markdown()
    assert "| circle |" in text and "| grey outside |" in text and "n = 3" in text
    data = json.loads(json.dumps(table.to_dict()))
    assert set(data["accuracy"]["box"]) == set(COLORS) and "crop" in data["variants"]
    # a second run hits the cache only
    eval_markers(registry, marker_dir, cache=cache)
    assert cache.image_encodes == 3 * (len(SHAPES) * len(COLORS) + len(VARIANTS))


def test_point_and_contour_are_part_of_the_ablation(registry, marker_dir):
    import numpy as np
    from PIL import Image

    from tools.evaluation import _box_mask, _marker_around
    from tools.markers import draw_markers

    table = eval_markers(registry, marker_dir, shapes=("point", "contour"), colors=("red",))
    assert list(table.rows) == ["point", "contour"] and "| contour |" in table.markdown()
    image, box = Image.new("RGB", (96, 96), (255, 255, 255)), (30, 40, 60, 70)
    red = lambda im: np.all(np.asarray(im) == (255, 0, 0), axis=-1)  # noqa: E731
    contour = red(draw_markers(image, [_marker_around(box, "contour", "red", image.size)],
                               masks=[_box_mask(box, image.size)]))
    assert contour.any() and not contour[40:70, 30:60].any()  # traces the box from just outside
    assert contour[38:72, 28:62].sum() == contour.sum()
    point = red(draw_markers(image, [_marker_around(box, "point", "red", image.size)]))
    ys, xs = np.nonzero(point)
    assert abs(xs.mean() - 45) < 1 and abs(ys.mean() - 55) < 1  # a dot at the box's centre


def test_eval_markers_subsets_and_siglip(registry, marker_dir):
    table = eval_markers(registry, marker_dir, shapes=("circle",), colors=("red", "blue"), model="siglip")
    assert table.rows.keys() == {"circle"} and table.columns == ["red", "blue"]
    assert "SIGLIP" in table.title


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a list"]', "line 2: expected a JSON object"),
        ('{"image": "images/0000.png", "labels": ["a", "b"], "answer": "a"}', "line 2: 'box'"),
        ('{"image": "images/0000.png", "box": [5, 5, 1, 1], "labels": ["a", "b"], "answer": "a"}', "x1 > x0"),
        ('{"image": "images/0000.png", "box": [1, 1, 5, 5], "labels": ["a", "b"], "answer": "c"}',
         "answer 'c' is not one of the labels"),
        ('{"image": "images/0000.png", "box": [1, 1, 5, 5], "labels": ["a"], "answer": "a"}', "at least two"),
        ('{"image": "missing.png", "box": [1, 1, 5, 5], "labels": ["a", "b"], "answer": "a"}',
         "image 'missing.png' does not exist"),
        ('{"image": "../../etc/passwd", "box": [1, 1, 5, 5], "labels": ["a", "b"], "answer": "a"}', "outside"),
    ],
)
def test_eval_markers_names_the_bad_line(registry, marker_dir, tmp_path, line, message):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "0000.png").write_bytes((marker_dir / "images" / "0000.png").read_bytes())
    good = '{"image": "images/0000.png", "box": [1, 1, 20, 20], "labels": ["a", "b"], "answer": "a"}'
    (tmp_path / "data.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(UserError, match="data.jsonl") as info:
        eval_markers(registry, tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_eval_markers_missing_dataset(registry, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        eval_markers(registry, tmp_path / "nope")
    with pytest.raises(UserError, match="data.jsonl not found"):
        eval_markers(registry, tmp_path)
    (tmp_path / "data.jsonl").write_text("\n\n")
    with pytest.raises(UserError, match="no examples"):
        eval_markers(registry, tmp_path)


def test_eval_classify_end_to_end(registry, classify_dir):
    chat = ScriptedChat("zebra, horse")
    table = eval_classify(registry, chat, classify_dir, rounds=2)
    assert table.n == 6 and chat.calls == 12 and table.columns == ["accuracy"]
    (clip_name, clip_acc), (llm_name, llm_acc) = [(k, v[0]) for k, v in table.rows.items()]
    assert "CLIP" in clip_name and "LLM" in llm_name and "2 rounds" in llm_name
    assert 0.0 <= clip_acc <= 1.0 and llm_acc == 0.0  # the script never names a folder label
    right = eval_classify(registry, ScriptedChat("square, triangle, disk"), classify_dir, rounds=1)
    rows = list(right.rows.values())
    assert rows[0] == rows[1]  # proposing exactly the folder labels reproduces CLIP-only
    assert "| method | accuracy |" in right.markdown()


def test_eval_classify_with_the_tiny_llava(assistant, classify_dir):
    from chat.toolbox.chat_model import ToolChat

    table = eval_classify(assistant.registry, ToolChat(assistant.chat_model), classify_dir, rounds=1)
    assert table.n == 6 and all(0.0 <= v[0] <= 1.0 for v in table.rows.values())


def test_eval_classify_needs_two_labelled_folders(registry, tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "1.png").write_bytes(b"")
    with pytest.raises(UserError, match="at least two subfolders"):
        eval_classify(registry, ScriptedChat("x"), tmp_path)
