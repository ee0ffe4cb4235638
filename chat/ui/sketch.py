"""The sketch pad's drawing as an image (or None when nothing is drawn)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def sketch_drawing(value) -> Image.Image | None:
    """The drawing on the sketch pad as an RGB image, or None when nothing is drawn.

    ``value`` is what Gradio's Sketchpad passes (a dict with 'composite', 'background' and 'layers'), or
    an image or a path. A canvas of a single colour is no drawing."""
    if isinstance(value, dict):
        value = value.get("composite") if value.get("composite") is not None else value.get("background")
    if value is None or value == "":
        return None
    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, np.ndarray):
        image = Image.fromarray(value.astype(np.uint8))
    else:
        from chat.imageio import load_image_file

        image = load_image_file(value if isinstance(value, (str, os.PathLike)) else getattr(value, "path", ""))
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:  # transparent canvas: lines on white
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB")
    lo, hi = image.convert("L").getextrema()
    return image if hi - lo >= 16 else None
