"""Candidate regions for ``find``: SAM prompted on a grid of points plus the Set-of-Mark proposals, deduplicated.

    >>> cands = propose_candidates(image, sam_bundle, CandidateOptions())
    >>> cands.masks.shape            # (n, h, w) bool masks on the working copy (longest side <= work_side)

Everything runs on a working copy of the image (longest side ``work_side``, 512 px by default): CLIP sees 224 or
336 px anyway, and 32 masks of a 12-megapixel photo would take 400 MB. :meth:`Candidates.full_mask` brings one
mask back to the image's size. A :class:`CandidateCache` keeps the candidates of recent images, keyed by their
pixels, so a second phrase on the same image proposes nothing again.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from tools.grounding.geometry import mask_iou


class CandidateOptions(BaseModel):
    """How candidates are proposed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_candidates: int = Field(32, ge=1, le=128, description="at most this many candidates are scored")
    sam_points: int = Field(8, ge=0, le=32, description="SAM prompts per side of the grid (0: no SAM)")
    sam_min_iou: float = Field(0.8, ge=0.0, le=1.0, description="drop SAM masks whose predicted IoU is lower")
    som_regions: int = Field(24, ge=0, le=200, description="Set-of-Mark (SLIC) regions (0: none)")
    dedupe_iou: float = Field(0.8, gt=0.0, le=1.0, description="a mask this close (IoU) to a kept one is a duplicate")
    min_area: float = Field(0.001, ge=0.0, lt=1.0, description="drop masks smaller than this fraction of the image")
    work_side: int = Field(512, ge=64, le=2048, description="longest side of the working copy")


@dataclass
class Candidates:
    """Candidate masks on the working copy, with where each came from and a digest per mask."""

    size: tuple[int, int]  # the original image's (width, height)
    work: Image.Image  # the working copy (RGB)
    masks: np.ndarray  # (n, h, w) bool, on the working copy
    sources: list[str]  # "sam" or "som" per mask
    digests: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.digests:
            self.digests = [mask_digest(m) for m in self.masks]

    def __len__(self) -> int:
        return len(self.masks)

    def full_mask(self, index: int) -> np.ndarray:
        return to_size(self.masks[index], self.size)

    def with_mask(self, mask: np.ndarray, source: str) -> "Candidates":
        """A copy with one more candidate (e.g. the region the chat model's box gave) placed first."""
        return Candidates(self.size, self.work, np.concatenate([mask[None], self.masks]), [source, *self.sources],
                          [mask_digest(mask), *self.digests])


def mask_digest(mask: np.ndarray) -> str:
    h = hashlib.sha1(f"{mask.shape}".encode())
    h.update(np.packbits(mask).tobytes())
    return h.hexdigest()[:16]


def work_copy(image: Image.Image, side: int) -> Image.Image:
    image = image.convert("RGB") if image.mode != "RGB" else image
    scale = side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def to_size(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask resized (nearest) to ``size`` = (width, height)."""
    if mask.shape == (size[1], size[0]):
        return mask.copy()
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)) > 127


def grid_points(size: tuple[int, int], per_side: int) -> list[tuple[int, int]]:
    """``per_side`` x ``per_side`` points at the centres of a regular grid (SAM's automatic mask generator's)."""
    width, height = size
    xs = ((np.arange(per_side) + 0.5) * width / per_side).astype(int)
    ys = ((np.arange(per_side) + 0.5) * height / per_side).astype(int)
    return [(int(x), int(y)) for y in ys for x in xs]


def dedupe(masks: list[np.ndarray], threshold: float, limit: int) -> list[int]:
    """Indices of the masks to keep, in order: each one not within ``threshold`` IoU of an earlier kept one."""
    kept: list[int] = []
    for i, mask in enumerate(masks):
        if len(kept) >= limit:
            break
        if all(mask_iou(mask, masks[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


def _sam_proposals(sam_bundle: Any, work: Image.Image, options: CandidateOptions) -> list[np.ndarray]:
    from tools.regions import sam_masks

    points = grid_points(work.size, options.sam_points)
    masks, scores = sam_masks(sam_bundle, work, points, batch=16)
    order = np.argsort(-scores, kind="stable")
    return [masks[i] for i in order if scores[i] >= options.sam_min_iou]


def _som_proposals(work: Image.Image, options: CandidateOptions) -> list[np.ndarray]:
    from tools.som import propose_regions

    masks = propose_regions(work, max_regions=options.som_regions, method="slic")
    return sorted(masks, key=lambda m: -int(m.sum()))


def propose_candidates(image: Image.Image, sam_bundle: Any, options: CandidateOptions | None = None) -> Candidates:
    """SAM masks (best predicted IoU first), then Set-of-Mark regions (largest first); tiny, near-whole-image
    and duplicate masks dropped; at most ``max_candidates``."""
    options = options or CandidateOptions()
    work = work_copy(image, options.work_side)
    pool: list[tuple[str, np.ndarray]] = []
    if sam_bundle is not None and options.sam_points:
        pool += [("sam", m) for m in _sam_proposals(sam_bundle, work, options)]
    if options.som_regions:
        pool += [("som", m) for m in _som_proposals(work, options)]
    pixels = work.width * work.height
    min_area = max(4, math.ceil(options.min_area * pixels))
    pool = [(s, m) for s, m in pool if min_area <= int(m.sum()) <= 0.98 * pixels]
    keep = dedupe([m for _, m in pool], options.dedupe_iou, options.max_candidates)
    masks = np.stack([pool[i][1] for i in keep]) if keep else np.zeros((0, work.height, work.width), dtype=bool)
    return Candidates(image.size, work, masks, [pool[i][0] for i in keep])


class CandidateCache:
    """Bounded LRU of :class:`Candidates`, keyed by the image's pixels, the SAM checkpoint and the options.

    ``proposals`` counts how many times candidates were actually proposed (misses). It also keeps the chat
    model's answers to "where is <phrase>?" (:meth:`model_box`: a few numbers each, in CPU memory, at most
    ``max_boxes``), counted in ``box_asks``. Thread-safe.
    """

    def __init__(self, max_entries: int = 8, max_boxes: int = 64):
        if max_entries < 0 or max_boxes < 0:
            raise ValueError("max_entries and max_boxes must be 0 (no cache) or more")
        self.max_entries = max_entries
        self.max_boxes = max_boxes
        self._items: OrderedDict[tuple, Candidates] = OrderedDict()
        self._boxes: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.proposals = 0
        self.box_asks = 0

    def model_box(self, key: tuple, ask: Callable[[], Any]) -> Any:
        """The chat model's box answer for ``key`` (its checkpoint, the image's pixel digest, the question),
        asked once: the same phrase on the same image again (a numbered answer to "which one?") asks nothing."""
        with self._lock:
            if key in self._boxes:
                self._boxes.move_to_end(key)
                return self._boxes[key]
        answer = ask()
        with self._lock:
            self.box_asks += 1
            if self.max_boxes:
                self._boxes[key] = answer
                while len(self._boxes) > self.max_boxes:
                    self._boxes.popitem(last=False)
        return answer

    def get(self, image: Image.Image, digest: str, sam_bundle: Any, options: CandidateOptions) -> Candidates:
        sam_id = getattr(getattr(getattr(sam_bundle, "model", None), "config", None), "_name_or_path", None)
        key = (digest, sam_bundle is not None, sam_id, options.model_dump_json())
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        candidates = propose_candidates(image, sam_bundle, options)
        with self._lock:
            self.proposals += 1
            if self.max_entries:
                self._items[key] = candidates
                while len(self._items) > self.max_entries:
                    self._items.popitem(last=False)
        return candidates


__all__ = [
    "CandidateCache", "CandidateOptions", "Candidates", "dedupe", "grid_points", "mask_digest", "propose_candidates",
    "to_size", "work_copy",
]
