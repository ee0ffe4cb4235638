"""The router: one user message in, a stream of events out (text deltas, tool calls, images, Done).

    >>> for event in assistant.router.respond(session, "is it a cat or a dog?"):
    ...     print(event)
    >>> list(assistant.router.regenerate(session))     # the last message again, as it ran

Routing, in order:
1. A button (``action=`` + ``arguments=``) or a slash command (``/score cat | dog``, read by the tool's entry in
   :data:`chat.toolbox.TOOLS`) runs that tool with those arguments; the tool's own text is the reply (no model
   call: fast and deterministic).
2. Free text, one path for the local model and a remote one: the chat model bound to the table's tools
   (``bind_tools``) answers in words or calls tools; each call's result goes back to it as a ``ToolMessage`` and
   it goes on (another call, or its answer, streamed), up to ``limits.max_tool_steps`` calls, so "caption it,
   then make the sky purple" is two calls in one message. The local model decides by a batched *constrained
   choice* among the tool names and "answer" (a tool must beat the answer by ``choice_margin``) and generates
   only the chosen tool's arguments, under its JSON schema (:mod:`chat.lc_model`); a remote server calls tools
   natively. A tool whose entry is ``final`` (edit, remove, generate, sketch, som, mark, find) ends the turn with
   its confirmation, as LangChain's ``return_direct``.

   Why a loop here rather than LangChain's agent runtime (``langchain.agents.create_agent``, which the tests
   also drive with these tools): a turn is a stream of this module's typed events (text deltas, a tool's start,
   its progress while it runs, its end with images), Stop must end it between and inside steps, every step goes
   into the session's trace, and the prompt is the session's (images with their markers, history, KV-cache
   friendly); the loop over ``bind_tools`` is the same protocol (``AIMessage.tool_calls``, ``ToolMessage``) in
   one method, where the agent's graph would be a second state machine whose stream is translated back.

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
from typing import Callable, Iterator

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage

from chat.answer_marks import grounded, highlighted
from chat.errors import UserError, describe
from chat.events import Delta, Done, Event, Status, ToolFinished, ToolStarted
from chat.lc_messages import content_text
from chat.lc_model import LocalMultimodalChatModel
from chat.lc_tools import make_tools
from chat.model_view import PromptBuilder
from chat.session import Message, Session, TraceEntry, clean_text
from chat.toolbox import TOOLS, Cancelled, ToolContext, command, failed, help_text
from chat.toolbox.free_text import numbered_answer, region_question

_IMAGE_REF = re.compile(r"\bimg\d+(?:\.v\d+)?\b")


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
    def tool_calling(self) -> bool:
        """Whether the chat model calls tools: the local one by constrained decoding, a remote one natively (unless
        its server refused tools once)."""
        return self.local or (type(self.chat_model).bind_tools is not BaseChatModel.bind_tools
                              and not getattr(self.chat_model, "tools_refused", False))

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
        if tool is None:  # free text: the chat model answers, or its own tool calls drive the tools
            thing = region_question(text) if image and not session.record(image).markers else None
            if thing and not (yield from self._point_at(session, thing, image, turn, cancel)):
                return  # not found, or the person is asked which one
            yield from self._tool_loop(session, text, about, (arguments or {}).get("image"), turn, cancel)
            return
        spec = TOOLS.get(tool)
        if action is None and spec is not None and spec.image and (arguments or {}).get("image"):
            args["image"] = _pinned(session, args.get("image"), str(arguments["image"]))
        out = yield from self._call(session, tool, args, decision, turn, cancel)
        message.action = tool  # what ran, the image pinned to the version it worked on: Regenerate replays it
        pinned = out.arguments.get("image") or (image if spec is not None and spec.image else None)
        message.arguments = args | ({"image": pinned} if pinned else {})
        if not cancel.is_set():
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

    # -- the tool-calling loop ---------------------------------------------------------------
    def _tool_loop(self, session, text, about, pin, turn, cancel) -> Iterator[Event]:
        """Free text, one path for the local and a remote model: the model bound to the tools of the table
        (:func:`chat.lc_tools.make_tools`) answers in words, or calls tools; each call runs (its arguments validated
        by the tool's schema), its result goes back to the model as a ``ToolMessage``, and the model goes on: another
        call, or the answer, streamed. At most ``limits.max_tool_steps`` calls; after them, or after the same call
        twice, the model answers with what it has. A tool whose entry is ``final`` (edit, remove, mark, ...) ends
        the turn with its confirmation (LangChain's ``return_direct``); a failed call says its error and goes on."""
        if not self.tool_calling:
            decision = ("answer directly (the server refuses tools)" if getattr(self.chat_model, "tools_refused", False)
                        else "answer directly (the model has no tool calling)")
            yield from self._answer(session, text, about, turn, cancel, decision=decision)
            return
        tools = make_tools(self.assistant, session, chat_model=self.chat_model, brief=self.local)
        extra = {"cancel": cancel, "tool_margin": self.choice_margin} if self.local else {}
        limit = self.assistant.config.limits.max_tool_steps
        ran, done, why, last, answer_next = [], set(), None, None, False
        steps: list = []  # this message's calls and their results, after it in every later step's prompt
        for step in range(1, limit + 2):  # every step runs a call or sets answer_next: the last one answers
            answer_now = answer_next or len(ran) >= limit
            # fitted to the context window again each step: the results make it longer, the oldest turns leave
            messages = self.prompts.messages(session, text, about, tools=tools, after=steps)
            start = time.perf_counter()
            bound = self.chat_model.bind_tools(tools, tool_choice="none" if answer_now else "auto")
            reply, answer, error = yield from self._stream(bound, messages, turn, cancel, extra, quiet=True)
            if error is not None and not answer and not ran and getattr(self.chat_model, "tools_refused", False):
                yield Status(error)  # the server refuses tools: said once, and this message is answered without them
                yield from self._answer(session, text, about, turn, cancel,
                                        decision="answer directly (the server refuses tools)")
                return
            if error is not None:
                yield Delta(turn.say(f"Error: {error}", error=error))
            asked = list(getattr(reply, "tool_calls", None) or [])
            calls = [c for c in asked if c.get("name") in TOOLS] if (
                error is None and not cancel.is_set() and not answer_now) else []
            if not calls:
                unusable = asked + list(getattr(reply, "invalid_tool_calls", None) or [])
                if unusable and error is None and not answer.strip() and not cancel.is_set() and not answer_now:
                    names = ", ".join(sorted({str(c.get("name")) for c in unusable}))
                    self._trace_answer(session, about, start, "", f"the model asked for a tool it cannot use ({names})",
                                       "model tool call: unusable, answered directly")
                    answer_next, why = True, "answer directly (unusable tool call)"
                    continue
                self._trace_answer(session, about, start, answer, error, _answer_decision(reply, ran, why))
                if last is not None and last.ok and not answer.strip() and error is None and not cancel.is_set():
                    yield Delta(turn.say(last.text))  # the model had nothing to add: the tool's result is the reply
                if about and not cancel.is_set():
                    yield from self._marks(session, about[0], answer, turn, cancel)
                return
            steps.append(AIMessage(content=answer, tool_calls=calls))
            ended = False
            for call in calls:
                spec, args = TOOLS[call["name"]], dict(call.get("args") or {})
                if spec.image and about:
                    args["image"] = _pinned(session, args.get("image"), pin) if pin else args.get("image") or about[0]
                key = (spec.name, repr(sorted(args.items())))
                if key in done or answer_next or len(ran) >= limit:  # the same call again, or one too many
                    said = ("Already done: the result is above." if key in done
                            else f"Not run: at most {limit} tool calls for one message." if len(ran) >= limit
                            else "Not run: answer with the results above.")
                    steps.append(ToolMessage(said, tool_call_id=call["id"], name=spec.name))
                    answer_next = True  # the next step answers in words
                    continue
                done.add(key)
                ran.append(spec.name)
                out = last = yield from self._call(session, spec.name, args, _call_decision(reply, step), turn, cancel)
                steps.append(ToolMessage(out.text, tool_call_id=call["id"], name=spec.name))
                if cancel.is_set():
                    return
                if not out.ok:
                    yield Delta(turn.say(out.text, error=out.error))
                elif spec.final:
                    yield Delta(turn.say(("\n\n" if turn.text.strip() else "") + out.text))
                    ended = True
            if ended:
                return

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
    def _answer(self, session, text, about, turn, cancel, decision: str):
        """Stream the model's answer, without tools, and record it in the trace."""
        start = time.perf_counter()
        extra = {"cancel": cancel} if self.local else {}
        messages = self.prompts.messages(session, text, about)
        _, answer, error = yield from self._stream(self.chat_model, messages, turn, cancel, extra)
        self._trace_answer(session, about, start, answer, error, decision)
        if about and not cancel.is_set():
            yield from self._marks(session, about[0], answer, turn, cancel)

    def _stream(self, model, messages, turn, cancel, extra: dict | None = None, quiet: bool = False) -> Iterator[Event]:
        """Deltas of a model's reply; returns (all chunks added up, the text, an error or None). An error is also
        said in the reply unless ``quiet`` (the caller decides)."""
        message, answer, error = None, "", None
        try:
            for chunk in model.stream(messages, **(extra or {})):
                message = chunk if message is None else message + chunk
                piece = content_text(chunk.content)
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

    def _marks(self, session, version_id: str, answer: str, turn, cancel) -> Iterator[Event]:
        """What an answer points at, drawn on its image: the Set-of-Mark regions it cites, and (grounded answers
        on) the things it mentions (:mod:`chat.answer_marks`)."""
        yield from highlighted(session, version_id, answer)
        if session.grounded and answer.strip() and not cancel.is_set():
            out = yield from grounded(self.assistant, session, version_id, answer)
            yield Delta(turn.say(("\n\n" if turn.text.strip() else "") + out.text))

    def _trace_answer(self, session, about, start, answer, error, decision) -> None:
        session.add_trace(TraceEntry(tool="answer", arguments={"images": about}, seconds=time.perf_counter() - start,
                                     summary=answer.strip()[:120], error=error, decision=decision))


class _Turn:
    """What one respond() call has said and made so far, and where its progress goes."""

    def __init__(self, first_trace: int, sink: Callable[[Event], None] | None):
        self.first_trace = first_trace
        self.sink = sink
        self.text = ""
        self.versions: list[str] = []
        self.error: str | None = None  # the last problem the turn reported
        self._after_error = False

    def say(self, piece: str, error: str | None = None) -> str:
        """Add ``piece`` to the reply; ``error``: it reports that problem (on a line of its own: what follows it
        starts a new line too)."""
        own_line = error is not None or self._after_error
        if own_line and piece and self.text and not self.text.endswith("\n") and not piece.startswith("\n"):
            piece = "\n" + piece
        if error is not None:
            self.error = error
        if piece:
            self._after_error = error is not None
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


def _call_decision(reply, step: int) -> str:
    """Why a tool ran, for the trace: the model's call, its step, and (the local model) the choice's margin."""
    choice = (getattr(reply, "response_metadata", None) or {}).get("tool_choice") or {}
    margin = f", logprob margin {choice['margin']:.2f}" if "margin" in choice else ""
    return f"model tool call (step {step}{margin})"


def _answer_decision(reply, ran: list[str], why: str | None) -> str:
    """Why the model answered in words, for the trace (the strings the page's trace puts in plain words)."""
    if ran:
        return f"after {', '.join(dict.fromkeys(ran))}"
    if why:
        return why
    choice = (getattr(reply, "response_metadata", None) or {}).get("tool_choice") or {}
    if "margin" not in choice:
        return "model tool call: none, answered directly"
    if choice["margin"] <= 0:
        return "model choice: answer directly"
    if choice["margin"] > choice["required"]:
        return f"model choice: {choice['best']}, but its arguments did not complete"
    return f"fallback: answer directly ({choice['best']} margin {choice['margin']:.2f} < {choice['required']})"


__all__ = ["Router"]
