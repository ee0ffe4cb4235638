"""What the page shows, computed from a Session: no Gradio here, only data and PIL images.

The image panel shows a *display copy*: the active image's current version (its Set-of-Mark overlay when it
has one) scaled so its longer side is between ``DISPLAY_MIN_SIDE`` (small images are enlarged, so a 1x1 or a
300 px upload can be clicked) and ``DISPLAY_MAX_SIDE``; markers, SAM clicks and masks are drawn on that copy
with lines sized for the screen (so a marker stays visible on a 4000x1000 panorama). Gradio reports clicks in
the pixel space of the image it displays, so :func:`to_original` maps them back to the original pixels.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from chat.session import Session

DISPLAY_MAX_SIDE = 1024
DISPLAY_MIN_SIDE = 640
THUMB_SIDE = 160
TRACE_HEADERS = ["#", "tool", "arguments", "seconds", "result", "decision"]
SCORE_HEADERS = ["label", "score"]


# -- geometry ---------------------------------------------------------------------------------
def display_scale(size: tuple[int, int]) -> float:
    longest = max(size)
    if longest > DISPLAY_MAX_SIDE:
        return DISPLAY_MAX_SIDE / longest
    if longest < DISPLAY_MIN_SIDE:
        return DISPLAY_MIN_SIDE / longest
    return 1.0


def display_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    scale = display_scale(size)
    return max(1, round(w * scale)), max(1, round(h * scale))


def to_display(image: Image.Image, original_size: tuple[int, int] | None = None) -> Image.Image:
    """``image`` at the display size of an original of ``original_size`` (default: its own size); enlarged
    images keep their pixels sharp (nearest neighbour), reduced ones are filtered (Lanczos)."""
    target = display_size(original_size or image.size)
    if image.size == target:
        return image
    enlarge = target[0] > image.width
    return image.resize(target, Image.Resampling.NEAREST if enlarge else Image.Resampling.LANCZOS)


def to_original(x: float, y: float, original_size: tuple[int, int]) -> tuple[int, int]:
    """A click at (x, y) on the display copy -> the pixel of the original image it lands on."""
    w, h = original_size
    dw, dh = display_size(original_size)
    ox = int((float(x) + 0.5) * w / dw) if dw != w else int(x)
    oy = int((float(y) + 0.5) * h / dh) if dh != h else int(y)
    return min(max(ox, 0), w - 1), min(max(oy, 0), h - 1)


# -- image panel ------------------------------------------------------------------------------
def _scaled(marker, scale: float):
    """A marker in display pixels."""
    update: dict[str, Any] = {"x": int(marker.x * scale), "y": int(marker.y * scale)}
    if marker.radius is not None:
        update["radius"] = max(1, round(marker.radius * scale))
    if marker.bbox is not None:
        update["bbox"] = tuple(int(v * scale) for v in marker.bbox)
    if marker.clicks:
        update["clicks"] = [(int(x * scale), int(y * scale), keep) for x, y, keep in marker.clicks]
    return marker.model_copy(update=update)


def draw_for_screen(image: Image.Image, markers: list, scale: float, masks: dict | None = None) -> Image.Image:
    """``image`` (already at display size) with the markers drawn in display pixels. Lines are as thick on a
    panorama as on a 4:3 photo: they are drawn on a canvas whose shorter side is at least 2/3 of the longer
    (the stroke width follows the shorter side), then cut back. ``masks``: marker index -> the SAM mask of
    that object (original pixels), tinted under its marker; its clicks are drawn as dots (include green,
    exclude red with a cross)."""
    from tools.markers import COLORS, draw_markers

    if not markers:
        return image
    w, h = image.size
    side = max(w, h)
    cw, ch = max(w, round(side * 2 / 3)), max(h, round(side * 2 / 3))
    canvas = Image.new("RGB", (cw, ch), (0, 0, 0))
    base = image.convert("RGB")
    outlines: dict[int, np.ndarray] = {}
    for index, mask in (masks or {}).items():
        if mask is None or index >= len(markers):
            continue
        small = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST)
        tint = Image.new("RGB", (w, h), COLORS[markers[index].color])
        base = Image.composite(Image.blend(base, tint, 0.35), base, small)
        padded = np.zeros((ch, cw), dtype=bool)
        padded[:h, :w] = np.asarray(small) > 0
        if padded.any():
            outlines[index] = padded
    canvas.paste(base, (0, 0))
    shown = [_scaled(m, scale) for m in markers]
    shown = [m.model_copy(update={"shape": "circle"}) if m.shape == "contour" and i not in outlines else m
             for i, m in enumerate(shown)]
    drawn = draw_markers(canvas, shown, masks=outlines).crop((0, 0, w, h))
    draw = ImageDraw.Draw(drawn)
    dot = max(4, round(side / 160))
    for marker in shown:
        for x, y, keep in marker.clicks or []:
            draw.ellipse((x - dot - 2, y - dot - 2, x + dot + 2, y + dot + 2), fill=(255, 255, 255))
            draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=(20, 170, 60) if keep else (220, 30, 30))
            if not keep:
                d = dot * 0.6
                draw.line((x - d, y - d, x + d, y + d), fill=(255, 255, 255), width=2)
                draw.line((x - d, y + d, x + d, y - d), fill=(255, 255, 255), width=2)
    return drawn


def display_image(session: Session, overlay: Image.Image | None = None, masks: dict | None = None,
                  markers: bool = True) -> Image.Image | None:
    """What the image panel shows: ``overlay`` (a Set-of-Mark overlay or a highlight, at the original size)
    or the current version, at display size, with the image's markers (and SAM clicks and masks) on top."""
    if not session.active:
        return None
    record = session.record()
    original = session.pixels(record.id).size
    base = to_display((overlay if overlay is not None else session.pixels(record.id)).convert("RGB"), original)
    if not markers or not record.markers:
        return base
    return draw_for_screen(base, list(record.markers), display_scale(original), masks)


def marked_thumbnail(session: Session, version_id: str, markers: list, overlay: Image.Image | None = None,
                     side: int = 320) -> Image.Image:
    """A small picture of a version with ``markers`` drawn (what a message showed the model)."""
    pixels = overlay if overlay is not None else session.pixels(version_id)
    scale = min(1.0, side / max(pixels.size)) if max(pixels.size) > side else side / max(pixels.size)
    size = (max(1, round(pixels.width * scale)), max(1, round(pixels.height * scale)))
    small = pixels.convert("RGB").resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST)
    try:
        return draw_for_screen(small, list(markers), scale)
    except Exception:  # noqa: BLE001 - markers of another size: the picture without them
        return small


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


def version_caption(version, current: bool) -> str:
    """'★ img1.v2 ← v1 · edit: make it snowy': the current one starred first, its parent and what made it."""
    star = "★ " if current else ""
    parent = f" ← {version.parent.rsplit('.', 1)[-1]}" if version.parent else ""
    return f"{star}{version.id}{parent} · {version.note}"


def version_items(session: Session, files) -> list[tuple[str, str]]:
    """The active image's versions, oldest first: (thumbnail file, caption). The caption starts with ★ for
    the current one and says which version each was made from and how."""
    if not session.active:
        return []
    record = session.record()
    items = []
    for version in record.versions:
        path = files.get((session.id, version.id, "thumb"), lambda v=version.id: thumbnail(session.pixels(v)))
        items.append((path, version_caption(version, version.number == record.current)))
    return items


def current_index(session: Session) -> int | None:
    """The position of the current version in :func:`version_items` (the gallery shows it selected)."""
    if not session.active:
        return None
    record = session.record()
    return next((i for i, v in enumerate(record.versions) if v.number == record.current), None)


def versions_text(session: Session) -> str:
    """One line under the versions strip: the current version, what made it and from which version."""
    if not session.active:
        return ""
    record = session.record()
    version = session.version(record.current_id)
    made = f", made from {version.parent} ({version.note})" if version.parent else f" ({version.note})"
    return f"Current version: {version.id}{made}."


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


# -- trace and scores ---------------------------------------------------------------------------
def arguments_text(arguments: dict[str, Any]) -> str:
    try:
        return json.dumps(arguments, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(arguments)


_MARGIN = re.compile(r"^fallback: answer directly \((\w+) margin (-?[\d.]+) < ([\d.]+)\)$")
_CALL = re.compile(r"^model tool call \(step (\d+)(?:, logprob margin -?[\d.]+)?\)$")
_UNFINISHED = re.compile(r"^model choice: (\w+), but its arguments did not complete$")


def decision_text(decision: str) -> str:
    """Why the router did what it did, in plain words."""
    if decision == "button":
        return "a button on the page"
    if decision == "slash command":
        return "a command you typed"
    if decision == "numbered answer":
        return "your answer to 'which one?'"
    if decision == "model choice: answer directly":
        return "the model chose to answer in words"
    if match := _MARGIN.match(decision):
        return f"answered in words: the model leaned to {match.group(1)}, but not clearly enough"
    if match := _CALL.match(decision):
        return f"the model called this tool (step {match.group(1)})"
    if match := _UNFINISHED.match(decision):
        return f"the model chose {match.group(1)}, but could not finish its arguments"
    if decision in ("answer directly (unusable tool call)", "model tool call: unusable, answered directly"):
        return "the model asked for a tool it cannot use, so it answered in words"
    if decision == "model tool call: none, answered directly":
        return "the model answered in words"
    if decision == "answer directly (the model has no tool calling)":
        return "answered in words: this model cannot call tools"
    if decision == "answer directly (the server refuses tools)":
        return "answered in words: the model's server refuses tools"
    if decision.startswith("after "):
        return f"the answer after the {decision[6:]} tool"
    return decision


def trace_rows(session: Session) -> list[list]:
    """The trace table, numbered from 1; the decision in plain words."""
    rows = []
    for i, entry in enumerate(session.trace, start=1):
        result = f"Error: {entry.error}" if entry.error else entry.summary
        rows.append([i, entry.tool, arguments_text(entry.arguments), round(entry.seconds, 2), result,
                     decision_text(entry.decision)])
    return rows


def score_rows(result: Any) -> list[list]:
    """Rows (label, score) of a score tool's structured result ({"labels", "scores"} or an object with them)."""
    labels = result.get("labels") if isinstance(result, dict) else getattr(result, "labels", None)
    scores = result.get("scores") if isinstance(result, dict) else getattr(result, "scores", None)
    if labels is None or scores is None:
        return []
    return [[str(label), float(f"{float(score):.4g}")] for label, score in zip(labels, scores)]


# -- status -------------------------------------------------------------------------------------
def count(n: int, word: str) -> str:
    """'1 image', '2 images'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


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
    n = len(record.markers)
    marks = f", {n} marker{'s' if n != 1 else ''}" if n else ""
    return f"Ready. Active image {record.current_id} ({w}x{h}{marks})."


def session_label(session: Session, title: str = "") -> str:
    """The header's line about the session: its title (or 'New session') and its id."""
    name = title or session.title or "New session"
    return f"**{name}** · session `{session.id[:8]}`"


def revision(session: Session) -> str:
    """What the page shows of a session, in short: another tab on the same session changed it when this differs."""
    images = [(r.id, r.current, len(r.versions), len(r.markers)) for r in session.images.values()]
    last = session.messages[-1].content[-40:] if session.messages else ""
    return f"{len(session.messages)}|{len(session.trace)}|{session.active}|{images}|{len(last)}|{hash(last)}"


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
    # the page around the image and the chat
    sessions: list | None = None  # [(label, id)] for the sessions list
    title: str | None = None  # the header line (session_label)
    busy: bool | None = None  # an answer runs in this session: tool buttons off, Stop on
    tabs: dict[str, str] = field(default_factory=dict)  # tab name (edit, score, generate, compare) -> its status
    confirm: tuple[str, str] | None = None  # (what, the question) to confirm; ("", "") hides the question
    versions_index: int | None = None  # the current version's place in the versions strip
    versions_note: str | None = None  # the line under the strip
    show_tab: str | None = None  # open this tab (e.g. "compare")
    revision: str | None = None  # what the page now shows (see revision())
    rename: str | None = None  # the rename box's text
    grounded: bool | None = None  # the session's grounded-answers toggle
