"""Finding by words in the chat, through the router and the tiny checkpoints: /find places a marker on the best
region (refinable like a SAM click); an ambiguous match shows the places numbered and asks, and the numbered
answer completes the request; "remove the X" without a click edits only inside the found region; "replace the
cat with a tiger" repaints only the found cat."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage import data

from chat.events import ToolFinished
from chat.router import Router
from chat.session import Session
from tests.fakes import ScriptedChat, local, of, run
from tools.edit import feather_mask
from tools.grounding import box_mask


def photo() -> Image.Image:
    image = Image.fromarray(data.coffee()).resize((200, 150))
    ImageDraw.Draw(image).rectangle((140, 90, 179, 129), fill=(30, 60, 220))
    return image


@pytest.fixture
def session():
    s = Session()
    s.add_image(photo())
    return s


def reply(session) -> str:
    return session.messages[-1].content


def finished(events) -> ToolFinished:
    (done,) = of(events, ToolFinished)
    return done


def unchanged_outside(before: Image.Image, after: Image.Image, bbox, config) -> None:
    """Pixels beyond the found box (grown by the mask's dilation and feather) are exactly the original's."""
    alpha = feather_mask(box_mask(bbox, before.size), config.tools.mask_dilate, config.tools.mask_feather)
    outside = alpha == 0
    a, b = np.asarray(before), np.asarray(after)
    assert outside.any() and np.array_equal(a[outside], b[outside])
    assert not np.array_equal(a[~outside], b[~outside])


def test_find_marks_the_best_region_with_a_marker_that_clicks_can_refine(assistant, session):
    router = Router(assistant, local(ScriptedChat("unused")))
    events = run(router, session, "/find the blue square --margin 0")
    out = finished(events).output
    assert out.ok and out.overlay is not None and out.overlay.size == (200, 150)
    best = out.data["result"].best
    (marker,) = session.record().markers
    assert marker.shape == "ellipse" and marker.clicks and marker.clicks[0][2] is True
    x, y, _ = marker.clicks[0]
    assert best.mask[y, x]  # the include click is inside the found region
    assert "A marker is on region 1 of img1" in reply(session) and session.pending is None


def test_an_ambiguous_find_asks_and_the_number_answers(assistant, session):
    router = Router(assistant, local(ScriptedChat("unused")))
    run(router, session, "/find the cat --margin 100 --top 3")
    assert "which one, 1, 2 or 3?" in reply(session) and not session.record().markers
    assert session.pending["tool"] == "find"
    events = run(router, session, "the second one")
    out = finished(events).output
    assert out.ok and "Marked region 2" in reply(session) and session.pending is None
    (marker,) = session.record().markers
    assert session.trace[-1].decision == "numbered answer" and session.trace[-1].arguments["choice"] == 2
    assert session.messages[-2].action == "find"  # Regenerate replays the choice


def test_the_numbered_answer_does_not_ask_the_chat_model_for_its_box_again(assistant, session, monkeypatch):
    """The tiny LLaVA-1.5 is asked for the phrase's box once per image and phrase: the numbered answer to
    "which one?" reruns find with the box kept by the assistant's candidate cache."""
    asked: list[str] = []
    mllm, original = assistant.mllm, assistant.mllm.stream

    def stream(turns, *args, **kwargs):
        asked.append(turns[-1].text)
        return original(turns, *args, **kwargs)

    monkeypatch.setattr(mllm, "stream", stream)
    cache = assistant.candidate_cache
    before = cache.box_asks
    router = Router(assistant, local(ScriptedChat("unused")))
    run(router, session, "/find the striped mug --margin 100 --top 3")
    assert "which one, 1, 2 or 3?" in reply(session)
    boxes = [t for t in asked if t.startswith("Please provide the bounding box")]
    assert boxes == ["Please provide the bounding box coordinate of the region this sentence describes: "
                     "the striped mug."] and cache.box_asks == before + 1
    run(router, session, "2")
    assert "Marked region 2" in reply(session) and session.pending is None
    assert [t for t in asked if t.startswith("Please provide the bounding box")] == boxes  # not asked again
    assert cache.box_asks == before + 1
    session.add_image(photo().rotate(180))  # another image: asked again
    run(router, session, "/find the striped mug --margin 0")
    assert cache.box_asks == before + 2


def test_a_question_is_dropped_by_any_other_message(assistant, session):
    router = Router(assistant, local(ScriptedChat("A cat.")))
    run(router, session, "/find the cat --margin 100")
    assert session.pending is not None
    run(router, session, "what is this?")
    assert session.pending is None
    run(router, session, "2")  # no question pending: an ordinary message
    assert not session.record().markers


def test_remove_by_words_edits_only_inside_the_found_region(assistant, session, monkeypatch):
    monkeypatch.setattr(assistant.config.tools, "find_margin", 0.0)  # a clear match (random weights are unsure)
    called = '{"name": "remove", "arguments": {"target": "the blue square", "steps": 2}}'
    router = Router(assistant, local(ScriptedChat(called, choice={"remove": -0.1, "answer": -5.0})))
    before = session.pixels()
    events = run(router, session, "please remove the blue square")
    out = finished(events).output
    assert out.ok and out.new_versions == ["img1.v2"], out.text
    assert "found: region 1" in out.text and out.arguments["target"] == "the blue square"
    assert session.trace[-1].decision.startswith("model tool call (step 1")
    unchanged_outside(before, session.pixels("img1.v2"), out.arguments["bbox"], assistant.config)


def test_an_ambiguous_remove_asks_instead_of_acting_then_acts_on_the_answer(assistant, session, monkeypatch):
    monkeypatch.setattr(assistant.config.tools, "find_margin", 100.0)
    router = Router(assistant, local(ScriptedChat("unused")))
    before = session.pixels()
    events = run(router, session, "/remove the cup --steps 2 --seed 5")
    out = finished(events).output
    assert out.ok and not out.new_versions and out.overlay is not None
    assert "More than one place could be 'the cup'" in reply(session) and len(session.record().versions) == 1
    events = run(router, session, "3")
    out = finished(events).output
    assert out.ok and out.new_versions == ["img1.v2"] and "region 3" in out.text and out.arguments["seed"] == 5
    unchanged_outside(before, session.pixels("img1.v2"), out.arguments["bbox"], assistant.config)


def test_replace_the_named_thing_repaints_only_it(assistant, session, monkeypatch):
    monkeypatch.setattr(assistant.config.tools, "find_margin", 0.0)
    router = Router(assistant, local(ScriptedChat("unused")))
    before = session.pixels()
    events = run(router, session, '/edit a tiger --target "the blue square" --steps 2')
    out = finished(events).output
    assert out.ok and out.arguments["mode"] == "inpaint" and out.arguments["target"] == "the blue square"
    unchanged_outside(before, session.pixels("img1.v2"), out.arguments["bbox"], assistant.config)


def test_remove_without_a_marker_or_a_name_says_what_to_do(assistant, session):
    router = Router(assistant, local(ScriptedChat("unused")))
    run(router, session, "/remove")
    assert "Say what to remove" in reply(session) and len(session.record().versions) == 1


def test_grounded_answers_draw_what_the_answer_mentions(assistant, session, monkeypatch):
    """With the session's toggle on, an answer's phrases (listed by the chat model; scripted here) are found and
    drawn on the image in their colours, and named under the answer; off, nothing is added."""
    import chat.grounding_model as grounding_model

    monkeypatch.setattr(grounding_model, "answer_phrases", lambda chat, image, answer: ["A cat", "the blue square"])
    monkeypatch.setattr(assistant.config.tools, "grounded_min_score", -1e9)  # random weights score anything
    router = Router(assistant, local(ScriptedChat("A cat sits next to the blue square.")))
    run(router, session, "what is this?")
    assert not [e for e in session.trace if e.tool == "ground"]  # off by default
    session.grounded = True
    events = run(router, session, "what is this?")
    out = finished(events).output
    assert out.tool == "ground" and out.ok and out.overlay.size == (200, 150)
    assert reply(session).startswith("A cat sits next to the blue square.\n\nShown on img1.v1: [1] A cat (red), "
                                     "[2] the blue square (blue).")
    grounded = out.data["grounded"]
    assert [p.phrase for p in grounded.found] == ["A cat", "the blue square"]
    drawn = np.asarray(out.overlay).astype(int) - np.asarray(session.pixels()).astype(int)
    assert all(np.abs(drawn[p.region.mask]).sum() > 0 for p in grounded.found)  # each region is tinted


def test_a_question_about_a_named_thing_marks_it_first(assistant, session, monkeypatch):
    """"What colour is the blue square?" with no marker: it is found and marked, and the model answers seeing
    the marker; when two places match, the person is asked which one and nothing is answered yet."""
    from chat.toolbox.free_text import region_question

    assert region_question("What colour is the cup?") == "the cup"
    assert region_question("カップは何色ですか?") == "カップ" and region_question("what is this?") is None
    monkeypatch.setattr(assistant.config.tools, "find_margin", 0.0)
    chat = ScriptedChat("It is blue.")
    router = Router(assistant, local(chat))
    events = run(router, session, "what colour is the blue square?")
    assert [e.output.tool for e in of(events, ToolFinished)] == ["find"]
    assert len(session.record().markers) == 1 and reply(session) == "It is blue."
    assert [e.tool for e in session.trace] == ["find", "answer"]
    other = Session()
    other.add_image(photo())
    monkeypatch.setattr(assistant.config.tools, "find_margin", 100.0)
    run(router, other, "What color is the cup?")
    assert "which one" in reply(other) and not other.record().markers and other.pending["tool"] == "find"
    assert [e.tool for e in other.trace] == ["find"]  # not answered about a guess


def test_a_pending_question_and_the_grounded_box_survive_a_restart(assistant, tmp_path, monkeypatch):
    """Asked "which one?" and then the server restarts: the number still completes the request; the session's
    grounded-answers box is kept too."""
    from chat.store import SessionStore

    monkeypatch.setattr(assistant.config.tools, "find_margin", 100.0)
    store = SessionStore(tmp_path)
    session = store.create()
    session.add_image(photo())
    session.grounded = True
    router = Router(assistant, local(ScriptedChat("unused")))
    run(router, session, "/remove the cup --steps 2 --seed 5")
    assert "which one" in reply(session)
    store.save(session)
    reopened = SessionStore(tmp_path).get(session.id)  # a new process
    assert reopened.pending == session.pending and reopened.grounded is True
    events = run(router, reopened, "2")
    out = finished(events).output
    assert out.ok and out.new_versions == ["img1.v2"] and out.arguments["seed"] == 5
