"""What the page shows, computed from a Session: no Gradio here, only data and PIL images.

The image panel shows a *display copy*: the active image's current version with its markers drawn,
downscaled so its longer side is at most ``DISPLAY_MAX_SIDE``. Gradio reports clicks in the pixel space
of the image it displays, so :func:`to_original` maps them back to the original pixels.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from chat.session import Session, TraceEntry

DISPLAY_MAX_SIDE = 1024
THUMB_SIDE = 160
TRACE_HEADERS = ["#", "tool", "arguments", "seconds", "result", "decision"]
SCORE_HEADERS = ["label", "score"]


# -- geometry ---------------------------------------------------------------------------------
def display_size(size: tuple[int, int], max_side: int = DISPLAY_MAX_SIDE) -> tuple[int, int]:
    w, h = size
    scale = min(1.0, max_side / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def to_display(image: Image.Image, original_size: tuple[int, int] | None = None) -> Image.Image:
    """``image`` at the display size of an original of ``original_size`` (default: its own size)."""
    target = display_size(original_size or image.size)
    if image.size == target:
        return image
    return image.resize(target, Image.Resampling.LANCZOS)


def to_original(x: float, y: float, original_size: tuple[int, int]) -> tuple[int, int]:
    """A click at (x, y) on the display copy -> the pixel of the original image it lands on."""
    w, h = original_size
    dw, dh = display_size(original_size)
    ox = int((float(x) + 0.5) * w / dw) if dw != w else int(x)
    oy = int((float(y) + 0.5) * h / dh) if dh != h else int(y)
    return min(max(ox, 0), w - 1), min(max(oy, 0), h - 1)


# -- image panel ------------------------------------------------------------------------------
def marked_image(session: Session) -> Image.Image | None:
    """The active image's current version with its markers drawn (full resolution), or None."""
    if not session.active:
        return None
    from tools.markers import draw_markers

    record = session.record()
    pixels = session.pixels(record.id)
    return draw_markers(pixels, list(record.markers)) if record.markers else pixels


def display_image(session: Session, overlay: Image.Image | None = None) -> Image.Image | None:
    """What the image panel shows: an overlay (Set-of-Mark, highlights) or the marked current version."""
    if not session.active:
        return None
    original = session.pixels().size
    if overlay is not None:
        return to_display(overlay.convert("RGB"), original)
    return to_display(marked_image(session), original)


def thumbnail(image: Image.Image, side: int = THUMB_SIDE) -> Image.Image:
    copy = image.copy()
    copy.thumbnail((side, side))
    return copy


def thumbnails(session: Session, files) -> list[tuple[str, str]]:
    """One (thumbnail file, caption) per image: its current version; the active one is starred.
    ``files`` is a :class:`chat.ui.files.ImageFiles`."""
    items = []
    for record in session.images.values():
        vid = record.current_id
        path = files.get((session.id, vid, "thumb"), lambda: thumbnail(session.pixels(vid)))
        star = "★ " if record.id == session.active else ""
        items.append((path, f"{star}{record.id} {record.name}".strip()))
    return items


def version_items(session: Session, files) -> list[tuple[str, str]]:
    """The active image's versions, oldest first: (file, "img1.v2 (note) ★") - full size, for download."""
    if not session.active:
        return []
    record = session.record()
    items = []
    for version in record.versions:
        path = files.get((session.id, version.id, "full"), lambda v=version.id: session.pixels(v))
        current = " ★" if version.number == record.current else ""
        items.append((path, f"{version.id} ({version.note}){current}"))
    return items


def compare_pair(session: Session) -> tuple[str, str] | None:
    """The versions the compare view starts with: the current version's parent (left; the one it was made
    from, e.g. before an edit) and the current version (right). None without an image."""
    if not session.active:
        return None
    current = session.version(session.record().current_id)
    first = session.record().versions[0].id
    return (current.parent or first), current.id


@dataclass
class Compare:
    """The compare view: the version pickers' choices, the two picked ids and their files (None: empty)."""

    choices: list[str]
    left: str | None = None
    right: str | None = None
    images: tuple[str, str] | None = None


# -- chat ---------------------------------------------------------------------------------------
def tool_message(entry: TraceEntry, pending: bool = False) -> dict:
    """A collapsible 'thought' bubble in the chat for one tool call."""
    if pending:
        return {"role": "assistant", "content": _arguments(entry.arguments),
                "metadata": {"title": f"tool: {entry.tool}", "status": "pending"}}
    text = f"Error: {entry.error}" if entry.error else (entry.summary or "done")
    return {"role": "assistant", "content": text,
            "metadata": {"title": f"tool: {entry.tool}", "status": "done", "duration": round(entry.seconds, 2)}}


def chat_messages(session: Session) -> list[dict]:
    """session.messages in Gradio's messages format; each answer is preceded by its tool calls."""
    out: list[dict] = []
    for message in session.messages:
        if message.role == "assistant":
            for index in message.trace:
                if 0 <= index < len(session.trace):
                    out.append(tool_message(session.trace[index]))
        content = message.content
        if message.images and message.role == "user":
            content = f"{content}\n\n_({', '.join(message.images)})_" if content else f"_({', '.join(message.images)})_"
        out.append({"role": message.role, "content": content})
    return out


# -- trace and scores ---------------------------------------------------------------------------
def _arguments(arguments: dict[str, Any]) -> str:
    try:
        return json.dumps(arguments, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(arguments)


def trace_rows(session: Session) -> list[list]:
    rows = []
    for i, entry in enumerate(session.trace):
        result = f"Error: {entry.error}" if entry.error else entry.summary
        rows.append([i, entry.tool, _arguments(entry.arguments), round(entry.seconds, 2), result, entry.decision])
    return rows


_SCORE = re.compile(r"(?P<label>[^,]+?)\s+(?P<score>\d+(?:\.\d+)?(?:e-?\d+)?)\s*(?:,|$|\()")


def score_rows(result: Any = None, summary: str = "") -> list[list]:
    """Rows (label, score) from a structured result ({"labels", "scores"} or an object with them),
    else parsed from a summary like ``cat 0.71, dog 0.29``."""
    if result is not None:
        labels = result.get("labels") if isinstance(result, dict) else getattr(result, "labels", None)
        scores = result.get("scores") if isinstance(result, dict) else getattr(result, "scores", None)
        if labels is not None and scores is not None:
            return [[str(label), float(f"{float(score):.4g}")] for label, score in zip(labels, scores)]
    return [[m.group("label").strip(), float(m.group("score"))] for m in _SCORE.finditer(summary or "")]


# -- status -------------------------------------------------------------------------------------
def status_text(message: str, fraction: float | None = None) -> str:
    if fraction is None:
        return message
    pct = max(0, min(100, round(100 * fraction)))
    bar = "█" * (pct // 10) + "░" * (10 - pct // 10)
    return f"{message} {bar} {pct}%"


def ready_text(session: Session) -> str:
    if not session.active:
        return "Ready. Upload an image to begin."
    record = session.record()
    w, h = session.pixels().size
    marks = f", {len(record.markers)} marker(s)" if record.markers else ""
    return f"Ready. Active image {record.current_id} ({w}x{h}{marks})."


@dataclass
class View:
    """What a handler changes on the page; None means 'leave as is'."""

    session_id: str | None = None
    image: str | None = None  # file paths (see chat.ui.files)
    clear_image: bool = False
    thumbs: list | None = None
    versions: list | None = None
    chat: list | None = None
    status: str | None = None
    trace: list | None = None
    plot: str | None = None  # "" clears the chart
    scores: list | None = None  # [] clears the table
    export: str | None = None  # "" clears the export download
    compare: Compare | None = None
    download: str | None = None  # the current version's file; "" clears the button
    clear_input: bool = False
    warnings: list[str] = field(default_factory=list)
