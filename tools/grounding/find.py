"""The ``find`` tool: a phrase to the region(s) of the image it refers to.

    >>> result = find_regions(registry, image, {"phrase": "the red cup on the left"}, sam=registry.get("sam"))
    >>> result.best.bbox, result.best.score, result.ambiguous
    >>> find_regions(registry, image, {"phrase": "the cat", "method": "llava"}, box_from_model=ask_llava_for_box)

1. Candidates: SAM on a grid of points plus Set-of-Mark regions (:mod:`.candidates`), cached per image.
2. Each candidate is scored by CLIP/SigLIP through visual prompts minus a neutral prior (:mod:`.prompts`).
3. ``llava``: the caller's ``box_from_model(image, phrase)`` returns the chat model's box as normalised
   ``[x0, y0, x1, y1]`` of the image padded to a centred square (LLaVA-1.5's RefCOCO format); SAM turns the box
   into a mask (box prompt), which joins the candidates; every candidate's ensemble score then gets
   ``llava_weight * IoU(its box, the model's box)``, so CLIP and the chat model vote together.
4. The regions come back best first; ``ambiguous`` when the best candidate elsewhere in the image (box IoU
   with the best under 0.5) scores within ``margin`` of the best.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from tools.grounding.candidates import CandidateCache, CandidateOptions, Candidates
from tools.grounding.geometry import box_iou, box_mask, mask_box, padded_square_box, scale_box
from tools.grounding.prompts import FIND_TEMPLATES, NEUTRAL_TEXTS, PromptLogits, prompt_logits
from tools.grounding.schemas import PROMPTS, FindInput, FindResult, GroundingError, Region

# (image, phrase) -> normalised [x0, y0, x1, y1] of the image padded to a centred square
BoxFromModel = Callable[[Image.Image, str], Sequence[float]]
LLAVA_WEIGHT = 2.0  # logits added to a candidate whose box matches the chat model's exactly (IoU 1)
OTHER_PLACE_IOU = 0.5  # a candidate whose box overlaps the best's less than this is "another place"


def resolve_method(method: str, box_from_model: BoxFromModel | None) -> str:
    """``auto`` is ``llava`` when the caller can ask the chat model for a box, else ``ensemble``."""
    if method == "auto":
        return "llava" if box_from_model is not None else "ensemble"
    if method == "llava" and box_from_model is None:
        raise GroundingError("The llava method needs a chat model trained to give boxes (LLaVA-1.5), and this one "
                             "is not; use circle, blur, grey or ensemble.")
    return method


def is_ambiguous(scores: Sequence[float], boxes: Sequence[Sequence[float]], margin: float,
                 overlap: float = OTHER_PLACE_IOU) -> bool:
    """Whether a candidate in another place (box IoU with the best < ``overlap``) scores within ``margin``."""
    if len(scores) < 2:
        return False
    best = int(np.argmax(scores))
    return any(i != best and box_iou(boxes[i], boxes[best]) < overlap and scores[best] - s <= margin
               for i, s in enumerate(scores))


def sam_box_mask(sam_bundle: Any, image: Image.Image, box: Sequence[int]) -> np.ndarray:
    """The object inside ``box`` (pixels of ``image``), segmented by SAM with a box prompt; a bool mask."""
    import torch

    processor, model = sam_bundle.processor, sam_bundle.model
    inputs = processor(images=image, input_boxes=[[[float(v) for v in box]]], return_tensors="pt")
    param = next(model.parameters())
    with torch.inference_mode():
        out = model(pixel_values=inputs["pixel_values"].to(param.device, param.dtype),
                    input_boxes=inputs["input_boxes"].to(param.device, param.dtype), multimask_output=False)
    masks = processor.post_process_masks(out.pred_masks.float().cpu(), inputs["original_sizes"].cpu(),
                                         inputs["reshaped_input_sizes"].cpu())[0]
    return np.asarray(masks[0, 0].numpy(), dtype=bool)


def _model_region(candidates: Candidates, image: Image.Image, phrase: str, box_from_model: BoxFromModel,
                  sam: Any, notes: list[str]) -> tuple[Candidates, tuple[int, int, int, int]]:
    """The chat model's box for the phrase, as a candidate (SAM's mask inside it) placed first."""
    box = padded_square_box(box_from_model(image, phrase), image.size)
    work_box = scale_box(box, image.size, candidates.work.size)
    mask = sam_box_mask(sam, candidates.work, work_box) if sam is not None else None
    if mask is not None:  # the object is inside the box: SAM's spill beyond a 10% margin is cut off
        x0, y0, x1, y1 = work_box
        dx, dy = max(1, round(0.1 * (x1 - x0))), max(1, round(0.1 * (y1 - y0)))
        mask &= box_mask((x0 - dx, y0 - dy, x1 + dx, y1 + dy), candidates.work.size)
    if mask is None or not mask.any():
        notes.append("The chat model's box is used as the region itself "
                     + ("(no SAM model)." if sam is None else "(SAM found nothing inside it)."))
        mask = box_mask(work_box, candidates.work.size)
    return candidates.with_mask(mask, "llava"), work_box


def _regions(candidates: Candidates, logits: PromptLogits, scores, order: list[int], method: str, top_k: int,
             model_box) -> list[Region]:
    per_prompt = logits.scores()
    regions = []
    for rank, i in enumerate(order[:top_k], 1):
        mask = candidates.full_mask(i)
        if not mask.any():  # a sliver lost in the resize: its box on the working copy, scaled
            mask = box_mask(scale_box(mask_box(candidates.masks[i]), candidates.work.size, candidates.size),
                            candidates.size)
        how = "llava+ensemble" if model_box is not None else method
        regions.append(Region(
            id=rank, bbox=mask_box(mask), score=float(scores[i]), method=how, source=candidates.sources[i],
            prompts={p: float(per_prompt[k, i]) for k, p in enumerate(logits.prompts)},
            area=int(mask.sum()), mask=mask,
        ))
    return regions


def find_regions(
    models: Any,
    image: Image.Image,
    request: FindInput | dict,
    *,
    model: str = "clip",
    sam: Any = None,
    box_from_model: BoxFromModel | None = None,
    cache: Any = None,
    candidate_cache: CandidateCache | None = None,
    options: CandidateOptions | None = None,
    templates: Sequence[str] = FIND_TEMPLATES,
    prior_texts: Sequence[str] = NEUTRAL_TEXTS,
    llava_weight: float = LLAVA_WEIGHT,
) -> FindResult:
    """The regions of ``image`` that ``request.phrase`` refers to, best first (see the module's docstring).

    ``models`` has ``get(name)`` (the registry) for the ``model`` scorer; ``sam`` is a SAM bundle or None
    (candidates then come from Set-of-Mark only, and the chat model's box is used as is). ``cache`` is the
    caller's :class:`tools.scoring.EmbeddingCache` and ``candidate_cache`` its :class:`CandidateCache`: pass the
    same ones across calls so a second phrase on an image encodes only its text.
    """
    from tools.scoring import EmbeddingCache, get_bundle, model_id

    args = request if isinstance(request, FindInput) else FindInput.model_validate(request)
    method = resolve_method(args.method, box_from_model)
    bundle = get_bundle(models, model)
    mid = model_id(model, bundle)
    cache = cache if cache is not None else EmbeddingCache()
    candidate_cache = candidate_cache if candidate_cache is not None else CandidateCache()
    options = options or CandidateOptions()
    image = image.convert("RGB") if image.mode != "RGB" else image
    notes: list[str] = []
    if sam is None and options.sam_points:
        notes.append("No SAM model: the candidates are the Set-of-Mark regions only.")
    digest = EmbeddingCache.image_digest(image)
    candidates = candidate_cache.get(image, digest, sam, options)
    model_box = None
    if method == "llava":
        try:
            candidates, model_box = _model_region(candidates, image, args.phrase, box_from_model, sam, notes)
        except GroundingError as exc:
            if args.method != "auto":
                raise
            notes.append(f"{exc} Scored by CLIP alone.")
            method = "ensemble"
    if not len(candidates):
        notes.append("No candidate regions were found in the image.")
        return FindResult(phrase=args.phrase, method=method, model=model, regions=[], ambiguous=False,
                          candidates=0, notes=notes)
    prompts = (method,) if method in PROMPTS else PROMPTS
    room = getattr(cache, "max_images", None)
    if room is not None and room < len(prompts) * len(candidates):
        notes.append(f"The embedding cache keeps {room} images, fewer than the {len(prompts) * len(candidates)} "
                     "renderings scored here: the next phrase encodes them again (raise cache.embedding_entries).")
    logits = prompt_logits(bundle, mid, candidates, digest, args.phrase, cache=cache,
                           prompts=prompts, templates=templates, prior_texts=prior_texts)
    values = logits.method_scores(method if method in PROMPTS else "ensemble").tolist()
    boxes = [mask_box(m) for m in candidates.masks]
    if model_box is not None:
        values = [v + llava_weight * box_iou(b, model_box) for v, b in zip(values, boxes)]
    order = sorted(range(len(values)), key=lambda i: -values[i])
    return FindResult(
        phrase=args.phrase, method=method, model=model,
        regions=_regions(candidates, logits, values, order, method, args.top_k, model_box),
        ambiguous=is_ambiguous(values, boxes, args.margin), candidates=len(candidates), notes=notes,
    )


__all__ = ["BoxFromModel", "LLAVA_WEIGHT", "find_regions", "is_ambiguous", "resolve_method", "sam_box_mask"]
