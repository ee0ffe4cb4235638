"""What every part of the page's handlers shares: the assistant and its session store, the page's files, the
router (built on first use), which sessions have an answer running, and how a session becomes a View.

The parts (:mod:`chat.ui.turns`, :mod:`chat.ui.sessions`, :mod:`chat.ui.versions`, :mod:`chat.ui.images`,
:mod:`chat.ui.markers`, :mod:`chat.ui.tooltabs`) each hold this one object; none inherits from another.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager

from chat.errors import UserError
from chat.session import Session
from chat.ui import views
from chat.ui.chatview import ChatView
from chat.ui.files import ImageFiles
from chat.ui.versions import VersionFiles
from chat.ui.views import View

BUSY_SECONDS = 5.0
MASK_ENTRIES = 256


class Running:
    """The sessions with an answer running (their cancel flags), and the messages waiting behind it."""

    def __init__(self):
        self._cancels: dict[str, threading.Event] = {}
        self.queues: dict[str, list] = {}  # session id -> waiting items (see chat.ui.turns.Pending)
        self.runners: set[str] = set()  # sessions whose queue is being answered
        self.sinks: dict[str, object] = {}  # session id -> the running answer's event queue
        self.guard = threading.Lock()

    def start(self, session_id: str, cancel: threading.Event) -> None:
        with self.guard:
            self._cancels[session_id] = cancel

    def end(self, session_id: str, cancel: threading.Event) -> None:
        with self.guard:
            if self._cancels.get(session_id) is cancel:
                del self._cancels[session_id]

    def cancel_of(self, session_id: str | None) -> threading.Event | None:
        with self.guard:
            return self._cancels.get(session_id or "")

    def busy(self, session_id: str | None) -> bool:
        with self.guard:
            return bool(session_id) and (session_id in self._cancels or session_id in self.runners)

    def waiting(self, session_id: str) -> list:
        with self.guard:
            return list(self.queues.get(session_id, []))


class Page:
    def __init__(self, assistant, router=None):
        self.assistant = assistant
        self._router = router
        self.files = ImageFiles(assistant.config.data_path)  # under data_dir/ui-cache, see chat/ui/files.py
        self.versions = VersionFiles(self.files, assistant.sessions)
        self.chat = ChatView(self.files, overlay=self.som_overlay, download=self.versions.download_link)
        self.running = Running()
        self._masks: OrderedDict[tuple, object] = OrderedDict()  # (session, image, clicks) -> SAM mask
        self._masks_guard = threading.Lock()

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
    def config(self):
        return self.assistant.config

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
        """The session to change, alone; refused at once while an answer runs in it."""
        if self.running.busy(session_id):
            raise UserError("An answer is running in this session; wait for it or press Stop, then try again.")
        lock = self.store.lock(session_id)
        if not lock.acquire(timeout=BUSY_SECONDS):
            raise UserError("The assistant is still working on this session; wait a moment or press Stop.")
        try:
            yield
        finally:
            lock.release()

    # -- what the image panel shows ---------------------------------------------------------
    def som_overlay(self, session: Session, version_id: str):
        """The Set-of-Mark overlay of a version when it has one (numbers the model saw), else None."""
        return session.overlay(version_id)  # stored with the session (and saved with it)

    def remember_mask(self, session: Session, image_id: str, clicks, mask) -> None:
        with self._masks_guard:
            self._masks[(session.id, image_id, tuple(map(tuple, clicks)))] = mask
            while len(self._masks) > MASK_ENTRIES:
                self._masks.popitem(last=False)

    def masks(self, session: Session) -> dict:
        """Marker index -> the SAM mask of that object (those this process segmented)."""
        record = session.record()
        out = {}
        with self._masks_guard:
            for index, marker in enumerate(record.markers):
                if marker.clicks:
                    mask = self._masks.get((session.id, record.id, tuple(map(tuple, marker.clicks))))
                    if mask is not None:
                        out[index] = mask
        return out

    def display(self, session: Session, overlay=None) -> str | None:
        """The image panel's file: ``overlay`` when given (a highlight), else the current version with its
        Set-of-Mark numbers when it has them; markers, clicks and masks drawn on top."""
        if not session.active:
            return None
        if overlay is None:
            overlay = self.som_overlay(session, session.record().current_id)
        image = views.display_image(session, overlay, self.masks(session))
        return None if image is None else self.files.put(image)

    # -- views ------------------------------------------------------------------------------
    def galleries(self, session: Session, view: View, compare: bool = True) -> View:
        self.versions.galleries(session, view, compare)
        view.versions_index = views.current_index(session)
        view.versions_note = views.versions_text(session)
        return view

    def view(self, session: Session, note: str | None = None, *, image: bool = True, images: bool = True,
             chat: bool = False, trace: bool = False, status: str | None = None) -> View:
        view = View(session_id=session.id, status=status or views.ready_text(session),
                    busy=self.running.busy(session.id))
        if image:
            view.image = self.display(session)
            view.clear_image = view.image is None
        if images:
            self.galleries(session, view)
        if chat:
            view.chat = self.chat.messages(session)
        if trace:
            view.trace = views.trace_rows(session)
        if note:
            view.warnings.append(note)
        view.revision = views.revision(session)
        return view
