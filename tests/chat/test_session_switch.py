"""Switching sessions and images through gradio_client: what the page keeps and what it drops.

- New session, Import and Resume are refused while an answer of the current session is still running
  (its outputs would bring the page back to the old session); nothing changes, and they work once it ends.
- The chat's own trash icon forgets the conversation like the Clear chat button (API twin: its handler).
- Another session drops the export file, the score chart and the score table; another active image drops
  the chart and the table (they were about the other image).
"""

from __future__ import annotations

import time

import pytest

from tests.fakes import (CHAT, EXPORT, PLOT, SCORES, STATUS, THUMBS, ScriptedRouter, launch,
                                     sample_image, text)

REFUSED = "Stop the running answer first, or wait for it, then"


class RecordingRouter(ScriptedRouter):
    """The scripted router, remembering which session each turn ran in."""

    def __init__(self, delay: float = 0.05):
        super().__init__(delay)
        self.sessions: list[str] = []

    def respond(self, session, text, **kwargs):
        self.sessions.append(session.id)
        yield from super().respond(session, text, **kwargs)


@pytest.fixture(scope="module")
def served(assistant):
    from chat.app import create_app

    router = RecordingRouter()
    app = create_app(assistant, router=router)
    url = launch(app)
    yield url, router, app
    app.close()


def empty_table(value) -> bool:
    return not [row for row in value["data"] if any(str(cell).strip() for cell in row)]


def session_ids(app) -> set[str]:
    return {entry["id"] for entry in app.mmchat_handlers.store.list()}


def test_switching_is_refused_while_an_answer_runs(served, client, tmp_path):
    from gradio_client import handle_file

    url, router, app = served
    client.predict([handle_file(str(sample_image(tmp_path / "a.png")))], api_name="/upload")
    zipped = client.predict(api_name="/export")[EXPORT]
    client.predict("hello", api_name="/ask")
    current = router.sessions[-1]
    other = app.mmchat_handlers.store.create().id  # a saved session to resume
    before = session_ids(app)

    router.delay = 0.3
    try:
        job = client.submit("Tell me a long story", api_name="/ask")
        deadline = time.time() + 10
        while len(job.outputs()) < 3 and time.time() < deadline:  # the answer is streaming
            time.sleep(0.05)
        assert not job.done()
        for out, action in [(client.predict(api_name="/new_session"), "start a new session"),
                            (client.predict(handle_file(zipped), api_name="/import_session"), "import a session"),
                            (client.predict(other, api_name="/resume"), "resume another session")]:
            assert out[STATUS] == f"⚠ {REFUSED} {action}.", out[STATUS]
        assert session_ids(app) == before  # nothing was created or imported
        final = job.result(timeout=30)
    finally:
        router.delay = 0.05
    assert text(final[CHAT][-1]).startswith("You asked: Tell me a long story")

    # The page is still on the session that answered: an upload goes there.
    out = client.predict([handle_file(str(sample_image(tmp_path / "b.png")))], api_name="/upload")
    assert len(out[THUMBS]) == 2
    assert list(app.mmchat_handlers.store.get(current).images) == ["img1", "img2"]
    # Once the answer has ended, a new session starts as usual.
    out = client.predict(api_name="/new_session")
    assert out[STATUS] == "Ready. Upload an image to begin." and out[CHAT] == [] and out[THUMBS] == []
    client.predict("first words", api_name="/ask")
    assert router.sessions[-1] not in before


def test_trash_icon_runs_clear_chat(served, client, tmp_path):
    """The Chatbot's clear event (its trash icon) runs the Clear chat handler on the page's session, so the
    conversation is forgotten on disk too (/clear_chat, the API twin, is tested in test_app_api)."""
    url, router, app = served
    chat = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "chat")
    wired = [app.fns[d["id"]] for d in app.config["dependencies"] if (chat._id, "clear") in map(tuple, d["targets"])]
    assert len(wired) == 1, "the chat's trash icon has a handler"
    assert wired[0].fn.__wrapped__ == app.mmchat_handlers.clear_chat
    assert [type(b).__name__ for b in wired[0].inputs] == ["State"]  # the session id


def test_another_session_or_image_drops_the_old_scores_and_export(served, client, tmp_path):
    from gradio_client import handle_file

    url, router, app = served
    client.predict([handle_file(str(sample_image(tmp_path / "d.png")))], api_name="/upload")

    def scored_and_exported():
        out = client.predict("cat | dog", "clip", api_name="/score")
        assert out[PLOT] is not None and [row[0] for row in out[SCORES]["data"]] == ["cat", "dog"]
        out = client.predict(api_name="/export")
        assert out[EXPORT] is not None
        return router.sessions[-1], out[EXPORT]

    # Another image (an upload makes it active; picking a thumbnail too): chart and table go.
    first, zipped = scored_and_exported()
    out = client.predict([handle_file(str(sample_image(tmp_path / "e.png")))], api_name="/upload")
    assert out[PLOT] is None and empty_table(out[SCORES])
    client.predict("cat | dog", "clip", api_name="/score")
    out = client.predict("img1", api_name="/select_image")
    assert out[PLOT] is None and empty_table(out[SCORES])
    client.predict("cat | dog", "clip", api_name="/score")
    out = client.predict("img1", api_name="/select_image")  # the same image again: the scores stay
    assert out[PLOT] == out[SCORES] == {"__type__": "update"}  # left as they are

    # Another session (new, import, resume): the export file, chart and table go.
    for switch in (lambda: client.predict(api_name="/new_session"),
                   lambda: client.predict(handle_file(zipped), api_name="/import_session"),
                   lambda: client.predict(first, api_name="/resume")):
        client.predict([handle_file(str(sample_image(tmp_path / "f.png")))], api_name="/upload")
        scored_and_exported()
        out = switch()
        assert not out[STATUS].startswith("⚠"), out[STATUS]
        assert out[EXPORT] is None and out[PLOT] is None and empty_table(out[SCORES])
