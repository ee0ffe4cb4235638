"""The Set-of-Mark proposals and drawing as they were before they were made fast (tools/som.py at 82b124e):
the plain, loop-per-region version, kept as the oracle the fast one is compared with. Not used by the app."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from tools.markers import stroke_width
from tools.regions import mask_bbox
from tools.som import PALETTE, WORK_SIDE, Mark, _number, _number_size


def _work_copy(image: Image.Image) -> Image.Image:
    scale = WORK_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _merge_by_colour(labels: np.ndarray, rgb: np.ndarray, threshold: float) -> np.ndarray:
    from skimage import color, graph

    lab = color.rgb2lab(rgb)
    ids = np.unique(labels)
    means = np.stack([ndimage.mean(lab[..., c], labels, ids) for c in range(3)], axis=1)
    index = {int(i): n for n, i in enumerate(ids)}
    pairs = np.concatenate([
        np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], axis=1),
        np.stack([labels[:-1].ravel(), labels[1:].ravel()], axis=1),
    ])
    pairs = np.unique(np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1), axis=0)
    rag = graph.RAG()
    rag.add_nodes_from((int(i), {"labels": [int(i)]}) for i in ids)
    for a, b in pairs:
        rag.add_edge(int(a), int(b), weight=float(np.linalg.norm(means[index[int(a)]] - means[index[int(b)]])))
    return graph.cut_threshold(labels, rag, threshold)


def _finalize(labels: np.ndarray, max_regions: int) -> np.ndarray:
    out = np.zeros(labels.shape, dtype=np.int32)
    count = 0
    for value in np.unique(labels[labels > 0]):
        parts, n = ndimage.label(labels == value)
        out[parts > 0] = parts[parts > 0] + count
        count += n
    if count == 0:
        return np.zeros(labels.shape, dtype=np.uint8)
    areas = np.bincount(out.ravel(), minlength=count + 1)[1:]
    min_area = max(4, int(0.002 * labels.size))
    order = [i + 1 for i in np.argsort(-areas, kind="stable") if areas[i] >= min_area][:max_regions]
    if not order:
        order = [int(np.argmax(areas)) + 1]
    centres = ndimage.center_of_mass(np.ones_like(out), out, order)
    band = labels.shape[0] / 8
    order = [r for _, r in sorted(zip(centres, order), key=lambda cr: (int(cr[0][0] // band), cr[0][1]))]
    lut = np.zeros(count + 1, dtype=np.uint8)
    lut[order] = np.arange(1, len(order) + 1)
    return lut[out]


def label_map(image: Image.Image, max_regions: int = 24) -> np.ndarray:
    """Region ids 1..N at full size (SLIC on the working copy, merged by colour, numbered in reading order)."""
    from skimage.segmentation import slic

    work = _work_copy(image)
    rgb = np.asarray(work)
    segments = slic(rgb, n_segments=max(8, 4 * max_regions), compactness=10, start_label=1)
    small = _finalize(_merge_by_colour(segments, rgb, threshold=12.0) + 1, max_regions)
    if small.shape == (image.height, image.width):
        return small
    return np.asarray(Image.fromarray(small).resize(image.size, Image.Resampling.NEAREST))


def label_point(mask: np.ndarray) -> tuple[int, int]:
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    y0, y1 = np.flatnonzero(rows)[[0, -1]]
    x0, x1 = np.flatnonzero(cols)[[0, -1]]
    crop = mask[y0:y1 + 1, x0:x1 + 1]
    step = max(1, math.ceil(max(crop.shape) / 256))
    sample = crop[::step, ::step]
    depth = ndimage.distance_transform_edt(np.pad(sample, 1))[1:-1, 1:-1]
    rows, cols = np.nonzero(depth >= 0.8 * depth.max())
    cy, cx = ndimage.center_of_mass(sample)
    best = int(np.argmin((rows - cy) ** 2 + (cols - cx) ** 2))
    return int(x0) + int(cols[best]) * step, int(y0) + int(rows[best]) * step


def with_boundaries(image: Image.Image, labels: np.ndarray) -> Image.Image:
    """The image with each region's boundary band painted in its colour (before the numbers are drawn)."""
    width = max(2, stroke_width(image.size) // 3)
    edge = np.zeros(labels.shape, dtype=bool)
    step_x, step_y = labels[:, 1:] != labels[:, :-1], labels[1:] != labels[:-1]
    edge[:, 1:] |= step_x
    edge[:, :-1] |= step_x
    edge[1:] |= step_y
    edge[:-1] |= step_y
    if width > 2:
        edge = ndimage.binary_dilation(edge, iterations=(width - 1) // 2)
    edge &= labels > 0
    colours = Image.fromarray(labels)
    colours.putpalette([0, 0, 0] + [v for k in range(255) for v in PALETTE[k % len(PALETTE)]])
    out = image.copy()
    out.paste(colours.convert("RGB"), (0, 0), Image.fromarray(edge.astype(np.uint8) * 255))
    return out


def set_of_mark(image: Image.Image, max_regions: int = 24) -> tuple[Image.Image, list[Mark], list[np.ndarray]]:
    """(marked image, marks, masks) as the method before the speed-up made them (boundaries drawn, no fill)."""
    labels = label_map(image, max_regions)
    out = with_boundaries(image, labels)
    draw = ImageDraw.Draw(out)
    masks, marks = [], []
    for k in range(1, int(labels.max()) + 1):
        mask = labels == k
        centre = label_point(mask)
        box = _number(draw, out, str(k), centre, _number_size(image.size))
        marks.append(Mark(id=k, bbox=mask_bbox(mask), center=centre, area=int(mask.sum()), label_box=box))
        masks.append(mask)
    return out, marks, masks
