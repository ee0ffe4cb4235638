"""Grounding: find the region(s) of an image that a phrase refers to ("the small red cup on the left").

    >>> from tools.grounding import find_regions
    >>> result = find_regions(registry, image, {"phrase": "the cat", "method": "ensemble"}, sam=registry.get("sam"))
    >>> result.best.bbox, result.ambiguous

One concern per module: :mod:`.schemas` (input schema, regions, result), :mod:`.geometry` (IoU, boxes, the
chat model's padded-square boxes), :mod:`.candidates` (SAM grid + Set-of-Mark proposals and their cache),
:mod:`.prompts` (visual prompts, CLIP logits, the neutral prior), :mod:`.find` (the tool), :mod:`.overlay`
(the picture of the result). Nothing here imports ``chat``.
"""

from tools.grounding.candidates import CandidateCache, CandidateOptions, Candidates, propose_candidates
from tools.grounding.find import LLAVA_WEIGHT, BoxFromModel, find_regions, is_ambiguous, sam_box_mask
from tools.grounding.geometry import box_iou, box_mask, mask_box, mask_iou, padded_square_box
from tools.grounding.overlay import draw_regions
from tools.grounding.prompts import FIND_TEMPLATES, NEUTRAL_TEXTS, PromptLogits, prior_subtracted, prompt_logits
from tools.grounding.schemas import (
    MAX_PHRASE_CHARS, METHODS, PHRASE, PROMPTS, FindInput, FindResult, GroundingError, Region,
)

__all__ = [
    "FIND_TEMPLATES", "LLAVA_WEIGHT", "MAX_PHRASE_CHARS", "METHODS", "NEUTRAL_TEXTS", "PHRASE", "PROMPTS", "BoxFromModel",
    "CandidateCache", "CandidateOptions", "Candidates", "FindInput", "FindResult", "GroundingError", "PromptLogits",
    "Region", "box_iou", "box_mask", "draw_regions", "find_regions", "is_ambiguous", "mask_box",
    "mask_iou", "padded_square_box", "prior_subtracted", "prompt_logits", "propose_candidates", "sam_box_mask",
]
