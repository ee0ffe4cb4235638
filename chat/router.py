"""The router: one user message in, a stream of events out (text deltas, tool calls, images, Done).

    >>> for event in assistant.router.respond(session, "is it a cat or a dog?"):
    ...     print(event)
    >>> list(assistant.router.regenerate(session))     # the last message again, as it ran

Routing, in order:
1. A button (``action=`` + ``arguments=``) or a slash command (``/score cat | dog``, read by the tool's entry in
   :data:`chat.toolbox.TOOLS`) runs that tool with those arguments; the tool's own text is the reply (no model
   call: fast and deterministic).
2. Free text: the chat model picks a tool or "answer". The local model makes a *constrained choice*:
   ``choice_logprobs`` scores each tool name and "answer" after a prompt listing them; the best tool wins only
   if it beats "answer" by ``choice_margin`` and its arguments can be filled from the message (the entry's
   ``fill``), else the model answers directly. A chat model with native tool calling (e.g. a remote
   OpenAI-compatible server) gets the tools through ``bind_tools``.
3. After a tool that informs (caption, vqa, score, classify) the model answers with the tool's result as
   context; a tool whose entry is ``final`` (edit, remove, generate, sketch, som, mark, find) replies with its
   confirmation.

What the model is shown is :class:`chat.model_view.PromptBuilder`'s. The user message keeps what ran
(``Message.action`` and ``arguments``, the image pinned to its version) so :meth:`Router.regenerate` replays it.
Every decision and tool call goes into the session trace; a failure is a result: :class:`ToolFinished` carries
the tool's output and error, :class:`Done` the turn's error, and the session stays intact. A tool's progress
goes straight to the caller's ``sink`` (else it follows the tool's end in the stream).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable, Iterator

from langchain_core.language_models import BaseChatModel

from chat.errors import UserError, describe
from chat.events import Delta, Done, Event, Status, ToolFinished, ToolStarted
from chat.lc_model import LocalMultimodalChatModel
from chat.lc_tools import make_tools
from chat.model_view import PromptBuilder
from chat.session import Message, Session, TraceEntry, clean_text
from chat.toolbox import TOOLS, Cancelled, ToolContext, ToolOutput, command, failed, help_text
from chat.toolbox.free_text import numbered_answer, region_question

CHOICE_PROMPT = "\n\nWhich tool should handle this request? Reply with the tool name only."  # after the user's text
EXPLICIT = ("button", "slash command", "numbered answer")  # decisions a person made: the tool's text is the reply; Regenerate replays
_IMAGE_REF = re.compile(r"\bimg\d+(?:\.v\d+)?\b")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content or [])


class Router:
    choice_margin = 1.0  # a tool must beat "answer" by this mean log-probability to be chosen

    def __init__(self, assistant, chat_model: BaseChatModel | None = None):
        self.assistant = assistant
        self.chat_model = chat_model if chat_model is not None else assistant.chat_model
        self.prompts = PromptBuilder(self.chat_model, self.local)

    @property
    def local(self) -> bool:
        return isinstance(self.chat_model, LocalMultimodalChatModel)

    @property
    def native_tools(self) -> bool:
        return (not self.local and type(self.chat_model).bind_tools is not BaseChatModel.bind_tools
                and not getattr(self.chat_model, "tools_refused", False))  # a server that refused tools once

    def view(self, session: Session, version_id: str):
        """The image as the model sees it: :meth:`chat.session.Session.view` (the page should read the session)."""
        return session.view(version_id)

    # -- entry points ------------------------------------------------------------------------
    def respond(self, session: Session, text: str, *, action: str | None = None, arguments: dict | None = None,
                cancel: threading.Event | None = None, sink: Callable[[Event], None] | None = None,
                decision: str | None = None) -> Iterator[Event]:
        """Answer one message; yields Status/ToolStarted/ToolFinished/Delta events and exactly one Done.

        ``action`` runs that tool with ``arguments`` (``decision`` says why in the trace; default: a button).
        ``arguments`` without an ``action`` (a message sent again) may hold ``image``, the version the message was
        about the first time: the message is about it again, and its tool works on it when the text names no
        image or names that image without a version. ``sink`` receives a running tool's progress as it happens."""
        cancel = cancel or threading.Event()
        turn = _Turn(len(session.trace), sink)
        text = clean_text(text).strip()
        try:
            refs = [str((arguments or {}).get("image") or "")] + _IMAGE_REF.findall(text)
            refs = [r for r in dict.fromkeys(refs) if r and _exists(session, r)]
            about = list(dict.fromkeys(session.version(r).id for r in refs))[:3] or (
                [session.version().id] if session.active else [])
            message = session.add_message("user", text or f"/{action}", images=about)
            message.arguments = {"image": about[0]} if about else {}
            yield from self._route(session, message, text, action, arguments, decision, about, turn, cancel)
        except GeneratorExit:
            cancel.set()
            raise
        except Exception as exc:  # noqa: BLE001 - nothing a user sends may crash the server
            error = describe(exc)
            session.add_trace(TraceEntry(tool="router", error=error, decision="error"))
            yield Delta(turn.say(f"Error: {error}", error=error))
        reply = session.add_message("assistant", turn.text.strip(), images=turn.versions)
        reply.trace = list(range(turn.first_trace, len(session.trace)))
        yield Done(message=reply, cancelled=cancel.is_set(), error=turn.error)

    def regenerate(self, session: Session, *, cancel: threading.Event | None = None,
                   sink: Callable[[Event], None] | None = None) -> Iterator[Event]:
        """The last user message again, its answer replaced: the tool and arguments it ran (a button or a slash
        command), about the same image version (an edit is made again from the version the first one started
        from), or its text routed again. A picture made without a seed gets a new one: another take."""
        last = max((i for i, m in enumerate(session.messages) if m.role == "user"), default=None)
        if last is None:
            raise UserError("There is nothing to regenerate yet; ask something first.")
        message = session.messages[last]
        answer = session.messages[last + 1] if last + 1 < len(session.messages) else None
        runs = [session.trace[i] for i in (answer.trace if answer else []) if 0 <= i < len(session.trace)]
        decision = next((r.decision for r in runs if r.tool == message.action), None)
        arguments = dict(message.arguments) or ({"image": message.images[0]} if message.images else {})
        session.messages = session.messages[:last]
        yield from self.respond(session, message.content, action=message.action, arguments=arguments,
                                cancel=cancel, sink=sink, decision=decision)

    def _route(self, session, message: Message, text, action, arguments, decision, about, turn, cancel):
        image = about[0] if about else None
        pending, session.pending = session.pending, None  # a question is answered by the next message or dropped
        limit = self.assistant.config.limits.max_message_chars
        if len(text) > limit:
            raise UserError(f"The message is {len(text)} characters long; the limit is {limit}.")
        tool, args = None, {}
        if action is not None:
            tool, args, decision = action, dict(arguments or {}), decision or "button"
        elif not text:
            yield Delta(turn.say("Type a question, or a command such as /caption; /help lists them."))
            return
        elif pending and pending.get("tool") in TOOLS and (choice := numbered_answer(text)) is not None:
            tool, args, decision = pending["tool"], dict(pending.get("arguments") or {}) | {"choice": choice}, \
                "numbered answer"
        elif text.startswith("/"):
            word, _, rest = text[1:].partition(" ")
            spec = command(word)
            if spec is None:
                known = "" if word.lower() == "help" else f"Unknown command /{word}. "
                yield Delta(turn.say(known + help_text()))
                return
            tool, args, decision = spec.name, spec.parse(rest), "slash command"
        if tool is None:  # free text
            thing = region_question(text) if image and not session.record(image).markers else None
            if thing and not (yield from self._point_at(session, thing, image, turn, cancel)):
                return  # not found, or the person is asked which one
            if self.native_tools:
                chosen = yield from self._native(session, text, about, turn, cancel)
                if chosen is None:
                    return
                tool, args, decision = chosen
            else:
                tool, args, decision = self._choose(session, text, image)
                if tool is None:
                    yield from self._answer(session, text, about, turn, cancel, decision=decision)
                    return
        spec = TOOLS.get(tool)
        if action is None and spec is not None and spec.image and (arguments or {}).get("image"):
            args["image"] = _pinned(session, args.get("image"), str(arguments["image"]))
        out = yield from self._call(session, tool, args, decision, turn, cancel)
        if decision in EXPLICIT:  # what ran, the image pinned to the version it worked on: Regenerate replays it
            message.action = tool
            pinned = out.arguments.get("image") or (image if spec is not None and spec.image else None)
            message.arguments = args | ({"image": pinned} if pinned else {})
        if out.ok and spec is not None and not spec.final and decision not in EXPLICIT:
            yield from self._answer(session, text, about, turn, cancel, context=out, decision=f"after {tool}")
        elif not cancel.is_set():
            yield Delta(turn.say(out.text, error=out.error))

    def _point_at(self, session, thing: str, image: str, turn, cancel) -> Iterator[Event]:
        """"What colour is the cup?" with no marker: the cup is found and marked, so the model sees it circled;
        returns whether the question can go on (False: not found, or the person is asked which one)."""
        out = yield from self._call(session, "find", {"phrase": thing, "image": image,
                                                      "margin": self.assistant.config.tools.find_margin},
                                    f"the question names {thing}", turn, cancel)
        if out.ok and session.record(image).markers:
            return True
        if cancel.is_set():
            return False
        if out.ok and out.data.get("asked"):
            yield Delta(turn.say(out.text.rsplit("\n", 1)[-1]))  # which one? (the places are numbered)
        elif out.ok:
            yield Delta(turn.say(f"I could not find '{thing}' in the image; click on it, or describe it "
                                 "differently."))
        else:
            yield Delta(turn.say(out.text, error=out.error))
        return False

    # -- choosing a tool ---------------------------------------------------------------------
    def _choose(self, session, text, image):
        """(tool, arguments, decision) for free text by constrained choice; tool None means answer directly."""
        if not self.local:
            return None, {}, "answer directly (the model has no tool calling)"
        names = list(TOOLS)
        try:
            messages = self.prompts.messages(session, text, [image] if image else [], suffix=CHOICE_PROMPT)
            scores = self.chat_model.choice_logprobs(messages, names + ["answer"])
        except Exception as exc:  # noqa: BLE001
            return None, {}, f"fallback: answer directly (choice failed: {describe(exc)})"
        ranked = dict(zip(names, scores))
        best = max(ranked, key=ranked.get)
        margin = ranked[best] - scores[-1]
        if margin <= 0:
            return None, {}, "model choice: answer directly"
        if margin < self.choice_margin:
            return None, {}, f"fallback: answer directly ({best} margin {margin:.2f} < {self.choice_margin})"
        args = TOOLS[best].from_text(text, session, image)
        if args is None:
            return None, {}, f"fallback: answer directly ({best}: its arguments are not in the message)"
        return best, args, f"model choice (logprob margin {margin:.2f})"

    def _native(self, session, text, about, turn, cancel) -> Iterator[Event]:
        """Native tool calling: the model's streamed reply is the answer, unless it calls a tool; then
        returns (tool, arguments, decision)."""
        start = time.perf_counter()
        bound = self.chat_model.bind_tools(make_tools(self.assistant, session, chat_model=self.chat_model))
        message, answer, error = yield from self._stream(bound, self.prompts.messages(session, text, about), turn,
                                                         cancel, quiet=True)
        if error is not None and not answer and getattr(self.chat_model, "tools_refused", False):
            yield Status(error)  # the server refuses tools: said once, and this message is answered without them
            yield from self._answer(session, text, about, turn, cancel, decision="answer directly (the server refuses tools)")
            return None
        if error is not None:
            yield Delta(turn.say(f"Error: {error}", error=error))
        asked = list(getattr(message, "tool_calls", None) or []) + list(getattr(message, "invalid_tool_calls", None) or [])
        calls = [c for c in (getattr(message, "tool_calls", None) or []) if c.get("name") in TOOLS]
        if calls and error is None and not cancel.is_set():
            args = dict(calls[0].get("args") or {})
            if about and TOOLS[calls[0]["name"]].image:
                args.setdefault("image", about[0])
            return calls[0]["name"], args, "model tool call"
        if asked and error is None and not answer.strip() and not cancel.is_set():
            names = ", ".join(sorted({str(c.get("name")) for c in asked}))
            self._trace_answer(session, about, start, "", f"the model asked for a tool it cannot use ({names})",
                               "model tool call: unusable, answered directly")
            yield from self._answer(session, text, about, turn, cancel, decision="answer directly (unusable tool call)")
            return None
        self._trace_answer(session, about, start, answer, error, "model tool call: none, answered directly")
        if about and not cancel.is_set():
            yield from self._highlight(session, about[0], answer)
            yield from self._ground(session, about[0], answer, turn, cancel)
        return None

    # -- running a tool ----------------------------------------------------------------------
    def _call(self, session, tool, args, decision, turn, cancel) -> Iterator[Event]:
        """Run one tool in this thread; its progress goes to the turn's sink (else after it, in the stream)."""
        yield ToolStarted(tool=tool, arguments=dict(args), decision=decision)
        start = time.perf_counter()
        later: list[Status] = []

        def progress(step: int, total: int) -> None:
            if cancel.is_set():
                raise Cancelled()
            (turn.sink or later.append)(Status(f"{tool}: step {step}/{total}", step / max(total, 1)))

        if cancel.is_set():
            out = failed(tool, "Cancelled.", args)
        elif tool not in TOOLS:
            out = failed(tool, f"There is no tool '{tool}'; tools: {', '.join(TOOLS)}.", args)
        else:
            ctx = ToolContext(self.assistant, session, progress, chat_model=self.chat_model)
            out = TOOLS[tool].execute(ctx, args)
        yield from later
        entry = out.entry(time.perf_counter() - start, decision)
        entry.arguments = entry.arguments or dict(args)
        index = session.add_trace(entry)
        turn.versions.extend(out.new_versions)
        yield ToolFinished(trace_index=index, entry=entry, output=out)
        return out

    # -- answering ---------------------------------------------------------------------------
    def _answer(self, session, text, about, turn, cancel, decision: str, context: ToolOutput | None = None):
        """Stream the model's answer (with a tool's result as context) and record it in the trace."""
        if context is not None:
            text += f"\n\n(Result of the {context.tool} tool: {context.text})\nAnswer using this result."
        start = time.perf_counter()
        extra = {"cancel": cancel} if self.local else {}
        messages = self.prompts.messages(session, text, about)
        _, answer, error = yield from self._stream(self.chat_model, messages, turn, cancel, extra)
        self._trace_answer(session, about, start, answer, error, decision)
        if about and not cancel.is_set():
            yield from self._highlight(session, about[0], answer)
            yield from self._ground(session, about[0], answer, turn, cancel)

    def _stream(self, model, messages, turn, cancel, extra: dict | None = None, quiet: bool = False) -> Iterator[Event]:
        """Deltas of a model's reply; returns (all chunks added up, the text, an error or None). An error is also
        said in the reply unless ``quiet`` (the caller decides)."""
        message, answer, error = None, "", None
        try:
            for chunk in model.stream(messages, **(extra or {})):
                message = chunk if message is None else message + chunk
                piece = _text(chunk.content)
                if piece:
                    answer += piece
                    yield Delta(turn.say(piece))
                if cancel.is_set():
                    break
        except Exception as exc:  # noqa: BLE001 - a failing model is reported like a failing tool
            error = describe(exc)
            if not quiet:
                yield Delta(turn.say(f"Error: {error}", error=error))
        return message, answer, error

    def _trace_answer(self, session, about, start, answer, error, decision) -> None:
        session.add_trace(TraceEntry(tool="answer", arguments={"images": about}, seconds=time.perf_counter() - start,
                                     summary=answer.strip()[:120], error=error, decision=decision))

    def _highlight(self, session, version_id: str, answer: str) -> Iterator[Event]:
        """If the answer cites Set-of-Mark regions ([n]) of the image, an overlay highlighting them."""
        from tools.som import highlight_marks, parse_mark_refs

        refs = parse_mark_refs(answer)
        masks = session.overlay_masks(version_id) if refs else []
        ids = [i for i in refs if 1 <= i <= len(masks)]
        if not ids:
            return
        start = time.perf_counter()
        overlay = highlight_marks(session.pixels(version_id), masks, ids)
        marks = f"marks {', '.join(map(str, ids))}"
        out = ToolOutput("highlight", f"Highlighted {marks} of {version_id}.", marks,
                         {"image": version_id, "marks": ids}, overlay=overlay)
        entry = out.entry(time.perf_counter() - start, "the answer cites Set-of-Mark regions")
        yield ToolFinished(trace_index=session.add_trace(entry), entry=entry, output=out)


    def _ground(self, session, version_id: str, answer: str, turn, cancel) -> Iterator[Event]:
        """Grounded answers (the session's toggle): the things the answer mentions, found and drawn on the image
        in the colours of their numbers, and named under the answer."""
        if not session.grounded or not answer.strip() or cancel.is_set():
            return
        from chat.grounding_model import ground
        from tools.grounding.grounded import PALETTE_NAMES, draw_grounded

        yield ToolStarted(tool="ground", arguments={"image": version_id}, decision="grounded answers are on")
        start = time.perf_counter()
        try:
            image = session.pixels(version_id)
            grounded = ground(self.assistant, image, answer, self.assistant.config.tools.grounded_min_score)
            shown = [(n, p) for n, p in enumerate(grounded.phrases, 1) if p.region is not None]
            legend = ", ".join(f"[{n}] {p.phrase} ({PALETTE_NAMES[p.colour]})" for n, p in shown)
            text = f"Shown on {version_id}: {legend}." if shown else f"Nothing the answer mentions was found on {version_id}."
            out = ToolOutput("ground", text, legend or "nothing found",
                             {"image": version_id, "phrases": [p.phrase for p in grounded.phrases]},
                             overlay=draw_grounded(image, grounded) if shown else None,
                             data={"grounded": grounded})
        except Exception as exc:  # noqa: BLE001 - the answer stands; grounding it failed
            out = failed("ground", describe(exc), {"image": version_id})
        entry = out.entry(time.perf_counter() - start, "grounded answers are on")
        yield ToolFinished(trace_index=session.add_trace(entry), entry=entry, output=out)
        yield Delta(turn.say(("\n\n" if turn.text.strip() else "") + out.text))


class _Turn:
    """What one respond() call has said and made so far, and where its progress goes."""

    def __init__(self, first_trace: int, sink: Callable[[Event], None] | None):
        self.first_trace = first_trace
        self.sink = sink
        self.text = ""
        self.versions: list[str] = []
        self.error: str | None = None  # the last problem the turn reported

    def say(self, piece: str, error: str | None = None) -> str:
        """Add ``piece`` to the reply; ``error``: it reports that problem (on a line of its own)."""
        if error is not None:
            self.error = error
            if self.text and not self.text.endswith("\n"):
                piece = "\n" + piece
        self.text += piece
        return piece


def _pinned(session: Session, ref: str | None, pin: str) -> str | None:
    """The image a message sent again works on: ``pin`` (the version it was about the first time) when the
    text names no image, or names that image without a version; else the image the text names."""
    if not _exists(session, pin):
        return ref
    version = session.version(pin).id
    return version if not ref or ref == version.split(".")[0] else ref


def _exists(session: Session, ref: str) -> bool:
    try:
        session.version(ref)
        return True
    except UserError:
        return False


__all__ = ["CHOICE_PROMPT", "Router"]
