"""Regions from clicks: a disc around a click, or the object under it segmented by SAM.

    >>> mask = sam_region(registry.get("sam"), image, positive=[(120, 80)], negative=[(300, 40)])
    >>> marker = marker_for_mask(mask)            # a red ellipse fitted around the object

Masks are bool arrays of shape (height, width); boxes are ``(x0, y0, x1, y1)`` with ``x1``/``y1`` exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field

from tools.errors import UserError
from tools.markers import Color, Marker, Shape, default_radius, validate_point

Point = tuple[int, int]


class SamRegionInput(BaseModel):
    """Segment the object under the clicks with SAM."""

    model_config = ConfigDict(extra="forbid")

    positive: list[Point] = Field(min_length=1, max_length=32, description="pixels on the object")
    negative: list[Point] = Field(default_factory=list, max_length=32, description="pixels not on the object")


def circle_region(x: int, y: int, size: tuple[int, int], radius: int) -> np.ndarray:
    """The disc of ``radius`` around pixel (x, y), a bool array of shape (height, width)."""
    validate_point(x, y, size)
    if radius < 1:
        raise UserError(f"The radius must be at least 1 pixel, not {radius}.")
    canvas = Image.new("L", size, 0)
    ImageDraw.Draw(canvas).ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return np.asarray(canvas) > 0


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The tight box ``(x0, y0, x1, y1)`` around a mask's pixels (x1, y1 exclusive)."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        raise UserError("The region is empty; select an area with at least one pixel in it.")
    y0, y1 = np.flatnonzero(rows)[[0, -1]]
    x0, x1 = np.flatnonzero(cols)[[0, -1]]
    return int(x0), int(y0), int(x1) + 1, int(y1) + 1


def _enclosing_ellipse(mask: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The box of the smallest ellipse with the aspect of ``box`` that contains every pixel of the mask."""
    x0, y0, x1, y1 = box
    ys, xs = np.nonzero(mask[y0:y1, x0:x1])
    step = xs.size // 20000 + 1  # the extremes of a large region survive a subsample
    xs, ys = xs[::step] + x0 + 0.5, ys[::step] + y0 + 0.5
    cx, cy, a, b = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
    reach = max(1.0, float(np.sqrt((((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2).max())))
    a, b = a * reach, b * reach
    return (int(np.floor(cx - a)), int(np.floor(cy - b)), int(np.ceil(cx + a)), int(np.ceil(cy + b)))


def marker_for_mask(mask: np.ndarray, shape: Shape = "ellipse", color: Color = "red") -> Marker:
    """A marker designating the mask: centred on its box; an ellipse/box fitted around it, a circle or
    cross sized to cover it, an arrow pointing at it, a contour tracing it (pass the mask when drawing)."""
    mask = np.asarray(mask, dtype=bool)
    x0, y0, x1, y1 = mask_bbox(mask)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    if not mask[cy, cx] and shape in ("point", "cross", "contour"):  # e.g. a ring: mark a pixel of the region
        from scipy import ndimage

        depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        cy, cx = (int(v) for v in np.unravel_index(np.argmax(depth), depth.shape))
    radius = max(1, int(np.ceil(np.hypot(x1 - x0, y1 - y0) / 2)))
    if shape == "point":
        radius = max(1, min(x1 - x0, y1 - y0) // 2)
    bbox = (x0, y0, x1, y1) if shape in ("box", "arrow") else None
    if shape == "ellipse":
        bbox = _enclosing_ellipse(mask, (x0, y0, x1, y1))
    return Marker(x=cx, y=cy, shape=shape, color=color, radius=radius, bbox=bbox)


# --------------------------------------------------------------------------------------------
# SAM
# --------------------------------------------------------------------------------------------
def _model_inputs(sam_bundle: Any, image: Image.Image, points: list, labels: list):
    """Processor output for one image; points nested as ``[image, prompt, point, xy]``."""
    processor, model = sam_bundle.processor, sam_bundle.model
    inputs = processor(images=image, input_points=[points], input_labels=[labels], return_tensors="pt")
    param = next(model.parameters())
    inputs["pixel_values"] = inputs["pixel_values"].to(param.device, param.dtype)
    inputs["input_points"] = inputs["input_points"].to(param.device, param.dtype)
    inputs["input_labels"] = inputs["input_labels"].to(param.device)
    return inputs


def _best_masks(sam_bundle: Any, inputs, pred_masks, iou_scores) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt, the mask with the highest predicted IoU, upsampled to the image: (n, H, W), (n,)."""
    import torch

    best = iou_scores[0].argmax(dim=-1)  # (prompts,)
    index = torch.arange(best.shape[0], device=best.device)
    chosen = pred_masks[0, index, best][None, :, None].float().cpu()  # (1, prompts, 1, h, w)
    scores = iou_scores[0, index, best].float().cpu().numpy()
    masks = sam_bundle.processor.post_process_masks(
        chosen, inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu()
    )[0]
    return np.asarray(masks[:, 0].numpy(), dtype=bool), scores


def sam_region(sam_bundle: Any, image: Image.Image, positive: Sequence[Point],
               negative: Sequence[Point] = ()) -> np.ndarray:
    """The object under the ``positive`` clicks (and not under the ``negative`` ones), segmented by SAM.

    ``sam_bundle`` has ``.processor`` (SamProcessor) and ``.model`` (SamModel). Returns a bool mask of
    the image's size. If SAM returns an empty mask, the region is the disc a plain click designates.
    """
    import torch

    args = SamRegionInput(positive=list(positive), negative=list(negative))
    image = image.convert("RGB") if image.mode != "RGB" else image
    for x, y in args.positive + args.negative:
        validate_point(x, y, image.size)
    points = [[float(x), float(y)] for x, y in args.positive + args.negative]
    labels = [1] * len(args.positive) + [0] * len(args.negative)
    inputs = _model_inputs(sam_bundle, image, points, labels)
    with torch.inference_mode():
        out = sam_bundle.model(
            pixel_values=inputs["pixel_values"], input_points=inputs["input_points"],
            input_labels=inputs["input_labels"], multimask_output=len(points) == 1,
        )
    masks, _ = _best_masks(sam_bundle, inputs, out.pred_masks, out.iou_scores)
    mask = masks[0]
    if not mask.any():
        x, y = args.positive[0]
        mask = circle_region(x, y, image.size, default_radius(image.size))
    return mask


def sam_masks(sam_bundle: Any, image: Image.Image, points: Sequence[Point],
              batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One SAM mask per point (each point its own prompt): bool masks (n, H, W) and predicted IoUs (n,).

    The image is encoded once; prompts are decoded in batches of ``batch``.
    """
    import torch

    image = image.convert("RGB") if image.mode != "RGB" else image
    if not points:
        return np.zeros((0, image.height, image.width), dtype=bool), np.zeros(0, dtype=np.float32)
    inputs = _model_inputs(sam_bundle, image, [[[float(x), float(y)]] for x, y in points], [[1] for _ in points])
    model = sam_bundle.model
    all_masks, all_scores = [], []
    with torch.inference_mode():
        embeddings = model.get_image_embeddings(inputs["pixel_values"])
        for start in range(0, len(points), batch):
            out = model(
                image_embeddings=embeddings,
                input_points=inputs["input_points"][:, start:start + batch],
                input_labels=inputs["input_labels"][:, start:start + batch],
                multimask_output=True,
            )
            masks, scores = _best_masks(sam_bundle, inputs, out.pred_masks, out.iou_scores)
            all_masks.append(masks)
            all_scores.append(scores)
    return np.concatenate(all_masks), np.concatenate(all_scores)


__all__ = [
    "SamRegionInput", "circle_region", "mask_bbox", "marker_for_mask", "sam_masks", "sam_region",
]
