"""What the buttons do: plain functions over (session id, inputs) that use the Session API and return Views.

No Gradio here, so every handler is testable directly. Sessions live in ``assistant.sessions`` (the
store); this object only keeps transient things: the cancel flag of each running answer and thumbnails.
A handler raises :class:`UserError` for anything a person can fix; the layout shows it as one sentence.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from chat.errors import UserError, describe
from chat.events import Delta, Done, Status, ToolFinished, ToolStarted
from chat.session import Session, TraceEntry
from chat.ui import views
from chat.ui.files import ImageFiles
from chat.ui.views import View

SHAPES = ("circle", "ellipse", "box", "arrow", "cross", "point")
COLORS = ("red", "green", "blue", "yellow", "purple")
SCORE_MODELS = ("clip", "siglip")
BUSY_SECONDS = 5.0
_END = object()


def parse_labels(text: str) -> list[str]:
    """Labels from the score box: one per line or separated by '|'; commas only when neither is used."""
    text = (text or "").strip()
    if not text:
        raise UserError("Type some labels to score, e.g. 'cat | dog'.")
    if "|" in text or "\n" in text:
        parts = text.replace("\n", "|").split("|")
    else:
        parts = text.split(",")
    labels = [" ".join(p.split()) for p in parts if p.strip()]
    if not labels:
        raise UserError("Type some labels to score, e.g. 'cat | dog'.")
    return labels


def file_path(item: Any) -> str:
    """The local path of an uploaded file as Gradio passes it (str, dict or FileData-like)."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if isinstance(item, dict):
        return str(item.get("path") or item.get("name") or "")
    return str(getattr(item, "path", None) or getattr(item, "name", "") or "")


class Handlers:
    def __init__(self, assistant, router=None):
        self.assistant = assistant
        self._router = router
        self._cancels: dict[str, threading.Event] = {}
        self._cancels_guard = threading.Lock()
        self.files = ImageFiles()
        self._tmp: Path | None = None
        self._sinks: set[queue.Queue] = set()  # event queues of the answers now running
        self._hook_model_progress()

    def _hook_model_progress(self) -> None:
        """Model loading (registry progress) shows in the status line of every answer that is running."""
        registry = getattr(self.assistant, "registry", None)
        if registry is None:
            return
        previous = registry.progress

        def progress(name: str, fraction: float, message: str) -> None:
            if previous is not None:
                previous(name, fraction, message)
            for sink in list(self._sinks):
                sink.put(Status(message[:1].upper() + message[1:], fraction if 0 < fraction < 1 else None))

        registry.progress = progress

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def store(self):
        return self.assistant.sessions

    @property
    def router(self):
        if self._router is None:
            self._router = self.assistant.router
        return self._router

    @property
    def limits(self):
        return self.assistant.config.limits

    def session(self, session_id: str | None) -> tuple[Session, str | None]:
        """The session for this browser; a new one when there is none (or it is gone), with a note why."""
        if session_id:
            try:
                return self.store.get(session_id), None
            except UserError as exc:
                return self.store.create(), str(exc)
        return self.store.create(), None

    @contextmanager
    def locked(self, session_id: str):
        lock = self.store.lock(session_id)
        if not lock.acquire(timeout=BUSY_SECONDS):
            raise UserError("The assistant is still working on this session; wait a moment or press Stop.")
        try:
            yield
        finally:
            lock.release()

    def _view(self, session: Session, note: str | None = None, *, image: bool = True, images: bool = True,
              chat: bool = False, trace: bool = False, status: str | None = None) -> View:
        view = View(session_id=session.id, status=status or views.ready_text(session))
        if image:
            view.image = self._display(session)
            view.clear_image = view.image is None
        if images:
            view.thumbs = views.thumbnails(session, self.files)
            view.versions = views.version_items(session, self.files)
        if chat:
            view.chat = views.chat_messages(session)
        if trace:
            view.trace = views.trace_rows(session)
        if note:
            view.warnings.append(note)
        return view

    def _display(self, session: Session, overlay=None) -> str | None:
        image = views.display_image(session, overlay)
        return None if image is None else self.files.put(image)

    # -- sessions ---------------------------------------------------------------------------
    def load(self, session_id: str | None) -> View:
        """Page load: the browser's stored session if it still exists, else a new one."""
        session, _ = self.session(session_id)
        return self._view(session, chat=True, trace=True)

    def new_session(self) -> View:
        session = self.store.create()
        view = self._view(session, chat=True, trace=True)
        view.scores, view.clear_input = [], True
        return view

    def clear_chat(self, session_id: str | None) -> View:
        session, note = self.session(session_id)
        with self.locked(session.id):
            session.messages = []
            self.store.save(session)
        return self._view(session, note, image=False, images=False, chat=True, status="Chat cleared.")

    # -- images -------------------------------------------------------------------------------
    def _add_files(self, session: Session, files) -> tuple[list[str], list[str]]:
        """Add uploaded files as images: (new image ids, notes about downscaled ones)."""
        from chat.imageio import load_image_bytes, working_copy

        added, notes = [], []
        for item in files or []:
            path = file_path(item)
            name = os.path.basename(path) or "image"
            try:
                data = Path(path).read_bytes()
            except OSError:
                raise UserError(f"{name} could not be read; upload it again.") from None
            image = load_image_bytes(data, name, self.limits)
            small = working_copy(image, self.limits.max_pixels)
            if small.size != image.size:
                notes.append(f"{name} was scaled from {image.width}x{image.height} to {small.width}x{small.height}")
            record = session.add_image(small, name=name, limit=self.limits.max_images_per_session)
            added.append(record.id)
        return added, notes

    def upload(self, session_id: str | None, files) -> View:
        session, note = self.session(session_id)
        if not files:
            raise UserError("Choose one or more image files to upload.")
        with self.locked(session.id):
            try:
                ids, notes = self._add_files(session, files)
            finally:
                self.store.save(session)  # images read before a bad file are kept
        status = f"Added {', '.join(ids)}." + (f" ({'; '.join(notes)})" if notes else "") + " Click the image to mark a spot."
        return self._view(session, note, status=status)

    def select_image(self, session_id: str | None, ref: str) -> View:
        session, note = self.session(session_id)
        with self.locked(session.id):
            session.select((ref or "").strip())
            self.store.save(session)
        return self._view(session, note)

    def select_index(self, session_id: str | None, index: int) -> View:
        session, _ = self.session(session_id)
        ids = list(session.images)
        if not isinstance(index, int) or not 0 <= index < len(ids):
            raise UserError("That thumbnail is no longer there; pick another image.")
        return self.select_image(session.id, ids[index])

    def revert(self, session_id: str | None, version_id: str) -> View:
        session, note = self.session(session_id)
        with self.locked(session.id):
            version = session.revert((version_id or "").strip())
            self.store.save(session)
        return self._view(session, note, status=f"{version.id} is now the current version. " + views.ready_text(session))

    def revert_index(self, session_id: str | None, index: int) -> View:
        session, _ = self.session(session_id)
        versions = session.record().versions
        if not isinstance(index, int) or not 0 <= index < len(versions):
            raise UserError("That version is no longer there; pick another.")
        return self.revert(session.id, versions[index].id)

    # -- markers ------------------------------------------------------------------------------
    def _marker(self, x: float, y: float, shape: str, color: str):
        from tools.markers import Marker

        if shape not in SHAPES:
            raise UserError(f"Unknown marker shape '{shape}'; choose one of {', '.join(SHAPES)}.")
        if color not in COLORS:
            raise UserError(f"Unknown marker colour '{color}'; choose one of {', '.join(COLORS)}.")
        try:
            return Marker(x=int(x), y=int(y), shape=shape, color=color, radius=self.assistant.config.tools.click_radius)
        except (ValidationError, TypeError, ValueError):
            raise UserError(f"({x}, {y}) is not a pixel position; give whole numbers.") from None

    def add_point(self, session_id: str | None, x: float | None, y: float | None, shape: str = "circle",
                  color: str = "red") -> View:
        """A marker at pixel (x, y) of the active image's current version (original pixels)."""
        session, note = self.session(session_id)
        if x is None or y is None:
            raise UserError("Give both x and y of the point.")
        with self.locked(session.id):
            session.record()  # "upload one first" when there is no image
            marker = self._marker(x, y, shape, color)
            record = session.add_marker(marker)
            self.store.save(session)
        return self._view(session, note, images=False,
                          status=f"Marker {len(record.markers)} ({shape}, {color}) at ({marker.x}, {marker.y}) "
                                 f"on {record.current_id}. Ask about it, score it or edit it.")

    def click(self, session_id: str | None, index, shape: str = "circle", color: str = "red") -> View:
        """A click on the displayed image: ``index`` = [x, y] in display pixels, mapped to original pixels."""
        session, _ = self.session(session_id)
        if not session.active:
            raise UserError("There is no image yet; upload one first.")
        if not isinstance(index, (list, tuple)) or len(index) != 2:
            raise UserError("That click did not land on the image; click on the picture itself.")
        x, y = views.to_original(index[0], index[1], session.pixels().size)
        return self.add_point(session.id, x, y, shape, color)

    def undo_marker(self, session_id: str | None) -> View:
        session, note = self.session(session_id)
        with self.locked(session.id):
            removed = session.undo_marker()
            self.store.save(session)
        status = "Removed the last marker." if removed else "There is no marker to remove."
        return self._view(session, note, images=False, status=status)

    def clear_markers(self, session_id: str | None) -> View:
        session, note = self.session(session_id)
        with self.locked(session.id):
            session.clear_markers()
            self.store.save(session)
        return self._view(session, note, images=False, status="Markers cleared.")

    # -- export -------------------------------------------------------------------------------
    def export(self, session_id: str | None) -> View:
        session, note = self.session(session_id)
        with self.locked(session.id):
            path = Path(self.store.export_zip(session))
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="mmchat-ui-"))
        target = self._tmp / f"mmchat-{session.id[:8]}-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        shutil.copyfile(path, target)
        view = View(session_id=session.id, export=str(target), status=f"Exported the conversation to {target.name}.")
        if note:
            view.warnings.append(note)
        return view

    # -- answers ------------------------------------------------------------------------------
    def stop(self, session_id: str | None) -> View:
        with self._cancels_guard:
            cancel = self._cancels.get(session_id or "")
        if cancel is None:
            return View(session_id=session_id, status="Nothing to stop.")
        cancel.set()
        return View(session_id=session_id, status="Stopped.")

    def chat(self, session_id: str | None, message: dict | str | None) -> Iterator[View]:
        """The chat box: images dropped in are added first, then the text (if any) is answered."""
        if isinstance(message, dict):
            text, files = message.get("text") or "", message.get("files") or []
        else:
            text, files = message or "", []
        if not text.strip() and files:
            view = self.upload(session_id, files)
            view.clear_input = True
            yield view
            return
        yield from self.turn(session_id, text, files=files)

    def regenerate(self, session_id: str | None) -> Iterator[View]:
        session, _ = self.session(session_id)
        with self.locked(session.id):
            last = max((i for i, m in enumerate(session.messages) if m.role == "user"), default=None)
            if last is None:
                raise UserError("There is nothing to regenerate yet; ask something first.")
            text = session.messages[last].content
            session.messages = session.messages[:last]
            self.store.save(session)
        yield from self.turn(session.id, text)

    def score(self, session_id: str | None, labels: str, model: str = "clip") -> Iterator[View]:
        if model not in SCORE_MODELS:
            raise UserError(f"Unknown scoring model '{model}'; choose clip or siglip.")
        parsed = parse_labels(labels)
        if len(parsed) > self.limits.max_labels:
            raise UserError(f"{len(parsed)} labels given; at most {self.limits.max_labels} can be scored at once.")
        yield from self.turn(session_id, "/score " + " | ".join(parsed), action="score",
                             arguments={"labels": parsed, "model": model})

    def som(self, session_id: str | None) -> Iterator[View]:
        yield from self.turn(session_id, "/som", action="som", arguments={})

    def edit(self, session_id: str | None, instruction: str, action: str = "edit") -> Iterator[View]:
        instruction = " ".join((instruction or "").split())
        if action == "edit" and not instruction:
            raise UserError("Type an edit instruction, e.g. 'make it snowy'.")
        key = "instruction" if action == "edit" else "target"  # remove: what is removed, e.g. "the dog"
        arguments = {key: instruction} if instruction else {}
        yield from self.turn(session_id, f"/{action} {instruction}".strip(), action=action, arguments=arguments)

    def remove(self, session_id: str | None, instruction: str = "") -> Iterator[View]:
        yield from self.edit(session_id, instruction, action="remove")

    def ask(self, session_id: str | None, question: str) -> Iterator[View]:
        yield from self.turn(session_id, question)

    def turn(self, session_id: str | None, text: str, *, action: str | None = None,
             arguments: dict | None = None, files=()) -> Iterator[View]:
        """Stream one answer: the router runs in a worker thread (holding the session lock); its events
        become Views. Closing this generator (Stop, a closed tab) sets the router's cancel flag."""
        session, note = self.session(session_id)
        text = (text or "").strip()
        if not text and not action:
            raise UserError("Type a message first.")
        if len(text) > self.limits.max_message_chars:
            raise UserError(f"The message is {len(text)} characters long; the limit is {self.limits.max_message_chars}.")
        changed_images = False
        if files:
            with self.locked(session.id):
                try:
                    changed_images = bool(self._add_files(session, files)[0])
                finally:
                    self.store.save(session)
        cancel, events = threading.Event(), queue.Queue()
        base = views.chat_messages(session)
        with self._cancels_guard:
            self._cancels[session.id] = cancel

        def work() -> None:
            lock = self.store.lock(session.id)
            if not lock.acquire(timeout=BUSY_SECONDS):
                events.put(UserError("The assistant is still answering in this session; wait or press Stop."))
                events.put(_END)
                return
            self._sinks.add(events)
            try:
                router = self.router  # built on first use (it may load a model): after "Thinking…" is shown
                for event in router.respond(session, text, action=action, arguments=arguments, cancel=cancel):
                    if isinstance(event, ToolFinished) and event.new_versions:
                        self.store.save(session)
                    events.put(event)
            except BaseException as exc:  # noqa: BLE001 - shown as one sentence, the session stays intact
                events.put(exc)
            finally:
                self._sinks.discard(events)
                try:
                    self.store.save(session)
                finally:
                    lock.release()
                    events.put(_END)

        worker = threading.Thread(target=work, name=f"mmchat-turn-{session.id[:8]}", daemon=True)
        worker.start()
        shown = f"{text}\n\n_({session.record().current_id})_" if session.active else text
        state = _TurnState(base=base, user=shown)
        try:
            first = View(session_id=session.id, chat=state.chat(), status="Thinking…", clear_input=True)
            if changed_images:
                first.image, first.thumbs = self._display(session), views.thumbnails(session, self.files)
                first.versions = views.version_items(session, self.files)
            if note:
                first.warnings.append(note)
            yield first
            finished = False
            while not finished:
                batch = [events.get()]
                while True:  # coalesce what is already waiting into one update
                    try:
                        batch.append(events.get_nowait())
                    except queue.Empty:
                        break
                view = View(session_id=session.id)
                for item in batch:
                    if item is _END:
                        finished = True
                    else:
                        self._apply(session, state, item, view)
                view.chat = state.chat() if not state.done else None
                if view.image is not None:
                    state.image = view.image
                if finished:  # the last update is complete, so a client's predict() sees everything
                    view.chat = views.chat_messages(session) + state.leftover()
                    view.trace = views.trace_rows(session)
                    view.image = state.image if state.image is not None else self._display(session)
                    view.thumbs = views.thumbnails(session, self.files)
                    view.versions = views.version_items(session, self.files)
                    view.plot = view.plot if view.plot is not None else state.plot
                    view.scores = view.scores if view.scores is not None else state.scores
                    if view.status is None:
                        view.status = state.final_status or views.ready_text(session)
                yield view
        finally:
            cancel.set()
            with self._cancels_guard:
                if self._cancels.get(session.id) is cancel:
                    del self._cancels[session.id]

    def _apply(self, session: Session, state: "_TurnState", item, view: View) -> None:
        if isinstance(item, BaseException):
            state.error = describe(item)
            view.status = f"⚠ {state.error}"
            view.warnings.append(state.error)
        elif isinstance(item, Delta):
            state.answer += item.text
        elif isinstance(item, Status):
            view.status = views.status_text(item.message, item.fraction)
        elif isinstance(item, ToolStarted):
            state.tools.append(views.tool_message(TraceEntry(tool=item.tool, arguments=item.arguments), pending=True))
            view.status = f"Running {item.tool}…"
        elif isinstance(item, ToolFinished):
            state.finish_tool(item.entry)
            view.trace = views.trace_rows(session)
            view.status = f"{item.entry.tool}: " + (f"Error: {item.entry.error}" if item.entry.error else "done")
            if item.new_versions:
                view.image = self._display(session)
                view.thumbs = views.thumbnails(session, self.files)
                view.versions = views.version_items(session, self.files)
            if item.overlay is not None:
                view.image = self._display(session, item.overlay)
            if item.plot is not None:
                view.plot = state.plot = self.files.put(item.plot)
            if "score" in item.entry.tool and not item.entry.error:
                view.scores = state.scores = views.score_rows(getattr(item, "result", None), item.entry.summary)
        elif isinstance(item, Done):
            state.done = True
            state.final_status = "Stopped." if item.cancelled else None


class _TurnState:
    """The chat as it streams: history before the turn, the user's text, tool bubbles, the answer so far."""

    def __init__(self, base: list[dict], user: str):
        self.base, self.user = base, user
        self.tools: list[dict] = []
        self.answer = ""
        self.done = False
        self.error: str | None = None
        self.final_status: str | None = None
        self.image = self.plot = self.scores = None  # the latest of each shown during the turn

    def finish_tool(self, entry: TraceEntry) -> None:
        done = views.tool_message(entry)
        for i, message in enumerate(self.tools):
            if message["metadata"]["status"] == "pending" and message["metadata"]["title"] == done["metadata"]["title"]:
                self.tools[i] = done
                return
        self.tools.append(done)

    def chat(self) -> list[dict]:
        out = list(self.base) + [{"role": "user", "content": self.user}] + self.tools
        if self.answer:
            out.append({"role": "assistant", "content": self.answer})
        return out

    def leftover(self) -> list[dict]:
        """What the session does not hold after the turn: an error the router raised."""
        return [{"role": "assistant", "content": f"Error: {self.error}"}] if self.error else []
