"""Streamed answers: what the chat box and the tool buttons start, one at a time per session, in the order sent.

A message sent while an answer runs waits (the chat shows it as queued) and is answered next; nothing is
dropped. Each answer runs the router in a worker thread that holds the session lock (Gradio iterates a sync
generator from different threads, so the generator itself must not hold a lock across yields); its events come
back through a queue and become Views. Stop sets the answer's cancel flag; the answer ends itself with
"Stopped." in the chat. Model loading reported by the registry shows in the status line meanwhile.
"""

from __future__ import annotations

import queue
import re
import threading
from dataclasses import dataclass, field
from typing import Iterator

from chat.errors import UserError, describe
from chat.events import Delta, Done, Status, ToolFinished, ToolStarted
from chat.session import Session, TraceEntry, clean_text
from chat.ui import views
from chat.ui.chatview import STOPPED, queued_message, tool_message, uses_image
from chat.ui.context import BUSY_SECONDS, Page
from chat.ui.progress import listen, progress_line
from chat.ui.views import View

VERSION_ID = re.compile(r"img\d+\.v\d+")
_END, _REFRESH = object(), object()
MARKER_WORDS = re.compile(r"\b(?:red|green|blue|yellow|purple)?\s*(?:circle|ellipse|arrow|box|cross|marker|marked|"
                          r"mark)s?\b|丸|円|矢印|印|マーカー|囲", re.IGNORECASE)


@dataclass
class Pending:
    """A message (or a button's command) waiting to be answered."""

    text: str  # what the chat shows: the message, or the command a button runs
    action: str | None = None
    arguments: dict | None = None
    files: list = field(default_factory=list)
    regenerate: bool = False
    tab: str | None = None  # the tab whose status line follows this answer (edit, score, generate)
    note: str | None = None  # said in that tab (and the status line) when the answer ends


class TurnRunner:
    def __init__(self, page: Page):
        self.page = page

    # -- the queue --------------------------------------------------------------------------
    def submit(self, session_id: str, item: Pending) -> View:
        """Queue ``item``; the page then calls :meth:`run`. While an answer runs, the chat shows it as queued."""
        running = self.page.running
        with running.guard:
            running.queues.setdefault(session_id, []).append(item)
            sink = running.sinks.get(session_id)
            busy = session_id in running.runners
        view = View(session_id=session_id, clear_input=True)
        if busy:
            if sink is not None:
                sink.put(_REFRESH)  # the running answer shows the queued message at once
            view.status = "Queued: it is answered when the current answer ends."
        return view

    def run(self, session_id: str) -> Iterator[View]:
        """Answer what waits in this session's queue, oldest first (another call while one runs does nothing)."""
        running = self.page.running
        with running.guard:
            if session_id in running.runners:
                yield View(session_id=session_id)
                return
            running.runners.add(session_id)
        closed = False
        try:
            while True:
                with running.guard:
                    waiting = running.queues.get(session_id) or []
                    if not waiting:
                        running.queues.pop(session_id, None)
                        return
                    item = waiting.pop(0)
                try:
                    yield from self._answer(session_id, item)
                except UserError as exc:  # refused before it started: said, and the next one goes on
                    if not running.waiting(session_id):
                        raise
                    sentence = describe(exc)
                    view = View(session_id=session_id, status=f"⚠ {sentence}", warnings=[sentence],
                                busy=bool(running.waiting(session_id)))
                    if item.tab:
                        view.tabs[item.tab] = f"⚠ {sentence}"
                    yield view
        except GeneratorExit:  # the page went away: what it queued goes with it
            closed = True
            raise
        finally:
            with running.guard:
                running.runners.discard(session_id)
                if closed:
                    running.queues.pop(session_id, None)

    def send(self, session_id: str | None, item: Pending) -> Iterator[View]:
        """Queue and answer (the API's one call; the page does the two steps)."""
        session, note = self.page.session(session_id)
        first = self.submit(session.id, item)
        if note:
            first.warnings.append(note)
        if self.page.running.busy(session.id):
            yield first
        yield from self.run(session.id)

    def stop(self, session_id: str | None) -> View:
        cancel = self.page.running.cancel_of(session_id)
        if cancel is None:
            return View(session_id=session_id, status="Nothing to stop.")
        cancel.set()
        return View(session_id=session_id, status="Stopping…")  # the turn itself ends with "Stopped."

    def queued_bubbles(self, session_id: str) -> list[dict]:
        return [queued_message(item.text) for item in self.page.running.waiting(session_id)]

    # -- one answer -------------------------------------------------------------------------
    def _answer(self, session_id: str, item: Pending) -> Iterator[View]:
        text, arguments = item.text, item.arguments
        if item.regenerate:
            text, arguments = self._take_back_last(session_id)
        yield from self.turn(session_id, text, action=item.action, arguments=arguments, files=item.files,
                             tab=item.tab, note=item.note)

    def _take_back_last(self, session_id: str) -> tuple[str, dict | None]:
        """Regenerate: the last user message (its text, and the version it was about) leaves the history."""
        session, _ = self.page.session(session_id)
        with self.page.store.lock(session.id):
            last = max((i for i, m in enumerate(session.messages) if m.role == "user"), default=None)
            if last is None:
                raise UserError("There is nothing to regenerate yet; ask something first.")
            text = session.messages[last].content
            image = repeated_image(session, last)  # the same version again, though a later one may be current now
            session.messages = session.messages[:last]
            self.page.store.save(session)
        return text, ({"image": image} if image else None)

    def turn(self, session_id: str | None, text: str, *, action: str | None = None, arguments: dict | None = None,
             files=(), tab: str | None = None, note: str | None = None) -> Iterator[View]:
        """Stream one answer: the router runs in a worker thread (holding the session lock); its events
        become Views. Closing this generator (a closed tab) sets the router's cancel flag."""
        page = self.page
        session, gone = page.session(session_id)
        text = clean_text(text).strip()
        if not text and not action:
            raise UserError("Type a message first.")
        if len(text) > page.limits.max_message_chars:
            raise UserError(f"The message is {len(text)} characters long; the limit is {page.limits.max_message_chars}.")
        changed_images = False
        if files:
            lock = page.store.lock(session.id)
            with lock:
                from chat.ui.images import add_files

                changed_images = bool(add_files(page, session, files)[0])
                page.store.save(session)
        hint = marker_hint(session, text, action)
        cancel, events = threading.Event(), queue.Queue()
        base = page.chat.messages(session)
        page.running.start(session.id, cancel)
        with page.running.guard:
            page.running.sinks[session.id] = events
        remove = listen(page.assistant.registry, lambda n, f, m: events.put(Status(*progress_line(n, f, m))))

        worker = threading.Thread(target=self._work, args=(session, text, action, arguments, cancel, events),
                                  name=f"mmchat-turn-{session.id[:8]}", daemon=True)
        worker.start()
        pinned = (arguments or {}).get("image")  # Regenerate: the version the turn is about again
        about = pinned if isinstance(pinned, str) and VERSION_ID.fullmatch(pinned) else (
            session.record().current_id if session.active else None)
        shown = f"{text}\n\n_({about})_" if about and uses_image(text) else text
        state = _TurnState(base=base, user={"role": "user", "content": shown},
                           tab=tab)
        asked = len(session.messages)  # the router adds the user message there
        try:
            first = View(session_id=session.id, chat=state.chat() + self.queued_bubbles(session.id),
                         status="Thinking…", clear_input=True, busy=True)
            if tab:
                first.tabs[tab] = "⏳ Working…"
            if changed_images:
                first.image = page.display(session)
                page.galleries(session, first)
            first.warnings += [w for w in (gone, hint) if w]
            yield first
            finished = False
            while not finished:
                batch = [events.get()]
                while True:  # coalesce what is already waiting into one update
                    try:
                        batch.append(events.get_nowait())
                    except queue.Empty:
                        break
                view = View(session_id=session.id, busy=True)
                for event in batch:
                    if event is _END:
                        finished = True
                    elif event is not _REFRESH:
                        self._apply(session, state, event, view)
                if asked is not None and len(session.messages) > asked and session.messages[asked].role == "user":
                    state.user = {"role": "user", "content": page.chat.user_content(session, session.messages[asked])}
                    asked = None  # shown as the model saw it: with its picture
                view.chat = state.chat() + self.queued_bubbles(session.id) if not state.done else None
                if view.image is not None:
                    state.image = view.image
                if finished:  # the last update is complete, so a client's predict() sees everything
                    view = self._final(session, state, view, changed_images, hint, note)
                yield view
        finally:
            cancel.set()
            page.running.end(session.id, cancel)
            with page.running.guard:
                if page.running.sinks.get(session.id) is events:
                    del page.running.sinks[session.id]
            remove()

    def _work(self, session: Session, text, action, arguments, cancel, events) -> None:
        page = self.page
        lock = page.store.lock(session.id)
        if not lock.acquire(timeout=BUSY_SECONDS):
            events.put(UserError("The assistant is still answering in this session; wait or press Stop."))
            events.put(_END)
            return
        try:
            router = page.router  # built on first use (it may load a model): after "Thinking…" is shown
            asked = len(session.messages)
            for event in router.respond(session, text, action=action, arguments=arguments, cancel=cancel,
                                        sink=events.put):  # a tool's progress comes as it happens
                if asked is not None and len(session.messages) > asked:
                    remember_markers(session, session.messages[asked])  # what the model saw, for the chat
                    asked = None
                if isinstance(event, ToolFinished) and event.new_versions:
                    page.store.save(session)
                if isinstance(event, Done) and event.cancelled:
                    event.message.content = f"{event.message.content}\n\n{STOPPED}".strip()
                events.put(event)
        except BaseException as exc:  # noqa: BLE001 - shown as one sentence, the session stays intact
            events.put(exc)
        finally:
            try:
                page.store.save(session)
            finally:
                lock.release()
                events.put(_END)

    def _final(self, session: Session, state: "_TurnState", view: View, changed_images: bool, hint, note) -> View:
        page = self.page
        view.chat = page.chat.messages(session) + state.leftover() + self.queued_bubbles(session.id)
        view.trace = views.trace_rows(session)
        view.image = state.image if state.image is not None else page.display(session)
        page.galleries(session, view, compare=changed_images or state.new_versions)
        view.plot = view.plot if view.plot is not None else state.plot
        view.scores = view.scores if view.scores is not None else state.scores
        # the turn's outcome, not the last progress line ("edit: done") that came in the same batch
        outcome = state.outcome()
        view.status = outcome or views.ready_text(session)
        if not outcome and (note or hint):
            view.status += " " + (note or hint)
        if state.tab:
            view.tabs[state.tab] = outcome or ("✓ " + (state.answer.strip().splitlines() or ["Done."])[-1])
            if note and not outcome:
                view.tabs[state.tab] += "\n\n" + note  # its own line under the result
        view.busy = bool(page.running.waiting(session.id))
        view.revision = views.revision(session)
        return view

    def _apply(self, session: Session, state: "_TurnState", item, view: View) -> None:
        page = self.page
        if isinstance(item, BaseException):
            state.error = describe(item)
            view.status = f"⚠ {state.error}"
            view.warnings.append(state.error)
        elif isinstance(item, Delta):
            state.answer += item.text
        elif isinstance(item, Status):
            view.status = views.status_text(item.message, item.fraction)
            if state.tab:
                view.tabs[state.tab] = "⏳ " + view.status
        elif isinstance(item, ToolStarted):
            state.tools.append(tool_message(TraceEntry(tool=item.tool, arguments=item.arguments), pending=True))
            view.status = f"Running {item.tool}…"
            if state.tab:
                view.tabs[state.tab] = f"⏳ Running {item.tool}…"
        elif isinstance(item, ToolFinished):
            state.finish_tool(item.entry)
            view.trace = views.trace_rows(session)
            view.status = f"{item.entry.tool}: " + (f"Error: {item.entry.error}" if item.entry.error else "done")
            if item.entry.error:
                state.failed = item.entry.error
            if item.new_versions:
                state.new_versions = True
                view.image = page.display(session)
                page.galleries(session, view)
            if item.overlay is not None:
                view.image = page.display(session, item.overlay)
            if item.plot is not None:
                view.plot = state.plot = page.files.put(item.plot)
            result = (item.data or {}).get("result")  # the tool's structured result, never its text re-read
            if result is not None and getattr(result, "scores", None) is not None and not item.entry.error:
                view.scores = state.scores = views.score_rows(result)
        elif isinstance(item, Done):
            state.done = True
            state.final_status = STOPPED if item.cancelled else None
            state.failed = item.error or state.failed


def repeated_image(session: Session, index: int) -> str | None:
    """The image version the user message at ``index`` was about, for Regenerate: the version its tool worked
    on (in the trace of the answer after it), else the first image the message showed; None for none."""
    answer = session.messages[index + 1] if index + 1 < len(session.messages) else None
    for i in answer.trace if answer is not None and answer.role == "assistant" else []:
        ref = session.trace[i].arguments.get("image") if 0 <= i < len(session.trace) else None
        if isinstance(ref, str) and VERSION_ID.fullmatch(ref):
            return ref
    images = session.messages[index].images
    return images[0] if images else None


def remember_markers(session: Session, message) -> None:
    """Keep with a user message the markers its image had when it was sent (the chat shows them)."""
    if message.role != "user" or not message.images or not hasattr(message, "markers"):
        return
    try:
        message.markers = [m.model_copy() for m in session.record(message.images[0]).markers]
    except UserError:
        pass


def marker_hint(session: Session, text: str, action: str | None) -> str | None:
    """A question about a marker ('the red circle') on an image without any: a hint to place one."""
    if action is not None or text.startswith("/") or not session.active or not MARKER_WORDS.search(text):
        return None
    record = session.record()
    if record.markers:
        return None
    return f"Note: nothing is marked on {record.current_id}; click the image to place a marker, then ask again."


class _TurnState:
    """The chat as it streams: history before the turn, the user's message, tool bubbles, the answer so far."""

    def __init__(self, base: list[dict], user: dict, tab: str | None = None):
        self.base, self.user, self.tab = base, user, tab
        self.tools: list[dict] = []
        self.answer = ""
        self.done = False
        self.error: str | None = None  # the turn itself failed (an exception): shown after the chat
        self.failed: str | None = None  # a tool failed, or the reply is an 'Error: ...': the status says so
        self.final_status: str | None = None
        self.image = self.plot = self.scores = None  # the latest of each shown during the turn
        self.new_versions = False  # a tool made a version: the compare view and download follow it

    def outcome(self) -> str | None:
        """The status line after the turn, when it is not 'Ready': what went wrong (one sentence), or 'Stopped.'."""
        if self.error:
            return f"⚠ {self.error}"
        if self.final_status:
            return self.final_status
        return f"⚠ {self.failed}" if self.failed else None

    def finish_tool(self, entry: TraceEntry) -> None:
        done = tool_message(entry)
        for i, message in enumerate(self.tools):
            if message["metadata"]["status"] == "pending" and message["metadata"]["title"] == done["metadata"]["title"]:
                self.tools[i] = done
                return
        self.tools.append(done)

    def chat(self) -> list[dict]:
        out = list(self.base) + [self.user] + self.tools
        if self.answer:
            out.append({"role": "assistant", "content": self.answer})
        return out

    def leftover(self) -> list[dict]:
        """What the session does not hold after the turn: an error the router raised."""
        return [{"role": "assistant", "content": f"Error: {self.error}"}] if self.error else []
