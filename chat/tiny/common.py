"""Helpers shared by the tiny builders: seeding, saving, image processors read from the hub fixtures."""

from __future__ import annotations

import contextlib
from pathlib import Path

from . import fixtures

SEED = 0


@contextlib.contextmanager
def seeded(seed: int = SEED):
    """Deterministic random init: a fixed torch seed (the global RNG is restored after), no grad."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad():
            yield


def save_model(model, directory: Path) -> None:
    """``save_pretrained`` in safetensors (float32, one shard)."""
    model.eval()
    model.save_pretrained(str(directory), safe_serialization=True)


def image_processor(repo: str, class_name: str, **overrides):
    """``class_name`` (a transformers image processor) with the settings of ``repo``'s preprocessor_config.json.

    Use the PIL classes (``CLIPImageProcessorPil``, ...): torchvision is absent; they save under the
    checkpoint's class name (``CLIPImageProcessor``) like the real files.
    """
    import transformers

    return getattr(transformers, class_name).from_pretrained(str(fixtures.folder(repo)), **overrides)


def clip_image_processor(size: int | None = None):
    """llava-1.5's CLIP image processor (resize the shortest edge, centre crop, CLIP mean/std), at ``size``
    pixels instead of the hub's 336 when given (chat.bench builds other towers with it)."""
    overrides = {} if size is None else {"size": {"shortest_edge": size}, "crop_size": {"height": size, "width": size}}
    return image_processor(fixtures.REPOS["llava"], "CLIPImageProcessorPil", **overrides)
