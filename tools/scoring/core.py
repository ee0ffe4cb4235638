"""The scoring tool: zero-shot scores of labels for an image or its marked regions, best first."""

from __future__ import annotations

from typing import Any, Sequence

from PIL import Image

from tools.errors import UserError
from tools.scoring.cache import EmbeddingCache
from tools.scoring.encoders import (
    cached_image_embeddings,
    get_bundle,
    is_sigmoid,
    label_embeddings,
    logits_for,
    model_id,
    normalise,
    scores_from_logits,
)
from tools.scoring.renderings import region_renderings
from tools.scoring.schemas import DEFAULT_TEMPLATES, ScoreResult, clean_labels


def _torch():
    import torch

    return torch


def score_labels(
    models: Any,
    image: Image.Image,
    labels: Sequence[str],
    *,
    model: str = "clip",
    markers: Sequence[Any] = (),
    masks=None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    cache: EmbeddingCache | None = None,
    outside: str = "none",
    ensemble: bool = True,
) -> ScoreResult:
    """Zero-shot scores of ``labels`` for ``image`` (or the regions of ``markers``), best first.

    CLIP: softmax over the labels of ``logit_scale * cos``. SigLIP: ``sigmoid(logit_scale * cos +
    logit_bias)`` per label. With markers, a red ellipse is drawn around each marked region; with
    ``ensemble`` the image embedding averages the plain / blurred-outside / greyed-outside renderings,
    otherwise only the rendering named by ``outside`` is used.
    """
    torch = _torch()
    try:
        labels = clean_labels(labels)
    except ValueError as exc:
        raise UserError(str(exc)[0].upper() + str(exc)[1:] + ".") from None
    bundle = get_bundle(models, model)
    cache = cache if cache is not None else EmbeddingCache()
    mid = model_id(model, bundle)
    sigmoid = is_sigmoid(bundle)
    items = region_renderings(image, list(markers), masks, outside=outside, ensemble=ensemble)
    image_emb = normalise(cached_image_embeddings(bundle, mid, items, cache).mean(dim=0))
    text_emb = label_embeddings(bundle, mid, labels, templates, cache)
    logits = logits_for(bundle, image_emb, text_emb)
    scores = scores_from_logits(logits, sigmoid)
    order = torch.argsort(scores, descending=True, stable=True).tolist()
    return ScoreResult(
        labels=[labels[i] for i in order],
        scores=[float(scores[i]) for i in order],
        logits=[float(logits[i]) for i in order],
        mode="sigmoid" if sigmoid else "softmax",
        model=model,
        region=bool(markers),
        renderings=[key[1].split("@")[0] for key, _ in items],
    )
