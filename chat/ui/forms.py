"""The forms under the image (Edit, Remove, Score, Generate): their fields -> a tool's arguments, and the
slash command that runs exactly those arguments (what the chat shows, so typing it, or Regenerate, repeats
the same call). Every problem is one sentence in the page's own syntax (``cat | dog``, ``--steps 20``).
"""

from __future__ import annotations

import re
from typing import Any

from chat.errors import UserError
from chat.session import clean_text

MAX_SEED = 2**32 - 1
MIN_SIZE, MAX_SIZE = 64, 1024  # generate: each side, rounded to a multiple of 8 (tools.generate)
SCORE_MODELS = ("clip", "siglip")


def parse_labels(text: str) -> list[str]:
    """Labels from the score box: one per line or separated by '|'; commas only when neither is used.
    Repeated labels (ignoring case) count once."""
    text = clean_text(text).strip()
    if not text:
        raise UserError("Type some labels to score, e.g. 'cat | dog'.")
    if "|" in text or "\n" in text:
        parts = text.replace("\n", "|").split("|")
    else:
        parts = text.split(",")
    labels, seen = [], set()
    for label in (" ".join(p.split()) for p in parts if p.strip()):
        if label.casefold() not in seen:
            seen.add(label.casefold())
            labels.append(label)
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


def parse_seed(value) -> int | None:
    """The seed box: empty means None (a new random seed each time), else a whole number from 0 to MAX_SEED."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    problem = UserError(f"The seed must be a whole number from 0 to {MAX_SEED}, not {value!r}.")
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise problem
    try:
        seed = int(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise problem from None
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"The seed must be a whole number from 0 to {MAX_SEED}, not {seed}.")
    return seed


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


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def echo(tool: str, args: dict[str, Any]) -> str:
    """The slash command that runs ``tool`` with exactly ``args`` (the chat line of a button)."""
    parts = [f"/{tool}"]
    if tool == "score":
        labels = list(args.get("labels") or [])
        line = " | ".join(labels) + (" |" if len(labels) == 1 and "," in labels[0] else "")
        model = args.get("model", "clip")
        if model != "clip" or re.search(r"(?:^|\s)(?:--(?:clip|siglip)\b|(?:clip|siglip):)", line, re.I) \
                or re.match(r"img\d+", line):
            line = f"{model}: {line}"
        return f"/score {line}"
    if tool == "sketch" and args.get("image"):
        parts.append(str(args["image"]))
    text = args.get("instruction") or args.get("target") or args.get("prompt")
    if text:
        parts.append(str(text))
    if tool == "generate" and args.get("width") and args.get("height"):
        parts.append(f"--size {args['width']}x{args['height']}")
    if args.get("steps") is not None:
        parts.append(f"--steps {args['steps']}")
    if args.get("seed") is not None:
        parts.append(f"--seed {args['seed']}")
    if args.get("guidance_scale") is not None:
        parts.append(f"--guidance {_number(args['guidance_scale'])}")
    return " ".join(parts)
