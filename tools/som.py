"""Set-of-Mark prompting (Yang et al. 2023): split the image into regions and number them, so a model
(or a person) can refer to "[3]" or "mark 5"; then parse such references and highlight the regions.

    >>> marked, marks, masks = set_of_mark(image, max_regions=24)
    >>> ids = parse_mark_refs("The cat is [2] and the dog is mark 4.")   # [2, 4]
    >>> highlight_marks(image, masks, ids)

Segmentation runs on a copy whose longest side is at most 512 px (SLIC superpixels merged by colour,
or SAM prompted on a grid of points); drawing happens at full size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageStat
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from tools.errors import UserError
from tools.markers import COLORS, Color, draw_contour, font, stroke_width
from tools.regions import mask_bbox, sam_masks

Method = Literal["slic", "sam"]
WORK_SIDE = 512
LABEL_GRID = 128
# Distinct, readable region colours (Tableau 10 + a few), cycled.
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (255, 215, 0), (0, 128, 128),
]


class Mark(BaseModel):
    """One numbered region."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1)
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    center: tuple[int, int]  # where its number is drawn, a pixel inside the region
    area: int = Field(ge=1)
    label_box: tuple[int, int, int, int] | None = None  # the drawn number's box (x0, y0, x1, y1), inclusive


class SetOfMarkInput(BaseModel):
    """Number the regions of an image (Set-of-Mark)."""

    model_config = ConfigDict(extra="forbid")

    max_regions: int = Field(24, ge=1, le=200, description="at most this many numbered regions")
    method: Method = Field("slic", description="'slic' (fast, no model) or 'sam' (Segment Anything)")
    fill: bool = Field(False, description="tint each region with a translucent colour")
    boundaries: bool = Field(True, description="draw the region boundaries")


class SomInput(SetOfMarkInput):
    """Split an image into numbered regions (Set-of-Mark) so that regions can be referred to as [1], [2], ..."""

    max_regions: int | None = Field(None, ge=1, le=200, description="at most this many regions; empty: default")
    method: Method | None = Field(None, description="'slic' (fast, no model) or 'sam' (Segment Anything)")


# --------------------------------------------------------------------------------------------
# Proposals (on a small working copy)
# --------------------------------------------------------------------------------------------
def _work_copy(image: Image.Image) -> Image.Image:
    image = image.convert("RGB") if image.mode != "RGB" else image
    scale = WORK_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _merge_by_colour(labels: np.ndarray, rgb: np.ndarray, threshold: float) -> np.ndarray:
    """Merge adjacent superpixels whose mean CIELAB colours differ by less than ``threshold``."""
    from skimage import color, graph

    lab = color.rgb2lab(rgb.astype(np.float32) / 255).reshape(-1, 3)
    flat = labels.ravel()
    counts = np.bincount(flat)
    ids = np.flatnonzero(counts)
    means = np.stack([np.bincount(flat, weights=lab[:, c], minlength=counts.size) for c in range(3)], axis=1)
    means[ids] /= counts[ids, None]
    # adjacent superpixels: the distinct (low, high) pairs across horizontal and vertical steps
    across_x, across_y = labels[:, :-1] != labels[:, 1:], labels[:-1] != labels[1:]
    a = np.concatenate([labels[:, :-1][across_x], labels[:-1][across_y]]).astype(np.int64)
    b = np.concatenate([labels[:, 1:][across_x], labels[1:][across_y]]).astype(np.int64)
    low, high = np.divmod(np.unique(np.minimum(a, b) * counts.size + np.maximum(a, b)), counts.size)
    weights = np.linalg.norm(means[low] - means[high], axis=1)
    rag = graph.RAG()
    rag.add_nodes_from((int(i), {"labels": [int(i)]}) for i in ids)
    rag.add_weighted_edges_from(zip(low.tolist(), high.tolist(), weights.tolist()))
    return graph.cut_threshold(labels, rag, threshold)


def _slic_labels(work: Image.Image, max_regions: int) -> np.ndarray:
    from skimage.segmentation import slic

    rgb = np.asarray(work)
    # float32 (not skimage's default float64): the same superpixels, faster
    segments = slic(rgb.astype(np.float32) / 255, n_segments=max(8, 4 * max_regions), compactness=10, start_label=1)
    return _merge_by_colour(segments, rgb, threshold=12.0) + 1


def _sam_labels(sam_bundle: Any, work: Image.Image, max_regions: int) -> np.ndarray:
    """SAM prompted on a grid; masks deduplicated by IoU and painted largest first (smaller ones on top)."""
    n = min(24, max(6, math.ceil(math.sqrt(6 * max_regions))))
    xs = ((np.arange(n) + 0.5) * work.width / n).astype(int)
    ys = ((np.arange(n) + 0.5) * work.height / n).astype(int)
    masks, scores = sam_masks(sam_bundle, work, [(int(x), int(y)) for y in ys for x in xs], batch=16)
    kept: list[np.ndarray] = []
    for i in np.argsort(-scores):
        mask = masks[i]
        area = int(mask.sum())
        if area == 0:
            continue
        if any((mask & k).sum() / (area + k.sum() - (mask & k).sum()) > 0.7 for k in kept):
            continue
        kept.append(mask)
    labels = np.zeros(work.size[::-1], dtype=np.int32)
    for k, mask in enumerate(sorted(kept, key=lambda m: -int(m.sum())), start=1):
        labels[mask] = k
    return labels


def _finalize(labels: np.ndarray, max_regions: int) -> np.ndarray:
    """Split into connected regions, drop tiny ones, keep the largest ``max_regions``, number them in
    reading order (top to bottom, left to right). Returns a uint8 map, 0 = no region."""
    from skimage.measure import label as connected

    out, count = connected(labels, background=0, connectivity=1, return_num=True)
    if count == 0:
        return np.zeros(labels.shape, dtype=np.uint8)
    flat = out.ravel()
    areas = np.bincount(flat, minlength=count + 1)
    min_area = max(4, int(0.002 * labels.size))
    order = [i + 1 for i in np.argsort(-areas[1:], kind="stable") if areas[i + 1] >= min_area][:max_regions]
    if not order:
        order = [int(np.argmax(areas[1:])) + 1]
    rows, cols = np.indices(labels.shape)
    cy = np.bincount(flat, weights=rows.ravel(), minlength=count + 1)[order] / areas[order]
    cx = np.bincount(flat, weights=cols.ravel(), minlength=count + 1)[order] / areas[order]
    band = labels.shape[0] / 8
    order = [r for _, _, r in sorted(zip((cy // band).astype(int).tolist(), cx.tolist(), order))]
    lut = np.zeros(count + 1, dtype=np.uint8)
    lut[order] = np.arange(1, len(order) + 1)
    return lut[out]


def _label_map(image: Image.Image, max_regions: int, method: Method,
               sam_bundle: Any) -> tuple[np.ndarray, list[tuple[slice, slice]]]:
    """Region ids 1..N at full size (uint8, 0 = no region) and each region's bounding box there (row and column
    slices, region ``k`` at ``k - 1``). The boxes are found on the working copy and carried to full size through
    the resize's own pixel mapping: exact, without a pass over the full-size map."""
    work = _work_copy(image)
    if method == "sam":
        if sam_bundle is None:
            raise UserError("Set-of-Mark with method 'sam' needs the SAM model; add 'sam' to the config's models.")
        raw = _sam_labels(sam_bundle, work, max_regions)
    elif method == "slic":
        raw = _slic_labels(work, max_regions)
    else:
        raise UserError(f"method must be 'slic' or 'sam', not '{method}'.")
    small = _finalize(raw, max_regions)
    boxes = ndimage.find_objects(small)
    if small.shape == (image.height, image.width):
        return small, boxes
    full = np.asarray(Image.fromarray(small).resize(image.size, Image.Resampling.NEAREST))
    rows, cols = _nearest_sources(small.shape[0], image.height), _nearest_sources(small.shape[1], image.width)
    return full, [(_carry(r, rows), _carry(c, cols)) for r, c in boxes]


def _nearest_sources(n_in: int, n_out: int) -> np.ndarray:
    """For each of ``n_out`` pixels along one axis, the pixel (of ``n_in``) that Pillow's nearest resize copies."""
    line = Image.fromarray(np.arange(n_in, dtype=np.int32)[None, :])
    return np.asarray(line.resize((n_out, 1), Image.Resampling.NEAREST))[0]


def _carry(span: slice, sources: np.ndarray) -> slice:
    """The output pixels whose source lies in ``span`` (``sources`` never decreases)."""
    return slice(int(np.searchsorted(sources, span.start)), int(np.searchsorted(sources, span.stop - 1, side="right")))


def propose_regions(image: Image.Image, max_regions: int = 24, method: Method = "slic",
                    sam_bundle: Any = None) -> list[np.ndarray]:
    """Up to ``max_regions`` disjoint regions (bool masks of the image's size), in reading order."""
    args = SetOfMarkInput(max_regions=max_regions, method=method)
    labels, boxes = _label_map(image, args.max_regions, args.method, sam_bundle)
    return [mask for mask, _ in _regions(labels, boxes)]


def _regions(labels: np.ndarray, boxes: list[tuple[slice, slice]]) -> list[tuple[np.ndarray, tuple[slice, slice]]]:
    """(full-size bool mask, its bounding slices) of each region 1..N of ``labels``; only its box is compared."""
    out = []
    for k, box in enumerate(boxes, start=1):
        mask = np.zeros(labels.shape, dtype=bool)
        mask[box] = labels[box] == k
        out.append((mask, box))
    return out


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------
def label_point(mask: np.ndarray) -> tuple[int, int]:
    """The pixel of the mask farthest from its edge (and the image's): where its number reads best."""
    x0, y0, x1, y1 = mask_bbox(mask)
    x, y = _deepest_point(mask[y0:y1, x0:x1])
    return x0 + x, y0 + y


def _deepest_point(crop: np.ndarray) -> tuple[int, int]:
    """:func:`label_point` within a mask cropped to its bounding box, in the crop's coordinates. The depth is
    measured on a grid of at most ``LABEL_GRID`` points a side (a number's box spans several grid steps)."""
    step = max(1, math.ceil(max(crop.shape) / LABEL_GRID))
    sample = crop[::step, ::step]
    if not sample.any():  # a thin region the grid misses
        step, sample = 1, crop
    depth = ndimage.distance_transform_edt(np.pad(sample, 1))[1:-1, 1:-1]
    rows, cols = np.nonzero(depth >= 0.8 * depth.max())  # deep enough; of those, the most central
    cy, cx = ndimage.center_of_mass(sample)
    best = int(np.argmin((rows - cy) ** 2 + (cols - cx) ** 2))
    return int(cols[best]) * step, int(rows[best]) * step


def _number(draw: ImageDraw.ImageDraw, image: Image.Image, text: str, centre: tuple[int, int], size: int,
            fill: tuple[int, int, int] | None = None) -> tuple[int, int, int, int]:
    """``text`` on a small box centred at ``centre`` (kept inside the image), contrasting with what is under it."""
    f = font(size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=f)
    pad = max(2, size // 5)
    bw, bh = right - left + 2 * pad, bottom - top + 2 * pad
    x0 = int(min(max(0, centre[0] - bw // 2), max(0, image.width - bw)))
    y0 = int(min(max(0, centre[1] - bh // 2), max(0, image.height - bh)))
    box = (x0, y0, min(image.width, x0 + bw) - 1, min(image.height, y0 + bh) - 1)
    if fill is None:
        bright = ImageStat.Stat(image.crop((box[0], box[1], box[2] + 1, box[3] + 1)).convert("L")).mean[0] > 127
        fill = (0, 0, 0) if bright else (255, 255, 255)
    ink = (255, 255, 255) if sum(fill) / 3 < 128 else (0, 0, 0)
    draw.rectangle(box, fill=fill)
    draw.text((x0 + pad - left, y0 + pad - top), text, fill=ink, font=f)
    return box


def _number_size(size: tuple[int, int]) -> int:
    return max(10, round(min(size) / 48))


def _region_colours(labels: np.ndarray) -> Image.Image:
    palette = [0, 0, 0] + [v for k in range(255) for v in PALETTE[k % len(PALETTE)]]
    colours = Image.fromarray(labels)
    colours.putpalette(palette)
    return colours.convert("RGB")


def _paint(image: Image.Image, where: np.ndarray, labels: np.ndarray) -> Image.Image:
    """``image`` with the pixels ``where`` in their region's colour (only those pixels are touched)."""
    palette = np.array([(0, 0, 0)] + [PALETTE[k % len(PALETTE)] for k in range(255)], dtype=np.uint8)
    out = np.array(image)
    index = np.flatnonzero(where)
    out.reshape(-1, 3)[index] = palette[labels.ravel()[index]]
    return Image.fromarray(out)


def _boundaries(labels: np.ndarray, width: int) -> np.ndarray:
    """Pixels of a region within ``width`` of a different label (a band just inside each region)."""
    edge = np.zeros(labels.shape, dtype=bool)
    step_x, step_y = labels[:, 1:] != labels[:, :-1], labels[1:] != labels[:-1]
    edge[:, 1:] |= step_x
    edge[:, :-1] |= step_x
    edge[1:] |= step_y
    edge[:-1] |= step_y
    for _ in range((width - 1) // 2 if width > 2 else 0):  # a 4-neighbour dilation per step
        grown = edge.copy()
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
        grown[1:] |= edge[:-1]
        grown[:-1] |= edge[1:]
        edge = grown
    return edge & (labels > 0)


def _l(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(mask.astype(np.uint8) * 255)


def set_of_mark(
    image: Image.Image,
    max_regions: int = 24,
    method: Method = "slic",
    sam_bundle: Any = None,
    fill: bool = False,
    boundaries: bool = True,
) -> tuple[Image.Image, list[Mark], list[np.ndarray]]:
    """Propose regions and draw their numbers: (marked image, marks, masks), ``masks[i]`` for mark ``i + 1``.

    Each number sits at its region's deepest interior point on a box that contrasts with the image there.
    """
    args = SetOfMarkInput(max_regions=max_regions, method=method, fill=fill, boundaries=boundaries)
    base = image.convert("RGB") if image.mode != "RGB" else image
    labels, boxes = _label_map(base, args.max_regions, args.method, sam_bundle)
    out = base
    if args.fill:
        out = Image.composite(Image.blend(out, _region_colours(labels), 0.35), out, _l(labels > 0))
    if args.boundaries:
        out = _paint(out, _boundaries(labels, max(2, stroke_width(base.size) // 3)), labels)
    if out is base:
        out = base.copy()  # drawn on below; the caller's image stays as it was
    draw = ImageDraw.Draw(out)
    masks, marks = [], []
    for k, (mask, (rows, cols)) in enumerate(_regions(labels, boxes), start=1):
        crop = mask[rows, cols]
        x, y = _deepest_point(crop)
        centre = (cols.start + x, rows.start + y)
        box = _number(draw, out, str(k), centre, _number_size(base.size))
        bbox = (cols.start, rows.start, cols.stop, rows.stop)
        marks.append(Mark(id=k, bbox=bbox, center=centre, area=int(np.count_nonzero(crop)), label_box=box))
        masks.append(mask)
    return out, marks, masks


# --------------------------------------------------------------------------------------------
# References in text, and highlighting them
# --------------------------------------------------------------------------------------------
_NUMBER_LIST = r"\d+(?:\s*(?:,\s*(?:and\s+|or\s+)?|and\s+|or\s+|&\s*)\d+)*"
_REF = re.compile(
    r"\[\s*(?P<bracket>" + _NUMBER_LIST + r")\s*\]"
    r"|#\s?(?P<hash>\d+)"
    r"|\b(?:marks?|regions?|labels?|areas?|segments?|numbers?|objects?)\s+(?:#\s?)?(?P<word>" + _NUMBER_LIST + r")\b",
    re.IGNORECASE,
)


def parse_mark_refs(text: str) -> list[int]:
    """Mark ids referred to in ``text`` ("[3]", "mark 3", "marks 2 and 5", "region 4", "#2"), unique, in
    order of appearance. Bare numbers ("3 cats") are not references."""
    found: list[int] = []
    for match in _REF.finditer(text or ""):
        group = next(g for g in ("bracket", "hash", "word") if match.group(g) is not None)
        for number in re.findall(r"\d+", match.group(group)):
            value = int(number)
            if value >= 1 and value not in found:
                found.append(value)
    return found


def _masks_by_id(regions: Any, size: tuple[int, int]) -> dict[int, np.ndarray]:
    if isinstance(regions, Mapping):
        return {int(k): np.asarray(v, dtype=bool) for k, v in regions.items()}
    out: dict[int, np.ndarray] = {}
    for i, item in enumerate(regions):
        if isinstance(item, Mark):
            mask = np.zeros((size[1], size[0]), dtype=bool)
            x0, y0, x1, y1 = item.bbox
            mask[max(0, y0):y1, max(0, x0):x1] = True
            out[item.id] = mask
        else:
            out[i + 1] = np.asarray(item, dtype=bool)
    return out


def highlight_marks(image: Image.Image, masks_or_marks: Sequence[Any] | Mapping[int, np.ndarray], ids: Sequence[int],
                    color: Color = "red") -> Image.Image:
    """A new image with the cited regions outlined and tinted in ``color``, each with its number.

    ``masks_or_marks``: the masks from :func:`set_of_mark` (mask ``i`` is mark ``i + 1``), a dict id -> mask,
    or the :class:`Mark` list (their boxes are highlighted).
    """
    base = image.convert("RGB") if image.mode != "RGB" else image
    regions = _masks_by_id(masks_or_marks, base.size)
    missing = [i for i in ids if i not in regions]
    if missing:
        have = f"marks 1-{max(regions)}" if regions else "no marks"
        raise UserError(f"There is no mark {missing[0]}; the image has {have}.")
    for i in ids:
        if regions[i].shape != (base.height, base.width):
            raise UserError(f"The mask of mark {i} does not match the {base.width}x{base.height} image.")
    rgb = COLORS[color]
    out = base.copy()
    if ids:
        union = np.logical_or.reduce([regions[i] for i in ids])
        out = Image.composite(Image.blend(out, Image.new("RGB", out.size, rgb), 0.35), out, _l(union))
    s = stroke_width(base.size)
    centres = {}
    for i in ids:
        if regions[i].any():
            centres[i] = label_point(regions[i])
            draw_contour(out, regions[i], rgb, s, inside=True)
    draw = ImageDraw.Draw(out)
    for i, centre in centres.items():
        _number(draw, out, str(i), centre, _number_size(base.size))
    return out


__all__ = [
    "Mark", "SetOfMarkInput", "SomInput", "highlight_marks", "label_point", "parse_mark_refs", "propose_regions", "set_of_mark",
]
