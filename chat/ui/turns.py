"""Streamed answers: the chat box, Regenerate, and the tool buttons (score, Set-of-Mark, edit, remove, generate).

The router runs in a worker thread that holds the session lock for the whole answer (Gradio iterates a
sync generator from different threads, so the generator itself must not hold a lock across yields); its
events come back through a queue and become Views. Stop sets the router's cancel flag.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import weakref
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from chat.errors import UserError, describe
from chat.events import Delta, Done, Status, ToolFinished, ToolStarted
from chat.session import Session, TraceEntry, clean_text
from chat.toolbox import TOOLS
from chat.ui import views
from chat.ui.views import View
from tools.diffusion import parse_seed
from tools.diffusion import parse_size as shared_size
from tools.scoring import parse_labels as shared_labels

SCORE_MODELS = ("clip", "siglip")
VERSION_ID = re.compile(r"img\d+\.v\d+")
BUSY_SECONDS = 5.0
_END = object()


def parse_labels(text: str) -> list[str]:
    """Labels from the score box (:func:`tools.scoring.parse_labels`, shared with ``/score``)."""
    labels = shared_labels(clean_text(text))
    if not labels:
        raise UserError("Type some labels to score, e.g. 'cat | dog'.")
    return labels


def parse_size(text: str | None) -> tuple[int, int]:
    """'640x448' -> (640, 448) (:func:`tools.diffusion.parse_size`); empty: 512x512."""
    return shared_size(text or "512x512")


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


def sketch_drawing(value) -> Image.Image | None:
    """The drawing on the sketch pad as an RGB image, or None when nothing is drawn.

    ``value`` is what Gradio's Sketchpad passes (a dict with 'composite', 'background' and 'layers'), or
    an image or a path. A canvas of a single colour is no drawing."""
    if isinstance(value, dict):
        value = value.get("composite") if value.get("composite") is not None else value.get("background")
    if value is None or value == "":
        return None
    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, np.ndarray):
        image = Image.fromarray(value.astype(np.uint8))
    else:
        from chat.imageio import load_image_file

        image = load_image_file(value if isinstance(value, (str, os.PathLike)) else getattr(value, "path", ""))
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:  # transparent canvas: lines on white
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB")
    lo, hi = image.convert("L").getextrema()
    return image if hi - lo >= 16 else None


class ProgressRelay:
    """What ``registry.progress`` becomes once an app is built on the registry: it calls the callback it
    replaced, then every hooked :class:`Answers` (held weakly). Installed once per registry, so building
    another app on the same assistant adds a listener instead of wrapping the callback again."""

    def __init__(self, previous: Callable[[str, float, str], None] | None):
        self.previous = previous
        self._listeners: weakref.WeakSet = weakref.WeakSet()

    @classmethod
    def install(cls, registry, listener: "Answers") -> "ProgressRelay":
        relay = registry.progress
        if not isinstance(relay, cls):
            relay = registry.progress = cls(relay)
        relay._listeners.add(listener)
        return relay

    def __call__(self, name: str, fraction: float, message: str) -> None:
        if self.previous is not None:
            self.previous(name, fraction, message)
        for listener in list(self._listeners):
            listener.model_progress(name, fraction, message)


class Answers:
    """Mixin of :class:`chat.ui.handlers.Handlers` (which provides session(), locked(), store, router...)."""

    def model_progress(self, name: str, fraction: float, message: str) -> None:
        """A model loading: its message (with a bar for a fraction between 0 and 1) in the status line of
        every answer now running."""
        try:
            bar = float(fraction) if 0 < float(fraction) < 1 else None  # NaN fails too
        except (TypeError, ValueError):
            bar = None
        message = str(message or f"loading {name}")
        status = Status(message[:1].upper() + message[1:], bar)
        for sink in list(self._sinks):
            sink.put(status)

    def stop(self, session_id: str | None) -> View:
        with self._cancels_guard:
            cancel = self._cancels.get(session_id or "")
        if cancel is None:
            return View(session_id=session_id, status="Nothing to stop.")
        cancel.set()
        return View(session_id=session_id, status="Stopping…")  # the turn itself ends with "Stopped."

    def chat(self, session_id: str | None, message: dict | str | None) -> Iterator[View]:
        """The chat box: images dropped in are added first, then the text (if any) is answered."""
        if isinstance(message, dict):
            text, files = clean_text(message.get("text")), message.get("files") or []
        else:
            text, files = clean_text(message), []
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
            image = repeated_image(session, last)  # the same version again, though a later one may be current now
            session.messages = session.messages[:last]
            self.store.save(session)
        yield from self.turn(session.id, text, arguments={"image": image} if image else None)

    def score(self, session_id: str | None, labels: str, model: str = "clip") -> Iterator[View]:
        if model not in SCORE_MODELS:
            raise UserError(f"Unknown scoring model '{model}'; choose clip or siglip.")
        parsed = parse_labels(labels)
        if len(parsed) > self.limits.max_labels:
            raise UserError(f"{len(parsed)} labels given; at most {self.limits.max_labels} can be scored at once.")
        yield from self.turn(session_id, TOOLS["score"].command({"labels": parsed, "model": model}), action="score",
                             arguments={"labels": parsed, "model": model})

    def som(self, session_id: str | None) -> Iterator[View]:
        yield from self.turn(session_id, "/som", action="som", arguments={})

    def edit(self, session_id: str | None, instruction: str, action: str = "edit") -> Iterator[View]:
        instruction = " ".join(clean_text(instruction).split())
        if action == "edit" and not instruction:
            raise UserError("Type an edit instruction, e.g. 'make it snowy'.")
        key = "instruction" if action == "edit" else "target"  # remove: what is removed, e.g. "the dog"
        arguments = {key: instruction} if instruction else {}
        yield from self.turn(session_id, f"/{action} {instruction}".strip(), action=action, arguments=arguments)

    def remove(self, session_id: str | None, instruction: str = "") -> Iterator[View]:
        yield from self.edit(session_id, instruction, action="remove")

    def generate(self, session_id: str | None, prompt: str, sketch=None, seed: float | None = None,
                 size: str = "512x512") -> Iterator[View]:
        """Generate: a new image from the prompt; with a drawing on the sketch pad the drawing is kept as
        an image of its own and conditions the picture (ControlNet scribble). The chat line is the
        equivalent slash command, so Regenerate repeats it: the same picture when a seed is given, another take
        (a new random seed) when the seed box is empty; the trace shows every seed used."""
        prompt = " ".join(clean_text(prompt).split())
        if not prompt:
            raise UserError("Describe the picture to make, e.g. 'a cat on a sofa'.")
        options = ""
        arguments: dict = {"prompt": prompt}
        if (number := parse_seed(seed)) is not None:
            arguments["seed"] = number
            options += f" --seed {number}"
        drawing = sketch_drawing(sketch)
        if drawing is None:
            width, height = parse_size(size)
            arguments.update(width=width, height=height)
            yield from self.turn(session_id, f"/generate {prompt} --size {width}x{height}{options}",
                                 action="generate", arguments=arguments)
            return
        session, note = self.session(session_id)
        with self.locked(session.id):
            record = session.add_image(drawing, name="sketch", limit=self.limits.max_images_per_session)
            self.store.save(session)
        arguments["image"] = record.id
        yield from self.turn(session.id, f"/sketch {record.id} {prompt}{options}", action="sketch",
                             arguments=arguments)

    def ask(self, session_id: str | None, question: str) -> Iterator[View]:
        yield from self.turn(session_id, question)

    def turn(self, session_id: str | None, text: str, *, action: str | None = None,
             arguments: dict | None = None, files=()) -> Iterator[View]:
        """Stream one answer: the router runs in a worker thread (holding the session lock); its events
        become Views. Closing this generator (Stop, a closed tab) sets the router's cancel flag."""
        session, note = self.session(session_id)
        text = clean_text(text).strip()
        if not text and not action:
            raise UserError("Type a message first.")
        if len(text) > self.limits.max_message_chars:
            raise UserError(f"The message is {len(text)} characters long; the limit is {self.limits.max_message_chars}.")
        changed_images = False
        if files:
            with self.locked(session.id):
                changed_images = bool(self._add_files(session, files)[0])
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
                for event in router.respond(session, text, action=action, arguments=arguments, cancel=cancel,
                                            sink=events.put):  # a tool's progress comes as it happens
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
        pinned = (arguments or {}).get("image")  # Regenerate: the version the turn is about again
        about = pinned if isinstance(pinned, str) and VERSION_ID.fullmatch(pinned) else (
            session.record().current_id if session.active else None)
        shown = f"{text}\n\n_({about})_" if about else text
        state = _TurnState(base=base, user=shown)
        try:
            first = View(session_id=session.id, chat=state.chat(), status="Thinking…", clear_input=True)
            if changed_images:
                first.image = self._display(session)
                self._galleries(session, first)
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
                    self._galleries(session, view, compare=changed_images or state.new_versions)
                    view.plot = view.plot if view.plot is not None else state.plot
                    view.scores = view.scores if view.scores is not None else state.scores
                    # the turn's outcome, not the last progress line ("edit: done") that came in the same batch
                    view.status = state.outcome() or views.ready_text(session)
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
            if item.entry.error:
                state.failed = item.entry.error
            if item.new_versions:
                state.new_versions = True
                view.image = self._display(session)
                self._galleries(session, view)
            if item.overlay is not None:
                view.image = self._display(session, item.overlay)
            if item.plot is not None:
                view.plot = state.plot = self.files.put(item.plot)
            if "score" in item.entry.tool and not item.entry.error:
                view.scores = state.scores = views.score_rows(item.data.get("result"), item.entry.summary)
        elif isinstance(item, Done):
            state.done = True
            state.final_status = "Stopped." if item.cancelled else None
            state.failed = item.error or state.failed


class _TurnState:
    """The chat as it streams: history before the turn, the user's text, tool bubbles, the answer so far."""

    def __init__(self, base: list[dict], user: str):
        self.base, self.user = base, user
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
