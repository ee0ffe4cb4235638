"""Zero-shot scoring of labels against an image with CLIP (softmax) or SigLIP (sigmoid).

    >>> result = score_labels(registry, image, ["cat", "dog"])            # whole image, CLIP
    >>> result.summary()
    'cat 0.71, dog 0.29'
    >>> score_labels(registry, image, ["a cat"], model="siglip", markers=[marker])  # region-aware

Region-aware scoring follows "What does CLIP know about a red circle?" (Shtedritski et al., 2023):
each marked region gets a red ellipse fitted around it, optionally with everything outside greyed or
blurred; with ``ensemble=True`` the image embedding is the average over those renderings. Text
embeddings are averaged over prompt templates (CLIP's prompt ensembling).

Embeddings are cached in an :class:`EmbeddingCache` owned by the caller (the assistant owns one), so a
second set of labels for the same image never runs the vision encoder again; with CLIP the cache also keeps
the prompt template's prefix ("<bos> a photo of a"), so a new label runs only its own tokens through the text
encoder. Scores are computed in float32 whatever the model's dtype.

One concern per module: :mod:`.schemas` (labels, input schema, result), :mod:`.cache` (the embedding cache),
:mod:`.encoders` (embeddings and logits), :mod:`.text_prefix` (CLIP text with a reused template prefix),
:mod:`.renderings` (region renderings), :mod:`.core` (the tool,
``score_labels``), :mod:`.chart` (the bar chart). The names below are the public API.
"""

from tools.scoring.cache import EmbeddingCache
from tools.scoring.chart import score_chart
from tools.scoring.core import score_labels
from tools.scoring.encoders import (
    cached_image_embeddings,
    cached_text_embeddings,
    check_templates,
    encode_images,
    encode_texts,
    get_bundle,
    is_sigmoid,
    label_embeddings,
    logits_for,
    model_id,
    scores_from_logits,
)
from tools.scoring.renderings import RENDERINGS, ellipse_markers, fitted_ellipse, region_renderings, render_region
from tools.scoring.schemas import (
    DEFAULT_TEMPLATES,
    MAX_LABEL_CHARS,
    MAX_LABELS,
    ModelName,
    Outside,
    ScoreInput,
    ScoreMode,
    ScoreResult,
    clean_labels,
    parse_labels,
)

__all__ = [
    "DEFAULT_TEMPLATES", "MAX_LABELS", "MAX_LABEL_CHARS", "RENDERINGS", "EmbeddingCache", "ModelName", "Outside",
    "ScoreInput", "ScoreMode", "ScoreResult", "cached_image_embeddings", "cached_text_embeddings",
    "check_templates", "clean_labels", "ellipse_markers", "encode_images", "encode_texts", "fitted_ellipse",
    "get_bundle", "is_sigmoid", "label_embeddings", "logits_for", "model_id", "parse_labels", "region_renderings",
    "render_region", "score_chart", "score_labels", "scores_from_logits",
]
