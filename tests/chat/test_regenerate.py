"""Regenerate repeats the last turn exactly: the same tool, model and arguments, about the same image version,
through the page's handlers and the real router over the tiny checkpoints.

A picture made without a seed is made again with a new random seed (another take); with a seed, the same
picture comes back. The trace shows every seed, so any take can be made again by typing its seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from chat.toolbox import TOOLS
from tests.fakes import sample_image


@pytest.fixture(scope="module")
def h(assistant):
    from chat.ui.handlers import Handlers

    return Handlers(assistant, router=assistant.router)


@pytest.fixture
def sid(h, tmp_path):
    return h.upload(None, [str(sample_image(tmp_path / "street.png"))]).session_id


def session_of(h, sid):
    return h.store.get(sid)


def said(view, role="user") -> str:
    """The text of the last chat bubble of ``role`` on the page (a user bubble also shows the picture)."""
    content = [m["content"] for m in view.chat if m["role"] == role][-1]
    return content if isinstance(content, str) else next(part for part in content if isinstance(part, str))


def last_run(session, tool):
    return [e for e in session.trace if e.tool == tool][-1]


def test_regenerate_scores_with_the_model_the_button_used(h, sid):
    final = list(h.score(sid, "cat | dog", "siglip"))[-1]
    assert said(final).startswith("/score siglip: cat | dog")  # the chat line names the model
    assert last_run(session_of(h, sid), "score").arguments["model"] == "siglip"

    again = list(h.regenerate(sid))[-1]
    session = session_of(h, sid)
    runs = [e for e in session.trace if e.tool == "score"]
    assert len(runs) == 2 and runs[-1].arguments["model"] == "siglip" and runs[-1].arguments["labels"] == ["cat", "dog"]
    assert runs[-1].decision == "button" and said(again, "assistant").startswith("SIGLIP scores")  # replayed as it ran
    assert [m.role for m in session.messages] == ["user", "assistant"]  # the answer was replaced, not added


@pytest.mark.parametrize("labels, model", [
    (["cat", "dog"], "clip"),
    (["cat", "dog"], "siglip"),
    (["a red, shiny apple"], "clip"),  # one label with a comma
    (["a red, shiny apple", "pear"], "siglip"),
    (["paper clip: steel", "siglip: no"], "clip"),  # labels that look like a model choice
    (["img2 sky", "--siglip"], "clip"),  # a first label that looks like an image id
])
def test_the_score_chat_line_reads_back_as_the_same_request(labels, model):
    line = TOOLS["score"].command({"labels": labels, "model": model})
    assert line.startswith("/score ")
    parsed = TOOLS["score"].parse(line.removeprefix("/score "))
    assert parsed.pop("labels") == labels and parsed.pop("model", "clip") == model and not parsed
    assert TOOLS["score"].command({"labels": ["cat", "dog"]}) == "/score cat | dog"  # plain CLIP lines stay as typed


def test_regenerate_redoes_an_edit_from_the_version_it_was_made_from(h, sid):
    list(h.turn(sid, "/edit make it snowy"))
    record = session_of(h, sid).images["img1"]
    assert [(v.id, v.parent) for v in record.versions] == [("img1.v1", None), ("img1.v2", "img1.v1")]

    final = list(h.regenerate(sid))[-1]
    session = session_of(h, sid)
    record = session.images["img1"]
    assert [(v.id, v.parent) for v in record.versions][-1] == ("img1.v3", "img1.v1"), "redone from v1, not on v2"
    assert record.current_id == "img1.v3" and last_run(session, "edit").arguments["image"] == "img1.v1"
    assert session.messages[-2].images[0] == "img1.v1" and said(final).endswith("_(img1.v1)_")
    assert "Edited img1.v1" in said(final, "assistant") and final.status.startswith("Ready")

    # the Edit button, then Regenerate: the same, from the version the button edited
    list(h.edit(sid, "make it red"))
    list(h.regenerate(sid))
    record = session_of(h, sid).images["img1"]
    assert [(v.id, v.parent) for v in record.versions][-2:] == [("img1.v4", "img1.v3"), ("img1.v5", "img1.v3")]


def test_regenerate_asks_again_about_the_same_version(h, sid):
    list(h.turn(sid, "/edit make it snowy"))  # img1.v2 is current now
    list(h.turn(sid, "/caption img1.v1"))
    list(h.regenerate(sid))
    session = session_of(h, sid)
    assert [e.arguments["image"] for e in session.trace if e.tool == "caption"] == ["img1.v1", "img1.v1"]


def test_regenerate_a_generated_picture(h, sid):
    """No seed: another take with a new random seed (each in the trace); a seed: the same picture again."""
    def made(view):
        session = session_of(h, sid)
        entry = last_run(session, "generate")
        return entry.arguments["seed"], np.asarray(session.pixels(session.record().current_id))

    seed, first = made(list(h.generate(sid, "a red boat", None, "", "64x64"))[-1])
    again, second = made(list(h.regenerate(sid))[-1])
    assert isinstance(seed, int) and isinstance(again, int) and again != seed
    assert not np.array_equal(first, second)
    typed, third = made(list(h.turn(sid, f"/generate a red boat --size 64x64 --seed {seed}"))[-1])
    assert typed == seed and np.array_equal(third, first), "the seed in the trace makes the first take again"

    fixed, fourth = made(list(h.generate(sid, "a red boat", None, "7", "64x64"))[-1])
    repeat, fifth = made(list(h.regenerate(sid))[-1])
    assert fixed == repeat == 7 and np.array_equal(fourth, fifth)
