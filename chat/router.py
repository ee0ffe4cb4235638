"""The router: one user message in, a stream of events out (text deltas, tool calls, images, Done).

    >>> for event in assistant.router.respond(session, "is it a cat or a dog?"):
    ...     print(event)

Routing, in order:
1. A UI button (``action=`` + ``arguments=``) or a slash command (``/score cat | dog``) runs that tool
   with those arguments; the tool's own text is the reply (no model call: fast and deterministic).
2. Free text: the chat model picks a tool or "answer". The local model makes a *constrained choice*:
   ``choice_logprobs`` scores each tool name and "answer" after a prompt listing them; the best tool
   wins only if it beats "answer" by ``choice_margin`` and its arguments can be filled from the message
   (see :func:`fill_arguments`), else the model answers directly. A chat model with native tool calling
   (e.g. a remote OpenAI-compatible server) gets the tools through ``bind_tools``.
3. After a tool that informs (caption, vqa, score, classify) the model answers with the tool's result as
   context; tools that act (edit, remove, generate, sketch, som, mark) reply with a short confirmation.

The model sees the image the message is about (ids in the text such as ``img2``, else the active image)
with its markers drawn, the recent turns of the conversation (trimmed to the context window), and each user
turn prefixed with its image id (``[img2.v1] ...``); a prompt holds at most ``max_images`` images (see
:mod:`chat.model_view`). An image stays in the turn where it was first shown and is not attached again while
it is unchanged, and earlier turns are replayed exactly as they were sent: a follow-up's prompt then starts
with the previous prompt, so the local model continues its KV cache instead of prefilling the conversation and
the image again (the constrained choice shares that prefix too). Every decision and tool call goes into
the session trace; tool failures become ``Error: ...`` replies and leave the session intact.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Iterator

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from chat.arguments import (COMMANDS, IMAGE_TOOLS, command_arguments, fill_arguments, help_text,
                            parse_labels)
from chat.errors import UserError, describe
from chat.events import Delta, Done, Event, Status, ToolFinished, ToolStarted
from chat.lc_model import LocalMultimodalChatModel
from chat.lc_tools import Cancelled, ToolOutput, failed, make_tools, run_tool, schemas
from chat.model_view import ModelView
from chat.session import Session, TraceEntry, clean_text

CHOICE_PROMPT = "\n\nWhich tool should handle this request? Reply with the tool name only."  # after the user's text
FINAL_TOOLS = {"edit", "remove", "generate", "sketch", "som", "mark"}  # their confirmation is the whole reply
_IMAGE_REF = re.compile(r"\bimg\d+(?:\.v\d+)?\b")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content or [])


# --------------------------------------------------------------------------------------------
# The router
# --------------------------------------------------------------------------------------------
class Router(ModelView):
    choice_margin = 1.0  # a tool must beat "answer" by this mean log-probability to be chosen
    som_entries = 32

    def __init__(self, assistant, chat_model: BaseChatModel | None = None):
        self.assistant = assistant
        self.chat_model = chat_model if chat_model is not None else assistant.chat_model
        self._som: OrderedDict[tuple[str, str], tuple[Any, list]] = OrderedDict()  # (session, version) -> (image, masks)
        self._sent: OrderedDict[tuple[str, int, str], HumanMessage] = OrderedDict()  # see ModelView
        self._shown: OrderedDict[tuple, tuple] = OrderedDict()  # see ModelView
        self._lock = threading.Lock()

    @property
    def local(self) -> bool:
        return isinstance(self.chat_model, LocalMultimodalChatModel)

    @property
    def native_tools(self) -> bool:
        return (not self.local and type(self.chat_model).bind_tools is not BaseChatModel.bind_tools
                and not getattr(self.chat_model, "tools_refused", False))  # a server that refused tools once

    # -- entry point -------------------------------------------------------------------------
    def respond(self, session: Session, text: str, *, action: str | None = None, arguments: dict | None = None,
                cancel: threading.Event | None = None) -> Iterator[Event]:
        """Answer one message; yields Status/ToolStarted/ToolFinished/Delta events and exactly one Done.

        ``arguments`` without an ``action`` (Regenerate: a message sent again) may hold ``image``, the version
        the message was about the first time: the message is about it again, and its tool works on it when
        the text names no image or names that image without a version."""
        cancel = cancel or threading.Event()
        turn = _Turn(len(session.trace))
        text = clean_text(text).strip()
        try:
            refs = [str((arguments or {}).get("image") or "")] + _IMAGE_REF.findall(text)
            refs = [r for r in dict.fromkeys(refs) if r and _exists(session, r)]
            about = list(dict.fromkeys(session.version(r).id for r in refs))[:3] or (
                [session.version().id] if session.active else [])
            session.add_message("user", text or f"/{action}", images=about)
            yield from self._route(session, text, action, arguments, about, turn, cancel)
        except GeneratorExit:
            cancel.set()
            raise
        except Exception as exc:  # noqa: BLE001 - nothing a user sends may crash the server
            message = describe(exc)
            session.add_trace(TraceEntry(tool="router", error=message, decision="error"))
            yield Delta(turn.add(f"Error: {message}"))
        message = session.add_message("assistant", turn.text.strip(), images=turn.versions)
        message.trace = list(range(turn.first_trace, len(session.trace)))
        yield Done(message=message, cancelled=cancel.is_set(), error=turn.error)

    def _route(self, session, text, action, arguments, about, turn, cancel) -> Iterator[Event]:
        image = about[0] if about else None
        limit = self.assistant.config.limits.max_message_chars
        if len(text) > limit:
            raise UserError(f"The message is {len(text)} characters long; the limit is {limit}.")
        if action is not None:
            tool, args, decision = action, dict(arguments or {}), "button"
        elif not text:
            yield Delta(turn.add("Type a question, or a command such as /caption; /help lists them."))
            return
        elif text.startswith("/"):
            name, _, rest = text[1:].partition(" ")
            command = COMMANDS.get(name.lower())
            if command is None or command[0] is None:
                known = "" if command else f"Unknown command /{name}. "
                yield Delta(turn.add(known + help_text()))
                return
            tool, args, decision = command[0], command_arguments(command[0], rest), "slash command"
        elif self.native_tools:
            chosen = yield from self._native(session, text, about, turn, cancel)
            if chosen is None:
                return
            tool, args, decision = chosen
        else:
            tool, args, decision = self._choose(session, text, image)
            if tool is None:
                yield from self._answer(session, text, about, turn, cancel, decision=decision)
                return
        if action is None and tool in IMAGE_TOOLS and (arguments or {}).get("image"):
            args["image"] = _pinned(session, args.get("image"), str(arguments["image"]))
        if tool == "classify":
            args.setdefault("rounds", self.assistant.config.tools.classify_rounds)
        out = yield from self._call(session, tool, args, decision, turn, cancel)
        if out.ok and tool not in FINAL_TOOLS and decision not in ("button", "slash command"):
            yield from self._answer(session, text, about, turn, cancel, context=out, decision=f"after {tool}")
        elif not cancel.is_set():
            yield Delta(turn.add(out.text))

    # -- choosing a tool ---------------------------------------------------------------------
    def _choose(self, session, text, image):
        """(tool, arguments, decision) for free text by constrained choice; tool None means answer directly."""
        if not self.local:
            return None, {}, "answer directly (the model has no tool calling)"
        names = list(schemas())
        try:
            messages = self._messages(session, text, [image] if image else [], suffix=CHOICE_PROMPT)
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
        args = fill_arguments(best, text, session, image)
        if args is None:
            return None, {}, f"fallback: answer directly ({best}: its arguments are not in the message)"
        return best, args, f"model choice (logprob margin {margin:.2f})"

    def _native(self, session, text, about, turn, cancel) -> Iterator[Event]:
        """Native tool calling: the model's streamed reply is the answer, unless it calls a tool; then
        returns (tool, arguments, decision)."""
        tools = self._tools(session, cancel)
        start = time.perf_counter()
        bound = self.chat_model.bind_tools(tools)
        message, answer, error = yield from self._stream(bound, self._messages(session, text, about), turn, cancel,
                                                         quiet=True)
        if error is not None and not answer and getattr(self.chat_model, "tools_refused", False):
            yield Status(error)  # the server refuses tools: said once, and this message is answered without them
            yield from self._answer(session, text, about, turn, cancel, decision="answer directly (the server refuses tools)")
            return None
        if error is not None:
            yield Delta(turn.add(f"Error: {error}"))
        asked = list(getattr(message, "tool_calls", None) or []) + list(getattr(message, "invalid_tool_calls", None) or [])
        calls = [c for c in (getattr(message, "tool_calls", None) or []) if c.get("name") in schemas()]
        if calls and error is None and not cancel.is_set():
            args = dict(calls[0].get("args") or {})
            if about and calls[0]["name"] in IMAGE_TOOLS:
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
        return None

    # -- running a tool ----------------------------------------------------------------------
    def _tools(self, session, cancel, events: queue.Queue | None = None, label: str = ""):
        def progress(step: int, total: int) -> None:
            if cancel.is_set():
                raise Cancelled()
            if events is not None:
                events.put(Status(f"{label}: step {step}/{total}", step / max(total, 1)))

        return make_tools(self.assistant, session, progress=progress)

    def _call(self, session, tool, args, decision, turn, cancel) -> Iterator[Event]:
        events: queue.Queue = queue.Queue()
        by_name = {t.name: t for t in self._tools(session, cancel, events, tool)}
        yield ToolStarted(tool=tool, arguments=dict(args), decision=decision)
        start = time.perf_counter()
        result: list[ToolOutput] = []
        if cancel.is_set():
            result.append(failed(tool, "Cancelled.", args))
        elif tool not in by_name:
            result.append(failed(tool, f"There is no tool '{tool}'; tools: {', '.join(by_name)}.", args))
        else:
            def work() -> None:
                try:
                    result.append(run_tool(by_name[tool], args))
                finally:
                    events.put(None)

            worker = threading.Thread(target=work, name="mmchat-tool", daemon=True)
            worker.start()
            while (item := events.get()) is not None:
                yield item
            worker.join()
        out = result[0] if result else failed(tool, "The tool stopped unexpectedly.", args)
        entry = TraceEntry(tool=tool, arguments=out.arguments or dict(args), seconds=time.perf_counter() - start,
                           summary=out.summary, error=out.error, decision=decision)
        index = session.add_trace(entry)
        if out.ok and "masks" in out.data:
            self._remember_som(session, out.data["version"], out.data["image"], out.data["masks"])
        turn.versions.extend(out.new_versions)
        yield ToolFinished(trace_index=index, entry=entry, new_versions=list(out.new_versions), plot=out.plot,
                           overlay=out.overlay, data=out.data)
        return out

    # -- answering ---------------------------------------------------------------------------
    def _answer(self, session, text, about, turn, cancel, decision: str, context: ToolOutput | None = None):
        """Stream the model's answer (with a tool's result as context) and record it in the trace."""
        if context is not None:
            text += f"\n\n(Result of the {context.tool} tool: {context.text})\nAnswer using this result."
        start = time.perf_counter()
        extra = {"cancel": cancel} if self.local else {}
        messages = self._messages(session, text, about)
        _, answer, error = yield from self._stream(self.chat_model, messages, turn, cancel, extra)
        self._trace_answer(session, about, start, answer, error, decision)
        if about and not cancel.is_set():
            yield from self._highlight(session, about[0], answer)

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
                    yield Delta(turn.add(piece))
                if cancel.is_set():
                    break
        except Exception as exc:  # noqa: BLE001 - a failing model is reported like a failing tool
            error = describe(exc)
            if not quiet:
                yield Delta(turn.add(f"Error: {error}"))
        return message, answer, error

    def _trace_answer(self, session, about, start, answer, error, decision) -> None:
        session.add_trace(TraceEntry(tool="answer", arguments={"images": about}, seconds=time.perf_counter() - start,
                                     summary=answer.strip()[:120], error=error, decision=decision))

    def _highlight(self, session, version_id: str, answer: str) -> Iterator[Event]:
        """If the answer cites Set-of-Mark regions ([n]) of the image, an overlay highlighting them."""
        from tools.som import highlight_marks, parse_mark_refs

        with self._lock:
            cached = self._som.get((session.id, version_id))
        refs = parse_mark_refs(answer)
        if cached is None or not refs:
            return
        ids = [i for i in refs if 1 <= i <= len(cached[1])]
        if not ids:
            return
        start = time.perf_counter()
        overlay = highlight_marks(session.pixels(version_id), cached[1], ids)
        entry = TraceEntry(tool="highlight", arguments={"image": version_id, "marks": ids},
                           seconds=time.perf_counter() - start, summary=f"marks {', '.join(map(str, ids))}",
                           decision="the answer cites Set-of-Mark regions")
        yield ToolFinished(trace_index=session.add_trace(entry), entry=entry, overlay=overlay)

    def _remember_som(self, session, version_id, image, masks) -> None:
        with self._lock:
            self._som[(session.id, version_id)] = (image, masks)
            while len(self._som) > self.som_entries:
                self._som.popitem(last=False)


class _Turn:
    """What one respond() call has said and made so far."""

    def __init__(self, first_trace: int):
        self.first_trace = first_trace
        self.text = ""
        self.versions: list[str] = []
        self.error: str | None = None  # the last problem said in the reply

    def add(self, piece: str) -> str:
        if piece.startswith("Error:"):
            self.error = piece.removeprefix("Error:").strip() or self.error
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


__all__ = ["COMMANDS", "Router", "command_arguments", "fill_arguments", "help_text", "parse_labels"]
