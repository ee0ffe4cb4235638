"""What the router streams to a front end (Gradio UI, CLI, tests) while it answers one message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from chat.session import Message, TraceEntry
from chat.toolbox.spec import ToolOutput


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
    """A tool call ended: its trace record and everything it made (``output``: text, images, data, error)."""

    trace_index: int
    entry: TraceEntry
    output: ToolOutput

    @property
    def error(self) -> str | None:
        return self.output.error

    @property
    def new_versions(self) -> list[str]:  # version ids the tool created
        return self.output.new_versions

    @property
    def plot(self) -> Image.Image | None:  # e.g. a bar chart of scores
        return self.output.plot

    @property
    def overlay(self) -> Image.Image | None:  # e.g. markers / Set-of-Mark drawn on the image (not a version)
        return self.output.overlay

    @property
    def data(self) -> dict[str, Any]:  # the tool's structured result (score: {"result": ScoreResult})
        return self.output.data


@dataclass
class Done:
    message: Message  # the assistant message as stored in the session
    cancelled: bool = False
    error: str | None = None  # the turn's problem (a tool's or the model's error, as its event said), if any


Event = Delta | Status | ToolStarted | ToolFinished | Done
