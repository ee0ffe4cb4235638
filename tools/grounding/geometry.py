"""Boxes and masks: IoU, tight boxes, and the chat model's normalised boxes of the padded square image.

Boxes are ``(x0, y0, x1, y1)`` in pixels with ``x1``/``y1`` exclusive, so a box's area is
``(x1 - x0) * (y1 - y0)`` and a one-pixel box is ``(x, y, x + 1, y + 1)``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tools.grounding.schemas import Box, GroundingError


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0) + max(0.0, bx1 - bx0) * max(0.0, by1 - by0) - inter
    return float(inter / union) if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks of one shape (0 when both are empty)."""
    inter = int(np.count_nonzero(a & b))
    union = int(np.count_nonzero(a)) + int(np.count_nonzero(b)) - inter
    return inter / union if union else 0.0


def mask_box(mask: np.ndarray) -> Box:
    """The tight box around a mask's pixels; GroundingError when it has none."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        raise GroundingError("The region is empty.")
    y0, y1 = np.flatnonzero(rows)[[0, -1]]
    x0, x1 = np.flatnonzero(cols)[[0, -1]]
    return int(x0), int(y0), int(x1) + 1, int(y1) + 1


def box_mask(box: Sequence[int], size: tuple[int, int]) -> np.ndarray:
    """The bool mask (height, width) of a box, clipped to the image."""
    mask = np.zeros((size[1], size[0]), dtype=bool)
    x0, y0, x1, y1 = (int(v) for v in box)
    mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
    return mask


def scale_box(box: Sequence[float], src: tuple[int, int], dst: tuple[int, int]) -> Box:
    """A box in an image of size ``src`` moved to the same place in an image of size ``dst`` (rounded outwards)."""
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    x0, y0, x1, y1 = box
    return (max(0, math.floor(x0 * sx)), max(0, math.floor(y0 * sy)),
            min(dst[0], math.ceil(x1 * sx)), min(dst[1], math.ceil(y1 * sy)))


def padded_square_box(normalised: Sequence[float], size: tuple[int, int]) -> Box:
    """Pixels of the image for a box ``[x0, y0, x1, y1]`` in [0, 1] of the image padded to a centred square.

    LLaVA-1.5 sees the image padded to a square (its ``expand2square``: the image centred on a side of
    ``max(width, height)``) and was trained on RefCOCO boxes normalised to that square; this undoes the padding
    and clips the box to the image. GroundingError for anything that is not four numbers in [0, 1] with
    ``x1 > x0`` and ``y1 > y0``, or a box that lies wholly in the padding.
    """
    try:
        values = [float(v) for v in normalised]
    except (TypeError, ValueError):
        raise GroundingError(f"The chat model's box {normalised!r} is not four numbers.") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise GroundingError(f"The chat model's box {list(normalised)!r} is not four numbers in [0, 1].")
    x0, y0, x1, y1 = values
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise GroundingError(f"The chat model's box {values} is not [x0, y0, x1, y1] within [0, 1] with x1 > x0 "
                             "and y1 > y0.")
    width, height = size
    side = max(width, height)
    left, top = (side - width) / 2, (side - height) / 2
    box = (max(0, math.floor(x0 * side - left)), max(0, math.floor(y0 * side - top)),
           min(width, math.ceil(x1 * side - left)), min(height, math.ceil(y1 * side - top)))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise GroundingError(f"The chat model's box {values} lies in the padding, outside the image.")
    return box


__all__ = ["box_iou", "box_mask", "mask_box", "mask_iou", "padded_square_box", "scale_box"]
