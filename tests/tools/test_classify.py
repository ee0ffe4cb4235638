"""LLM<->CLIP coarse-to-fine classification with scripted chat models and the tiny LLaVA."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw
from pydantic import ValidationError

from tools.classify import GENERIC_LABELS, ClassifyInput, classify, fallback_candidates, parse_candidates
from tools.scoring import EmbeddingCache, score_labels


class ScriptedChat:
    """Answers from a script, recording the conversations it was shown."""

    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.seen = []

    def generate(self, turns, options=None):
        self.seen.append(list(turns))
        return self.answers[min(len(self.seen), len(self.answers)) - 1]


@pytest.fixture(scope="module")
def registry(assistant):
    return assistant.registry


@pytest.fixture
def image():
    im = Image.new("RGB", (64, 64), (200, 200, 190))
    ImageDraw.Draw(im).ellipse((12, 12, 52, 52), fill=(220, 120, 30))
    return im


def test_rounds_follow_the_script_and_the_label_is_the_best_logit(registry, image):
    chat = ScriptedChat("1. Cat\n2. Dog\n3) fox.", "tabby cat, Siamese cat, 'tabby cat'")
    cache = EmbeddingCache()
    result = classify(registry, image, chat, rounds=2, cache=cache)
    assert len(result.rounds) == 2
    assert sorted(result.rounds[0].candidates) == ["cat", "dog", "fox"]
    assert sorted(result.rounds[1].candidates) == ["siamese cat", "tabby cat"]
    assert not any(r.fallback for r in result.rounds)
    for r in result.rounds:
        assert r.scores == sorted(r.scores, reverse=True) and abs(sum(r.scores) - 1) < 1e-5
    union = score_labels(registry, image, ["cat", "dog", "fox", "tabby cat", "siamese cat"])
    assert result.label == union.best  # logits are comparable across rounds
    assert cache.image_encodes == 1  # the vision encoder ran once for all rounds
    # the conversation: the image in the first turn; round 2 hears the scores of round 1
    first, second = chat.seen
    assert len(first) == 1 and first[0].images == [image]
    assert [t.role for t in second] == ["user", "assistant", "user"]
    assert all(c in second[2].text for c in result.rounds[0].candidates)
    assert "more specific" in second[2].text


def test_garbage_answers_fall_back_and_the_machinery_runs(registry, image):
    chat = ScriptedChat("\x1b¤¤ ## 12 ,,, ;")
    result = classify(registry, image, chat, rounds=3)
    assert len(result.rounds) == 3
    assert all(r.fallback and len(r.candidates) >= 2 for r in result.rounds)
    assert set(result.rounds[0].candidates) <= set(GENERIC_LABELS)
    assert result.label in {c for r in result.rounds for c in r.candidates}


def test_tiny_llava_rounds_have_the_requested_count(assistant, image):
    cache = EmbeddingCache()
    result = classify(assistant.registry, image, assistant.mllm, rounds=2, cache=cache)
    assert len(result.rounds) == 2
    assert all(len(r.candidates) >= 2 and len(r.candidates) == len(r.scores) for r in result.rounds)
    assert result.label and result.label in {c for r in result.rounds for c in r.candidates}
    assert result.summary().startswith(result.label)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cat, dog, tabby cat, Cat.", ["cat", "dog", "tabby cat"]),
        ("1. Golden retriever\n2) Labrador\n- puppy\n* dog", ["golden retriever", "labrador", "puppy", "dog"]),
        ("Here are 3 possible names: apple; red apple or tomato!", ["apple", "red apple", "tomato"]),
        ("Sure! The main object is a dog.", ["dog"]),
        ('"Kitten", the tabby, an orange cat', ["kitten", "tabby", "orange cat"]),
        ("¤¤ ## 12 ,,, ;", []),
    ],
)
def test_parse_candidates(text, expected):
    assert parse_candidates(text) == expected


def test_fallback_candidates_use_words_then_generic_labels():
    assert fallback_candidates("zebra\x1b stripes??") == ["zebra", "stripes", "object", "animal", "person"]
    assert fallback_candidates("", exclude=["object"]) == ["animal", "person", "scene", "food"]


def test_classify_input_validates_rounds():
    assert ClassifyInput().rounds == 2
    for bad in (0, 11):
        with pytest.raises(ValidationError):
            ClassifyInput(rounds=bad)
    with pytest.raises(ValidationError):
        ClassifyInput(rounds=2, labels=["x"])
    assert ClassifyInput.model_json_schema()["properties"]["rounds"]["description"]
