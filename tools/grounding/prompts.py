"""Candidates shown to CLIP/SigLIP through visual prompts, scored against a phrase minus a neutral prior.

The recipe of "What does CLIP know about a red circle?" (Shtedritski et al., ICCV 2023) and of fine-grained
visual prompting (FGVP, Yang et al., NeurIPS 2023; its public code, ylingfeng/FGVP ``fgvp-reclip``, is what we
follow): each candidate is rendered as the whole image with

* ``circle``: a red ellipse fitted around its mask,
* ``blur``: everything outside its mask Gaussian-blurred (FGVP's ``blur_mask``: std 100 px at CLIP's 336 px,
  i.e. 0.3 of the longest side),
* ``grey``: everything outside its mask in greyscale (FGVP's ``grayscale_mask``),

and the phrase's text is ``"a photo of {phrase}."`` (FGVP's default text prompt). CLIP prefers some renderings
whatever the text says (a big region, a circle near the centre); both papers cancel that bias by subtracting,
for each rendering, its mean logit over other captions (FGVP's ``--score_subtracting``: the logit of the caption
minus the mean logit of a bank of other captions). Here the bank is :data:`NEUTRAL_TEXTS` (captions that fit any
region), or any texts the caller gives (the evaluation can pass the dataset's other expressions, as the papers
do). The ensemble averages the prior-subtracted logits of the three prompts (FGVP sums them: the same ranking).

All renderings of all candidates are encoded in batches through the embedding cache, keyed by the image's
pixels and each mask's digest: a second phrase on the same image encodes only its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

from tools.grounding.candidates import Candidates
from tools.grounding.schemas import PROMPTS

FIND_TEMPLATES: tuple[str, ...] = ("a photo of {}.",)
NEUTRAL_TEXTS: tuple[str, ...] = (
    "an object", "something", "a thing", "an item", "a part of the picture", "a region of the image", "stuff",
    "an area",
)
BLUR_FRACTION = 100 / 336  # FGVP: GaussianBlur(std 100) on images resized to 336 px


def _torch():
    import torch

    return torch


def backgrounds(work: Image.Image) -> dict[str, Image.Image]:
    """What replaces the outside of a mask, once per image: the blurred and the greyscale copy."""
    radius = BLUR_FRACTION * max(work.size)
    factor = max(1, max(work.size) // 128)  # a blur this wide loses nothing at a quarter of the size
    small = work.reduce(factor) if factor > 1 else work
    blurred = small.filter(ImageFilter.GaussianBlur(radius / factor)).resize(work.size, Image.Resampling.BILINEAR)
    return {"blur": blurred, "grey": work.convert("L").convert("RGB")}


def render_prompt(work: Image.Image, mask: np.ndarray, prompt: str, outside: dict[str, Image.Image]) -> Image.Image:
    """The working copy with one candidate shown by ``prompt`` (circle, blur or grey)."""
    if prompt == "circle":
        from tools.markers import draw_markers
        from tools.regions import marker_for_mask

        return draw_markers(work, [marker_for_mask(mask, "ellipse", "red")], number=False)
    if prompt in outside:
        return Image.composite(work, outside[prompt], Image.fromarray(mask.astype(np.uint8) * 255))
    raise ValueError(f"unknown visual prompt {prompt!r}; choose from {', '.join(PROMPTS)}")


def rendering_items(candidates: Candidates, digest: str, prompts: Sequence[str]
                    ) -> list[tuple[tuple, Callable[[], Image.Image]]]:
    """``(cache key, render)`` for every prompt x candidate (prompt-major); rendering happens only on a miss."""
    shared: dict[str, dict[str, Image.Image]] = {}

    def outside() -> dict[str, Image.Image]:
        if not shared:
            shared["v"] = backgrounds(candidates.work)
        return shared["v"]

    work = candidates.work
    size = f"{work.width}x{work.height}"
    return [((digest, f"find:{p}:{size}:{candidates.digests[i]}"),
             lambda p=p, i=i: render_prompt(work, candidates.masks[i], p, outside() if p != "circle" else {}))
            for p in prompts for i in range(len(candidates))]


def logit_matrix(bundle: Any, image_emb, text_emb):
    """float32 logits [images, texts]: scale * cos (+ bias for SigLIP), as :func:`tools.scoring.logits_for`."""
    scale = bundle.model.logit_scale.detach().float().cpu().exp()
    logits = image_emb.float() @ text_emb.float().T * scale
    bias = getattr(bundle.model, "logit_bias", None)
    if bias is not None:
        logits = logits + bias.detach().float().cpu().reshape(())
    return logits


def prior_subtracted(phrase_logits, prior_logits):
    """Each rendering's logit for the phrase minus its mean logit over the prior's texts.

    ``phrase_logits`` [..., n], ``prior_logits`` [..., n, m] -> [..., n]."""
    return phrase_logits - prior_logits.mean(dim=-1)


@dataclass
class PromptLogits:
    """Logits of every candidate under every prompt: ``phrase`` [P, n] and ``prior`` [P, n, m]."""

    prompts: tuple[str, ...]
    phrase: Any
    prior: Any

    def scores(self, subtract: bool = True):
        """[P, n]: the phrase's logits, minus the neutral prior unless ``subtract`` is False."""
        return prior_subtracted(self.phrase, self.prior) if subtract else self.phrase

    def method_scores(self, method: str, subtract: bool = True):
        """[n]: one prompt's scores, or the mean over the prompts for ``ensemble``."""
        scores = self.scores(subtract)
        if method == "ensemble":
            return scores.mean(dim=0)
        return scores[self.prompts.index(method)]


def prompt_logits(bundle: Any, mid: str, candidates: Candidates, digest: str, phrase: str, *, cache: Any,
                  prompts: Sequence[str] = PROMPTS, templates: Sequence[str] = FIND_TEMPLATES,
                  prior_texts: Sequence[str] = NEUTRAL_TEXTS) -> PromptLogits:
    """Encode (or fetch) every rendering and the texts; return the logits of the phrase and of the prior."""
    from tools.scoring import cached_image_embeddings, label_embeddings

    torch = _torch()
    n, prompts = len(candidates), tuple(prompts)
    if n == 0:
        return PromptLogits(prompts, torch.zeros(len(prompts), 0), torch.zeros(len(prompts), 0, len(prior_texts)))
    images = cached_image_embeddings(bundle, mid, rendering_items(candidates, digest, prompts), cache)
    texts = label_embeddings(bundle, mid, [phrase, *prior_texts], templates, cache)
    logits = logit_matrix(bundle, images, texts).view(len(prompts), n, 1 + len(prior_texts))
    return PromptLogits(prompts, logits[..., 0], logits[..., 1:])


__all__ = [
    "FIND_TEMPLATES", "NEUTRAL_TEXTS", "PromptLogits", "backgrounds", "logit_matrix", "prior_subtracted",
    "prompt_logits", "render_prompt", "rendering_items",
]
