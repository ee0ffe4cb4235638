"""CLIP/SigLIP encoders: normalised float32 image and text embeddings (cached), and logits from them."""

from __future__ import annotations

from typing import Any, Callable, Hashable, Sequence

from PIL import Image

from tools.errors import UserError
from tools.aspect import square_images
from tools.scoring.cache import EmbeddingCache
from tools.scoring.schemas import DEFAULT_TEMPLATES

_BATCH = 16  # images or prompts per forward pass


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


def aspect_ratio(bundle) -> str:
    """How the bundle's images are made square (``models.<name>.image_aspect_ratio``; see :mod:`tools.aspect`)."""
    return getattr(bundle, "image_aspect_ratio", "auto")


def model_id(name: str, bundle) -> str:
    """What cache keys use to tell models apart: the config key, the checkpoint it was loaded from, and how
    its images are made square (the same image padded or cropped embeds differently)."""
    path = getattr(getattr(bundle.model, "config", None), "_name_or_path", "") or ""
    return f"{name}:{path}:{aspect_ratio(bundle)}"


def _device_dtype(module):
    param = next(module.parameters())
    return param.device, param.dtype


def normalise(x):
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
            # padded to square where the processor would centre-crop (CLIP): a marker near an edge stays in view
            batch = square_images(images[start : start + _BATCH], bundle.processor, aspect_ratio(bundle))
            pixels = bundle.processor(images=batch, return_tensors="pt")["pixel_values"]
            out = bundle.model.get_image_features(pixel_values=pixels.to(device=device, dtype=dtype))
            chunks.append(normalise(_features(out).float()).cpu())
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
            if sigmoid:  # SigLIP was trained on texts padded to exactly 64 tokens, with no attention mask: its
                # pad tokens are attended to (the real tokenizer returns no mask; a mask from any other is dropped)
                tokens = bundle.processor(text=batch, padding="max_length", max_length=64, truncation=True,
                                          return_tensors="pt")
                names: tuple[str, ...] = ("input_ids",)
            else:
                tokens = bundle.processor(text=batch, padding=True, truncation=True, return_tensors="pt")
                names = ("input_ids", "attention_mask")
            tokens = {k: v.to(device) for k, v in tokens.items() if k in names}
            out = bundle.model.get_text_features(**tokens)
            chunks.append(normalise(_features(out).float()).cpu())
    return torch.cat(chunks)


def cached_image_embeddings(bundle, mid: str, items: Sequence[tuple[Hashable, Callable[[], Image.Image]]],
                            cache: EmbeddingCache):
    """Embeddings [n, d] of lazily rendered images: ``items`` are ``(key, render)``; only misses render."""
    torch = _torch()
    keys = [(mid, *key) if isinstance(key, tuple) else (mid, key) for key, _ in items]
    values = cache.images(keys, lambda missing: list(encode_images(bundle, [items[i][1]() for i in missing])))
    return torch.stack(values)


def cached_text_embeddings(bundle, mid: str, prompts: Sequence[str], cache: EmbeddingCache,
                           prefixes: Sequence[str] | None = None):
    """Embeddings [n, d] of ``prompts``; with ``prefixes`` (each prompt's template text before its label), a CLIP
    model encodes that prefix once and only the rest of each new prompt (:mod:`tools.scoring.text_prefix`)."""
    from tools.scoring.text_prefix import encode_with_prefixes, reuses_prefix

    torch = _torch()
    keys = [(mid, p) for p in prompts]
    if prefixes is not None and reuses_prefix(bundle):
        def encode(missing):
            return list(encode_with_prefixes(bundle, mid, [prompts[i] for i in missing],
                                             [prefixes[i] for i in missing], cache, batch=_BATCH))
    else:
        def encode(missing):
            return list(encode_texts(bundle, [prompts[i] for i in missing]))
    return torch.stack(cache.texts(keys, encode))


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
    prefixes = [t[: t.index("{}")] for _ in labels for t in templates]
    emb = cached_text_embeddings(bundle, mid, prompts, cache, prefixes)
    emb = emb.view(len(labels), len(templates), -1).mean(dim=1)
    return normalise(emb)


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
