"""What the chat model sees of a session: the prompt the router sends for a turn (:class:`PromptBuilder`).

The image a message is about is shown as :meth:`chat.session.Session.view` gives it (its Set-of-Mark overlay if
it has one, with its markers drawn), and each user turn is prefixed with its image id (``[img2.v1] ...``). A prompt
carries at most ``max_images`` images (``models.<name>.max_images``; 1 for LLaVA-1.5 and ViP-LLaVA, fine-tuned
with one image per prompt): the ones this message is about first; other turns keep their text, which names their
image by id. The recent turns of the conversation are replayed exactly as they were sent (an image stays in the
turn that first showed it), so a follow-up about the same image starts with the previous prompt and the local
model continues its KV cache; a new image (or view) starts a new prefix. The window of earlier turns moves in
steps, by count and by the context (``models.<name>.context_tokens``), so the prompt's start stays the same for
several turns. The tools are not in these messages: the router binds them to the model (``bind_tools``), and the
local model lists them in its system turn, after the trained system sentence its chat template writes first (see
:mod:`chat.prompt_format`); ``tools`` lets the window count them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from chat.lc_messages import part_key
from chat.session import Session
from chat.toolbox.chat_model import IMAGE_SIDE, image_content

SYSTEM = ("You are mmchat, a helpful assistant that looks at images. Images are named img1, img2, ... "
          "(img1.v2 is version 2 of img1). Red circles, arrows and boxes on an image are markers the user "
          "placed to point at something; numbers on regions are Set-of-Mark labels you may cite as [n]. "
          "Answer in the language the user writes in.")
DEFAULT_MAX_IMAGES = 3  # a chat model without models.<name>.max_images: this turn's image and 2 earlier ones


def _urls(messages) -> set[str]:
    """What the image parts of ``messages`` show (:func:`chat.lc_messages.part_key`: a data URL or a part's id)."""
    return {key for m in messages if isinstance(m.content, list) for p in m.content if (key := part_key(p))}


def _request(text: str, image: str | None) -> str:
    return f"[{image}] {text}" if image else text


class PromptBuilder:
    """Builds a turn's messages for one chat model; keeps, across turns, the user turns as the model saw them
    (so they are replayed exactly) and the last few image parts (so a turn's choice and answer encode an image
    once). Thread-safe."""

    history_turns = 12  # earlier messages given to the model at most (fewer if the context is short)
    sent_entries = 128
    shown_entries = 8
    image_side = IMAGE_SIDE

    def __init__(self, chat_model: Any, local: bool):
        self.chat_model = chat_model
        self.local = local
        self._sent: OrderedDict[tuple[str, int, str], HumanMessage] = OrderedDict()  # (session, index, text)
        self._shown: OrderedDict[tuple, tuple] = OrderedDict()  # what an image part shows -> (overlay, part)
        self._lock = threading.Lock()

    # -- images -----------------------------------------------------------------------------------
    def _parts(self, session: Session, images: list[str]) -> list[dict]:
        """The content parts of ``images`` as the model sees them, kept by what they show (version, markers,
        Set-of-Mark overlay)."""
        parts = []
        for version_id in images:
            overlay = session.overlay(version_id)
            markers = tuple(m.model_dump_json() for m in session.record(version_id).markers)
            key = (session.id, version_id, markers, id(overlay) if overlay is not None else None)
            with self._lock:
                part = self._shown.get(key, (None, None))[1]
            if part is None:
                part = image_content(self.chat_model, session.view(version_id), self.image_side)
                with self._lock:  # the overlay is kept with the part, so its id() is not reused meanwhile
                    self._shown[key] = (overlay, part)
                    while len(self._shown) > self.shown_entries:
                        self._shown.popitem(last=False)
            parts.append(part)
        return parts

    # -- history ----------------------------------------------------------------------------------
    def _history(self, session: Session) -> list[BaseMessage]:
        """Earlier turns: user turns exactly as the model saw them when known, else rebuilt as text; the window
        moves in steps so the prompt's start stays stable (:func:`_one_view_each` decides which keep pixels)."""
        earlier = session.messages[:-1]
        start, step = 0, max(2, self.history_turns // 2)
        if len(earlier) > self.history_turns:
            start = ((len(earlier) - self.history_turns) // step + 1) * step
        out: list[BaseMessage] = []
        for index in range(start, len(earlier)):
            m = earlier[index]
            with self._lock:
                sent = self._sent.get((session.id, index, m.content))
            if m.role == "user":
                out.append(sent if sent is not None else
                           HumanMessage(_request(m.content, m.images[0] if m.images else None)[:800]))
            else:
                replayed = bool(out) and isinstance(out[-1].content, list)  # its tool results are in that turn
                tools = [] if replayed else [session.trace[i] for i in m.trace if i < len(session.trace)]
                notes = "".join(f"({t.tool}: {t.summary}) " for t in tools if t.tool not in ("answer", "router"))
                out.append(AIMessage((notes + m.content)[:800]))
        while out and isinstance(out[0], AIMessage):
            out.pop(0)
        return out

    def max_images(self) -> int:
        """Images one prompt may carry: ``models.<name>.max_images`` of the local chat model, else 3."""
        limit = self.chat_model.max_images() if self.local else None
        return limit or DEFAULT_MAX_IMAGES

    @staticmethod
    def _one_view_each(history: list[BaseMessage], wanted: list[str], limit: int) -> list[BaseMessage]:
        """``history`` where only ``limit`` images keep their pixels: those of ``wanted`` (this turn's) first,
        then the most recent earlier ones; each in the earliest turn that shows it, so a follow-up about the same
        image replays the earlier prompt unchanged. The other turns keep their text (the image id)."""
        allowed = list(dict.fromkeys(wanted))[:limit]
        for message in reversed(history):
            for url in _urls([message]):
                if len(allowed) < limit and url not in allowed:
                    allowed.append(url)
        seen: set[str] = set()
        out = []
        for message in history:
            if isinstance(message, HumanMessage) and _urls([message]):
                content = []
                for part in message.content:
                    url = part_key(part)
                    if url is None or (url in allowed and url not in seen):
                        content.append(part)
                        seen.add(url)
                message = message if len(content) == len(message.content) else HumanMessage(content=content)
            out.append(message)
        return out

    # -- the prompt -------------------------------------------------------------------------------
    def system(self) -> SystemMessage:
        return SystemMessage(SYSTEM)

    def messages(self, session: Session, text: str, about: list[str], tools: list | None = None,
                 after: Sequence[BaseMessage] = ()) -> list[BaseMessage]:
        """System prompt, the recent history that fits the context window, and this turn: its text and the images
        it is about that the history does not already show, at most :meth:`max_images` images in all (the others
        are named by their id in the text). ``tools``: the tools bound to the model, counted in the window;
        ``after``: this turn's tool calls and results so far, which follow its text, counted too."""
        limit = self.max_images()
        parts = self._parts(session, about[:limit])
        request = _request(text, about[0] if about else None)
        earlier = self._history(session)
        window = self.chat_model.context_window() if self.local else None
        options = getattr(self.chat_model, "options", None)
        reserve = getattr(options, "max_new_tokens", 256)
        step = max(2, self.history_turns // 2)
        for drop in range(0, len(earlier) + step, step):  # oldest turns leave in steps: the start stays put a while
            history = earlier[drop:]
            while history and isinstance(history[0], AIMessage):
                history = history[1:]
            history = self._one_view_each(history, [part_key(p) for p in parts], limit)
            shown = _urls(history)
            current = [p for p in parts if part_key(p) not in shown] + [{"type": "text", "text": request}]
            messages = [self.system(), *history, HumanMessage(content=list(current)), *after]
            if window is None or not history:
                break
            if self.chat_model.get_num_tokens_from_messages(messages, tools=tools) + reserve <= window:
                break
        if session.messages and session.messages[-1].role == "user":
            key = (session.id, len(session.messages) - 1, session.messages[-1].content)
            with self._lock:
                self._sent[key] = HumanMessage(content=current)
                while len(self._sent) > self.sent_entries:
                    self._sent.popitem(last=False)
        return messages


__all__ = ["DEFAULT_MAX_IMAGES", "SYSTEM", "PromptBuilder"]
