"""The conversation as the page shows it (Gradio's messages format), with pictures.

- A user message shows its text, the id of the image version it was about, and that version as the model
  saw it: with the markers it had when the message was sent (and its Set-of-Mark numbers when it had them).
- Each tool call is a collapsible bubble ("tool: edit") with its result or its error.
- An answer that made a version or an image shows it, with three actions: *Make current*, *Compare with
  parent* and *Download* (the version itself, full size, no markers).
- A message waiting for the current answer shows as queued; a stopped answer ends with "Stopped.".

The actions are links whose address says what to do (``#mm-current-img1.v2``); the page's script turns a click
on one into a call of the matching handler (see ``page.js``). No Gradio here.
"""

from __future__ import annotations

import html

from chat.session import Message, Session, TraceEntry
from chat.ui import views

ACTION_LABELS = {"current": "Make current", "compare": "Compare with parent", "download": "Download"}
QUEUED = "⏳ queued: answered after the current answer"
STOPPED = "Stopped."


def uses_image(text: str) -> bool:
    """Whether a message is about an image: free text is; a command only when its tool reads one (not /help,
    /generate)."""
    if not text.startswith("/"):
        return True
    from chat.toolbox import command

    spec = command(text[1:].split(" ", 1)[0].lower())
    return bool(spec and spec.image)


def tool_message(entry: TraceEntry, pending: bool = False) -> dict:
    """A collapsible 'thought' bubble in the chat for one tool call."""
    if pending:
        return {"role": "assistant", "content": views.arguments_text(entry.arguments),
                "metadata": {"title": f"tool: {entry.tool}", "status": "pending"}}
    text = f"Error: {entry.error}" if entry.error else (entry.summary or "done")
    return {"role": "assistant", "content": text,
            "metadata": {"title": f"tool: {entry.tool}", "status": "done", "duration": round(entry.seconds, 2)}}


class ChatView:
    """Builds the chat's messages; ``files`` (:class:`chat.ui.files.ImageFiles`) holds the pictures,
    ``overlay(session, version)`` gives a version's Set-of-Mark overlay when it has one, ``download(session,
    version)`` the file a download of the version gives."""

    def __init__(self, files, overlay=None, download=None):
        self.files = files
        self.overlay = overlay or (lambda session, version: None)
        self.download = download

    def user_content(self, session: Session, message: Message) -> list | str:
        text = typed(message.content)
        if not message.images or not uses_image(text):
            return text
        ids = ", ".join(message.images)
        caption = f"{text}\n\n_({ids})_" if text else f"_({ids})_"
        return [caption, *[self._seen(session, message, vid) for vid in message.images[:1]]]

    def _seen(self, session: Session, message: Message, version_id: str) -> dict:
        markers = list(getattr(message, "markers", None) or [])
        key = (session.id, version_id, "seen", tuple(m.model_dump_json() for m in markers))

        def make():
            return views.marked_thumbnail(session, version_id, markers, self.overlay(session, version_id))

        try:
            return {"path": self.files.get(key, make), "alt_text": version_id}
        except Exception:  # noqa: BLE001 - a version whose pixels are gone: the text says which it was
            return {"path": "", "alt_text": version_id}

    def results(self, session: Session, index: int) -> list[str]:
        """Versions the answer at ``index`` made (those it names that its question was not about)."""
        message = session.messages[index]
        asked = session.messages[index - 1].images if index > 0 and session.messages[index - 1].role == "user" else []
        made = []
        for vid in message.images:
            if vid in asked:
                continue
            try:
                session.version(vid)
            except Exception:  # noqa: BLE001 - gone (e.g. an imported session without it)
                continue
            made.append(vid)
        return made

    def result_parts(self, session: Session, version_id: str) -> list:
        """A made version: its picture and the three actions."""
        version = session.version(version_id)
        picture = self.files.get((session.id, version_id, "result"),
                                 lambda: views.thumbnail(session.pixels(version_id), 320))
        links = [f"<a class='mm-act' href='#mm-current-{version_id}'>{ACTION_LABELS['current']}</a>"]
        if version.parent:
            links.append(f"<a class='mm-act' href='#mm-compare-{version_id}'>{ACTION_LABELS['compare']}</a>")
        if self.download is not None:
            path, name = self.download(session, version_id)
            links.append(f"<a class='mm-dl' href='gradio_api/file={path}' download='{name}'>"
                         f"{ACTION_LABELS['download']}</a>")
        return [{"path": picture, "alt_text": version_id}, f"**{version_id}** · " + " · ".join(links)]

    def messages(self, session: Session) -> list[dict]:
        """session.messages in Gradio's messages format; each answer is preceded by its tool calls and
        followed by what it made."""
        out: list[dict] = []
        for index, message in enumerate(session.messages):
            if message.role == "user":
                out.append({"role": "user", "content": self.user_content(session, message)})
                continue
            for i in message.trace:
                if 0 <= i < len(session.trace):
                    out.append(tool_message(session.trace[i]))
            content: list = [message.content] if message.content else []
            for vid in self.results(session, index):
                content.extend(self.result_parts(session, vid))
            out.append({"role": "assistant", "content": content if len(content) > 1 else (content[0] if content else "")})
        return out


def typed(text: str) -> str:
    """What the person typed, shown as typed: the chat renders HTML, so '<image>' or '</s>' would become a tag
    (a broken picture, or nothing); their '<' and '>' are shown as characters."""
    return html.escape(text, quote=False)


def queued_message(text: str) -> dict:
    return {"role": "user", "content": f"{typed(text)}\n\n_{QUEUED}_"}
