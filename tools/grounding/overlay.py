"""The picture of a ``find`` result: every returned region outlined and numbered by rank, the best one tinted red."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from tools.grounding.schemas import Region

BEST = (255, 0, 0)
OTHERS = [(255, 215, 0), (0, 200, 255), (255, 0, 255), (0, 255, 0), (255, 140, 0), (255, 255, 255)]


def draw_regions(image: Image.Image, regions: Sequence[Region]) -> Image.Image:
    """A new RGB image: region ``k`` (rank k) outlined in a colour of its own with its number; rank 1 in red,
    tinted. Regions are drawn worst first, so the best is on top."""
    from tools.markers import draw_contour, draw_label, stroke_width
    from tools.som import label_point

    out = image.convert("RGB") if image.mode != "RGB" else image.copy()
    s = stroke_width(out.size)
    font_size = max(11, 4 * s)
    ordered = sorted(regions, key=lambda r: -r.id)
    labels = []
    for region in ordered:
        mask = np.asarray(region.mask, dtype=bool)
        if mask.shape != (out.height, out.width) or not mask.any():
            raise ValueError(f"region {region.id}'s mask does not match the {out.width}x{out.height} image")
        colour = BEST if region.id == 1 else OTHERS[(region.id - 2) % len(OTHERS)]
        if region.id == 1:
            tint = Image.blend(out, Image.new("RGB", out.size, BEST), 0.35)
            out = Image.composite(tint, out, Image.fromarray(mask.astype(np.uint8) * 255))
        draw_contour(out, mask, colour, s, inside=True)
        labels.append((region, colour, label_point(mask)))
    draw = ImageDraw.Draw(out)
    for region, colour, (x, y) in labels:
        draw_label(draw, str(region.id), (x, y), out.size, colour, font_size, centered=True)
    return out


__all__ = ["draw_regions"]
