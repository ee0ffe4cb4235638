"""What the buttons do: plain functions over (session id, inputs) that use the Session API and return Views.

No Gradio here, so every handler is testable directly. Sessions live in ``assistant.sessions`` (the
store); this object only keeps transient things: the cancel flag of each running answer and thumbnails.
A handler raises :class:`UserError` for anything a person can fix; the layout shows it as one sentence.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chat.errors import UserError
from chat.session import Session, clean_text
from chat.ui import views
from chat.ui.files import ImageFiles
from chat.ui.turns import BUSY_SECONDS, SCORE_MODELS, Answers, ProgressRelay, parse_labels  # noqa: F401
from chat.ui.versions import Versions
from chat.ui.views import View

SHAPES = ("circle", "ellipse", "box", "arrow", "cross", "point")
COLORS = ("red", "green", "blue", "yellow", "purple")
CLICK_MODES = ("new", "add", "exclude")  # SAM regions: a new object, add to the last one, cut from it


def file_path(item: Any) -> str:
    """The local path of an uploaded file as Gradio passes it (str, dict or FileData-like)."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if isinstance(item, dict):
        return str(item.get("path") or item.get("name") or "")
    return str(getattr(item, "path", None) or getattr(item, "name", "") or "")


class Handlers(Answers, Versions):
    """Every action of the page; the streamed ones (answers) come from :class:`chat.ui.turns.Answers`, compare
    and download from :class:`chat.ui.versions.Versions`."""

    def __init__(self, assistant, router=None):
        self.assistant = assistant
        self._router = router
        self._cancels: dict[str, threading.Event] = {}
        self._cancels_guard = threading.Lock()
        self.files = ImageFiles(assistant.config.data_path)  # under data_dir/ui-cache, see chat/ui/files.py
        self._sinks: set[queue.Queue] = set()  # event queues of the answers now running
        self._shown_active: dict[str, str | None] = {}  # session id -> active image shown (see versions.py)
        self._shown_guard = threading.Lock()
        self._hook_model_progress()

    def _hook_model_progress(self) -> None:
        """Model loading (registry progress) shows in the status line of every answer that is running. One
        relay per registry: another app built on the same assistant joins it instead of wrapping it again."""
        registry = getattr(self.assistant, "registry", None)
        if registry is not None:
            ProgressRelay.install(registry, self)

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
            self._galleries(session, view)
        if chat:
            view.chat = views.chat_messages(session)
        if trace:
            view.trace = views.trace_rows(session)
        if note:
            view.warnings.append(note)
        return view

    def _display(self, session: Session, overlay=None) -> str | None:
        """The image panel's file: ``overlay`` when given (a highlight), else what the model sees (the router's
        view: the Set-of-Mark numbers stay with markers drawn on top), else the marked current version."""
        if overlay is None and session.active:
            overlay = self._model_view(session)
        image = views.display_image(session, overlay)
        return None if image is None else self.files.put(image)

    def _model_view(self, session: Session):
        """The active image as the model sees it, from a router that is already built and has ``view``; None
        otherwise (no router yet means no Set-of-Mark in its memory, so the plain drawing is the same)."""
        view = getattr(self._router, "view", None)
        if view is None:
            return None
        try:
            return view(session, session.record().current_id)
        except UserError:
            return None

    # -- sessions ---------------------------------------------------------------------------
    def load(self, session_id: str | None) -> View:
        """Page load: the browser's stored session if it still exists, else a new one."""
        session, _ = self.session(session_id)
        return self._view(session, chat=True, trace=True)

    def _leave(self, session_id: str | None, action: str) -> None:
        """Refuse to leave a session whose answer (or tool) is still running: its outputs would bring the page
        back to it. ``action`` finishes the sentence, e.g. 'start a new session'."""
        with self._cancels_guard:
            running = bool(session_id) and session_id in self._cancels
        if running:
            raise UserError(f"Stop the running answer first, or wait for it, then {action}.")

    def resume(self, session_id: str | None, wanted: str) -> View:
        """Switch to a saved session by its id (after a restart, or from another browser)."""
        self._leave(session_id, "resume another session")
        wanted = clean_text(wanted).strip()
        if not self.store.exists(wanted):
            raise UserError("There is no saved session with that id; check it, or import an export instead.")
        session = self.store.get(wanted)
        return _switched(self._view(session, chat=True, trace=True, status="Resumed the session: " + _summary(session)))

    def import_session(self, session_id: str | None, file) -> View:
        """A new session from an exported zip; the current session is left as it was."""
        self._leave(session_id, "import a session")
        if not file:
            raise UserError("Choose an exported session (.zip) to import.")
        session = self.store.import_zip(file_path(file[0] if isinstance(file, list) else file))
        return _switched(self._view(session, chat=True, trace=True, status="Imported the session: " + _summary(session)))

    def new_session(self, session_id: str | None = None) -> View:
        """A new empty session (``session_id``: the one the page shows now, refused while it is answering)."""
        self._leave(session_id, "start a new session")
        session = self.store.create()
        view = _switched(self._view(session, chat=True, trace=True))
        view.clear_input = True
        return view

    def clear_chat(self, session_id: str | None) -> View:
        """Forget the conversation and its tool trace (images and versions stay)."""
        session, note = self.session(session_id)
        with self.locked(session.id):
            session.messages, session.trace = [], []
            self.store.save(session)
        return self._view(session, note, image=False, images=False, chat=True, trace=True, status="Chat cleared.")

    # -- images -------------------------------------------------------------------------------
    def _add_files(self, session: Session, files) -> tuple[list[str], list[str]]:
        """Add uploaded files as images: (new image ids, notes about downscaled ones). All or nothing: every
        file is read and checked first, so a bad one (or one too many) leaves the session as it was.
        A file larger than ``max_pixels`` gets a downscaled working copy; its original bytes are kept."""
        from chat.imageio import extension, load_image_bytes, working_copy

        items = [files] if isinstance(files, (str, dict, os.PathLike)) else list(files or [])
        room = self.limits.max_images_per_session - len(session.images)
        if len(items) > room:
            raise UserError(f"This session has {len(session.images)} of at most {self.limits.max_images_per_session} "
                            f"images, so {len(items)} more do not fit; start a new session.")
        loaded, notes = [], []
        for item in items:
            path = file_path(item)
            name = clean_text(os.path.basename(path)) or "image"
            try:
                data = Path(path).read_bytes()
            except (OSError, ValueError):  # missing, a folder, a NUL in the path...
                raise UserError(f"{name} could not be read; upload it again.") from None
            image = load_image_bytes(data, name, self.limits)
            small = working_copy(image, self.limits.max_pixels)
            original = None
            if small.size != image.size:
                notes.append(f"{name} was scaled from {image.width}x{image.height} to {small.width}x{small.height}")
                original = (data, extension(data))
            loaded.append((small, name, original))
        added = [session.add_image(small, name=name, original=original).id for small, name, original in loaded]
        return added, notes

    def upload(self, session_id: str | None, files) -> View:
        session, note = self.session(session_id)
        if not files:
            raise UserError("Choose one or more image files to upload.")
        with self.locked(session.id):
            ids, notes = self._add_files(session, files)
            self.store.save(session)
        status = f"Added {', '.join(ids)}." + (f" ({'; '.join(notes)})" if notes else "") + " Click the image to mark a spot."
        return self._view(session, note, status=status)

    def select_image(self, session_id: str | None, ref: str) -> View:
        session, note = self.session(session_id)
        ref = clean_text(ref).strip()
        if not ref:
            raise UserError("Give the id of an image, e.g. img1.")
        with self.locked(session.id):
            session.select(ref)
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
        version_id = clean_text(version_id).strip()
        if not version_id:
            raise UserError("Give the id of a version, e.g. img1.v1.")
        with self.locked(session.id):
            version = session.revert(version_id)
            self.store.save(session)
        return self._view(session, note, status=f"{version.id} is now the current version. " + views.ready_text(session))

    def revert_index(self, session_id: str | None, index: int) -> View:
        session, _ = self.session(session_id)
        versions = session.record().versions
        if not isinstance(index, int) or not 0 <= index < len(versions):
            raise UserError("That version is no longer there; pick another.")
        return self.revert(session.id, versions[index].id)

    # -- markers ------------------------------------------------------------------------------
    def _marker(self, x: float, y: float, shape: str, color: str, size: tuple[int, int]):
        """A marker at (x, y) of an image of ``size``, its radius the click radius scaled to the image."""
        from chat.clicks import click_radius
        from tools.markers import Marker

        if shape not in SHAPES:
            raise UserError(f"Unknown marker shape '{shape}'; choose one of {', '.join(SHAPES)}.")
        if color not in COLORS:
            raise UserError(f"Unknown marker colour '{color}'; choose one of {', '.join(COLORS)}.")
        try:
            radius = click_radius(self.assistant.config.tools.click_radius, size)
            return Marker(x=int(x), y=int(y), shape=shape, color=color, radius=radius)
        except (ValidationError, TypeError, ValueError, OverflowError):
            raise UserError(f"({x}, {y}) is not a pixel position; give whole numbers.") from None

    def add_point(self, session_id: str | None, x: float | None, y: float | None, shape: str = "circle",
                  color: str = "red", negative: bool = False, new_object: bool = True) -> View:
        """A marker at pixel (x, y) of the active image's current version (original pixels). With SAM regions
        (tools.click_region: sam) the marker fits the object under the click; ``new_object`` False adds the
        click to the last object, ``negative`` cuts the clicked part out of it."""
        from chat.clicks import click_marker, describe_click

        session, note = self.session(session_id)
        if x is None or y is None:
            raise UserError("Give both x and y of the point.")
        with self.locked(session.id):
            record = session.record()  # "upload one first" when there is no image
            pixels = session.pixels(record.id)
            marker = self._marker(x, y, shape, color, pixels.size)
            marker, refined, sam_note = click_marker(
                self.assistant.config, self.assistant.registry, record.markers, pixels, marker,
                negative=bool(negative), new_object=new_object is None or bool(new_object))
            if refined:
                record.markers[-1] = marker
            else:
                record = session.add_marker(marker)
            self.store.save(session)
        status = (f"Marker {len(record.markers)} {describe_click(marker, refined)} on {record.current_id}. "
                  "Ask about it, score it or edit it.")
        view = self._view(session, note or sam_note, images=False, status=status)
        if note and sam_note:
            view.warnings.append(sam_note)
        return view

    def click(self, session_id: str | None, index, shape: str = "circle", color: str = "red",
              mode: str = "new") -> View:
        """A click on the displayed image: ``index`` = [x, y] in display pixels, mapped to original pixels.
        ``mode`` (SAM regions): 'new' object, 'add' to the last object, or 'exclude' from it."""
        if mode not in CLICK_MODES:
            raise UserError(f"Unknown click mode '{mode}'; choose one of {', '.join(CLICK_MODES)}.")
        session, _ = self.session(session_id)
        if not session.active:
            raise UserError("There is no image yet; upload one first.")
        if not isinstance(index, (list, tuple)) or len(index) != 2:
            raise UserError("That click did not land on the image; click on the picture itself.")
        try:
            dx, dy = float(index[0]), float(index[1])
        except (TypeError, ValueError):
            raise UserError("That click did not land on the image; click on the picture itself.") from None
        width, height = views.display_size(session.pixels().size)
        if not (0 <= dx < width and 0 <= dy < height):  # NaN and infinity fail too
            raise UserError(f"That click is outside the image ({width}x{height} as shown); click on the picture itself.")
        x, y = views.to_original(dx, dy, session.pixels().size)
        return self.add_point(session.id, x, y, shape, color, negative=mode == "exclude", new_object=mode == "new")

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
        target = Path(self.files.keep(path, f"mmchat-{session.id[:8]}-{time.strftime('%Y%m%d-%H%M%S')}.zip"))
        view = View(session_id=session.id, export=str(target), status=f"Exported the conversation to {target.name}.")
        if note:
            view.warnings.append(note)
        return view


def _switched(view: View) -> View:
    """The page now shows another session: the previous one's export, score chart and table go."""
    view.export, view.plot, view.scores = "", "", []
    return view


def _summary(session: Session) -> str:
    versions = sum(len(r.versions) for r in session.images.values())
    return f"{len(session.images)} image(s), {versions} version(s), {len(session.messages)} message(s)."
