"""Streamed answers: what the chat box and the tool buttons start, one at a time per session, in the order sent.

A message sent while an answer runs waits (the chat shows it as queued) and is answered next; nothing is
dropped. Each answer runs the router in a worker thread that holds the session lock (Gradio iterates a sync
generator from different threads, so the generator itself must not hold a lock across yields); its events come
back through a queue and become Views. Stop sets the answer's cancel flag; the answer ends itself with
"Stopped." in the chat. Model loading reported by the registry shows in the status line meanwhile.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Iterator

from chat.errors import UserError, describe
from chat.events import Delta, Done, Status, ToolFinished, ToolStarted
from chat.session import Session, TraceEntry, clean_text
from chat.ui import views
from chat.ui.chatview import STOPPED, queued_message, tool_message, uses_image
from chat.ui.turnstate import (VERSION_ID, TurnState, last_user, marker_hint, markers_as_sent, remember_markers,
                               repeated_image, waiting_text)
from chat.ui.context import BUSY_SECONDS, Page
from chat.ui.progress import listen, progress_line
from chat.ui.sessions import heading
from chat.ui.views import View

_END, _REFRESH = object(), object()


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
    markers: list | None = None  # queued: the markers its image had when it was sent (the answer uses those)


TAB_OF_TOOL = {"edit": "edit", "remove": "edit", "som": "edit", "score": "score", "generate": "generate",
               "sketch": "generate"}  # the tab whose button runs each tool (see chat.ui.tooltabs)


def check_length(text: str, limit: int) -> None:
    """A message over the limit is refused in one sentence (before it is queued, so the box keeps it)."""
    if len(text) > limit:
        raise UserError(f"The message is {len(text)} characters long; the limit is {limit}.")


class TurnRunner:
    def __init__(self, page: Page):
        self.page = page

    # -- the queue --------------------------------------------------------------------------
    def submit(self, session_id: str, item: Pending) -> View:
        """Queue ``item``; the page then calls :meth:`run`. While an answer runs, the chat shows it as queued,
        and it is pinned to the image version shown now (the running answer may make or pick another)."""
        running = self.page.running
        if running.busy(session_id):
            item = self._pinned(session_id, item)
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

    def _pinned(self, session_id: str, item: Pending) -> Pending:
        """``item`` about the version current now: a message (or a button's tool that works on an image) gets
        ``image`` in its arguments, which the router keeps to (a version named in the text still wins)."""
        from chat.toolbox import TOOLS

        if item.regenerate or item.files or (item.arguments or {}).get("image"):
            return item
        try:
            session = self.page.store.get(session_id)
        except UserError:
            return item
        if not session.active:
            return item
        spec = TOOLS.get(item.action) if item.action else None
        if item.action and (spec is None or not spec.image):
            return item
        record = session.record()
        item.arguments = {**(item.arguments or {}), "image": record.current_id}
        item.markers = [m.model_copy() for m in record.markers]
        return item

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
        text, arguments, again, tab = item.text, item.arguments, False, item.tab
        if item.regenerate:
            tab = tab or self._tab_of_last(session_id)  # a tab's button run again: its status line follows
            if callable(getattr(self.page.router, "regenerate", None)):
                text, arguments, again = self._last_asked(session_id), None, True
            else:  # a router without regenerate: the last message is sent again, about the same version
                text, arguments = self._take_back_last(session_id)
        yield from self.turn(session_id, text, action=item.action, arguments=arguments, files=item.files,
                             tab=tab, note=item.note, regenerate=again, markers=item.markers)

    def _tab_of_last(self, session_id: str) -> str | None:
        """The tool tab whose button runs the last message's tool (Edit, Score, Generate), None for free text."""
        session, _ = self.page.session(session_id)
        last = last_user(session)
        action = session.messages[last].action if last is not None else None
        return TAB_OF_TOOL.get(action or "")

    def _last_asked(self, session_id: str) -> str:
        session, _ = self.page.session(session_id)
        last = last_user(session)
        if last is None:
            raise UserError("There is nothing to regenerate yet; ask something first.")
        return session.messages[last].content

    def _take_back_last(self, session_id: str) -> tuple[str, dict | None]:
        """Regenerate: the last user message (its text, and the version it was about) leaves the history."""
        session, _ = self.page.session(session_id)
        with self.page.store.lock(session.id):
            last = last_user(session)
            if last is None:
                raise UserError("There is nothing to regenerate yet; ask something first.")
            text = session.messages[last].content
            image = repeated_image(session, last)  # the same version again, though a later one may be current now
            session.messages = session.messages[:last]
            self.page.store.save(session)
        return text, ({"image": image} if image else None)

    def turn(self, session_id: str | None, text: str, *, action: str | None = None, arguments: dict | None = None,
             files=(), tab: str | None = None, note: str | None = None, regenerate: bool = False,
             markers: list | None = None) -> Iterator[View]:
        """Stream one answer: the router runs in a worker thread (holding the session lock); its events
        become Views. Closing this generator (a closed tab) sets the router's cancel flag. ``regenerate``: the
        router's :meth:`~chat.router.Router.regenerate` replays the last message (``text`` is what it said).
        ``markers``: the markers the image had when a queued message was sent (see :func:`markers_as_sent`).

        Progress ticks (a diffusion step, a model loading) change only the status lines (ticks already waiting
        become one); the chat is sent again only when it changed, the buttons' busy state only at the start and
        the end: a 150-step picture does not re-render the page 150 times."""
        page = self.page
        session, gone = page.session(session_id)
        text = clean_text(text).strip()
        if not text and not action:
            raise UserError("Type a message first.")
        check_length(text, page.limits.max_message_chars)
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
        asked = len(session.messages)  # the router adds the user message there
        if regenerate:
            asked = last_user(session)
            before = sum(1 for m in session.messages[:asked] if m.role == "user")
            users = [i for i, m in enumerate(base) if m["role"] == "user"]
            base = base[:users[before]] if before < len(users) else base
            pinned = session.messages[asked].arguments.get("image") if asked is not None else None
            arguments = {"image": pinned} if pinned else None  # shown with the version it is about
        page.running.start(session.id, cancel)
        with page.running.guard:
            page.running.sinks[session.id] = events
        remove = listen(page.assistant.registry, lambda n, f, m: events.put(Status(*progress_line(n, f, m))))

        worker = threading.Thread(target=self._work, args=(session, text, action, arguments, cancel, events,
                                                           regenerate, markers),
                                  name=f"mmchat-turn-{session.id[:8]}", daemon=True)
        worker.start()
        pinned = (arguments or {}).get("image")  # Regenerate, a queued message: the version the turn is about
        about = pinned if isinstance(pinned, str) and VERSION_ID.fullmatch(pinned) else (
            session.record().current_id if session.active else None)
        shown = f"{text}\n\n_({about})_" if about and uses_image(text) else text
        state = TurnState(base=base, user={"role": "user", "content": shown}, tab=tab)
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
                view = View(session_id=session.id)
                chat_changed = False
                for event in batch:
                    if event is _END:
                        finished = True
                    elif event is _REFRESH:
                        chat_changed = True
                    else:
                        chat_changed |= not isinstance(event, Status)
                        self._apply(session, state, event, view)
                if asked is not None and len(session.messages) > asked and session.messages[asked].role == "user":
                    state.user = {"role": "user", "content": page.chat.user_content(session, session.messages[asked])}
                    asked, chat_changed = None, True  # shown as the model saw it: with its picture
                if chat_changed and not state.done:
                    view.chat = state.chat() + self.queued_bubbles(session.id)
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

    def _work(self, session: Session, text, action, arguments, cancel, events, regenerate=False,
              markers=None) -> None:
        page = self.page
        lock = page.store.lock(session.id)
        if not lock.acquire(timeout=BUSY_SECONDS):
            events.put(UserError("The assistant is still answering in this session; wait or press Stop."))
            events.put(_END)
            return
        try:
            router = page.router  # built on first use (it may load a model): after "Thinking…" is shown
            asked = len(session.messages)
            if regenerate:  # the last message again, as it ran (its tool, arguments and seed)
                asked = last_user(session)
                answer = router.regenerate(session, cancel=cancel, sink=events.put)
            else:
                answer = router.respond(session, text, action=action, arguments=arguments, cancel=cancel,
                                        sink=events.put)  # a tool's progress comes as it happens
            with markers_as_sent(session, (arguments or {}).get("image"), markers):
                for event in answer:
                    if asked is not None and len(session.messages) > asked and session.messages[asked].role == "user":
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

    def _final(self, session: Session, state: "TurnState", view: View, changed_images: bool, hint, note) -> View:
        page = self.page
        view.chat = page.chat.messages(session) + state.leftover() + self.queued_bubbles(session.id)
        view.trace = views.trace_rows(session)
        view.image = state.image if state.image is not None else page.display(session)
        page.galleries(session, view, compare=changed_images or state.new_versions)
        view.plot = view.plot if view.plot is not None else state.plot
        view.scores = view.scores if view.scores is not None else state.scores
        # the turn's outcome, not the last progress line ("edit: done") that came in the same batch
        outcome = state.outcome()
        view.status = outcome or waiting_text(session) or views.ready_text(session)
        if not outcome and (note or hint):
            view.status += " " + (note or hint)
        if state.tab:
            last_line = (state.answer.strip().splitlines() or ["Done."])[-1]
            view.tabs[state.tab] = outcome or waiting_text(session) or "✓ " + last_line
            if note and not outcome:
                view.tabs[state.tab] += "\n\n" + note  # its own line under the result
        view.busy = bool(page.running.waiting(session.id))
        view.revision = views.revision(session)
        return heading(page, session, view)  # a first message names the session: the header and list say so

    def _apply(self, session: Session, state: "TurnState", item, view: View) -> None:
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
