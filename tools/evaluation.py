"""Evaluation harnesses: which visual prompt CLIP understands best, and whether the LLM helps CLIP.

* :func:`eval_markers` - marker ablation. ``DIR/data.jsonl`` holds one example per line::

      {"image": "imgs/0001.png", "box": [x0, y0, x1, y1], "labels": ["cat", "dog"], "answer": "cat"}

  For every shape x colour a marker is drawn around the box and the example counts as correct when the
  answer gets the highest zero-shot score (a point is a dot at the box's centre; the contour traces the
  box, the only region the dataset gives). Variants: no marker, crop to the box, and the red ellipse
  with the outside blurred or greyed (the red-circle paper's best recipes).
* :func:`eval_classify` - ``DIR/<label>/*.png``: CLIP zero-shot over all folder labels versus the
  LLM<->CLIP coarse-to-fine loop of :func:`tools.classify.classify`.

Both return an :class:`EvalTable` (``.markdown()``, ``.to_dict()``).
:func:`tools.eval_datasets.make_synthetic_dataset` writes small datasets for tests and smoke runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tools.errors import UserError, explain
from tools.markers import PROMPT_COLORS
from tools.markers import SHAPES as MARKER_SHAPES
from tools.scoring import (
    DEFAULT_TEMPLATES,
    EmbeddingCache,
    cached_image_embeddings,
    clean_labels,
    get_bundle,
    is_sigmoid,
    label_embeddings,
    logits_for,
    model_id,
    region_renderings,
)

SHAPES, COLORS = MARKER_SHAPES, PROMPT_COLORS  # every shape, in the colours offered for prompts
VARIANTS: tuple[str, ...] = ("no marker", "crop", "blur outside", "grey outside")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
# progress(done, total, message)
EvalProgress = Callable[[int, int, str], None]


class EvalTable(BaseModel):
    """Accuracies: a grid (rows x columns) plus optional single-number variants."""

    title: str
    n: int = Field(description="number of examples")
    row_header: str = ""
    columns: list[str]
    rows: dict[str, list[float | None]]
    variants: dict[str, float] = Field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"**{self.title}** (n = {self.n})", ""]
        lines.append("| " + " | ".join([self.row_header] + self.columns) + " |")
        lines.append("|---|" + "---:|" * len(self.columns))
        for name, values in self.rows.items():
            cells = ["-" if v is None else f"{v:.3f}" for v in values]
            lines.append("| " + " | ".join([name] + cells) + " |")
        if self.variants:
            lines += ["", "| variant | accuracy |", "|---|---:|"]
            lines += [f"| {k} | {v:.3f} |" for k, v in self.variants.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "n": self.n,
            "accuracy": {row: dict(zip(self.columns, values)) for row, values in self.rows.items()},
            "variants": dict(self.variants),
        }


# --------------------------------------------------------------------------------------------
# Marker ablation
# --------------------------------------------------------------------------------------------
class MarkerExample(BaseModel):
    model_config = ConfigDict(extra="ignore")

    image: str
    box: tuple[float, float, float, float]
    labels: list[str]
    answer: str

    @field_validator("labels")
    @classmethod
    def _labels(cls, value):
        labels = clean_labels(value)
        if len(labels) < 2:
            raise ValueError("needs at least two different labels to choose from")
        return labels

    @model_validator(mode="after")
    def _check(self):
        x0, y0, x1, y1 = self.box
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"box {list(self.box)} must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        answer = " ".join(self.answer.split())
        match = [label for label in self.labels if label.casefold() == answer.casefold()]
        if not match:
            raise ValueError(f"answer '{self.answer}' is not one of the labels")
        self.answer = match[0]
        return self


def read_marker_examples(dataset_dir: str | Path) -> tuple[Path, list[MarkerExample]]:
    """Parse ``DIR/data.jsonl``; every problem is a UserError naming the file and line."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise UserError(f"Dataset folder {root} does not exist.")
    path = root / "data.jsonl"
    if not path.is_file():
        raise UserError(f"{path} not found; a marker dataset needs a data.jsonl with one example per line.")
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}, line {number}: not valid JSON ({exc.msg}).") from None
            if not isinstance(data, dict):
                raise UserError(f"{path}, line {number}: expected a JSON object with image, box, labels, answer.")
            try:
                example = MarkerExample.model_validate(data)
            except ValidationError as exc:
                raise UserError(explain(exc, prefix=f"{path}, line {number}: ", default="'{}'")) from None
            image_path = (root / example.image).resolve()
            if not image_path.is_relative_to(root.resolve()):
                raise UserError(f"{path}, line {number}: image '{example.image}' is outside the dataset folder.")
            if not image_path.is_file():
                raise UserError(f"{path}, line {number}: image '{example.image}' does not exist.")
            examples.append(example)
    if not examples:
        raise UserError(f"{path} has no examples.")
    return root, examples


def _open(path: Path, where: str) -> Image.Image:
    from tools.imageio import load_image_file

    try:
        return load_image_file(path)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def _marker_around(box, shape: str, color: str, size: tuple[int, int]):
    """A visual prompt of ``shape`` around ``box``: circles and ellipses enclose the box (through its
    corners), boxes frame it, crosses span it, arrows point at it from outside, a point sits at its centre
    and a contour traces it (draw it with :func:`_box_mask` as its mask)."""
    from tools.markers import Marker
    from tools.scoring import fitted_ellipse

    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    radius = max(2, math.ceil(math.hypot(x1 - x0, y1 - y0) / 2))
    if shape == "ellipse":
        frame = Marker(x=cx, y=cy, shape="box", color=color, bbox=box)
        return Marker(x=cx, y=cy, shape="ellipse", color=color, bbox=fitted_ellipse(frame, size))
    return Marker(x=cx, y=cy, shape=shape, color=color, radius=radius, bbox=box if shape in ("box", "arrow") else None)


def _box_mask(box: tuple[int, int, int, int], size: tuple[int, int]):
    import numpy as np

    mask = np.zeros((size[1], size[0]), dtype=bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    return mask


def _clip_box(box, size: tuple[int, int], where: str) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(size[0], x1), min(size[1], y1)
    if x1 <= x0 or y1 <= y0:
        raise UserError(f"{where}: box {list(box)} lies outside the {size[0]}x{size[1]} image.")
    return x0, y0, x1, y1


def _crop(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    return image.crop(box)


def eval_markers(
    models: Any,
    dataset_dir: str | Path,
    *,
    shapes: Sequence[str] = SHAPES,
    colors: Sequence[str] = COLORS,
    model: str = "clip",
    cache: EmbeddingCache | None = None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    progress: EvalProgress | None = None,
) -> EvalTable:
    """Accuracy of zero-shot scoring for each marker shape x colour, plus the variants (see module doc)."""
    import torch

    from tools.markers import Marker, draw_markers

    from tools.markers import COLORS as KNOWN_COLORS

    if not shapes or not colors:
        raise UserError("Give at least one marker shape and one colour to evaluate.")
    for s in shapes:
        if s not in SHAPES:
            raise UserError(f"Unknown marker shape '{s}'; choose from {', '.join(SHAPES)}.")
    for c in colors:
        if c not in KNOWN_COLORS:
            raise UserError(f"Unknown marker colour '{c}'; choose from {', '.join(KNOWN_COLORS)}.")
    root, examples = read_marker_examples(dataset_dir)
    bundle = get_bundle(models, model)
    mid = model_id(model, bundle)
    cache = cache if cache is not None else EmbeddingCache()
    grid = {(s, c): 0 for s in shapes for c in colors}
    variants = {v: 0 for v in VARIANTS}
    for number, example in enumerate(examples, 1):
        where = f"example {number} ({example.image})"
        image = _open(root / example.image, where)
        box = _clip_box(example.box, image.size, where)
        digest = EmbeddingCache.image_digest(image)
        items: list[tuple[tuple, Callable[[], Image.Image]]] = []
        names: list[Any] = []
        for s in shapes:
            for c in colors:
                marker = _marker_around(box, s, c, image.size)
                masks = [_box_mask(box, image.size)] if s == "contour" else None
                items.append(((digest, f"marker:{s}:{c}:{box}"),
                              lambda m=marker, k=masks: draw_markers(image, [m], masks=k)))
                names.append((s, c))
        items.append(((digest, "full"), lambda: image))
        names.append("no marker")
        items.append(((digest, f"crop:{box}"), lambda: _crop(image, box)))
        names.append("crop")
        frame = Marker(x=(box[0] + box[2]) // 2, y=(box[1] + box[3]) // 2, shape="box", color="red", bbox=box)
        for variant, outside in (("blur outside", "blur"), ("grey outside", "grey")):
            (key, render), = region_renderings(image, [frame], outside=outside, ensemble=False)
            items.append((key, render))
            names.append(variant)
        image_emb = cached_image_embeddings(bundle, mid, items, cache)
        text_emb = label_embeddings(bundle, mid, example.labels, templates, cache)
        answer = example.labels.index(example.answer)
        for name, emb in zip(names, image_emb):
            logits = logits_for(bundle, emb, text_emb)
            correct = int(torch.argmax(logits)) == answer
            if isinstance(name, tuple):
                grid[name] += correct
            else:
                variants[name] += correct
        if progress is not None:
            progress(number, len(examples), where)
    n = len(examples)
    kind = "sigmoid" if is_sigmoid(bundle) else "softmax"
    return EvalTable(
        title=f"Marker ablation: {model.upper()} ({kind}) top-1 accuracy",
        n=n,
        row_header="shape \\ colour",
        columns=list(colors),
        rows={s: [grid[(s, c)] / n for c in colors] for s in shapes},
        variants={v: variants[v] / n for v in VARIANTS},
    )


# --------------------------------------------------------------------------------------------
# CLIP versus LLM<->CLIP classification
# --------------------------------------------------------------------------------------------
def read_classify_folders(dataset_dir: str | Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """Labels (subfolder names, sorted) and ``(image path, label)`` pairs of ``DIR/<label>/*``."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise UserError(f"Dataset folder {root} does not exist.")
    labels, items = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            labels.append(folder.name)
            items.extend((f, folder.name) for f in files)
    if len(labels) < 2:
        raise UserError(
            f"{root} needs at least two subfolders of images, one per label (e.g. {root}/cat/1.png, {root}/dog/1.png)."
        )
    return labels, items


def _label_text(folder: str) -> str:
    return " ".join(folder.replace("_", " ").replace("-", " ").split())


def eval_classify(
    models: Any,
    chat: Any,
    dataset_dir: str | Path,
    *,
    rounds: int = 2,
    model: str = "clip",
    cache: EmbeddingCache | None = None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    progress: EvalProgress | None = None,
) -> EvalTable:
    """CLIP zero-shot over all folder labels versus :func:`tools.classify.classify` (label == folder name)."""
    from tools.classify import classify
    from tools.scoring import score_labels

    folders, items = read_classify_folders(dataset_dir)
    texts = [_label_text(f) for f in folders]
    cache = cache if cache is not None else EmbeddingCache()
    clip_correct = llm_correct = 0
    for number, (path, folder) in enumerate(items, 1):
        where = f"image {number} ({path.parent.name}/{path.name})"
        image = _open(path, where)
        truth = _label_text(folder).casefold()
        scored = score_labels(models, image, texts, model=model, templates=templates, cache=cache)
        clip_correct += scored.best.casefold() == truth
        result = classify(models, image, chat, rounds=rounds, cache=cache, templates=templates, model=model)
        llm_correct += _label_text(result.label).casefold() == truth
        if progress is not None:
            progress(number, len(items), where)
    n = len(items)
    return EvalTable(
        title=f"Classification over {len(folders)} folder labels: top-1 accuracy",
        n=n,
        row_header="method",
        columns=["accuracy"],
        rows={
            f"{model.upper()} zero-shot (all labels)": [clip_correct / n],
            f"LLM<->{model.upper()} ({rounds} round{'s' if rounds != 1 else ''}, open vocabulary)": [llm_correct / n],
        },
    )
