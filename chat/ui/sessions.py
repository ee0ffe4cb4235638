"""Sessions in sight: the list of saved sessions (open, rename, delete with its files), New session, import and
export, Clear chat, and keeping two tabs on one session in step (each tab polls :meth:`SessionList.sync`, so
neither shows less than the model answers from).

New session and Delete ask first (:meth:`ask`), and the page shows the question with Confirm and Cancel.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

from chat.errors import UserError
from chat.session import Session, clean_text
from chat.ui import views
from chat.ui.context import Page
from chat.ui.views import View

MAX_LISTED = 200
TITLE_CHARS = 80
EXPORT_WAIT_SECONDS = 600.0
EXPORT_WAITS = "The export waits for the running answer: the download starts when it ends (or press Stop)."


def file_path(item) -> str:
    """The local path of an uploaded file as Gradio passes it (str, dict or FileData-like)."""
    import os

    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if isinstance(item, dict):
        return str(item.get("path") or item.get("name") or "")
    return str(getattr(item, "path", None) or getattr(item, "name", "") or "")


def session_rows(store) -> list[tuple[str, str]]:
    """(label, id) of the saved sessions, most recently used first: 'title · 3 Dec 14:05'."""
    out = []
    for entry in store.list()[:MAX_LISTED]:
        when = datetime.fromtimestamp(entry["updated"] or entry["created"] or 0).strftime("%d %b %H:%M")
        out.append((f"{entry['title'] or 'Untitled'} · {when}", entry["id"]))
    return out


def title_of(session: Session) -> str:
    """The session's name: the one given, else the start of its first message (as the list shows it)."""
    return session.title or next((m.content[:60] for m in session.messages if m.role == "user"), "")


def heading(page: Page, session: Session, view: View) -> View:
    """The header and the sessions list of ``view`` follow the session (its name may come from a first message)."""
    view.sessions = session_rows(page.store)
    view.title = views.session_label(session, title_of(session))
    return view


class SessionList:
    def __init__(self, page: Page):
        self.page = page

    # -- what the list and the header show ----------------------------------------------------
    def rows(self) -> list[tuple[str, str]]:
        return session_rows(self.page.store)

    def full(self, session: Session, note: str | None = None, status: str | None = None) -> View:
        """Everything the page shows of a session (after a load, a switch, a sync); a session whose last answer
        asked "which one?" still says it waits for the number (also after a reload or a restart)."""
        from chat.ui.turnstate import waiting_text

        view = self.page.view(session, note, chat=True, trace=True, status=status or waiting_text(session))
        view.chat = (view.chat or []) + [bubble for bubble in _queued(self.page, session.id)]
        view.sessions = self.rows()
        view.title = views.session_label(session, self._title(session))
        view.rename = self._title(session)
        view.grounded = session.grounded
        view.busy = self.page.running.busy(session.id)
        return view

    def _title(self, session: Session) -> str:
        return title_of(session)

    def _leave(self, session_id: str | None, action: str) -> None:
        """Refuse to leave a session whose answer (or tool) is still running: its outputs would bring the page
        back to it. ``action`` finishes the sentence, e.g. 'start a new session'."""
        if self.page.running.busy(session_id):
            raise UserError(f"Stop the running answer first, or wait for it, then {action}.")

    # -- sessions -----------------------------------------------------------------------------
    def load(self, session_id: str | None) -> View:
        """Page load: the browser's stored session if it still exists, else a new one."""
        session, _ = self.page.session(session_id)
        return self.full(session)

    def resume(self, session_id: str | None, wanted: str) -> View:
        """Switch to a saved session by its id (the list, after a restart, or from another browser)."""
        self._leave(session_id, "resume another session")
        wanted = clean_text(wanted).strip()
        if not self.page.store.exists(wanted):
            raise UserError("There is no saved session with that id; check it, or import an export instead.")
        session = self.page.store.get(wanted)
        return _switched(self.full(session, status="Resumed the session: " + _summary(session)))

    def new_session(self, session_id: str | None = None) -> View:
        """A new empty session (``session_id``: the one the page shows now, refused while it is answering)."""
        self._leave(session_id, "start a new session")
        session = self.page.store.create()
        view = _switched(self.full(session))
        view.clear_input = True
        return view

    def rename(self, session_id: str | None, title: str) -> View:
        session, note = self.page.session(session_id)
        title = " ".join(clean_text(title).split())[:TITLE_CHARS]
        if not title:
            raise UserError("Type a name for the session first.")
        with self.page.locked(session.id):
            session.title = title
            self.page.store.save(session)
        return View(session_id=session.id, sessions=self.rows(), title=views.session_label(session, title),
                    rename=title, status=f"Renamed the session to '{title}'.", warnings=[note] if note else [])

    def set_grounded(self, session_id: str | None, on: bool) -> View:
        """The grounded-answers toggle: from now on each answer's phrases are found and drawn on the image."""
        session, note = self.page.session(session_id)
        with self.page.locked(session.id):
            session.grounded = bool(on)
            self.page.store.save(session)
        status = ("Grounded answers: the things each answer mentions are found and drawn on the image."
                  if session.grounded else "Grounded answers are off.")
        return View(session_id=session.id, status=status, grounded=session.grounded, warnings=[note] if note else [])

    def delete(self, session_id: str | None, target: str = "") -> View:
        """Delete a saved session and its files (default: the one the page shows; then the page moves to the
        most recent other session, or a new one)."""
        current = session_id or ""
        target = clean_text(target).strip() or current
        if not target or not self.page.store.exists(target):
            raise UserError("There is no saved session with that id.")
        self._leave(target, "delete the session")
        name = self._title(self.page.store.get(target)) or "Untitled"
        self.page.store.delete(target)
        status = f"Deleted the session '{name}' and its files."
        if target != current and self.page.store.exists(current):
            return View(session_id=current, sessions=self.rows(), status=status)
        others = [row["id"] for row in self.page.store.list()]
        session = self.page.store.get(others[0]) if others else self.page.store.create()
        return _switched(self.full(session, status=status))

    def ask(self, session_id: str | None, what: str) -> View:
        """The question the page asks before ``what`` ('new' session, 'delete' this one)."""
        session, _ = self.page.session(session_id)
        if what == "new":
            self._leave(session.id, "start a new session")
            question = "Start a new session? This one stays in the list of sessions."
        elif what == "delete":
            self._leave(session.id, "delete the session")
            name = self._title(session) or "Untitled"
            n = len(session.images)
            question = (f"Delete the session '{name}' for good? Its conversation and its {n} "
                        f"image{'s' if n != 1 else ''} with every version are removed from this computer.")
        else:
            raise UserError(f"Nothing to confirm for '{what}'.")
        return View(session_id=session.id, confirm=(what, question))

    def confirm(self, session_id: str | None, what: str) -> View:
        if what == "new":
            view = self.new_session(session_id)
        elif what == "delete":
            view = self.delete(session_id)
        else:
            return View(confirm=("", ""))
        view.confirm = ("", "")
        return view

    # -- import, export, clear -----------------------------------------------------------------
    def import_session(self, session_id: str | None, file) -> View:
        """A new session from an exported zip; the current session is left as it was."""
        self._leave(session_id, "import a session")
        if not file:
            raise UserError("Choose an exported session (.zip) to import.")
        session = self.page.store.import_zip(file_path(file[0] if isinstance(file, list) else file))
        return _switched(self.full(session, status="Imported the session: " + _summary(session)))

    def export_when_free(self, session_id: str | None, wait_seconds: float = EXPORT_WAIT_SECONDS) -> Iterator[View]:
        """Export; while an answer runs, say that the export waits for it, then export when it has ended (the
        zip holds the whole answer)."""
        running = self.page.running
        if session_id and running.busy(session_id):
            yield View(session_id=session_id, status=EXPORT_WAITS, warnings=[EXPORT_WAITS])
            deadline = time.monotonic() + wait_seconds
            while running.busy(session_id) and time.monotonic() < deadline:
                time.sleep(0.2)
            if running.busy(session_id):
                raise UserError("The answer is still running, so nothing was exported; press Export again when "
                                "it ends, or press Stop.")
        yield self.export(session_id)

    def export(self, session_id: str | None) -> View:
        """A zip of the session (conversation, trace, every version) to download."""
        session, note = self.page.session(session_id)
        with self.page.locked(session.id):
            path = Path(self.page.store.export_zip(session))
        target = Path(self.page.files.keep(path, f"mmchat-{session.id[:8]}-{time.strftime('%Y%m%d-%H%M%S')}.zip"))
        view = View(session_id=session.id, export=str(target), status=f"Downloading {target.name}.")
        if note:
            view.warnings.append(note)
        return view

    def clear_chat(self, session_id: str | None) -> View:
        """Forget the conversation and its tool trace (images and versions stay)."""
        session, note = self.page.session(session_id)
        with self.page.locked(session.id):
            session.messages, session.trace = [], []
            self.page.store.save(session)
        view = self.page.view(session, note, image=False, images=False, chat=True, trace=True, status="Chat cleared.")
        return view

    # -- two tabs, one session ------------------------------------------------------------------
    def sync(self, session_id: str | None, shown: str | None) -> View:
        """What a tab polls: everything again when the session changed since it last showed it (another tab
        asked, edited or clicked), its busy state while an answer runs, else nothing."""
        if not session_id or not self.page.store.exists(session_id):
            return View()
        if self.page.running.busy(session_id):
            return View(busy=True)
        session = self.page.store.get(session_id)
        if shown is not None and views.revision(session) == shown:
            return View(busy=False)
        view = self.full(session)
        view.status = None  # the tab's own status line stays
        return view


def _queued(page: Page, session_id: str) -> list[dict]:
    from chat.ui.chatview import queued_message

    return [queued_message(item.text) for item in page.running.waiting(session_id)]


def _switched(view: View) -> View:
    """The page now shows another session: the previous one's export, score chart and table go, and so do the
    tool tabs' status lines (they named the previous session's images, whose ids the new one reuses)."""
    from chat.ui.render import TAB_STATUS

    view.export, view.plot, view.scores = "", "", []
    view.tabs = {tab: "" for tab in TAB_STATUS}
    return view


def _summary(session: Session) -> str:
    versions = sum(len(r.versions) for r in session.images.values())
    return (f"{views.count(len(session.images), 'image')}, {views.count(versions, 'version')}, "
            f"{views.count(len(session.messages), 'message')}.")
