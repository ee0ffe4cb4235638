"""LLM<->CLIP coarse-to-fine classification with scripted chat models and the tiny LLaVA."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw
from pydantic import ValidationError

from tools.classify import GENERIC_LABELS, ClassifyInput, classify, fallback_candidates, parse_candidates
from tools.scoring import EmbeddingCache, score_labels


class ScriptedChat:
    """Answers from a script, recording the conversations it was shown; no constrained choice."""

    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.seen = []

    def generate(self, turns):
        self.seen.append(list(turns))
        return self.answers[min(len(self.seen), len(self.answers)) - 1]


class ChoosingChat(ScriptedChat):
    """A scripted chat model whose final constrained choice is ``favourite``."""

    def __init__(self, *answers: str, favourite: str):
        super().__init__(*answers)
        self.favourite = favourite
        self.choices = []

    def choose(self, turns, options):
        self.choices.append((list(turns), list(options)))
        return [-0.1 if o == self.favourite else -5.0 - i for i, o in enumerate(options)]


@pytest.fixture(scope="module")
def registry(assistant):
    return assistant.registry


@pytest.fixture
def image():
    im = Image.new("RGB", (64, 64), (200, 200, 190))
    ImageDraw.Draw(im).ellipse((12, 12, 52, 52), fill=(220, 120, 30))
    return im


NAMES = ["cat", "dog", "fox", "tabby cat", "siamese cat"]


def test_rounds_follow_the_script_and_the_model_answers_the_label(registry, image):
    union = score_labels(registry, image, NAMES)  # CLIP over every name the script proposes
    favourite = union.labels[-1]  # the model's pick is CLIP's worst: the label must come from the model
    chat = ChoosingChat("1. Cat\n2. Dog\n3) fox.", "tabby cat, Siamese cat, 'tabby cat'", favourite=favourite)
    cache = EmbeddingCache()
    result = classify(registry, image, chat, rounds=2, cache=cache)
    assert len(result.rounds) == 2
    assert sorted(result.rounds[0].candidates) == ["cat", "dog", "fox"]
    assert sorted(result.rounds[1].candidates) == ["siamese cat", "tabby cat"]
    assert not any(r.fallback for r in result.rounds)
    for r in result.rounds:
        assert r.scores == sorted(r.scores, reverse=True) and abs(sum(r.scores) - 1) < 1e-5
    # the final turn: the model chooses among every candidate, shown their CLIP scores
    assert result.label == favourite != union.best and result.label in NAMES
    decision = result.decision
    assert decision.by == "model" and decision.label == favourite
    assert decision.options == union.labels and decision.clip_scores == pytest.approx(union.scores, abs=1e-5)
    assert result.score == pytest.approx(union.scores[-1], abs=1e-5)
    (turns, options), = chat.choices
    assert options == union.labels
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant", "user"]
    assert all(f"{label} {score:.2f}" in turns[-1]["text"] for label, score in zip(union.labels, union.scores))
    assert cache.image_encodes == 1  # the vision encoder ran once for all rounds and the final scoring
    # the conversation: the image in the first turn; round 2 hears the scores of round 1
    first, second = chat.seen
    assert len(first) == 1 and first[0]["images"] == [image]
    assert [t["role"] for t in second] == ["user", "assistant", "user"]
    assert all(c in second[2]["text"] for c in result.rounds[0].candidates)
    assert "more specific" in second[2]["text"]
    assert "chosen by the chat model of 5 names" in result.summary()


def test_without_a_constrained_choice_the_label_is_the_best_clip_score(registry, image):
    chat = ScriptedChat("1. Cat\n2. Dog\n3) fox.", "tabby cat, Siamese cat")
    result = classify(registry, image, chat, rounds=2)
    union = score_labels(registry, image, NAMES)
    assert result.decision.by == "clip" and result.label == union.best and not result.decision.model_logprobs
    assert "best CLIP score" in result.summary()


def test_garbage_answers_fall_back_and_the_machinery_runs(registry, image):
    chat = ScriptedChat("\x1b¤¤ ## 12 ,,, ;")
    result = classify(registry, image, chat, rounds=3)
    assert len(result.rounds) == 3
    assert all(r.fallback and len(r.candidates) >= 2 for r in result.rounds)
    assert set(result.rounds[0].candidates) <= set(GENERIC_LABELS)
    assert result.label in {c for r in result.rounds for c in r.candidates}
    assert result.decision.options and result.label in result.decision.options


def test_tiny_llava_rounds_have_the_requested_count(assistant, image):
    from chat.toolbox.chat_model import ToolChat

    cache = EmbeddingCache()
    result = classify(assistant.registry, image, ToolChat(assistant.chat_model), rounds=2, cache=cache)
    assert len(result.rounds) == 2
    assert all(len(r.candidates) >= 2 and len(r.candidates) == len(r.scores) for r in result.rounds)
    candidates = {c for r in result.rounds for c in r.candidates}
    assert result.label and result.label in candidates and set(result.decision.options) == candidates
    # the tiny model answered by constrained choice: its pick is the option it gave the highest log-probability
    decision = result.decision
    assert decision.by == "model" and len(decision.model_logprobs) == len(decision.options)
    assert decision.model_logprobs[decision.options.index(result.label)] == max(decision.model_logprobs)
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
