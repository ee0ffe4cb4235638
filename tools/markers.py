"""Visual prompts drawn on an image: red circles, ellipses, boxes, arrows, crosses, points, contours.

The recipes follow "What does CLIP know about a red circle?" (Shtedritski et al. 2023: a red ellipse
around the region, optionally blurring or greying everything outside it) and ViP-LLaVA (arbitrary
visual prompts overlaid on the image, numbered when there are several).

    >>> draw_markers(image, [Marker(x=120, y=80)])                    # a red ring around the click
    >>> draw_markers(image, [Marker(x=120, y=80, shape="arrow", color="green")], outside="blur")

Coordinates are pixels of the image; boxes are ``(x0, y0, x1, y1)`` with ``x1``/``y1`` exclusive.
Nothing here needs a model; drawing never mutates the input image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import ndimage

from tools.errors import UserError

Shape = Literal["circle", "ellipse", "box", "arrow", "cross", "point", "contour"]
Color = Literal["red", "green", "blue", "yellow", "purple", "white", "black", "orange"]
Outside = Literal["none", "blur", "grey"]
BBox = tuple[int, int, int, int]
Masks = Mapping[int, np.ndarray] | Sequence[np.ndarray] | np.ndarray | None

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "purple": (160, 32, 240),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "orange": (255, 165, 0),
}
SHAPES: tuple[str, ...] = Shape.__args__  # type: ignore[attr-defined]
CLICK_SHAPES: tuple[str, ...] = tuple(s for s in SHAPES if s != "contour")  # a click places these (contour: a mask)
PROMPT_COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple")  # the colours offered for prompts


class Marker(BaseModel):
    """One visual prompt: where the person clicked and how to draw it."""

    model_config = ConfigDict(extra="forbid")

    x: int = Field(description="x of the click (the marker's centre), in pixels")
    y: int = Field(description="y of the click (the marker's centre), in pixels")
    shape: Shape = "circle"
    color: Color = "red"
    radius: int | None = Field(None, ge=1, description="size of circle/point/cross/arrow regions; None = scaled")
    bbox: BBox | None = Field(None, description="(x0, y0, x1, y1) that an ellipse or box is fitted around")
    label: str | None = Field(None, max_length=32, description="text drawn next to the marker, e.g. its number")
    clicks: list[tuple[int, int, bool]] | None = Field(
        None, max_length=64, description="the clicks (x, y, positive) SAM segmented the region from; later "
                                         "clicks on the same object refine it")

    @field_validator("bbox")
    @classmethod
    def _order_bbox(cls, box: BBox | None) -> BBox | None:
        if box is None:
            return None
        x0, y0, x1, y1 = box
        x0, x1 = min(x0, x1), max(x0, x1)
        y0, y1 = min(y0, y1), max(y0, y1)
        return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


class MarkInput(BaseModel):
    """Draw the markers the person placed on an image (red circles, arrows, boxes) as an overlay, e.g. to
    show what a question refers to."""

    model_config = ConfigDict(extra="forbid")

    outside: Outside = Field("none", description="blur or grey everything outside the marked regions")


# --------------------------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------------------------
def stroke_width(image_size: tuple[int, int]) -> int:
    """Line width that reads well at this image size: 3 px at 336, 12 px at 2048."""
    return max(2, round(1 + min(image_size) / 186))


def default_radius(image_size: tuple[int, int]) -> int:
    """Radius of the region a plain click designates: 8% of the shorter side."""
    return max(6, round(0.08 * min(image_size)))


def validate_point(x: int, y: int, size: tuple[int, int]) -> None:
    """UserError unless pixel (x, y) lies inside an image of ``size`` = (width, height)."""
    width, height = size
    if not (0 <= x < width and 0 <= y < height):
        raise UserError(f"Point ({x}, {y}) is outside the image ({width}x{height}).")


def marker_radius(marker: Marker, size: tuple[int, int]) -> int:
    return marker.radius if marker.radius is not None else default_radius(size)


def marker_bbox(marker: Marker, size: tuple[int, int]) -> BBox:
    """The box a marker designates: its ``bbox``, or a square of its radius around the click."""
    if marker.bbox is not None:
        return marker.bbox
    r = marker_radius(marker, size)
    return (marker.x - r, marker.y - r, marker.x + r + 1, marker.y + r + 1)


def _ellipse_box(marker: Marker, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The ellipse drawn around a bbox: slightly enlarged so the ring does not cover the region."""
    x0, y0, x1, y1 = marker_bbox(marker, size)
    pad = stroke_width(size) / 2 + max(1.0, 0.04 * max(x1 - x0, y1 - y0))
    return (x0 - pad, y0 - pad, x1 + pad, y1 + pad)


# --------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------
def _mask_for(masks: Masks, index: int | None) -> np.ndarray | None:
    if masks is None:
        return None
    if isinstance(masks, np.ndarray):
        return masks
    if index is None:  # a caller without the marker's index: only an unambiguous single mask will do
        values = list(masks.values()) if isinstance(masks, Mapping) else list(masks)
        return values[0] if len(values) == 1 else None
    if isinstance(masks, Mapping):
        return masks.get(index)
    return masks[index] if 0 <= index < len(masks) else None


def _check_mask(mask: np.ndarray, size: tuple[int, int], what: str) -> np.ndarray:
    mask = np.asarray(mask).astype(bool, copy=False)
    width, height = size
    if mask.shape != (height, width):
        shape = "x".join(str(v) for v in mask.shape[::-1])
        raise UserError(f"The mask for {what} is {shape}, not {width}x{height} like the image.")
    return mask


def region_mask(marker: Marker, size: tuple[int, int], masks: Masks = None, index: int | None = None) -> np.ndarray:
    """The area a marker designates, a bool array of shape (height, width).

    circle/point/cross/arrow: the disc of the marker's radius around the click (an arrow with a bbox:
    the box); ellipse: the inside of the drawn ellipse; box: the box; contour: its mask, taken from
    ``masks`` (a dict or list by marker index, or the one mask itself).
    """
    width, height = size
    if marker.shape == "contour":
        mask = _mask_for(masks, index)
        if mask is None:
            raise UserError(f"The contour marker at ({marker.x}, {marker.y}) has no mask; select a region first.")
        return _check_mask(mask, size, f"the contour marker at ({marker.x}, {marker.y})").copy()
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if marker.shape == "ellipse":
        draw.ellipse(_ellipse_box(marker, size), fill=255)
    elif marker.shape == "box" or (marker.shape == "arrow" and marker.bbox is not None):
        x0, y0, x1, y1 = marker_bbox(marker, size)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=255)
    else:
        r = marker_radius(marker, size)
        draw.ellipse((marker.x - r, marker.y - r, marker.x + r, marker.y + r), fill=255)
    return np.asarray(canvas) > 0


def union_mask(markers: Sequence[Marker], size: tuple[int, int], masks: Masks = None) -> np.ndarray:
    """The union of the regions of all markers."""
    union = np.zeros((size[1], size[0]), dtype=bool)
    for i, marker in enumerate(markers):
        union |= region_mask(marker, size, masks, index=i)
    return union


# --------------------------------------------------------------------------------------------
# Outside treatments (Shtedritski et al.: blur or grey everything but the marked region)
# --------------------------------------------------------------------------------------------
def _blurred(image: Image.Image, radius: float) -> Image.Image:
    """A Gaussian blur, computed on a copy at most ~512 px wide and upsampled (same look, far faster)."""
    factor = max(1, max(image.size) // 512)
    small = image.reduce(factor) if factor > 1 else image
    small = small.filter(ImageFilter.GaussianBlur(max(0.5, radius / factor)))
    return small.resize(image.size, Image.Resampling.BILINEAR) if factor > 1 else small


def treat_outside(image: Image.Image, region: np.ndarray, outside: Outside,
                  blur_radius: float | None = None) -> Image.Image:
    """``image`` with everything outside ``region`` blurred or turned grey (a new image)."""
    if outside == "none":
        return image.copy()
    if outside == "blur":
        radius = blur_radius if blur_radius is not None else max(2.0, min(image.size) / 40)
        treated = _blurred(image, radius)
    elif outside == "grey":
        treated = image.convert("L").convert("RGB")
    else:
        raise UserError(f"outside must be 'none', 'blur' or 'grey', not '{outside}'.")
    keep = Image.fromarray(region.astype(np.uint8) * 255)
    return Image.composite(image, treated, keep)


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def text_color(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with ``rgb``."""
    r, g, b = rgb
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def draw_label(draw: ImageDraw.ImageDraw, text: str, anchor: tuple[float, float], size: tuple[int, int],
               fill: tuple[int, int, int], font_size: int, centered: bool = False) -> tuple[int, int, int, int]:
    """A small filled box with ``text`` whose bottom-left corner (or centre) is at ``anchor``, inside the image."""
    f = font(font_size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=f)
    pad = max(2, font_size // 5)
    bw, bh = right - left + 2 * pad, bottom - top + 2 * pad
    ax, ay = (anchor[0] - bw / 2, anchor[1] + bh / 2) if centered else anchor
    x0 = int(min(max(0, ax), max(0, size[0] - bw)))
    y0 = int(min(max(0, ay - bh), max(0, size[1] - bh)))
    box = (x0, y0, x0 + bw - 1, y0 + bh - 1)
    draw.rectangle(box, fill=fill)
    draw.text((x0 + pad - left, y0 + pad - top), text, fill=text_color(fill), font=f)
    return box


def arrow_geometry(marker: Marker, size: tuple[int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
    """(tip, tail) of an arrow pointing at the marker from outside its region, staying inside the image."""
    width, height = size
    s = stroke_width(size)
    head = max(8, 4 * s)
    length = min(max(3 * head, marker_radius(marker, size)), 0.45 * max(width, height))
    x0, y0, x1, y1 = marker_bbox(marker, size)
    best, best_room = None, -math.inf
    # Preferred directions for the tail: lower-left, lower-right, upper-left, upper-right, then the sides.
    for dx, dy in ((-1, 1), (1, 1), (-1, -1), (1, -1), (-1, 0), (1, 0), (0, 1), (0, -1)):
        norm = math.hypot(dx, dy)
        ux, uy = dx / norm, dy / norm
        if marker.bbox is not None:  # leave the box where the ray from the click crosses its edge
            tx = (x1 - marker.x if ux > 0 else marker.x - x0) / abs(ux) if ux else math.inf
            ty = (y1 - marker.y if uy > 0 else marker.y - y0) / abs(uy) if uy else math.inf
            reach = max(0.0, min(tx, ty))
        else:
            reach = float(marker_radius(marker, size))
        reach += s
        bx = (width - 1 - s - marker.x if ux > 0 else marker.x - s) / abs(ux) if ux else math.inf
        by = (height - 1 - s - marker.y if uy > 0 else marker.y - s) / abs(uy) if uy else math.inf
        room = min(bx, by) - reach  # how long the arrow can be in this direction
        if room >= length:
            best = (ux, uy, reach, length)
            break
        if room > best_room:
            best_room, best = room, (ux, uy, reach, max(room, 0.0))
    ux, uy, reach, span = best  # type: ignore[misc]
    if span < 2 * head:  # the region fills the image this way: point from inside the region instead
        total = span + reach
        span = min(length, total)
        reach = max(0.0, total - span)
    tip = (marker.x + ux * reach, marker.y + uy * reach)
    tail = (tip[0] + ux * span, tip[1] + uy * span)
    return tip, tail


def _draw_arrow(draw: ImageDraw.ImageDraw, marker: Marker, size: tuple[int, int], rgb) -> tuple[float, float]:
    s = stroke_width(size)
    (tx, ty), (sx, sy) = arrow_geometry(marker, size)
    dist = math.hypot(sx - tx, sy - ty) or 1.0
    ux, uy = (sx - tx) / dist, (sy - ty) / dist
    head = min(max(8, 4 * s), dist)
    bx, by = tx + ux * head, ty + uy * head
    draw.line((sx, sy, tx + ux * head * 0.8, ty + uy * head * 0.8), fill=rgb, width=s)
    half = 0.6 * head
    draw.polygon([(tx, ty), (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)], fill=rgb)
    gap = max(11, 4 * s)  # the label sits beyond the tail, centred on the arrow's line
    return sx + ux * gap, sy + uy * gap


def draw_contour(image: Image.Image, mask: np.ndarray, rgb, s: int, inside: bool = False) -> tuple[float, float]:
    """Paint ``rgb`` in a band of width ``s`` just outside the mask (``inside``: just inside it), in place.
    Returns the top-left corner of the painted area."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        raise UserError("The contour marker's mask is empty; select a region with some pixels in it.")
    h, w = mask.shape
    (ys0, ys1), (xs0, xs1) = np.flatnonzero(rows)[[0, -1]], np.flatnonzero(cols)[[0, -1]]
    x0, x1 = max(0, xs0 - s - 1), min(w, xs1 + s + 2)
    y0, y1 = max(0, ys0 - s - 1), min(h, ys1 + s + 2)
    crop = mask[y0:y1, x0:x1]
    band = None if inside else (~crop) & (ndimage.distance_transform_edt(~crop) <= s)
    if band is None or not band.any():  # inside, or the mask fills the image: the inner edge
        band = crop & (ndimage.distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1] <= s)
    image.paste(rgb, (int(x0), int(y0)), Image.fromarray(band.astype(np.uint8) * 255))
    return float(x0), float(y0)


def _draw_one(image: Image.Image, draw: ImageDraw.ImageDraw, marker: Marker, index: int,
              masks: Masks) -> tuple[float, float]:
    """Draw one marker; returns where its label goes (the label box's bottom-left corner; arrows: its centre)."""
    size = image.size
    s = stroke_width(size)
    rgb = COLORS[marker.color]
    r = marker_radius(marker, size)
    x, y = marker.x, marker.y
    if marker.shape == "circle":
        half = r + s / 2
        draw.ellipse((x - half, y - half, x + half, y + half), outline=rgb, width=s)
        return x + 0.72 * half, y - 0.72 * half
    if marker.shape == "ellipse":
        ex0, ey0, ex1, ey1 = _ellipse_box(marker, size)
        draw.ellipse((ex0 - s / 2, ey0 - s / 2, ex1 + s / 2, ey1 + s / 2), outline=rgb, width=s)
        return ex0 + 0.15 * (ex1 - ex0), ey0 + 0.15 * (ey1 - ey0) - s
    if marker.shape == "box":
        bx0, by0, bx1, by1 = marker_bbox(marker, size)
        draw.rectangle((bx0 - s, by0 - s, bx1 + s - 1, by1 + s - 1), outline=rgb, width=s)
        return bx0 - s, by0 - s
    if marker.shape == "arrow":
        return _draw_arrow(draw, marker, size, rgb)
    if marker.shape == "cross":
        d = r / math.sqrt(2)
        draw.line((x - d, y - d, x + d, y + d), fill=rgb, width=s)
        draw.line((x - d, y + d, x + d, y - d), fill=rgb, width=s)
        return x + d, y - d
    if marker.shape == "point":
        dot = min(r, max(3, 2 * s))
        draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=rgb)
        return x + dot, y - dot
    mask = region_mask(marker, size, masks, index=index)
    return draw_contour(image, mask, rgb, s)


def draw_markers(
    image: Image.Image,
    markers: Sequence[Marker],
    *,
    masks: Masks = None,
    outside: Outside = "none",
    blur_radius: float | None = None,
    number: bool = True,
) -> Image.Image:
    """A new RGB image with the markers drawn on it (the input is never changed).

    ``masks[i]`` is the bool mask of marker ``i`` when it is a contour. ``outside`` blurs or greys
    everything outside the union of the marked regions. With several markers (or a marker with a
    ``label``) each gets a numbered label on a small box of its colour.
    """
    size = image.size
    markers = list(markers)
    for marker in markers:
        validate_point(marker.x, marker.y, size)
    base = image.convert("RGB") if image.mode != "RGB" else image
    if outside != "none" and markers:
        out = treat_outside(base, union_mask(markers, size, masks), outside, blur_radius)
    else:
        out = base.copy()
    draw = ImageDraw.Draw(out)
    anchors = [_draw_one(out, draw, marker, i, masks) for i, marker in enumerate(markers)]
    font_size = max(11, 4 * stroke_width(size))
    for i, (marker, anchor) in enumerate(zip(markers, anchors)):
        text = marker.label if marker.label is not None else (str(i + 1) if number and len(markers) > 1 else None)
        if text:
            draw_label(draw, text, anchor, size, COLORS[marker.color], font_size, centered=marker.shape == "arrow")
    return out


__all__ = [
    "CLICK_SHAPES", "COLORS", "PROMPT_COLORS", "SHAPES", "Color", "MarkInput", "Marker", "Outside", "Shape", "arrow_geometry", "default_radius", "draw_contour",
    "draw_label", "draw_markers",
    "marker_bbox", "marker_radius", "region_mask", "stroke_width", "treat_outside", "union_mask", "validate_point",
]
