"""What the router streams to a front end (Gradio UI, CLI, tests) while it answers one message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from chat.session import Message, TraceEntry


@dataclass
class Delta:
    """A piece of the assistant's streamed answer text."""

    text: str


@dataclass
class Status:
    """A progress line: model loading, diffusion step k of n, ... (fraction in [0, 1] or None)."""

    message: str
    fraction: float | None = None


@dataclass
class ToolStarted:
    tool: str
    arguments: dict[str, Any]
    decision: str = ""


@dataclass
class ToolFinished:
    trace_index: int
    entry: TraceEntry
    new_versions: list[str] = field(default_factory=list)  # version ids the tool created
    plot: Image.Image | None = None  # e.g. a bar chart of scores
    overlay: Image.Image | None = None  # e.g. markers / Set-of-Mark drawn on the image (not a version)
    data: dict[str, Any] = field(default_factory=dict)  # the tool's structured data (score: {"result": ScoreResult})


@dataclass
class Done:
    message: Message  # the assistant message as stored in the session
    cancelled: bool = False
    error: str | None = None  # the problem the reply reports (its last "Error: ..." line), if any


Event = Delta | Status | ToolStarted | ToolFinished | Done
