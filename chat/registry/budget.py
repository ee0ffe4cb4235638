"""What the device budget holds besides weights, and how large the budget is.

On a GPU everything on the device counts against ``memory_budget_gb``:

- the weights of the models on it (:mod:`chat.registry.memory`);
- the caches kept across turns, at their configured limits (:func:`cache_bytes`): the conversations' KV caches
  (``cache.prefix_gb``), the images' projected features (``cache.vision_entries`` x 576 tokens x 4096 x 2 bytes
  for LLaVA-1.5-7B) and the CLIP template prefixes of the embedding cache (its embeddings live in CPU RAM);
- what a model's call adds while it runs (:func:`call_bytes`): its activations at the working sizes, LLaVA's
  KV cache over the trained context and the batch of a constrained choice. The figures come from
  :mod:`chat.bench.activations`, which traces the full-size architectures on the meta device; ``python -m
  chat.bench memory`` prints them and a test checks that :data:`ACTIVATION_MIB` equals that computation.

On a CPU the budget counts weights only: activations and caches live in RAM the system shares.

``memory_budget_gb: auto`` (the default) is measured on a GPU: the memory free once the CUDA context and the
math libraries' workspaces exist (so their cost and anything another process holds are left out), less
``memory_margin_gb`` for the allocator's fragmentation. On a CPU it is half the machine's RAM.
"""

from __future__ import annotations

import os

from chat.config import Config, ModelSpec

GIB, MIB = 2**30, 2**20

# Bytes a call adds over the model's weights, float16, by phase (chat.bench.activations, torch 2.13,
# transformers 5.24, diffusers 0.42): LLaVA's prefill over 2048 tokens (KV cache included), 16 images / prompts
# for CLIP and SigLIP, SAM at 1024 px with 64 points, the SD pipelines at 512 px.
ACTIVATION_MIB: dict[str, dict[str, float]] = {
    "llava": {"prefill": 1224.8},
    "vip_llava": {"prefill": 1229.3},
    "clip": {"images": 298.8, "texts": 28.9},
    "siglip": {"images": 307.5, "texts": 25.8},
    "blip_caption": {"generate": 31.3},
    "blip_vqa": {"generate": 23.7},
    "sam": {"encode": 1035.5},
    "pix2pix": {"text": 5.4, "encode": 321.5, "denoise": 195.5, "decode": 384.1},
    "inpaint": {"text": 3.6, "encode": 321.5, "denoise": 130.4, "decode": 384.1},
    "txt2img": {"text": 3.6, "denoise": 130.3, "decode": 384.1},
    "controlnet": {"denoise": 166.2},
}
# the components each pipeline phase needs on the device (under model CPU offload only these are there)
PHASE_COMPONENTS = {"text": ("text_encoder",), "encode": ("vae",), "denoise": ("unet",), "decode": ("vae",)}
TRAINED_CONTEXT = 2048  # the context ACTIVATION_MIB's prefill was traced at
KV_MIB_PER_TOKEN = 0.5  # LLaVA-1.5-7B: 2 x 32 layers x 4096 x 2 bytes
DEQUANTIZED_MIB = 86.0  # the largest NF4 weight (11008 x 4096) dequantized to float16 for a prefill
FEATURE_BYTES = 576 * 4096 * 2  # one image's projected features, LLaVA-1.5-7B in float16
CLIP_PREFIX_BYTES = 12 * 2 * 16 * 768 * 2  # one template prefix's keys and values (12 layers, up to 16 tokens)


def family(key: str) -> str | None:
    """The family a config key belongs to (``llava_13b`` -> ``llava``), as the loaders name them."""
    if key in ACTIVATION_MIB:
        return key
    for name in sorted(ACTIVATION_MIB, key=len, reverse=True):
        if key.startswith(name):
            return name
    return None


def cache_parts(config: Config) -> dict[str, int]:
    """Device bytes of each cache kept across turns at its configured limit: the conversations' KV caches, the
    images' projected features, the CLIP template prefixes."""
    cache = config.cache
    prefixes = min(cache.embedding_entries, 8)  # tools.scoring.EmbeddingCache keeps at most 8 template prefixes
    return {"kv_prefixes": int(cache.prefix_gb * GIB), "vision_features": cache.vision_entries * FEATURE_BYTES,
            "clip_prefixes": prefixes * CLIP_PREFIX_BYTES}


def cache_bytes(config: Config) -> int:
    """Device bytes the caches kept across turns may hold at their configured limits."""
    return sum(cache_parts(config).values())


def llava_call_bytes(spec: ModelSpec, config: Config, prefill_mib: float) -> int:
    """LLaVA's call: its KV cache over the context, plus the larger of the prefill's other activations (and the
    dequantized weight of an NF4 layer) and the batch of a constrained choice (``cache.prefix_gb`` at most)."""
    context = spec.context_tokens or TRAINED_CONTEXT
    kv = KV_MIB_PER_TOKEN * MIB * context
    transient = (prefill_mib - KV_MIB_PER_TOKEN * TRAINED_CONTEXT) * MIB
    if spec.quantize != "none":
        transient += DEQUANTIZED_MIB * MIB
    return int(kv + max(transient, config.cache.prefix_gb * GIB))


def call_bytes(key: str, config: Config, component_bytes: dict[str, int] | None = None) -> int:
    """Device bytes a call of model ``key`` adds over the weights already on the device. ``component_bytes``
    (a pipeline under model CPU offload): each component's weights, which visit the device phase by phase."""
    name = family(key)
    if name is None:
        return 0
    phases = ACTIVATION_MIB[name]
    if name in ("llava", "vip_llava"):
        return llava_call_bytes(config.model(key), config, phases["prefill"])
    if component_bytes is None:
        return int(max(phases.values()) * MIB)
    return int(max(mib * MIB + sum(component_bytes.get(c, 0) for c in PHASE_COMPONENTS.get(phase, ()))
                   for phase, mib in phases.items()))


def physical_ram() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * GIB


def measure_gpu() -> dict[str, int] | None:
    """The GPU's total memory, what is free once the CUDA context and the cuBLAS workspace exist, and what the
    context (plus any other process) holds: ``{"total", "free", "context"}`` in bytes; None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    a = torch.ones(64, 64, device="cuda", dtype=torch.float16)
    (a @ a).sum().item()  # creates the cuBLAS handle and its workspace
    free, total = torch.cuda.mem_get_info()
    ours = torch.cuda.memory_reserved()  # our own allocator's blocks are ours to use
    return {"total": int(total), "free": int(free + ours), "context": int(total - free - ours)}


def auto_budget(config: Config, device: str) -> int:
    """``memory_budget_gb: auto`` in bytes: the GPU's free memory after the CUDA context, less the margin; on a
    CPU half the machine's RAM."""
    measured = measure_gpu() if device == "cuda" else None
    if measured is None:
        return physical_ram() // 2
    return max(int(measured["free"] - config.memory_margin_gb * GIB), GIB // 2)
