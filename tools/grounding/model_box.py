"""Asking the chat model for a phrase's box the way LLaVA-1.5 was fine-tuned on RefCOCO.

LLaVA-1.5's instruction data (``llava_v1_5_mix665k``) turns RefCOCO/RefCOCO+/RefCOCOg into turns such as
``Please provide the bounding box coordinate of the region this sentence describes: a man in a red shirt.``
answered ``[0.23, 0.41, 0.55, 0.98]``: ``x0, y0, x1, y1`` with two decimals, normalised to the image padded to a
centred square (``expand2square``), which :func:`tools.grounding.padded_square_box` undoes. The answer is
generated under :data:`BOX_PATTERN` (grammar-constrained decoding), so it always parses.
"""

from __future__ import annotations

import re
from typing import Sequence

from tools.grounding.schemas import GroundingError

BOX_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: {phrase}."
_NUMBER = r"(0\.[0-9]{2}|1\.00)"
BOX_PATTERN = r"\[" + r", ".join([_NUMBER] * 4) + r"\]"  # the trained answer shape: [0.23, 0.41, 0.55, 0.98]
_LOOSE = re.compile(r"\[\s*([0-9.]+)\s*,\s*([0-9.]+)\s*,\s*([0-9.]+)\s*,\s*([0-9.]+)\s*\]")


def box_prompt(phrase: str) -> str:
    """The RefCOCO question for ``phrase`` (its final full stop not doubled)."""
    return BOX_PROMPT.format(phrase=" ".join(phrase.split()).rstrip("."))


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``[x0, y0, x1, y1]`` (normalised) from the model's answer; GroundingError when it gave no usable box."""
    match = _LOOSE.search(text or "")
    if match is None:
        raise GroundingError("The chat model did not answer with a box.")
    try:
        x0, y0, x1, y1 = (float(v) for v in match.groups())
    except ValueError:
        raise GroundingError("The chat model did not answer with a box.") from None
    return check_box((x0, y0, x1, y1))


def check_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    """A normalised box inside ``[0, 1]`` with ``x0 < x1`` and ``y0 < y1``; GroundingError otherwise."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(0.0 <= v <= 1.0 for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise GroundingError(f"The chat model's box [{x0:.2f}, {y0:.2f}, {x1:.2f}, {y1:.2f}] is empty or "
                             "outside the image.")
    return x0, y0, x1, y1


__all__ = ["BOX_PATTERN", "BOX_PROMPT", "box_prompt", "check_box", "parse_box"]
