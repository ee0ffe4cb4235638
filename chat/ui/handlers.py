"""What the page's controls do: plain functions over (session id, inputs) that use the Session API and return
Views. No Gradio here, so every handler is testable directly.

:class:`Handlers` is composed of the parts of the page (no inheritance), each holding the one shared
:class:`chat.ui.context.Page` (store, files, router, running answers, View building):

- :class:`chat.ui.sessions.SessionList`  sessions: list, open, new, rename, delete, import, export, sync
- :class:`chat.ui.images.Images`         uploads, picking an image, making a version current
- :class:`chat.ui.markers.Markers`       clicks, keyboard points, undo and clear
- :class:`chat.ui.versions.VersionFiles` compare and download
- :class:`chat.ui.turns.TurnRunner`      answers, in order (a queue), Stop, Regenerate
- :class:`chat.ui.tooltabs.ToolTabs`     the tool tabs' buttons

Each method here only hands over to its part; the page's wiring (:mod:`chat.ui.wiring`) and API clients call
these names. A handler raises :class:`UserError` for anything a person can fix; the page shows it as one
sentence.
"""

from __future__ import annotations

from typing import Iterator

from chat.errors import UserError
from chat.session import clean_text
from chat.ui.context import Page
from chat.ui.forms import parse_labels  # noqa: F401 - the API tests read labels as the page does
from chat.ui.images import Images
from chat.ui.markers import CLICK_MODES, COLORS, SHAPES, Markers  # noqa: F401 - the layout's choices
from chat.ui.sessions import SessionList
from chat.ui.tooltabs import ToolTabs
from chat.ui.turns import Pending, TurnRunner, check_length
from chat.ui.views import View


class Handlers:
    """Every action of the page."""

    def __init__(self, assistant, router=None):
        self.assistant = assistant
        self.page = Page(assistant, router)
        self.turns = TurnRunner(self.page)
        self.sessions = SessionList(self.page)
        self.images = Images(self.page)
        self.markers = Markers(self.page)
        self.tools = ToolTabs(self.page, self.turns)
        self.versions = self.page.versions
        self.files = self.page.files

    @property
    def store(self):
        return self.page.store

    @property
    def router(self):
        return self.page.router

    @property
    def sam_mode(self) -> bool:
        return self.markers.sam_mode

    # -- sessions (chat.ui.sessions) --------------------------------------------------------------
    def load(self, session_id: str | None) -> View:
        return self.sessions.load(session_id)

    def resume(self, session_id: str | None, wanted: str) -> View:
        return self.sessions.resume(session_id, wanted)

    def new_session(self, session_id: str | None = None) -> View:
        return self.sessions.new_session(session_id)

    def set_grounded(self, session_id: str | None, on: bool) -> View:
        return self.sessions.set_grounded(session_id, on)

    def rename_session(self, session_id: str | None, title: str) -> View:
        return self.sessions.rename(session_id, title)

    def delete_session(self, session_id: str | None, target: str = "") -> View:
        return self.sessions.delete(session_id, target)

    def ask_confirm(self, session_id: str | None, what: str) -> View:
        return self.sessions.ask(session_id, what)

    def confirm(self, session_id: str | None, what: str) -> View:
        return self.sessions.confirm(session_id, what)

    def import_session(self, session_id: str | None, file) -> View:
        return self.sessions.import_session(session_id, file)

    def export(self, session_id: str | None) -> View:
        return self.sessions.export(session_id)

    def export_when_free(self, session_id: str | None) -> Iterator[View]:
        """Export (the page's button, API name ``export``); while an answer runs it says that the export waits,
        and downloads when the answer has ended."""
        yield from self.sessions.export_when_free(session_id)

    def clear_chat(self, session_id: str | None) -> View:
        return self.sessions.clear_chat(session_id)

    def sync(self, session_id: str | None, shown: str | None) -> View:
        return self.sessions.sync(session_id, shown)

    # -- images (chat.ui.images) ------------------------------------------------------------------
    def upload(self, session_id: str | None, files) -> View:
        return self.images.upload(session_id, files)

    def upload_refused(self, session_id: str | None, info: str) -> View:
        """A file over the upload limit (the page's script reports it instead of sending it): one sentence."""
        return self.images.refused(session_id, info)

    def select_image(self, session_id: str | None, ref: str) -> View:
        return self.images.select_image(session_id, ref)

    def select_index(self, session_id: str | None, index: int) -> View:
        return self.images.select_index(session_id, index)

    def revert(self, session_id: str | None, version_id: str) -> View:
        return self.images.revert(session_id, version_id)

    def revert_index(self, session_id: str | None, index: int) -> View:
        return self.images.revert_index(session_id, index)

    # -- versions (chat.ui.versions) --------------------------------------------------------------
    def compare(self, session_id: str | None, left: str, right: str) -> View:
        session, note = self.page.session(session_id)
        view = self.versions.compare(session, left, right)
        view.warnings += [note] if note else []
        return view

    def compare_parent(self, session_id: str | None, version_id: str = "") -> View:
        """Compare a version (default: the current one) with the version it was made from."""
        session, note = self.page.session(session_id)
        view = self.versions.compare_with_parent(session, version_id)
        view.warnings += [note] if note else []
        return view

    def download_version(self, session_id: str | None, version: str = "") -> View:
        session, note = self.page.session(session_id)
        view = self.versions.download(session, version)
        view.warnings += [note] if note else []
        return view

    def chat_action(self, session_id: str | None, action: str) -> View:
        """A link in the chat: 'current-img1.v2' makes the version current, 'compare-img1.v2' compares it
        with its parent."""
        kind, _, version = clean_text(action).strip().partition("-")
        if kind == "current":
            return self.revert(session_id, version)
        if kind == "compare":
            return self.compare_parent(session_id, version)
        raise UserError("That action is not known; use the buttons under the picture.")

    # -- markers (chat.ui.markers) ----------------------------------------------------------------
    def add_point(self, session_id: str | None, x: float | None, y: float | None, shape: str = "circle",
                  color: str = "red", negative: bool = False, new_object: bool = True) -> View:
        return self.markers.add_point(session_id, x, y, shape, color, negative, new_object)

    def click(self, session_id: str | None, index, shape: str = "circle", color: str = "red",
              mode: str = "new") -> View:
        return self.markers.click(session_id, index, shape, color, mode)

    def key_point(self, session_id: str | None, where: str, shape: str = "circle", color: str = "red",
                  mode: str = "new") -> View:
        return self.markers.key_point(session_id, where, shape, color, mode)

    def click_with_progress(self, session_id: str | None, index, shape: str = "circle", color: str = "red",
                            mode: str = "new") -> Iterator[View]:
        yield from self.markers.click_with_progress(session_id, index, shape, color, mode)

    def key_point_with_progress(self, session_id, where, shape="circle", color="red", mode="new") -> Iterator[View]:
        yield from self.markers.key_point_with_progress(session_id, where, shape, color, mode)

    def undo_marker(self, session_id: str | None) -> View:
        return self.markers.undo_marker(session_id)

    def clear_markers(self, session_id: str | None) -> View:
        return self.markers.clear_markers(session_id)

    # -- answers (chat.ui.turns) ------------------------------------------------------------------
    def stop(self, session_id: str | None) -> View:
        return self.turns.stop(session_id)

    def turn(self, session_id: str | None, text: str, *, action: str | None = None, arguments: dict | None = None,
             files=()) -> Iterator[View]:
        """One answer now (no queue): for tests and callers that manage order themselves."""
        yield from self.turns.turn(session_id, text, action=action, arguments=arguments, files=files)

    def send(self, session_id: str | None, message: dict | str | None) -> View:
        """The chat box on the page: queue the message (images dropped in are added first, alone: at once).
        The page then calls :meth:`run_queue`."""
        session, note = self.page.session(session_id)
        text, files = _message(message)
        if not text.strip() and files:
            view = self.upload(session.id, files)
            view.clear_input = True
            return view
        if not text.strip():
            return View(session_id=session.id)  # an empty box: nothing to send
        check_length(text.strip(), self.page.limits.max_message_chars)  # refused here: the box keeps the text
        view = self.turns.submit(session.id, Pending(text, files=list(files)))
        view.warnings += [note] if note else []
        return view

    def run_queue(self, session_id: str | None) -> Iterator[View]:
        """Answer what :meth:`send` queued. Always yields: a stream that yields nothing (Enter in an empty box, or
        a queue another call already answered) makes Gradio empty every output of the page."""
        if not session_id:
            yield View()
            return
        answered = False
        for view in self.turns.run(session_id):
            answered = True
            yield view
        if not answered:
            yield View(session_id=session_id)

    def chat(self, session_id: str | None, message: dict | str | None) -> Iterator[View]:
        """The chat box in one call (the API): images dropped in are added first, then the text is answered."""
        text, files = _message(message)
        if not text.strip() and files:
            view = self.upload(session_id, files)
            view.clear_input = True
            yield view
            return
        yield from self.turns.send(session_id, Pending(text, files=list(files)))

    def ask(self, session_id: str | None, question: str) -> Iterator[View]:
        yield from self.turns.send(session_id, Pending(clean_text(question)))

    def regenerate(self, session_id: str | None) -> Iterator[View]:
        session, _ = self.page.session(session_id)
        if not any(m.role == "user" for m in session.messages) and not self.page.running.waiting(session.id):
            raise UserError("There is nothing to regenerate yet; ask something first.")
        yield from self.turns.send(session.id, Pending("", regenerate=True))

    # -- the tool tabs (chat.ui.tooltabs) ---------------------------------------------------------
    def score(self, session_id: str | None, labels: str, model: str = "clip") -> Iterator[View]:
        yield from self.tools.score(session_id, labels, model)

    def som(self, session_id: str | None) -> Iterator[View]:
        yield from self.tools.som(session_id)

    def edit(self, session_id: str | None, instruction: str, steps=None, seed=None, guidance=None) -> Iterator[View]:
        yield from self.tools.edit(session_id, instruction, steps, seed, guidance)

    def remove(self, session_id: str | None, target: str = "", steps=None, seed=None) -> Iterator[View]:
        """Remove the marked object; ``target`` says what it is (e.g. 'the dog'), which steers the fill."""
        yield from self.tools.remove(session_id, target, steps, seed)

    def generate(self, session_id: str | None, prompt: str, sketch=None, seed=None, size: str = "512x512",
                 steps=None) -> Iterator[View]:
        """A new image from the prompt (with a drawing on the sketch pad: conditioned on it)."""
        yield from self.tools.generate(session_id, prompt, sketch, seed, size, steps)


def _message(message) -> tuple[str, list]:
    if isinstance(message, dict):
        return clean_text(message.get("text")), list(message.get("files") or [])
    return clean_text(message), []
