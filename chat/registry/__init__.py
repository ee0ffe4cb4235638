"""The one place models are loaded: lazily, on first use, within one memory budget.

The registry owns device, dtype and quantization for every model, estimates a checkpoint's footprint before
loading it (from the safetensors headers, at the dtype and quantization it will get), and makes room when a
model's call would exceed ``memory_budget_gb`` (weights, kept caches and the call's activations on a GPU): the
least recently used models leave the device (offloaded to CPU RAM on a GPU with ``offload.ram_gb``, else
unloaded), except the profile's resident ones. Pipelines whose VAE, text encoder or tokenizer are the same share
one. Missing tiny checkpoints are built on demand when the config names a ``tiny_dir``.

One concern per module:

- :mod:`chat.registry.model_registry`: :class:`ModelRegistry`, the public API (``get``, ``retry_on_oom``,
  ``add_progress_listener``), made of the three parts below.
- :mod:`chat.registry.memory`: device and dtype, the budget, LRU eviction and offload to CPU RAM, and
  ``on_unload(name, callback)``: listeners told when a model is offloaded or unloaded (to drop its caches).
- :mod:`chat.registry.loading`: loading one model (checkpoint folder, OOM retry, the loaders' notes).
- :mod:`chat.registry.sharing`: one VAE / text encoder / tokenizer for pipelines whose parts are the same.
- :mod:`chat.registry.budget`: what the budget holds besides weights (caches, each call), ``auto`` from the GPU.
- :mod:`chat.registry.load_errors`: a failed load as one sentence per cause (not cached, no such repository,
  gated, no weights file, self-check, ...).
- :mod:`chat.registry.sizes`: bytes of a checkpoint before loading it and of a loaded model.
"""

from chat.registry.memory import Entry, ModelMemory, Placement, Progress, UnloadListener
from chat.registry.model_registry import ModelRegistry
from chat.registry.sizes import GIB, estimate_bytes, footprint, int8_bytes, local_folder, nf4_bytes, peak_footprint

__all__ = [
    "GIB", "Entry", "ModelMemory", "ModelRegistry", "Placement", "Progress", "estimate_bytes", "footprint", "int8_bytes",
    "local_folder", "nf4_bytes", "peak_footprint", "UnloadListener",
]
