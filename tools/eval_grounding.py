"""Referring-expression evaluation of ``find``: accuracy at IoU >= 0.5 per method and visual prompt.

The protocol of "What does CLIP know about a red circle?" (Shtedritski et al., 2023) and FGVP: for each
expression, the candidate with the highest score is the answer; it is correct when its box overlaps the
annotated box with IoU >= 0.5. Each method (a visual prompt, or their ensemble) is reported with the neutral
prior subtracted and without it, with the mean IoU and the candidates' recall (the share of expressions for
which some candidate reaches IoU 0.5: no method can beat it).

Dataset layout (``DIR``)::

    DIR/refs.jsonl      one expression per line:
                        {"image": "images/0001.png", "expression": "the small red circle on the left",
                         "bbox": [x0, y0, x1, y1]}
    DIR/images/...      the images (paths in refs.jsonl are relative to DIR; a symlink to COCO's folder works)

``bbox`` is in pixels with ``x1``/``y1`` exclusive (COCO's ``[x, y, w, h]`` is ``[x, y, x + w, y + h]``).
:func:`convert_refcoco` writes this layout from RefCOCO's ``refs(unc).p`` and COCO's ``instances.json``;
:func:`tools.eval_datasets.make_grounding_dataset` writes a synthetic set of coloured shapes.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Literal, Sequence

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from tools.errors import explain
from tools.evaluation import EvalTable
from tools.grounding import (
    PROMPTS, CandidateCache, CandidateOptions, FindInput, GroundingError, box_iou, find_regions, mask_box,
    prompt_logits,
)
from tools.grounding.prompts import FIND_TEMPLATES, NEUTRAL_TEXTS

EVAL_METHODS: tuple[str, ...] = (*PROMPTS, "ensemble")
REFS_FILE = "refs.jsonl"
Prior = Literal["neutral", "dataset"]
EvalProgress = Callable[[int, int, str], None]


class RefExample(BaseModel):
    model_config = ConfigDict(extra="ignore")

    image: str
    expression: str
    bbox: tuple[float, float, float, float]

    @field_validator("expression", mode="before")
    @classmethod
    def _expression(cls, value):
        try:
            return FindInput(phrase=value).phrase
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None

    @field_validator("image")
    @classmethod
    def _relative(cls, value: str):
        path = PurePosixPath(value.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ValueError(f"image '{value}' must be a path inside the dataset folder, e.g. images/0001.png")
        return str(path)

    @model_validator(mode="after")
    def _box(self):
        x0, y0, x1, y1 = self.bbox
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"bbox {list(self.bbox)} must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        return self


def read_ref_examples(dataset_dir: str | Path) -> tuple[Path, list[RefExample]]:
    """Parse ``DIR/refs.jsonl``; every problem is a GroundingError naming the file and line."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise GroundingError(f"Dataset folder {root} does not exist.")
    path = root / REFS_FILE
    if not path.is_file():
        raise GroundingError(f"{path} not found; a grounding dataset needs a {REFS_FILE} with one "
                             "{\"image\", \"expression\", \"bbox\"} object per line.")
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                example = RefExample.model_validate(json.loads(line))
            except json.JSONDecodeError as exc:
                raise GroundingError(f"{path}, line {number}: not valid JSON ({exc.msg}).") from None
            except ValidationError as exc:
                raise GroundingError(explain(exc, prefix=f"{path}, line {number}: ", default="'{}'")) from None
            if not (root / example.image).is_file():
                raise GroundingError(f"{path}, line {number}: image '{example.image}' does not exist.")
            examples.append(example)
    if not examples:
        raise GroundingError(f"{path} has no examples.")
    return root, examples


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise GroundingError(f"Cannot read {path}: {exc}.") from None


def _box(mask) -> tuple[int, int, int, int]:
    return mask_box(mask) if mask.any() else (0, 0, 0, 0)


def _prior_bank(examples: Sequence[RefExample], prior: str, size: int = 100, seed: int = 0) -> tuple[str, ...]:
    """Neutral captions, or (the papers' protocol) a fixed random sample of the dataset's expressions."""
    if prior == "neutral":
        return NEUTRAL_TEXTS
    if prior != "dataset":
        raise GroundingError(f"prior must be 'neutral' or 'dataset', not '{prior}'.")
    texts = sorted({e.expression for e in examples})
    return tuple(random.Random(seed).sample(texts, min(size, len(texts))))


def eval_grounding(
    models: Any,
    dataset_dir: str | Path,
    *,
    methods: Sequence[str] = EVAL_METHODS,
    model: str = "clip",
    sam: Any = None,
    box_from_model: Callable[[Image.Image, str], Sequence[float]] | None = None,
    cache: Any = None,
    options: CandidateOptions | None = None,
    templates: Sequence[str] = FIND_TEMPLATES,
    prior: Prior = "neutral",
    progress: EvalProgress | None = None,
) -> EvalTable:
    """Accuracy at IoU >= 0.5 of each method over ``DIR/refs.jsonl`` (see the module's docstring).

    ``llava`` among ``methods`` needs ``box_from_model`` (the chat model's box for an expression).
    """
    from tools.scoring import EmbeddingCache, get_bundle, model_id

    methods = list(dict.fromkeys(methods))
    for m in methods:
        if m not in (*EVAL_METHODS, "llava"):
            raise GroundingError(f"Unknown method '{m}'; choose from {', '.join((*EVAL_METHODS, 'llava'))}.")
    if not methods:
        raise GroundingError("Give at least one method to evaluate.")
    if "llava" in methods and box_from_model is None:
        raise GroundingError("The llava method needs the chat model's boxes, which this run does not have.")
    root, examples = read_ref_examples(dataset_dir)
    bundle = get_bundle(models, model)
    mid = model_id(model, bundle)
    cache = cache if cache is not None else EmbeddingCache(4096)
    candidates_cache, options = CandidateCache(4), options or CandidateOptions()
    prior_texts = _prior_bank(examples, prior)
    columns = ["acc@0.5", "acc@0.5 no prior", "mean IoU"]
    totals = {m: [0.0, 0.0, 0.0] for m in methods}
    recall, seen = 0, {}
    for number, example in enumerate(examples, 1):
        image = seen.get(example.image) or _open(root / example.image)
        seen = {example.image: image}  # examples of one image usually follow each other
        digest = EmbeddingCache.image_digest(image)
        cands = candidates_cache.get(image, digest, sam, options)
        boxes = [_box(cands.full_mask(i)) for i in range(len(cands))]
        ious = [box_iou(b, example.bbox) for b in boxes]
        recall += any(v >= 0.5 for v in ious)
        logits = prompt_logits(bundle, mid, cands, digest, example.expression, cache=cache,
                               templates=templates, prior_texts=prior_texts) if len(cands) else None
        for m in methods:
            if m == "llava":
                found = find_regions(models, image, {"phrase": example.expression, "method": "llava", "top_k": 1},
                                     model=model, sam=sam, box_from_model=box_from_model, cache=cache,
                                     candidate_cache=candidates_cache, options=options, templates=templates,
                                     prior_texts=prior_texts)
                best = box_iou(found.regions[0].bbox, example.bbox) if found.regions else 0.0
                totals[m][0] += best >= 0.5
                totals[m][2] += best
                continue
            if logits is None:
                continue
            with_prior = int(logits.method_scores(m).argmax())
            without = int(logits.method_scores(m, subtract=False).argmax())
            totals[m][0] += ious[with_prior] >= 0.5
            totals[m][1] += ious[without] >= 0.5
            totals[m][2] += ious[with_prior]
        if progress is not None:
            progress(number, len(examples), f"{example.image}: {example.expression}")
    n = len(examples)
    return EvalTable(
        title=f"Referring expressions: {model.upper()} top-1 accuracy at IoU >= 0.5 (prior: {prior})",
        n=n, row_header="method", columns=columns,
        rows={m: [None if (m == "llava" and k == 1) else v / n for k, v in enumerate(totals[m])]
              for m in methods},
        variants={"candidate recall at IoU >= 0.5 (upper bound)": recall / n},
    )


def convert_refcoco(refs_path: str | Path, instances_path: str | Path, images_dir: str | Path,
                    out_dir: str | Path, split: str = "val") -> int:
    """Write ``out_dir/refs.jsonl`` (and an ``images`` symlink to ``images_dir``) from RefCOCO/RefCOCO+/RefCOCOg.

    ``refs_path`` is the dataset's ``refs(unc).p`` (or ``refs(umd).p``, ``refs(google).p``; a pickle: open only
    files you trust), ``instances_path`` its ``instances.json``, ``images_dir`` COCO's ``train2014`` folder.
    One line per sentence of every ref in ``split``. Returns the number of lines written.
    """
    import pickle

    with open(refs_path, "rb") as handle:
        refs = pickle.load(handle)
    with open(instances_path, encoding="utf-8") as handle:
        instances = json.load(handle)
    boxes = {a["id"]: a["bbox"] for a in instances["annotations"]}
    files = {i["id"]: i["file_name"] for i in instances["images"]}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    link = out / "images"
    if not link.exists():
        os.symlink(Path(images_dir).resolve(), link, target_is_directory=True)
    lines = []
    for ref in refs:
        if ref.get("split") != split:
            continue
        x, y, w, h = boxes[ref["ann_id"]]
        for sentence in ref["sentences"]:
            text = " ".join(str(sentence.get("sent") or sentence.get("raw") or "").split())
            if text:
                lines.append(json.dumps({"image": f"images/{files[ref['image_id']]}", "expression": text,
                                         "bbox": [x, y, x + w, y + h]}))
    (out / REFS_FILE).write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return len(lines)


__all__ = ["EVAL_METHODS", "REFS_FILE", "RefExample", "convert_refcoco", "eval_grounding", "read_ref_examples"]
