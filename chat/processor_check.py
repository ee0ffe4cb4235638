"""LLaVA-style checkpoints at load time: the processor's image-token fields, filled in when the checkpoint lacks
them, and a self-check that one image expands to as many image tokens as the vision tower gives features.

transformers 5's LLaVA processors count an image's tokens as ``(h // patch_size) * (w // patch_size) +
num_additional_image_tokens (- 1 with strategy "default")``, with defaults ``None`` / ``0`` / ``None`` and no
fallback: a hub processor config written before these fields existed makes the first image turn fail mid-chat
(a TypeError, or "Image features and image tokens do not match"). :func:`backfill` fills the missing fields from
the model's config (a CLIP tower adds one CLS token; ViP-LLaVA always drops it), and :func:`self_check` proves the
result on a dummy image, so a bad checkpoint fails at load with one sentence instead.
"""

from __future__ import annotations

from typing import Any

FIELDS = ("patch_size", "num_additional_image_tokens", "vision_feature_select_strategy")
CLS_TOWERS = ("clip_vision_model",)  # vision towers whose output starts with a CLS token


class SelfCheckError(ValueError):
    """The checkpoint's processor and model disagree; the message says how (no checkpoint name: the caller's)."""


def _saved_fields(processor, path: str, revision: str | None) -> set[str] | None:
    """Which of :data:`FIELDS` the checkpoint's processor config sets; None when it cannot be read."""
    try:
        saved, _ = type(processor).get_processor_dict(path, revision=revision)
    except Exception:  # noqa: BLE001 - unreadable: decide from the loaded values alone
        return None
    return {name for name in FIELDS if saved.get(name) is not None}


def backfill(processor: Any, model: Any, path: str, revision: str | None = None) -> str:
    """Set the fields the checkpoint's processor config lacks from ``model.config``; a one-line note of what was
    filled ("" when nothing was, or the processor has no such fields)."""
    if not all(hasattr(processor, name) for name in FIELDS):
        return ""
    config = model.config
    vision = getattr(config, "vision_config", None)
    saved = _saved_fields(processor, path, revision)
    if saved is None:  # unknown: only fields left at None are surely missing
        saved = {name for name in FIELDS if getattr(processor, name) is not None}
        if saved:
            saved.add("num_additional_image_tokens")
    values = {
        "patch_size": getattr(vision, "patch_size", None),
        "vision_feature_select_strategy": getattr(config, "vision_feature_select_strategy", None) or "default",
        "num_additional_image_tokens": 1 if getattr(vision, "model_type", "") in CLS_TOWERS else 0,
    }
    filled = {name: values[name] for name in FIELDS if name not in saved and values[name] is not None}
    for name, value in filled.items():
        setattr(processor, name, value)
    if not filled:
        return ""
    return "its processor config lacks " + ", ".join(filled) + "; filled from the model config: " + \
        ", ".join(f"{k}={v!r}" for k, v in filled.items())


def _count_features(pooled) -> int:
    items = pooled if isinstance(pooled, (list, tuple)) else [pooled]
    return sum(t.numel() // t.shape[-1] for t in items)


def self_check(processor: Any, model: Any) -> int:
    """Run one dummy image through the processor and the vision tower; the image-token count when they agree,
    else :class:`SelfCheckError`. Skipped (returns 0) for models without ``get_image_features``."""
    import torch
    from PIL import Image

    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "get_image_features"):
        return 0
    token_id = getattr(model.config, "image_token_id", None)
    image = Image.new("RGB", (64, 48), (124, 116, 104))
    fields = ", ".join(f"{name}={getattr(processor, name, None)!r}" for name in FIELDS)
    try:
        batch = processor(images=[image], text=processor.image_token, return_tensors="pt")
    except Exception as exc:  # noqa: BLE001 - a processor that cannot expand an image is the finding
        raise SelfCheckError(f"its processor cannot expand an image ({type(exc).__name__}: {exc}; "
                             f"processor {fields})") from exc
    tokens = int((batch["input_ids"] == token_id).sum())
    tower = next(inner.vision_tower.parameters())
    kwargs = {"pixel_values": batch["pixel_values"].to(device=tower.device, dtype=tower.dtype), "return_dict": True}
    if "image_sizes" in batch:
        kwargs["image_sizes"] = batch["image_sizes"].to(tower.device)
    with torch.inference_mode():
        features = _count_features(inner.get_image_features(**kwargs).pooler_output)
    if tokens != features:
        expected = getattr(model.config, "image_seq_length", None)  # fixed-size models only (not LLaVA-NeXT)
        seq = f", config image_seq_length={expected}" if expected is not None and "image_sizes" not in batch else ""
        raise SelfCheckError(
            f"its processor expands one image to {tokens} image tokens but the vision tower gives {features} "
            f"features (processor {fields}{seq}); fix these fields in its processor_config.json"
        )
    return tokens
