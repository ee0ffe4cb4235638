"""What an answer shows while it streams (:class:`TurnState`: the chat so far, the tools' bubbles, the outcome)
and the small facts the page reads from a session around an answer: which version a message was about, the
markers it showed, a hint when a question names a marker that is not there, a question waiting for its answer."""

from __future__ import annotations

import re
from contextlib import contextmanager

from chat.errors import UserError
from chat.session import Session, TraceEntry
from chat.ui.chatview import tool_message

VERSION_ID = re.compile(r"img\d+\.v\d+")
MARKER_WORDS = re.compile(r"\b(?:red|green|blue|yellow|purple)?\s*(?:circle|ellipse|arrow|box|cross|marker|marked|"
                          r"mark)s?\b|丸|円|矢印|印|マーカー|囲", re.IGNORECASE)
WAITING = "Waiting for your answer: say the number of the place you mean (the places are numbered on the image)."


def waiting_text(session: Session) -> str | None:
    """The status line while the session's last answer asked 'which one?' and waits for a number."""
    return WAITING if getattr(session, "pending", None) else None


@contextmanager
def markers_as_sent(session: Session, image: str | None, markers: list | None):
    """A queued message is answered with the markers its image had when it was sent (the running answer may
    have marked something since, e.g. a find). Afterwards the image keeps the markers it had before, unless
    this answer changed them itself."""
    try:
        record = session.record(image) if markers is not None and image else None
    except UserError:
        record = None
    if record is None or list(record.markers) == list(markers):
        yield
        return
    before = list(record.markers)
    record.markers = [m.model_copy() for m in markers]
    used = list(record.markers)
    try:
        yield
    finally:
        if list(record.markers) == used:
            record.markers = before


def last_user(session: Session) -> int | None:
    """The index of the session's last user message (None: there is none)."""
    return max((i for i, m in enumerate(session.messages) if m.role == "user"), default=None)


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


class TurnState:
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
