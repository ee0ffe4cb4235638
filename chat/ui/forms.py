"""The forms under the image (Edit, Remove, Score, Generate): their fields -> a tool's arguments, and the
slash command that runs exactly those arguments (what the chat shows, so typing it, or Regenerate, repeats
the same call). Every problem is one sentence in the page's own syntax (``cat | dog``, ``--steps 20``).
"""

from __future__ import annotations

import re
from typing import Any

from chat.errors import UserError
from chat.session import clean_text
from tools.diffusion import MAX_SEED, parse_seed  # noqa: F401 - the seed box reads as --seed does
from tools.scoring import parse_labels as shared_labels

MIN_SIZE, MAX_SIZE = 64, 1024  # generate: each side, rounded to a multiple of 8 (tools.generate)
SCORE_MODELS = ("clip", "siglip")


def parse_labels(text: str) -> list[str]:
    """Labels from the score box (:func:`tools.scoring.parse_labels`, as ``/score`` reads them)."""
    labels = shared_labels(clean_text(text))
    if not labels:
        raise UserError("Type some labels to score, e.g. 'cat | dog'.")
    return labels


def round8(value: int) -> int:
    return min(MAX_SIZE, max(MIN_SIZE, int(round(value / 8)) * 8))


def parse_size(text: str | None) -> tuple[tuple[int, int], str | None]:
    """'640x448' -> ((640, 448), None); a size that is not a multiple of 8 comes back rounded, with a note
    that says so. Sides outside 64..1024: one sentence naming the range."""
    raw = str(text or "512x512").strip()
    match = re.fullmatch(r"(\d{1,6})\s*[x×*,]\s*(\d{1,6})", raw)
    if not match:
        raise UserError(f"Give the size as WIDTHxHEIGHT, each side {MIN_SIZE} to {MAX_SIZE} pixels, e.g. 640x448; "
                        f"'{raw}' is not one.")
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIZE <= width <= MAX_SIZE and MIN_SIZE <= height <= MAX_SIZE):
        raise UserError(f"Each side must be {MIN_SIZE} to {MAX_SIZE} pixels; {width}x{height} is not.")
    rounded = round8(width), round8(height)
    note = None
    if rounded != (width, height):
        note = f"{width}x{height} was rounded to {rounded[0]}x{rounded[1]} (sides are multiples of 8)."
    return rounded, note


def parse_steps(value, maximum: int) -> int | None:
    """The steps box: empty means the configured default, else a whole number from 1 to ``maximum``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        steps = float(value)
    except (TypeError, ValueError):
        steps = -1.0
    if not steps.is_integer() or not 1 <= steps <= maximum:
        raise UserError(f"Steps must be a whole number from 1 to {maximum}, not {value!r}.")
    return int(steps)


def parse_guidance(value) -> float | None:
    """The guidance box: empty means the configured default, else a number from 0 to 30."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        guidance = float(value)
    except (TypeError, ValueError):
        guidance = -1.0
    if not 0 <= guidance <= 30:
        raise UserError(f"Guidance must be a number from 0 to 30, not {value!r}.")
    return guidance


def words(text: str) -> str:
    """A typed field's text on one line (what a slash command can carry)."""
    return " ".join(clean_text(text).split())


def echo(tool: str, args: dict[str, Any]) -> str:
    """The slash command that runs ``tool`` with exactly ``args`` (the chat line of a button): the tool table's."""
    from chat.toolbox import TOOLS

    return TOOLS[tool].command(args)
