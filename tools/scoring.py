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
second set of labels for the same image never runs the vision encoder again. Scores are computed in
float32 whatever the model's dtype.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterable, Literal, Sequence

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chat.errors import UserError

DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)
MAX_LABELS = 100
MAX_LABEL_CHARS = 200
ScoreMode = Literal["softmax", "sigmoid"]
ModelName = Literal["clip", "siglip"]
Outside = Literal["none", "blur", "grey"]

# The renderings averaged for region-aware scoring: name -> what is done outside the marked regions.
RENDERINGS: dict[str, str] = {"ellipse": "none", "ellipse+blur": "blur", "ellipse+grey": "grey"}
_BATCH = 16  # images or prompts per forward pass


# --------------------------------------------------------------------------------------------
# Inputs and results
# --------------------------------------------------------------------------------------------
def clean_labels(labels: Iterable[Any], limit: int = MAX_LABELS) -> list[str]:
    """Strip, check and de-duplicate labels (first occurrence wins); raise ValueError with one sentence."""
    if isinstance(labels, str):
        raise ValueError("labels must be a list of strings, e.g. [\"cat\", \"dog\"], not one string")
    cleaned: list[str] = []
    seen: set[str] = set()
    for i, label in enumerate(labels, 1):
        if not isinstance(label, str):
            raise ValueError(f"label {i} is not text ({type(label).__name__}); give each label as a string")
        text = " ".join(label.split())
        if not text:
            raise ValueError(f"label {i} is empty; every label needs some text, e.g. \"cat\"")
        if len(text) > MAX_LABEL_CHARS:
            raise ValueError(f"label {i} is {len(text)} characters long; the limit is {MAX_LABEL_CHARS}")
        if text.casefold() not in seen:
            seen.add(text.casefold())
            cleaned.append(text)
    if not cleaned:
        raise ValueError("no labels given; pass at least one label to score, e.g. [\"cat\", \"dog\"]")
    if len(cleaned) > limit:
        raise ValueError(f"{len(cleaned)} labels given; at most {limit} can be scored at once")
    return cleaned


class ScoreInput(BaseModel):
    """Score how well each label describes an image (or its marked region)."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str] = Field(
        description="Candidate labels to score against the image, one short phrase each, e.g. "
        "[\"cat\", \"dog\", \"a red car\"]. 1 to 100 labels; duplicates are ignored.",
    )
    model: ModelName = Field(
        "clip",
        description="'clip' compares the labels with each other (softmax: the scores sum to 1, pick the best); "
        "'siglip' scores each label on its own (sigmoid: a probability per label, also meaningful for a "
        "single label, e.g. 'is there a dog?').",
    )
    region: bool = Field(
        True,
        description="When the image has markers (clicked points, boxes), score the marked region only "
        "(a red ellipse is drawn around it). False scores the whole image.",
    )
    image: str | None = Field(
        None,
        description="Id of the image to score, e.g. 'img1' or 'img1.v2'; leave empty for the active image.",
    )

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value):
        if value is None:
            raise ValueError("no labels given; pass at least one label to score, e.g. [\"cat\", \"dog\"]")
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError("labels must be a list of strings, e.g. [\"cat\", \"dog\"]")
        return clean_labels(value)


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value >= 0.01 or value == 0 else f"{value:.1e}"


class ScoreResult(BaseModel):
    """Labels with their scores, best first."""

    labels: list[str]
    scores: list[float]
    mode: ScoreMode
    model: str
    region: bool = False
    logits: list[float] = Field(
        default_factory=list,
        description="Raw logits (scale * cosine [+ bias]) in the order of labels: comparable across label sets.",
    )
    renderings: list[str] = Field(default_factory=list, description="image renderings averaged")

    @property
    def best(self) -> str:
        return self.labels[0]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.labels, self.scores))

    def table(self) -> str:
        """A markdown table, best label first."""
        head = "probability" if self.mode == "softmax" else "match probability"
        lines = [f"| label | {head} |", "|---|---:|"]
        for label, score in zip(self.labels, self.scores):
            lines.append(f"| {label.replace('|', '/')} | {score:.3f} |")
        return "\n".join(lines)

    def summary(self, top: int = 5) -> str:
        """One line, e.g. ``cat 0.71, dog 0.29``."""
        parts = [f"{label} {_fmt(score)}" for label, score in zip(self.labels[:top], self.scores[:top])]
        more = len(self.labels) - top
        return ", ".join(parts) + (f" (+{more} more)" if more > 0 else "")


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------
class EmbeddingCache:
    """Bounded LRU caches of normalised float32 embeddings (CPU tensors).

    Image entries are keyed by ``(model id, image digest, rendering variant)``, text entries by
    ``(model id, prompt)``. ``image_encodes`` / ``text_encodes`` count how many images / prompts were
    actually run through an encoder (cache misses); ``hits`` counts lookups served from the cache.
    Thread-safe.
    """

    def __init__(self, max_entries: int = 256, max_texts: int | None = None):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_images = max_entries
        self.max_texts = max_texts or max_entries * 16  # text vectors are small; label sets are many
        self._images: OrderedDict[Hashable, Any] = OrderedDict()
        self._texts: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.RLock()
        self.image_encodes = 0
        self.text_encodes = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._images) + len(self._texts)

    def clear(self) -> None:
        with self._lock:
            self._images.clear()
            self._texts.clear()

    def stats(self) -> dict[str, int]:
        return {
            "images": len(self._images),
            "texts": len(self._texts),
            "image_encodes": self.image_encodes,
            "text_encodes": self.text_encodes,
            "hits": self.hits,
        }

    @staticmethod
    def image_digest(image: Image.Image) -> str:
        """sha1 of the pixels, mode and size: equal images share embeddings whatever object holds them."""
        h = hashlib.sha1()
        h.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
        h.update(image.tobytes())
        return h.hexdigest()

    def _lookup(self, store: OrderedDict, keys: Sequence[Hashable]) -> list[Any]:
        with self._lock:
            found = []
            for key in keys:
                value = store.get(key)
                if value is not None:
                    store.move_to_end(key)
                    self.hits += 1
                found.append(value)
            return found

    def _store(self, store: OrderedDict, limit: int, items: Iterable[tuple[Hashable, Any]]) -> None:
        with self._lock:
            for key, value in items:
                store[key] = value
                store.move_to_end(key)
            while len(store) > limit:
                store.popitem(last=False)

    def images(self, keys: Sequence[Hashable], compute: Callable[[list[int]], Sequence[Any]]) -> list[Any]:
        """Embeddings for ``keys``; ``compute(missing indices)`` encodes the misses in one go."""
        found = self._lookup(self._images, keys)
        missing = [i for i, v in enumerate(found) if v is None]
        if missing:
            values = compute(missing)
            with self._lock:
                self.image_encodes += len(missing)
            self._store(self._images, self.max_images, ((keys[i], v) for i, v in zip(missing, values)))
            for i, v in zip(missing, values):
                found[i] = v
        return found

    def texts(self, keys: Sequence[Hashable], compute: Callable[[list[int]], Sequence[Any]]) -> list[Any]:
        found = self._lookup(self._texts, keys)
        missing = [i for i, v in enumerate(found) if v is None]
        if missing:
            values = compute(missing)
            with self._lock:
                self.text_encodes += len(missing)
            self._store(self._texts, self.max_texts, ((keys[i], v) for i, v in zip(missing, values)))
            for i, v in zip(missing, values):
                found[i] = v
        return found


# --------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------
def _torch():
    import torch

    return torch


def get_bundle(models: Any, model: str):
    """The processor/model bundle: ``models`` is a registry or any mapping-like object with ``get``."""
    try:
        bundle = models.get(model)
    except UserError:
        raise
    if bundle is None or not hasattr(bundle, "model") or not hasattr(bundle, "processor"):
        raise UserError(f"Model '{model}' is not available for scoring; add it under 'models:' in the config.")
    return bundle


def is_sigmoid(bundle) -> bool:
    """SigLIP-style models (a learned ``logit_bias``) score each label with a sigmoid."""
    return getattr(bundle.model, "logit_bias", None) is not None


def model_id(name: str, bundle) -> str:
    """What cache keys use to tell models apart: the config key and the checkpoint it was loaded from."""
    path = getattr(getattr(bundle.model, "config", None), "_name_or_path", "") or ""
    return f"{name}:{path}"


def _device_dtype(module):
    param = next(module.parameters())
    return param.device, param.dtype


def _normalise(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _features(output):
    """transformers 5 returns an output object whose ``pooler_output`` is the projected embedding."""
    return output if hasattr(output, "shape") else output.pooler_output


def encode_images(bundle, images: Sequence[Image.Image]):
    """Normalised float32 image embeddings [n, d] on the CPU (no cache)."""
    torch = _torch()
    device, dtype = _device_dtype(bundle.model)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), _BATCH):
            batch = [im.convert("RGB") for im in images[start : start + _BATCH]]
            pixels = bundle.processor(images=batch, return_tensors="pt")["pixel_values"]
            out = bundle.model.get_image_features(pixel_values=pixels.to(device=device, dtype=dtype))
            chunks.append(_normalise(_features(out).float()).cpu())
    return torch.cat(chunks)


def encode_texts(bundle, prompts: Sequence[str]):
    """Normalised float32 text embeddings [n, d] on the CPU (no cache)."""
    torch = _torch()
    device, _ = _device_dtype(bundle.model)
    sigmoid = is_sigmoid(bundle)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(prompts), _BATCH):
            batch = list(prompts[start : start + _BATCH])
            if sigmoid:  # SigLIP was trained on texts padded to exactly 64 tokens
                tokens = bundle.processor(text=batch, padding="max_length", max_length=64, truncation=True,
                                          return_tensors="pt")
            else:
                tokens = bundle.processor(text=batch, padding=True, truncation=True, return_tensors="pt")
            tokens = {k: v.to(device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
            out = bundle.model.get_text_features(**tokens)
            chunks.append(_normalise(_features(out).float()).cpu())
    return torch.cat(chunks)


def cached_image_embeddings(bundle, mid: str, items: Sequence[tuple[Hashable, Callable[[], Image.Image]]],
                            cache: EmbeddingCache):
    """Embeddings [n, d] of lazily rendered images: ``items`` are ``(key, render)``; only misses render."""
    torch = _torch()
    keys = [(mid, *key) if isinstance(key, tuple) else (mid, key) for key, _ in items]
    values = cache.images(keys, lambda missing: list(encode_images(bundle, [items[i][1]() for i in missing])))
    return torch.stack(values)


def cached_text_embeddings(bundle, mid: str, prompts: Sequence[str], cache: EmbeddingCache):
    torch = _torch()
    keys = [(mid, p) for p in prompts]
    values = cache.texts(keys, lambda missing: list(encode_texts(bundle, [prompts[i] for i in missing])))
    return torch.stack(values)


def check_templates(templates: Sequence[str]) -> list[str]:
    templates = [t for t in templates if t and t.strip()]
    if not templates:
        return list(DEFAULT_TEMPLATES)
    for t in templates:
        if "{}" not in t:
            raise UserError(f"Prompt template '{t}' has no '{{}}' where the label goes, e.g. 'a photo of a {{}}.'")
    return templates


def label_embeddings(bundle, mid: str, labels: Sequence[str], templates: Sequence[str], cache: EmbeddingCache):
    """One normalised embedding per label: the mean of its normalised template embeddings, renormalised."""
    templates = check_templates(templates)
    prompts = [t.replace("{}", label) for label in labels for t in templates]
    emb = cached_text_embeddings(bundle, mid, prompts, cache)
    emb = emb.view(len(labels), len(templates), -1).mean(dim=1)
    return _normalise(emb)


def logits_for(bundle, image_emb, text_emb):
    """float32 logits [L]: scale * cos (+ bias for SigLIP) of one image embedding against L labels."""
    torch = _torch()
    scale = bundle.model.logit_scale.detach().float().cpu().exp()
    logits = (text_emb.float() @ image_emb.float().reshape(-1)) * scale
    bias = getattr(bundle.model, "logit_bias", None)
    if bias is not None:
        logits = logits + bias.detach().float().cpu().reshape(())
    return logits.to(torch.float32)


def scores_from_logits(logits, sigmoid: bool):
    torch = _torch()
    return torch.sigmoid(logits) if sigmoid else torch.softmax(logits, dim=-1)


# --------------------------------------------------------------------------------------------
# Region renderings (the red-circle recipe)
# --------------------------------------------------------------------------------------------
def fitted_ellipse(
    marker, size: tuple[int, int], masks=None, index: int | None = None
) -> tuple[int, int, int, int] | None:
    """The bounding box of the smallest axis-aligned ellipse with the region's aspect that encloses it.

    A circle's region gives the circle back; a box's region gives the ellipse through its corners.
    ``masks``/``index`` are passed to :func:`tools.markers.region_mask` (contour markers).
    """
    import numpy as np

    from tools.markers import region_mask

    region = np.asarray(region_mask(marker, size, masks, index=index), dtype=bool)
    ys, xs = np.nonzero(region)
    if xs.size == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a, b = max((x1 - x0) / 2, 1.0), max((y1 - y0) / 2, 1.0)
    if xs.size > 20000:  # the extremes of a large region are well represented by a subsample
        step = xs.size // 20000 + 1
        xs, ys = xs[::step], ys[::step]
    reach = float(np.sqrt((((xs + 0.5 - cx) / a) ** 2 + ((ys + 0.5 - cy) / b) ** 2).max()))
    s = max(1.0, reach)
    a, b = a * s, b * s
    return (int(math.floor(cx - a)), int(math.floor(cy - b)), int(math.ceil(cx + a)), int(math.ceil(cy + b)))


def ellipse_markers(markers: Sequence[Any], size: tuple[int, int], masks=None) -> list[Any]:
    """A red ellipse fitted around each marker's region (markers with an empty region are skipped)."""
    from tools.markers import Marker

    out = []
    for index, marker in enumerate(markers):
        box = fitted_ellipse(marker, size, masks, index)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        out.append(Marker(x=(x0 + x1) // 2, y=(y0 + y1) // 2, shape="ellipse", color="red", bbox=box))
    return out


def render_region(image: Image.Image, ellipses: Sequence[Any], outside: str = "none") -> Image.Image:
    from tools.markers import draw_markers

    return draw_markers(image, list(ellipses), outside=outside, number=False)


def region_renderings(image: Image.Image, markers: Sequence[Any], masks=None, *, outside: str = "none",
                      ensemble: bool = True) -> list[tuple[tuple, Callable[[], Image.Image]]]:
    """``(variant key, render)`` pairs for scoring ``image`` with its markers (lazy: render on a miss)."""
    if outside not in ("none", "blur", "grey"):
        raise UserError(f"outside must be 'none', 'blur' or 'grey', not '{outside}'.")
    digest = EmbeddingCache.image_digest(image)
    if not markers:
        return [((digest, "full"), lambda: image)]
    ellipses = ellipse_markers(markers, image.size, masks)
    if not ellipses:
        raise UserError("The markers cover no pixels of the image; place them inside the image.")
    boxes = ";".join(",".join(str(v) for v in e.bbox) for e in ellipses)
    if ensemble:
        chosen = list(RENDERINGS.items())
    else:
        chosen = [(name, mode) for name, mode in RENDERINGS.items() if mode == outside]
    return [((digest, f"{name}@{boxes}"), (lambda mode=mode: render_region(image, ellipses, mode)))
            for name, mode in chosen]


# --------------------------------------------------------------------------------------------
# The tool
# --------------------------------------------------------------------------------------------
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
    image_emb = _normalise(cached_image_embeddings(bundle, mid, items, cache).mean(dim=0))
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


def score_chart(result: ScoreResult) -> Image.Image:
    """A horizontal bar chart of the scores (best at the top), as an RGB image."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(result.labels)
    shown = [label if len(label) <= 40 else label[:39] + "…" for label in result.labels]
    fig = Figure(figsize=(6.4, max(1.6, 0.38 * n + 1.0)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(n))[::-1]
    bars = ax.barh(ys, result.scores, color="#d62728" if result.region else "#1f77b4")
    ax.set_yticks(ys, shown)
    ax.set_xlim(0, 1.12)
    for bar, score in zip(bars, result.scores):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{score:.3f}", va="center", fontsize=9)
    what = "marked region" if result.region else "whole image"
    kind = "softmax over labels" if result.mode == "softmax" else "sigmoid per label"
    ax.set_title(f"{result.model.upper()} zero-shot scores ({kind}, {what})", fontsize=10)
    ax.set_xlabel("probability")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
