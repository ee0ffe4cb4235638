"""Helpers shared by the tiny builders: seeding, saving, and the one tiny image size."""

from __future__ import annotations

import contextlib
from pathlib import Path

IMAGE_SIZE = 32  # vision towers of the transformers families
PATCH_SIZE = 8
SEED = 0

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


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


def clip_image_processor(size: int = IMAGE_SIZE):
    """A CLIP-style image processor (resize shortest edge, centre crop) for ``size`` pixels.

    The PIL backend (torchvision is absent); it saves as ``CLIPImageProcessor`` like real checkpoints.
    """
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        do_center_crop=True,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )


def clip_vision_kwargs(**overrides) -> dict:
    """Keyword arguments of a tiny CLIP vision tower (hidden 64, 2 layers, 32 px, patch 8)."""
    kwargs = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=64,
        hidden_act="quick_gelu",
    )
    kwargs.update(overrides)
    return kwargs
