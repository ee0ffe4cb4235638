"""The page's promises at the handler level (no browser, no server): what a person reads in the chat, the
status line and the tabs after each action. Items of the page review (reviews/page-2026-12.md) by number.
"""

from __future__ import annotations

import pytest
from PIL import Image

from chat.errors import UserError
from chat.ui import forms
from chat.ui.handlers import Handlers
from chat.ui.texts import translate
from chat.ui.views import display_size
from tests.chat.test_app_api import ScriptedRouter, sample_image, text


@pytest.fixture
def h(assistant):
    return Handlers(assistant, router=ScriptedRouter(delay=0))


def with_image(h, tmp_path, size=(320, 240)) -> str:
    return h.upload(None, [str(sample_image(tmp_path / "x.png", size=size))]).session_id


def last_user_line(view) -> str:
    """The text of the last user bubble (its caption; the picture is the other part)."""
    content = [m for m in view.chat if m["role"] == "user"][-1]["content"]
    parts = content if isinstance(content, list) else [content]
    return " ".join(p if isinstance(p, str) else str(p.get("text", "")) for p in parts)


def test_1_2_buttons_echo_exactly_what_ran(h, tmp_path):
    """1: the Edit form's steps/seed/guidance fields are arguments, and the chat echo is the command that runs
    them; 2: Remove takes its target from its own field, never from the edit instruction."""
    sid = with_image(h, tmp_path)
    h.add_point(sid, 100, 80)
    views = list(h.edit(sid, "make it snowy", steps="3", seed="7", guidance="6.5"))
    router = h.router
    assert router.calls[-1][1:] == ("edit", {"instruction": "make it snowy", "steps": 3, "seed": 7,
                                             "guidance_scale": 6.5})
    assert router.calls[-1][0] == "/edit make it snowy --steps 3 --seed 7 --guidance 6.5"
    assert "/edit make it snowy --steps 3 --seed 7 --guidance 6.5" in last_user_line(views[-1])
    list(h.remove(sid, "the dog", steps="2"))
    assert router.calls[-1][1] == "remove" and router.calls[-1][2]["target"] == "the dog"
    assert router.calls[-1][0].startswith("/remove the dog --steps 2")
    list(h.remove(sid, ""))  # no target: nothing borrowed from the Edit box
    assert "target" not in router.calls[-1][2] and "snowy" not in router.calls[-1][0]


def test_4_sessions_new_rename_delete_with_files(h, assistant, tmp_path):
    sid = with_image(h, tmp_path)
    asked = h.ask_confirm(sid, "new")
    assert asked.confirm[0] == "new" and "stays in the list" in asked.confirm[1]
    h.rename_session(sid, "Cat photos")
    new = h.confirm(sid, "new").session_id
    assert new != sid
    listed = h.load(new).sessions
    assert any(sid == value for _, value in listed) and any("Cat photos" in str(label) for label, _ in listed)
    assert "id" in h.load(new).title.lower() or new[:8] in h.load(new).title  # the id is visible
    folder = assistant.sessions._dir(sid)
    assert folder.exists()
    question = h.ask_confirm(sid, "delete").confirm[1]
    assert "Cat photos" in question and "1 image" in question
    view = h.delete_session(sid)
    assert "Deleted the session 'Cat photos'" in view.status
    assert not folder.exists() and not assistant.sessions.exists(sid)


def test_another_session_does_not_show_the_previous_ones_tab_results(h, assistant, tmp_path):
    """After an edit and a score, New session (or opening another) left "Edited img1.v1 ...: the new version is
    img1.v2" and the scores on the Edit and Score tabs, about images the new session does not have (its own
    img1 is another picture)."""
    sid = with_image(h, tmp_path)
    h.add_point(sid, 100, 80)
    edited = list(h.edit(sid, "make it snowy", steps="2"))[-1]
    assert edited.tabs["edit"].startswith("✓")
    list(h.score(sid, "cat | dog"))
    for view in (h.confirm(sid, "new"), h.resume(None, sid)):
        assert all(view.tabs.get(tab) == "" for tab in ("edit", "score", "generate", "compare")), view.tabs
        assert view.scores == [] and view.plot == ""


def test_a_message_over_the_limit_is_refused_before_the_box_is_emptied(h, tmp_path):
    """A 180,000-character message was cleared from the chat box, then refused: what was typed was lost. It is
    refused when sent, in one sentence, nothing is queued (the box keeps the text), and the session goes on."""
    sid = with_image(h, tmp_path)
    limit = h.page.limits.max_message_chars
    with pytest.raises(UserError, match=f"characters long; the limit is {limit}"):
        h.send(sid, {"text": "describe " * (limit // 4), "files": []})
    assert list(h.run_queue(sid))[-1].chat is None  # nothing was queued: nothing answered, the chat as it was
    assert h.send(sid, {"text": "hello", "files": []}).clear_input
    assert "hello" in last_user_line(list(h.run_queue(sid))[-1])


def test_5_a_second_tab_sees_what_the_first_did(h, tmp_path):
    sid = with_image(h, tmp_path)
    shown = h.load(sid).revision
    assert h.sync(sid, shown).chat is None, "nothing changed: nothing sent"
    list(h.turn(sid, "hello from tab 2"))
    caught_up = h.sync(sid, shown)
    assert caught_up.chat is not None and "hello from tab 2" in str(caught_up.chat)


def test_16_a_message_sent_during_an_answer_is_queued_then_answered(h, tmp_path):
    sid = with_image(h, tmp_path)
    running = h.page.running
    with running.guard:
        running.runners.add(sid)  # an answer is being given
    first = h.send(sid, {"text": "first question", "files": []})
    second = h.send(sid, {"text": "second question", "files": []})
    assert second.status.startswith("Queued") and second.clear_input
    shown = str(h.turns.queued_bubbles(sid))  # what the running answer shows under itself
    assert shown.lower().count("queued") == 2 and shown.index("first question") < shown.index("second question")
    with running.guard:
        running.runners.discard(sid)
    list(h.run_queue(sid))
    answers = [text(m) for m in h.load(sid).chat if m["role"] == "assistant"]
    assert any("You asked: first question" in a for a in answers)
    assert any("You asked: second question" in a for a in answers)
    assert first.session_id == sid


def test_17_a_marker_question_without_a_marker_gets_a_hint(h, tmp_path):
    sid = with_image(h, tmp_path)
    views = list(h.turn(sid, "What is in the red circle?"))
    assert "nothing is marked on img1.v1" in views[-1].status


def test_18_scores_explain_one_label_and_speak_the_page_syntax(h, tmp_path):
    sid = with_image(h, tmp_path)
    views = list(h.score(sid, "cat", "clip"))
    shown = " ".join(str(v.status) + str(v.tabs) for v in views)
    assert "With one label CLIP always gives 1.00" in shown and "SigLIP" in shown
    with pytest.raises(UserError, match=r"'cat \| dog'"):
        list(h.score(sid, "", "clip"))


def test_11_sizes_name_their_range_and_rounding_is_said():
    with pytest.raises(UserError, match="64 to 1024 pixels; 100000x5"):
        forms.parse_size("100000x5")
    size, note = forms.parse_size("300x300")
    assert size == (304, 304) and note == "300x300 was rounded to 304x304 (sides are multiples of 8)."


def test_19_26_small_images_shown_large_and_counts_read_well(h, tmp_path):
    assert min(display_size((1, 1))) >= 256 and display_size((451, 300))[0] > 451
    sid = with_image(h, tmp_path, size=(40, 30))
    view = h.add_point(sid, 10, 10)
    assert Image.open(view.image).size == display_size((40, 30))
    assert "(s)" not in view.status
    list(h.turn(sid, "/help"))
    helped = h.load(sid).chat
    user = [text(m) for m in helped if m["role"] == "user"]
    assert "/help" in user[-1] and "img1" not in user[-1], "/help does not read the image"


def test_25_trace_numbered_from_1_in_plain_words(h, tmp_path):
    sid = with_image(h, tmp_path)
    list(h.edit(sid, "make it snowy"))
    rows = h.load(sid).trace
    assert rows[0][0] == 1 and rows[0][-1] == "a button on the page"


def test_12_japanese_fixed_text():
    """Status lines, warnings and table words the page writes have Japanese forms."""
    for english in ("Ready. Upload an image to begin.", "Nothing to stop.", "Chat cleared.",
                    "Ready. Active image img1.v2 (640x480, 2 markers).",
                    "Note: nothing is marked on img1.v1; click the image to place a marker, then ask again.",
                    "Type some labels to score, e.g. 'cat | dog'.", "300x300 was rounded to 304x304 (sides are "
                    "multiples of 8).", "Stopped."):
        japanese = translate(english, "ja")
        assert japanese != english and not any(w in japanese for w in ("Ready", "marker", "Type", "Note")), japanese


def _red(image: Image.Image):
    import numpy as np

    a = np.asarray(image.convert("RGB")).astype(int)
    return (a[..., 0] > 180) & (a[..., 1] < 80) & (a[..., 2] < 80)


def test_20_markers_on_a_panorama_are_as_thick_as_on_a_photo():
    """The ring drawn on a 4000x1000 panorama's display copy is about as thick as on a 4:3 photo's."""
    import numpy as np

    from chat.ui.views import display_scale, draw_for_screen, to_display
    from tools.markers import Marker

    def thickness(size):
        shown = to_display(Image.new("RGB", size, (90, 90, 90)))
        scale = display_scale(size)
        marker = Marker(x=size[0] // 2, y=size[1] // 2, radius=size[1] // 4)
        row = _red(draw_for_screen(shown, [marker], scale))[shown.height // 2]
        return int(np.count_nonzero(row)) / 2  # the ring crosses the middle row twice

    panorama, photo = thickness((4000, 1000)), thickness((1600, 1200))
    assert panorama >= 3 and panorama >= 0.5 * photo, (panorama, photo)


def test_8_sam_clicks_and_mask_are_drawn():
    """Include clicks are green dots, exclude clicks red ones, and the object's mask is tinted."""
    import numpy as np

    from chat.ui.views import draw_for_screen
    from tools.markers import Marker

    base = Image.new("RGB", (400, 300), (128, 128, 128))
    mask = np.zeros((300, 400), dtype=bool)
    mask[100:200, 100:250] = True
    marker = Marker(x=175, y=150, shape="ellipse", bbox=(100, 100, 250, 200), clicks=[(150, 150, True), (300, 60, False)])
    drawn = np.asarray(draw_for_screen(base, [marker], 1.0, masks={0: mask})).astype(int)
    green = drawn[150, 150]
    assert green[1] > 150 and green[0] < 60, green  # the include dot
    assert drawn[60, 300][0] > 180 and drawn[60, 300][1] < 80 or drawn[60, 300].tolist() == [255, 255, 255]
    assert (drawn[120, 200] != 128).any(), "the mask is tinted"
    assert (drawn[250, 50] == 128).all(), "outside the mask and markers: untouched"


def test_grounded_answers_toggle_is_kept_with_the_session(h, assistant, tmp_path):
    """The 'Grounded answers' box: on for this session (saved, shown again after a reload or a switch back),
    off for a new one."""
    sid = with_image(h, tmp_path)
    view = h.set_grounded(sid, True)
    assert view.grounded is True and "Grounded answers" in view.status
    assert h.load(sid).grounded is True  # a reload shows the box ticked
    other = h.upload(None, [str(sample_image(tmp_path / "y.png"))]).session_id
    assert h.load(other).grounded is False
    assert h.set_grounded(sid, False).grounded is False and h.load(sid).grounded is False


# -- the behaviour leftovers of issue 15 (notes/15.md) ---------------------------------------------------------------
class TickingRouter(ScriptedRouter):
    """An edit that reports many diffusion steps quickly, as a 150-step run does, through the sink."""

    def __init__(self, steps=150, pause=0.002):
        super().__init__(delay=0)
        self.steps, self.pause = steps, pause

    def respond(self, session, text, *, action=None, arguments=None, cancel=None, sink=None):
        import time

        from chat.events import Status

        if action == "edit":
            for step in range(1, self.steps + 1):
                if cancel is not None and cancel.is_set():
                    break
                sink(Status(f"edit: step {step}/{self.steps}", step / self.steps))
                time.sleep(self.pause)
        yield from super().respond(session, text, action=action, arguments=arguments, cancel=cancel, sink=sink)


def test_progress_ticks_change_only_the_status_lines(assistant, tmp_path):
    """A 150-step edit: the ticks between the first and the last update carry status lines only (no chat, no
    busy buttons, no picture sent again)."""
    h = Handlers(assistant, router=TickingRouter())
    sid = with_image(h, tmp_path)
    views = list(h.edit(sid, "make it snowy"))
    first, ticks, last = views[0], views[1:-1], views[-1]
    assert first.busy is True and last.busy is False and first.chat is not None
    progress = [v for v in ticks if v.status and v.status.startswith("edit: step")]
    assert len(progress) >= 2, "the steps are shown"
    assert all(v.busy is None for v in ticks), "the buttons are set at the start and the end only"
    assert all(v.chat is None and v.image is None and v.thumbs is None and v.versions is None
               for v in progress), "a tick sends only the status lines"
    assert "step 150/150" not in last.status and last.status.startswith("Ready")


class WhichOneRouter(ScriptedRouter):
    """'/find cat' on a picture with two cats: the answer asks which one and the session waits for a number."""

    def respond(self, session, text, **kwargs):
        for event in super().respond(session, text, **kwargs):
            if text.startswith("/find") and type(event).__name__ == "Done":
                session.pending = {"tool": "find", "arguments": {"phrase": "cat"}}
            yield event


def test_6_a_which_one_question_leaves_the_status_waiting(assistant, tmp_path):
    h = Handlers(assistant, router=WhichOneRouter(delay=0))
    sid = with_image(h, tmp_path)
    status = list(h.turn(sid, "/find cat"))[-1].status
    assert status.startswith("Waiting for your answer: say the number"), status
    japanese = translate(status, "ja")
    assert "番号" in japanese and "Waiting" not in japanese
    # A reload (or a restart: a new page over the same store) still says the session waits for the number.
    for page in (h, Handlers(assistant, router=WhichOneRouter(delay=0))):
        assert page.load(sid).status.startswith("Waiting for your answer: say the number")
    h.store.get(sid).pending = None  # answered: the next turn ends on Ready again
    assert list(h.turn(sid, "thanks"))[-1].status.startswith("Ready")


def test_7_a_queued_message_acts_on_the_image_current_when_it_was_sent(assistant, tmp_path):
    """'/caption' sent while an answer runs (which then marks img1 again and makes img2 current) captions
    img1.v1 with the one marker it had, the image on the page when it was sent, and its bubble says so; the
    mark made meanwhile stays on img1 afterwards."""
    h = Handlers(assistant, router=assistant.router)
    sid = with_image(h, tmp_path)
    h.add_point(sid, 100, 80)
    running = h.page.running
    with running.guard:
        running.runners.add(sid)  # an answer is being given
    assert h.send(sid, {"text": "/caption", "files": []}).status.startswith("Queued")
    with running.guard:
        running.runners.discard(sid)
    h.add_point(sid, 200, 150, color="blue")  # what that answer marked (as a find does)
    h.upload(sid, [str(sample_image(tmp_path / "second.png", size=(200, 160)))])  # what that answer made
    assert h.store.get(sid).record().current_id == "img2.v1"
    final = list(h.run_queue(sid))[-1]
    captions = [e for e in h.store.get(sid).trace if e.tool == "caption"]
    assert [e.arguments["image"] for e in captions] == ["img1.v1"]
    session = h.store.get(sid)
    asked = [m for m in session.messages if m.role == "user"][-1]
    assert [(m.x, m.y) for m in asked.markers] == [(100, 80)], "the model saw the markers as they were when sent"
    assert len(session.images["img1"].markers) == 2, "the later mark is still there"
    assert "img1.v1" in last_user_line(final) and "img2" not in last_user_line(final)


def test_8_regenerate_replays_the_button_through_the_router(assistant, tmp_path):
    """Regenerate after a button runs Router.regenerate: the same tool again, still 'a button on the page' in
    the trace (not the chat line re-read as a typed command), and the answer replaced, not added."""
    h = Handlers(assistant, router=assistant.router)
    sid = with_image(h, tmp_path)
    list(h.som(sid))
    final = list(h.regenerate(sid))[-1]
    session = h.store.get(sid)
    assert [e.tool for e in session.trace] == ["som", "som"]
    assert [row[-1] for row in final.trace] == ["a button on the page", "a button on the page"]
    assert [m.role for m in session.messages] == ["user", "assistant"]
    assert last_user_line(final).startswith("/som")


def test_regenerate_of_a_tab_button_updates_that_tabs_status_line(assistant, tmp_path):
    """Generate, then Regenerate: the chat said "Made img3" while the Generate tab still said "Made img2"; the tab
    whose button ran the tool follows the new result (free text leaves the tabs alone)."""
    h = Handlers(assistant, router=assistant.router)
    sid = with_image(h, tmp_path)
    first = list(h.generate(sid, "a lighthouse", steps="1", size="64x64"))[-1]
    assert first.tabs["generate"].startswith("✓ Made img2")
    again = list(h.regenerate(sid))[-1]
    assert again.tabs.get("generate", "").startswith("✓ Made img3"), again.tabs
    list(h.turn(sid, "what is it?"))
    assert "generate" not in list(h.regenerate(sid))[-1].tabs


def test_4_the_header_and_the_list_follow_the_first_message(h, tmp_path):
    """A new session is named by its first message: the turn's last update gives the header and the sessions
    list that name at once (not at the next reload)."""
    sid = with_image(h, tmp_path)
    final = list(h.turn(sid, "boats on the lake"))[-1]
    assert final.title is not None and "boats on the lake" in final.title and sid[:8] in final.title
    assert any(value == sid and label.startswith("boats on the lake") for label, value in final.sessions)


def test_5_export_during_an_answer_says_it_waits_then_downloads(h, tmp_path):
    import threading
    import time
    import zipfile

    sid = with_image(h, tmp_path)
    running = h.page.running
    with running.guard:
        running.runners.add(sid)  # an answer is running
    views = []
    worker = threading.Thread(target=lambda: views.extend(h.export_when_free(sid)))
    worker.start()
    time.sleep(0.5)
    assert len(views) == 1 and views[0].status.startswith("The export waits for the running answer")
    assert views[0].warnings and "エクスポート" in translate(views[0].status, "ja")
    with running.guard:
        running.runners.discard(sid)  # the answer ends
    worker.join(5)
    assert views[-1].status.startswith("Downloading mmchat-") and zipfile.is_zipfile(views[-1].export)
    assert len(list(h.export_when_free(sid))) == 1, "no answer running: at once"


def test_the_tool_loops_trace_and_notes_read_in_japanese():
    """The one router path's own words: each step of the trace, and a call whose arguments did not complete."""
    from chat.ui.texts import translate
    from chat.ui.views import decision_text

    assert translate(decision_text("model tool call (step 2, logprob margin 3.70)"), "ja") == \
        "モデルがこのツールを呼び出し(ステップ 2)"
    assert translate(decision_text("model choice: remove, but its arguments did not complete"), "ja") == \
        "モデルは remove を選んだが、引数を書き終えられなかった"
    # a model that cannot call tools, or a server that refuses them: said in plain words, in both languages
    assert decision_text("answer directly (the server refuses tools)") == \
        "answered in words: the model's server refuses tools"
    assert translate(decision_text("answer directly (the server refuses tools)"), "ja") == \
        "文章で回答: モデルのサーバーがツールを受け付けない"
    assert translate(decision_text("answer directly (the model has no tool calling)"), "ja") == \
        "文章で回答: このモデルはツールを呼び出せない"
    said = translate("The model could not finish the arguments of the remove tool (it ran out of tokens); ask "
                     "again, or use its slash command.", "ja")
    assert said.startswith("モデルが remove ツールの引数を書き終えられませんでした") and said.endswith("使ってください。")
