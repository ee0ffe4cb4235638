"""The Gradio app through gradio_client: every action has a stable api_name; answers stream.

The app runs in-thread on a free port with the tiny-profile assistant (real session store). Answers come
from a scripted router (``ScriptedRouter``: deterministic, slow enough to observe streaming); a last test
runs the real router over the tiny checkpoints when ``chat.router`` exists.
"""

from __future__ import annotations

import json
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from gradio_client.exceptions import AppError

from chat.errors import UserError
from chat.events import Delta, Done
from tests.fakes import (CHAT, CHAT_INPUT, EXPORT, IMAGE, PLOT, SCORES, STATUS, THUMBS, TRACE, VERSIONS, ScriptedRouter,
                         launch, sample_image, sid_of, text)


@pytest.fixture(scope="module")
def served(assistant):
    from chat.app import create_app

    router = ScriptedRouter()
    app = create_app(assistant, router=router)
    url = launch(app)
    yield url, router, app
    app.close()


def test_named_endpoints(served, client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    for name in ["upload", "add_point", "chat", "ask", "score", "som", "edit", "remove", "revert", "export",
                 "undo_marker", "clear_markers", "select_image", "stop", "regenerate", "clear_chat", "new_session"]:
        assert f"/{name}" in names


def test_upload_point_ask_edit_revert_export(served, client, tmp_path):
    from gradio_client import handle_file

    url, router, app = served
    # A click with no image: one sentence, nothing breaks.
    out = client.predict(10, 10, "circle", "red", api_name="/add_point")
    assert "upload one first" in out[STATUS]

    big = sample_image(tmp_path / "big.png", size=(1600, 1200))
    small = sample_image(tmp_path / "small.png")
    out = client.predict([handle_file(str(big)), handle_file(str(small))], api_name="/upload")
    assert "img1" in out[STATUS] and "img2" in out[STATUS]
    assert len(out[THUMBS]) == 2
    shown = Image.open(out[IMAGE])
    assert shown.size == (640, 480)  # img2 is active; a small image is shown enlarged (longer side 640)
    out = client.predict("img1", api_name="/select_image")
    shown = Image.open(out[IMAGE])
    assert shown.size == (1024, 768)  # big images are displayed as a downscaled copy

    # A point in original pixels; the display copy shows a red ring centred at the scaled spot.
    out = client.predict(800, 400, "circle", "red", api_name="/add_point")
    assert "(800, 400)" in out[STATUS]
    arr = np.asarray(Image.open(out[IMAGE]).convert("RGB")).astype(int)
    red = (arr[..., 0] > 200) & (arr[..., 1] < 60) & (arr[..., 2] < 60)
    ys, xs = np.nonzero(red)
    assert xs.size > 50
    assert abs(xs.mean() - 512) < 6 and abs(ys.mean() - 256) < 6
    # A bad shape and an out-of-image point: one sentence each, the marker stays.
    out = client.predict(5000, 10, "circle", "red", api_name="/add_point")
    assert "outside the image" in out[STATUS]
    with pytest.raises(AppError, match="not in the list of choices"):  # Gradio checks the radio's choices
        client.predict(10, 10, "hexagon", "red", api_name="/add_point")
    session = app.mmchat_handlers.store.get(sid_of(app, client))
    assert [(m.x, m.y) for m in session.images["img1"].markers] == [(800, 400)]

    # Ask: streamed, the answer grows over several outputs.
    job = client.submit("What is in the red circle?", api_name="/ask")
    final = job.result(timeout=30)
    outputs = job.outputs()
    answers = [text(o[CHAT][-1]) for o in outputs if isinstance(o[CHAT], list) and o[CHAT]
               and o[CHAT][-1]["role"] == "assistant"]
    lengths = [len(a) for a in answers]
    assert len(set(lengths)) >= 3, lengths
    assert lengths == sorted(lengths)
    assert text(final[CHAT][-1]).startswith("You asked: What is in the red circle?")
    assert final[CHAT][-2]["role"] == "user" and text(final[CHAT][-2]).startswith("What is in the red circle?")

    # Edit: a new version, shown in the versions gallery; revert makes v1 current again.
    out = client.predict("make it snowy", api_name="/edit")
    assert len(out[VERSIONS]) == 2
    assert "img1.v2" in out[VERSIONS][1]["caption"] and "★" in out[VERSIONS][1]["caption"]
    assert any(row[1] == "edit" for row in out[TRACE]["data"])
    out = client.predict("img1.v1", api_name="/revert")
    assert "img1.v1 is now the current version" in out[STATUS]
    assert "★" in out[VERSIONS][0]["caption"]
    out = client.predict("img1.v9", api_name="/revert")
    assert "no version 9" in out[STATUS]

    # Undo / clear markers.
    out = client.predict(api_name="/undo_marker")
    assert "Removed" in out[STATUS]
    out = client.predict(api_name="/undo_marker")
    assert "no marker" in out[STATUS]

    # Export: a zip with JSON, Markdown and every image version.
    out = client.predict(api_name="/export")
    with zipfile.ZipFile(out[EXPORT]) as zf:
        names = set(zf.namelist())
        data = json.loads(zf.read("session.json"))
        markdown = zf.read("conversation.md").decode()
    assert {"session.json", "conversation.md", "images/img1.v1.png", "images/img1.v2.png", "images/img2.v1.png"} <= names
    assert data["images"]["img1"]["current"] == 1
    assert "What is in the red circle?" in markdown


def test_score_som_and_highlight(served, client, tmp_path):
    from gradio_client import handle_file

    out = client.predict({"text": "", "files": [handle_file(str(sample_image(tmp_path / "a.png")))]},
                         api_name="/chat")
    assert "img1" in out[STATUS]
    # Text and an image together: the image is added first, then the text is answered about it.
    job = client.submit({"text": "And this one?", "files": [handle_file(str(sample_image(tmp_path / "b.png")))]},
                        api_name="/chat")
    out = job.result(timeout=30)
    assert len(out[THUMBS]) == 2 and text(out[CHAT][-2]).startswith("And this one?\n\n_(img2.v1)_")
    assert job.outputs()[0][CHAT_INPUT] == {"text": "", "files": []}  # the box is cleared at once
    client.predict("img1", api_name="/select_image")
    out = client.predict("cat | dog | bird", "siglip", api_name="/score")
    assert out[PLOT] is not None and Image.open(out[PLOT]).size[0] > 100
    assert [row[0] for row in out[SCORES]["data"]] == ["cat", "dog", "bird"]
    out = client.predict("   ", "clip", api_name="/score")
    assert "Type some labels" in out[STATUS]
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict("cat", "dino", api_name="/score")

    out = client.predict(api_name="/som")
    som = np.asarray(Image.open(out[IMAGE]).convert("RGB"))
    assert som.shape == (480, 640, 3)  # the 320x240 image's display copy
    job = client.submit("What is in [1]?", api_name="/ask")
    final = job.result(timeout=30)
    highlighted = [o[IMAGE] for o in job.outputs() if isinstance(o[IMAGE], str)]
    assert highlighted, "the answer citing [1] highlights that region"
    assert any(row[1] == "highlight" for row in final[TRACE]["data"])


def _output_index(app, api_name: str, elem_id: str) -> int:
    """Where the component ``elem_id`` is in what the client gets back from ``api_name`` (States, buttons and
    layout blocks are not sent)."""
    fn = next(f for f in app.fns.values() if f.api_name == api_name)
    sent = [o for o in fn.outputs if not o.skip_api]
    return next(i for i, o in enumerate(sent) if o.elem_id == elem_id)


def test_a_refused_tab_button_says_so_on_its_own_tab(served, client, tmp_path):
    """The Score tab's status line said the previous scores were fine after Score was pressed with no labels:
    the refusal is said in the tab the person is looking at, not only in the status line under the chat."""
    from gradio_client import handle_file

    url, router, app = served
    client.predict([handle_file(str(sample_image(tmp_path / "a.png")))], api_name="/upload")
    out = client.predict("cat | dog", "clip", api_name="/score")
    score_status = _output_index(app, "score", "score-status")
    assert out[score_status].startswith("✓")
    out = client.predict(" | ", "clip", api_name="/score")
    assert "Type some labels" in out[STATUS]
    assert out[score_status].startswith("⚠") and "Type some labels" in out[score_status]
    out = client.predict("", "", "", "", api_name="/edit")
    assert "Type an edit instruction" in out[_output_index(app, "edit", "edit-status")]
    out = client.predict("a cat", None, "", "12x12", "", api_name="/generate")
    assert "64 to 1024" in out[_output_index(app, "generate", "generate-status")]


def test_bad_upload_and_stop(served, client, tmp_path):
    from gradio_client import handle_file

    url, router, app = served
    bad = tmp_path / "notes.png"
    bad.write_text("<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    out = client.predict([handle_file(str(bad))], api_name="/upload")
    assert "SVG" in out[STATUS]
    out = client.predict([handle_file(str(sample_image(tmp_path / "ok.png")))], api_name="/upload")
    assert "img1" in out[STATUS]

    router.delay = 0.3
    try:
        job = client.submit("Tell me a long story", api_name="/ask")
        deadline = time.time() + 10
        while len(job.outputs()) < 3 and time.time() < deadline:  # a few words have streamed
            time.sleep(0.05)
        out = client.predict(api_name="/stop")
        assert out[STATUS] == "Stopping…"
        while not job.done() and time.time() < deadline:
            time.sleep(0.05)
        assert job.done() and job.outputs()[-1][STATUS] == "Stopped."  # the turn ended itself
    finally:
        router.delay = 0.05
    session = app.mmchat_handlers.store.get(sid_of(app, client))
    deadline = time.time() + 5
    while session.messages[-1].role != "assistant" and time.time() < deadline:  # the router winds down
        time.sleep(0.05)
    assert session.messages[-1].role == "assistant"
    assert len(session.messages[-1].content.split()) < 12  # stopped early (the full answer has 15 words)
    # The session still works after a stop.
    out = client.predict("Still there?", api_name="/ask")
    assert text(out[CHAT][-1]).startswith("You asked: Still there?")


def test_handlers_without_gradio(assistant, tmp_path):
    """The handlers are plain functions over (session id, inputs)."""
    from chat.ui.handlers import Handlers, parse_labels

    h = Handlers(assistant, router=ScriptedRouter(delay=0))
    view = h.upload(None, [str(sample_image(tmp_path / "x.png", size=(2000, 500)))])
    sid = view.session_id
    assert Image.open(view.image).size == (1024, 256)
    view = h.click(sid, [512, 128], "box", "green")  # the middle of the display copy
    marker = assistant.sessions.get(sid).images["img1"].markers[0]
    assert (marker.x, marker.y, marker.shape, marker.color) == (1000, 250, "box", "green")
    views_ = list(h.turn(sid, "hello"))
    assert views_[-1].chat[-1]["content"].startswith("You asked: hello")
    with pytest.raises(UserError):
        h.click(h.new_session().session_id, [1, 1])
    assert parse_labels("a red, shiny apple | pear") == ["a red, shiny apple", "pear"]
    assert parse_labels("cat, dog") == ["cat", "dog"]


def test_real_router_smoke(assistant, tmp_path):
    """With the real router (when it has landed): upload, ask (streamed), edit makes a version."""
    router_module = pytest.importorskip("chat.router", reason="chat/router.py has not landed yet")
    from chat.ui.handlers import Handlers

    h = Handlers(assistant, router=router_module.Router(assistant))
    sid = h.upload(None, [str(sample_image(tmp_path / "r.png"))]).session_id
    h.add_point(sid, 100, 80)
    answer = list(h.turn(sid, "What is in the red circle?"))
    assert answer[-1].chat[-1]["role"] == "assistant"
    list(h.edit(sid, "make it snowy"))
    assert len(assistant.sessions.get(sid).images["img1"].versions) == 2


def test_clear_chat_empties_chat_and_trace_and_persists(served, client, tmp_path):
    from gradio_client import handle_file

    from chat.store import SessionStore

    url, router, app = served
    client.predict([handle_file(str(sample_image(tmp_path / "c.png")))], api_name="/upload")
    client.predict("cat | dog", "clip", api_name="/score")  # a tool call: a row in the trace
    out = client.predict("hello", api_name="/ask")
    assert out[TRACE]["data"] and len(out[CHAT]) >= 4
    out = client.predict(api_name="/clear_chat")
    assert out[STATUS] == "Chat cleared."
    assert out[CHAT] == []
    assert not [row for row in out[TRACE]["data"] if any(str(cell).strip() for cell in row)]
    sid = sid_of(app, client)
    on_disk = SessionStore(app.mmchat_handlers.store.root).get(sid)  # a fresh store reads the files
    assert on_disk.messages == [] and on_disk.trace == []
    assert list(on_disk.images) == ["img1"]  # images and versions stay
    out = client.predict("still here?", api_name="/ask")  # the conversation goes on from empty
    assert [m["role"] for m in out[CHAT]] == ["user", "assistant"]


def test_regenerate_replaces_the_last_answer_and_streams(served, client):
    url, router, app = served
    client.predict("first question", api_name="/ask")
    client.predict("hello there", api_name="/ask")
    job = client.submit(api_name="/regenerate")
    final = job.result(timeout=30)
    answers = [text(o[CHAT][-1]) for o in job.outputs() if isinstance(o[CHAT], list) and o[CHAT]
               and o[CHAT][-1]["role"] == "assistant"]
    assert len({len(a) for a in answers}) >= 3, "the new answer streams"
    shown = [(m["role"], text(m)) for m in final[CHAT]]
    assert [s for s in shown if s[1].startswith("hello there")] == [("user", "hello there")]
    assert shown[-1][0] == "assistant" and shown[-1][1].startswith("You asked: hello there")
    assert [role for role, _ in shown] == ["user", "assistant", "user", "assistant"]
    session = app.mmchat_handlers.store.get(sid_of(app, client))
    assert [(m.role, m.content.split(".")[0]) for m in session.messages] == [
        ("user", "first question"), ("assistant", "You asked: first question"),
        ("user", "hello there"), ("assistant", "You asked: hello there")]


class LoadingRouter:
    """Answers after the registry reports a model load (0, a fraction, 1), as a real first answer would."""

    def __init__(self, registry, fractions=(0.0, 0.42, 1.0)):
        self.registry, self.fractions = registry, fractions

    def respond(self, session, text, *, action=None, arguments=None, cancel=None, sink=None):
        session.add_message("user", text)
        for fraction in self.fractions:
            self.registry.report("llava", fraction, "loading llava")
            time.sleep(0.2)  # one status update each
        yield Delta("ok")
        yield Done(session.add_message("assistant", "ok"))


def test_model_load_progress_shows_as_a_bar(assistant):
    from chat.ui.handlers import Handlers

    h = Handlers(assistant, router=LoadingRouter(assistant.registry))
    statuses = [view.status for view in h.turn(None, "hi") if view.status]
    assert "Loading llava ████░░░░░░ 42%" in statuses
    assert statuses.count("Loading llava") == 2  # 0 and 1: the message without a bar


def test_model_progress_hook_is_installed_once(assistant):
    """Building the app again on the same assistant must not wrap the registry's callback again, and a load
    reported while an answer runs reaches that answer's status line only while it runs."""
    from chat.app import create_app
    from chat.ui.handlers import Handlers

    registry = assistant.registry
    saved = registry.progress
    calls = []
    try:
        registry.progress = lambda *args: calls.append(args)
        for _ in range(3):
            create_app(assistant, router=ScriptedRouter())
        h = Handlers(assistant, router=LoadingRouter(registry, fractions=(0.5,)))
        statuses = [view.status for view in h.turn(None, "hi") if view.status]
        assert "Loading llava █████░░░░░ 50%" in statuses
        assert calls == [("llava", 0.5, "loading llava")]  # the original callback runs once
        registry.report("clip", 0.5, "loading clip")  # no answer runs: only the original callback
        assert calls[-1] == ("clip", 0.5, "loading clip") and len(calls) == 2
        if not hasattr(registry, "add_progress_listener"):  # a registry without listeners gets one relay
            from chat.ui.progress import ProgressRelay

            assert isinstance(registry.progress, ProgressRelay) and registry.progress.previous is not None
    finally:
        registry.progress = saved
