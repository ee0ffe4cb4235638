"""eval-grounding's plumbing: the synthetic set draws what it says, datasets are checked line by line, RefCOCO
converts to the layout, and the table counts hits at IoU >= 0.5 right (on random weights the accuracies of the
visual prompts mean nothing; a scripted chat-model box with a known IoU does)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from tools.eval_datasets import make_grounding_dataset
from tools.eval_grounding import EVAL_METHODS, _prior_bank, convert_refcoco, eval_grounding, read_ref_examples
from tools.grounding import GroundingError

COLOURS = {"red": (215, 35, 35), "green": (35, 165, 55), "blue": (40, 70, 215), "yellow": (235, 205, 30)}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_grounding_dataset(tmp_path_factory.mktemp("refs"), n=6, seed=3)


def lines(root):
    return [json.loads(line) for line in (root / "refs.jsonl").read_text().splitlines()]


def test_synthetic_set_draws_what_the_expression_says(synthetic):
    rows = lines(synthetic)
    assert len(rows) == 6
    for row in rows:
        words = row["expression"].split()
        assert words[0] == "the" and words[1] in ("small", "big") and words[2] in COLOURS
        assert words[3] in ("circle", "square", "triangle")
        image = np.asarray(Image.open(synthetic / row["image"]).convert("RGB")).astype(int)
        x0, y0, x1, y1 = row["bbox"]
        colour = np.array(COLOURS[words[2]])
        inside = np.abs(image[y0:y1, x0:x1] - colour).sum(-1) < 60
        assert inside[(y1 - y0) // 2, (x1 - x0) // 2]  # the centre is the shape's colour
        assert inside[:, 0].any() and inside[:, -1].any() and inside[0].any() and inside[-1].any()  # tight box
        place = " ".join(words[4:])
        centre = (x0 + x1) / 2 / image.shape[1]
        assert place == ("on the left" if centre < 1 / 3 else "in the middle" if centre < 2 / 3 else "on the right")


@pytest.mark.parametrize("line, words", [
    ("{not json", "not valid JSON"),
    ('{"image": "images/0000.png", "expression": "", "bbox": [0, 0, 5, 5]}', "empty"),
    ('{"image": "images/0000.png", "expression": "a cat", "bbox": [5, 5, 1, 1]}', "x1 > x0"),
    ('{"image": "/etc/passwd", "expression": "a cat", "bbox": [0, 0, 5, 5]}', "inside the dataset folder"),
    ('{"image": "../x.png", "expression": "a cat", "bbox": [0, 0, 5, 5]}', "inside the dataset folder"),
    ('{"image": "images/none.png", "expression": "a cat", "bbox": [0, 0, 5, 5]}', "does not exist"),
])
def test_bad_lines_are_named_by_file_and_line(synthetic, tmp_path, line, words):
    (tmp_path / "images").symlink_to(synthetic / "images")
    good = json.dumps(lines(synthetic)[0])
    (tmp_path / "refs.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(GroundingError) as info:
        read_ref_examples(tmp_path)
    assert "line 2" in str(info.value) and words in str(info.value)


def test_missing_folder_or_file_or_examples(tmp_path):
    with pytest.raises(GroundingError, match="does not exist"):
        read_ref_examples(tmp_path / "nope")
    with pytest.raises(GroundingError, match="refs.jsonl not found"):
        read_ref_examples(tmp_path)
    (tmp_path / "refs.jsonl").write_text("\n")
    with pytest.raises(GroundingError, match="no examples"):
        read_ref_examples(tmp_path)


def test_refcoco_converts_to_the_layout(tmp_path, synthetic):
    refs = [
        {"image_id": 7, "ann_id": 70, "split": "val", "sentences": [{"sent": "man on the left", "raw": "Man on the left"},
                                                                     {"sent": "guy in red"}]},
        {"image_id": 7, "ann_id": 71, "split": "train", "sentences": [{"sent": "the dog"}]},
    ]
    (tmp_path / "refs(unc).p").write_bytes(pickle.dumps(refs))
    instances = {"images": [{"id": 7, "file_name": "0000.png"}],
                 "annotations": [{"id": 70, "bbox": [10.5, 20, 30, 40]}, {"id": 71, "bbox": [0, 0, 5, 5]}]}
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    out = tmp_path / "refcoco"
    count = convert_refcoco(tmp_path / "refs(unc).p", tmp_path / "instances.json", synthetic / "images", out)
    assert count == 2
    root, examples = read_ref_examples(out)
    assert [e.expression for e in examples] == ["man on the left", "guy in red"]
    assert examples[0].bbox == (10.5, 20, 40.5, 60)  # COCO's [x, y, w, h] to [x0, y0, x1, y1]
    assert (root / examples[0].image).is_file()


def test_the_dataset_prior_is_a_fixed_sample_of_expressions(synthetic):
    _, examples = read_ref_examples(synthetic)
    bank = _prior_bank(examples, "dataset", size=3)
    assert len(bank) == 3 and set(bank) <= {e.expression for e in examples}
    assert bank == _prior_bank(examples, "dataset", size=3)
    assert "an object" in _prior_bank(examples, "neutral")


def test_table_has_a_row_per_method_and_counts_every_expression(assistant, synthetic):
    table = eval_grounding(assistant.registry, synthetic)
    assert table.n == 6 and list(table.rows) == list(EVAL_METHODS)
    assert table.columns == ["acc@0.5", "acc@0.5 no prior", "mean IoU"]
    for values in table.rows.values():
        assert all(0.0 <= v <= 1.0 for v in values)
        assert values[0] * 6 == pytest.approx(round(values[0] * 6))  # whole hits out of 6
    recall = table.variants["candidate recall at IoU >= 0.5 (upper bound)"]
    assert recall >= 5 / 6  # Set-of-Mark finds flat shapes
    assert all(values[0] <= recall + 1e-9 for values in table.rows.values())
    text = table.markdown()
    assert all(f"| {m} |" in text for m in EVAL_METHODS) and "n = 6" in text


def _padded(box, size):
    """The normalised padded-square box LLaVA would answer for a pixel box."""
    w, h = size
    side = max(w, h)
    left, top = (side - w) / 2, (side - h) / 2
    x0, y0, x1, y1 = box
    return [(x0 + left) / side, (y0 + top) / side, (x1 + left) / side, (y1 + top) / side]


def test_iou_and_hits_are_counted_right_with_known_boxes(assistant, synthetic):
    truth = {(r["image"].split("/")[-1], r["expression"]): r["bbox"] for r in lines(synthetic)}
    size = Image.open(synthetic / lines(synthetic)[0]["image"]).size

    def exact(image, phrase):  # a perfect chat model
        box = next(b for (name, e), b in truth.items() if e == phrase)
        return _padded(box, size)

    def beside(image, phrase):  # the box moved right by its own width, or left when there is no room: IoU 0
        x0, y0, x1, y1 = next(b for (name, e), b in truth.items() if e == phrase)
        w = x1 - x0
        shift = w if x1 + w <= size[0] else -w
        return _padded((x0 + shift, y0, x1 + shift, y1), size)

    good = eval_grounding(assistant.registry, synthetic, methods=["llava"], box_from_model=exact)
    assert good.rows["llava"][0] == 1.0 and good.rows["llava"][1] is None and good.rows["llava"][2] > 0.95
    bad = eval_grounding(assistant.registry, synthetic, methods=["llava"], box_from_model=beside)
    assert bad.rows["llava"][0] == 0.0 and bad.rows["llava"][2] < 0.05


def test_unknown_methods_and_llava_without_a_hook_are_refused(assistant, synthetic):
    with pytest.raises(GroundingError, match="Unknown method"):
        eval_grounding(assistant.registry, synthetic, methods=["magic"])
    with pytest.raises(GroundingError, match="llava"):
        eval_grounding(assistant.registry, synthetic, methods=["llava"])
