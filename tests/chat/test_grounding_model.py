"""The chat model's part in grounding, through the tiny LLaVA-1.5: its RefCOCO box (asked as it was trained,
always a box in the image) feeding find's ``llava`` method, and the phrases of an answer listed by structured
output; ViP-LLaVA is not asked for boxes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from skimage import data

from chat.grounding_model import answer_phrases, box_asker, gives_boxes
from chat.mllm import MultimodalChat
from tools.grounding import GroundingError, find_regions
from tools.grounding.grounded import ground_answer

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml")


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


def test_the_chat_models_training_is_read_without_loading_it(tiny_config):
    """What the context window and the image limit are read from (the family's training) loads no weights."""
    from chat.lc_model import LocalMultimodalChatModel
    from chat.registry import ModelRegistry

    registry = ModelRegistry(tiny_config)
    model = LocalMultimodalChatModel(chat=MultimodalChat(registry, "llava"))
    assert model.context_window() == 2048 and model.max_images() == 1  # LLaVA-1.5's fine-tuning
    assert registry.load_count == {} and registry.loaded() == []


def test_asking_whether_the_chat_model_gives_boxes_loads_nothing(tiny_config, monkeypatch):
    """``gives_boxes`` reads the checkpoint's config: a LLaVA not loaded yet stays unloaded, one waiting in CPU
    RAM stays there (nothing is loaded or moved back just to read a config)."""
    from chat.registry import ModelRegistry

    registry = ModelRegistry(tiny_config)
    moves: list[str] = []
    registry.add_progress_listener(lambda name, fraction, message: moves.append(message))
    llava, vip = MultimodalChat(registry, "llava"), MultimodalChat(registry, "vip_llava")
    assert gives_boxes(llava) and not gives_boxes(vip) and box_asker(vip) is None
    assert registry.load_count == {} and registry.loaded() == [] and moves == []
    registry.get("llava")
    registry.memory.offload_device = "ram"  # as on a GPU: the budget moves LLaVA to CPU RAM for CLIP
    monkeypatch.setattr(tiny_config.offload, "ram_gb", 64)
    registry.memory.move = lambda obj, device: None
    registry.memory.budget_bytes = registry.used_bytes() + 1
    registry.get("clip")
    assert registry.offloaded() == ["llava"]
    moves.clear()
    assert gives_boxes(llava) and box_asker(llava) is not None
    assert registry.offloaded() == ["llava"] and registry.load_count == {"llava": 1, "clip": 1} and moves == []


def test_the_box_for_an_image_and_a_phrase_is_asked_once_with_a_cache(chat, cat, monkeypatch):
    from tools.grounding import CandidateCache

    seen = spy(chat, monkeypatch)
    cache = CandidateCache(max_boxes=2)

    def box(image, phrase):
        try:
            return box_asker(chat, cache)(image, phrase)
        except GroundingError as exc:  # the random model's box may be unusable: the same sentence every time
            return str(exc)

    first = box(cat, "the cat")
    assert box(cat, "the cat") == first and box(cat, "the cat.") == first  # the same question
    assert len(seen) == 1 and cache.box_asks == 1
    box(cat, "the rug")
    box(cat.rotate(90, expand=True), "the cat")  # another image
    assert len(seen) == 3 and cache.box_asks == 3
    box(cat, "the cat")  # the oldest of at most two answers was dropped
    assert len(seen) == 4
    uncached = len(seen)
    try:
        box_asker(chat)(cat, "the rug")
    except GroundingError:
        pass
    assert len(seen) == uncached + 1  # without a cache, every call asks


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


def test_ask_grounded_draws_the_answers_phrases(capsys, tiny_dir, tmp_path, monkeypatch):
    """``mmchat ask --grounded OUT``: the phrases the chat model lists (scripted here: the random model's own
    words) are found and drawn in OUT; the JSON has each phrase's place in the answer, colour and box."""
    import json

    import chat.grounding_model as grounding_model
    from tests.fakes import cli

    photo = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()).save(photo)
    listed = []

    def phrases(chat, image, answer):
        listed.append(answer)
        return answer.split()[:2] + ["a unicorn"]  # two words of the answer, one made up

    monkeypatch.setattr(grounding_model, "answer_phrases", phrases)
    out = tmp_path / "grounded.png"
    code, stdout, err = cli(capsys, "ask", photo, "What is this?", "--max-new-tokens", "8", "--grounded", out,
                            "--config", CONFIG, "--json")
    assert code == 0, err
    payload = json.loads(stdout)
    grounded = payload["grounded"]
    assert listed == [payload["answer"]] and grounded["answer"] == payload["answer"]
    words = payload["answer"].split()[:2]
    assert [p["phrase"] for p in grounded["phrases"]] == [w for w in dict.fromkeys(words)]
    for p in grounded["phrases"]:
        assert payload["answer"][p["start"]:p["end"]] == p["phrase"] and p["colour"].startswith("#")
    assert any("'a unicorn'" in n for n in grounded["notes"])
    assert Image.open(out).size == (451, 300)
