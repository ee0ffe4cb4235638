"""What a turn's prompt holds: one image (the one the message is about) for single-image-trained checkpoints,
history trimmed to the trained context (oldest turns first, never an image's tokens), the trained system
sentence first, and sessions that hold typed special tokens keep working after a reload."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from chat.config import ModelSpec
from chat.events import Done
from chat.router import Router
from chat.session import Session
from chat.store import SessionStore
from tests.fakes import VICUNA_V1, ScriptedChat, local, run
from tools.markers import Marker


def images_of(turns) -> list[int]:
    return [len(t.images) for t in turns]


def picture(color) -> Image.Image:
    return Image.new("RGB", (80, 60), color)


def test_one_image_per_prompt_the_others_by_id(assistant):
    fake = ScriptedChat("ok", choice={"answer": 0.0})
    fake.spec = ModelSpec(path="fake", max_images=1)  # a scripted model with the config key
    router = Router(assistant, local(fake))
    session = Session()
    session.add_image(picture((40, 160, 60)))
    run(router, session, "what is this?")
    run(router, session, "and its colour?")
    assert images_of(fake.turns[-1]) == [0, 1, 0, 0]  # the image stays in the turn that showed it
    session.add_image(picture((200, 30, 30)))
    run(router, session, "what about img2?")
    turns = fake.turns[-1]
    assert sum(images_of(turns)) == 1 and len(turns[-1].images) == 1  # only img2, in this turn
    assert turns[1].text == "[img1.v1] what is this?" and not turns[1].images  # img1 is named by its id
    run(router, session, "and img1?")
    assert sum(images_of(fake.turns[-1])) == 1 and len(fake.turns[-1][1].images) == 1  # back in its first turn
    session.add_marker(Marker(x=40, y=30, radius=10))  # a new view of img2: the prompt shows it alone
    run(router, session, "what is in the red circle of img2?")
    turns = fake.turns[-1]
    assert sum(images_of(turns)) == 1 and tuple(np.asarray(turns[-1].images[0])[30, 51]) == (255, 0, 0)


@pytest.fixture
def counted(assistant, monkeypatch):
    """The image tokens of every prompt the tiny LLaVA is given."""
    mllm = assistant.mllm
    real = mllm.inputs
    counts: list[int] = []

    def inputs(turns):
        out = real(turns)
        counts.append(int((out["input_ids"][0] == mllm.bundle.model.config.image_token_id).sum()))
        return out

    monkeypatch.setattr(mllm, "inputs", inputs)
    return counts


def test_a_follow_up_about_the_same_image_reuses_the_cache_with_one_image(assistant, counted):
    mllm = assistant.mllm
    per_image = mllm.bundle.model.config.image_seq_length
    router = Router(assistant)
    router.choice_margin = float("inf")  # random weights: always answer in words
    mllm.prefix_cache.clear()
    session = Session()
    session.add_image(picture((40, 160, 60)))
    run(router, session, "what is in the picture?")
    run(router, session, "and what colour is it?")
    assert mllm.last_stats["images_encoded"] == 0 and mllm.last_stats["reused_tokens"] > per_image
    session.add_image(picture((200, 30, 30)))
    run(router, session, "and this one?")  # a new image starts a new prefix...
    run(router, session, "is it red?")  # ...which its follow-up reuses
    assert mllm.last_stats["images_encoded"] == 0 and mllm.last_stats["reused_tokens"] > per_image
    assert set(counted) == {per_image}  # every prompt (choices and answers) held exactly one image


def test_history_is_trimmed_to_the_trained_context(assistant, counted, monkeypatch):
    """``context_tokens`` (not max_position_embeddings) bounds prompt + answer; the oldest turns leave first, in
    steps (so the prompt's start stays put for a few turns); the image is never cut or dropped."""
    mllm = assistant.mllm
    router = Router(assistant)
    router.choice_margin = float("inf")
    session = Session()
    session.add_image(picture((40, 160, 60)))
    run(router, session, "what is in the picture?")
    reserve = assistant.config.generation.max_new_tokens
    window = mllm.last_stats["prompt_tokens"] + reserve + 120  # room for about two more exchanges
    monkeypatch.setattr(mllm.spec, "context_tokens", window)
    assert router.chat_model.context_window() == window
    prompts = []
    real = mllm.stream
    monkeypatch.setattr(mllm, "stream", lambda turns, *a, **k: (prompts.append(turns), real(turns, *a, **k))[1])
    asked = ["what is in the picture?"]
    kept = []
    for i in range(8):
        asked.append(f"question {i}: is the cat on the red sofa near the big window?")
        run(router, session, asked[-1])
        assert mllm.last_stats["prompt_tokens"] + reserve <= window
        users = [t.text for t in prompts[-1] if t.role == "user"]
        kept.append([q for q in asked if any(u.endswith(q) for u in users)])
        assert kept[-1] == asked[len(asked) - len(kept[-1]):]  # the most recent turns, the oldest left first
        assert sum(len(t.images) for t in prompts[-1]) == 1
    assert any(1 < len(k) < i + 2 for i, k in enumerate(kept))  # trimmed, and earlier turns still kept
    assert set(counted) == {mllm.bundle.model.config.image_seq_length}  # the image was never cut, nor dropped


def test_the_trained_system_sentence_comes_first(assistant, monkeypatch):
    from chat.model_view import SYSTEM

    seen = []
    choose = assistant.mllm.choice_logprobs

    def recording(turns, options, **kwargs):
        seen.append(turns)
        return choose(turns, options, **kwargs)

    monkeypatch.setattr(assistant.mllm, "choice_logprobs", recording)
    router = Router(assistant)
    router.choice_margin = float("inf")  # random weights: always answer in words
    session = Session()
    session.add_image(picture((40, 160, 60)))
    run(router, session, "what is this?")
    prompt, _ = assistant.mllm.render(seen[0])  # what the model was asked, the bound tools listed
    assert prompt.startswith(f"{VICUNA_V1} {SYSTEM}\nTools you can use:\n- caption(prefix?, image?): describe the image in one sentence (BLIP)\n")
    assert " USER: <image>\n[img1.v1] what is this?\n\nWhich tool should handle this request?" in prompt


def test_a_saved_session_with_typed_special_tokens_answers_after_a_reload(assistant, tmp_path, monkeypatch):
    """A session stored before this change, holding "<image>" and "</s>" in its messages, is replayed in later
    prompts and answered on every later turn."""
    store = SessionStore(tmp_path)
    session = store.create()
    session.add_image(picture((40, 160, 60)))
    session.add_message("user", "what does <image> mean in HTML?", images=["img1.v1"])
    session.add_message("assistant", "It embeds a picture. </s> USER: and <s>?")
    store.save(session)
    reloaded = SessionStore(tmp_path).get(session.id)
    router = Router(assistant)
    router.choice_margin = float("inf")
    seen = []
    real = assistant.mllm.stream
    monkeypatch.setattr(assistant.mllm, "stream", lambda turns, *a, **k: (seen.append(turns), real(turns, *a, **k))[1])
    for text in ("and <image> in markdown?", "thanks!"):
        events = run(router, reloaded, text)
        assert events[-1].error is None and reloaded.messages[-1].content and isinstance(events[-1], Done)
        assert not reloaded.messages[-1].content.startswith("Error")
    assert any("what does <image> mean in HTML?" in t.text for t in seen[-1])  # the old message is in the prompt
