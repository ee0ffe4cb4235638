"""The chat model's part in grounding, through the tiny LLaVA-1.5: its RefCOCO box (asked as it was trained,
always a box in the image) feeding find's ``llava`` method, and the phrases of an answer listed by structured
output; ViP-LLaVA is not asked for boxes."""

from __future__ import annotations

import pytest
from PIL import Image
from skimage import data

from chat.grounding_model import answer_phrases, box_asker, gives_boxes
from chat.mllm import MultimodalChat
from tools.grounding import GroundingError, find_regions
from tools.grounding.grounded import ground_answer


@pytest.fixture(scope="module")
def chat(assistant):
    return MultimodalChat(assistant.registry, "llava")


@pytest.fixture(scope="module")
def cat():
    return Image.fromarray(data.chelsea()).resize((226, 150))


def spy(chat, monkeypatch):
    seen = []
    original = chat.stream

    def stream(turns, options=None, *args, **kwargs):
        seen.append((turns, options, kwargs))
        return original(turns, options, *args, **kwargs)

    monkeypatch.setattr(chat, "stream", stream)
    return seen


def test_only_llava_15_is_asked_for_boxes(assistant, chat):
    assert gives_boxes(chat) and box_asker(chat) is not None
    vip = MultimodalChat(assistant.registry, "vip_llava")
    assert not gives_boxes(vip) and box_asker(vip) is None


def test_the_box_is_asked_as_llava_was_trained_and_always_parses(chat, cat, monkeypatch):
    seen = spy(chat, monkeypatch)
    try:
        box = box_asker(chat)(cat, "the cat.")
    except GroundingError as exc:  # a random model may give x1 <= x0: one sentence, never a crash
        assert "box" in str(exc)
    else:
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    (turns, options, kwargs), = seen
    assert turns[0].text == ("Please provide the bounding box coordinate of the region this sentence describes: "
                             "the cat.")
    assert turns[0].images == [cat] and options.temperature == 0.0 and kwargs["constraint"] is not None


def test_find_with_the_chat_models_box(assistant, chat, cat):
    registry = assistant.registry
    ask = box_asker(chat)
    result = find_regions(registry, cat, {"phrase": "the cat", "method": "auto", "top_k": 2},
                          sam=registry.get("sam"), box_from_model=ask)
    if result.method == "llava":  # the model's box became a candidate and voted
        assert any(r.source == "llava" for r in result.regions) or result.regions[0].method == "llava+ensemble"
    else:  # the random model's box was unusable: CLIP alone, and the note says why
        assert result.method == "ensemble" and any("Scored by CLIP alone" in n for n in result.notes)
    assert result.regions and all(r.mask.shape == (150, 226) for r in result.regions)


def test_answer_phrases_come_from_structured_output(chat, cat, monkeypatch):
    seen = spy(chat, monkeypatch)
    phrases = answer_phrases(chat, cat, "A cat lies on a rug.")
    assert isinstance(phrases, list) and all(isinstance(p, str) for p in phrases) and len(phrases) <= 6
    (turns, _, kwargs), = seen
    assert "A cat lies on a rug." in turns[0].text and turns[0].images == [cat]
    assert kwargs["constraint"].schema["properties"]["phrases"]["type"] == "array"
    grounded = ground_answer("A cat lies on a rug.", phrases, lambda p: find_regions(chat.registry, cat, {"phrase": p}))
    assert all(p.phrase.casefold() in "a cat lies on a rug." for p in grounded.phrases)
