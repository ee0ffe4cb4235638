"""The one place models are loaded: lazily, on first use, within one memory budget.

The registry owns device, dtype and quantization for every model, estimates a checkpoint's footprint
before loading it, and unloads the least recently used models when one more would exceed the budget.
Missing tiny checkpoints are built on demand when the config names a ``tiny_dir``.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from chat.config import Config, ModelSpec
from chat.errors import ModelLoadError
from chat.loaders import LoadSettings, check_model_type, loader_for

# progress(model_name, fraction in [0, 1], message)
Progress = Callable[[str, float, str], None]

_QUANT_FACTOR = {"none": 1.0, "int8": 0.5, "nf4": 0.3}


@dataclass
class Entry:
    name: str
    obj: Any
    nbytes: int
    load_seconds: float
    last_used: float


def _torch():
    import torch

    return torch


def footprint(obj: Any) -> int:
    """Bytes held by the parameters and buffers of a model, a bundle or a pipeline."""
    torch = _torch()
    modules = []
    if isinstance(obj, torch.nn.Module):
        modules = [obj]
    elif hasattr(obj, "components"):  # diffusers pipeline
        modules = [c for c in obj.components.values() if isinstance(c, torch.nn.Module)]
    elif hasattr(obj, "model"):
        modules = [obj.model]
    seen, total = set(), 0
    for module in modules:
        for t in list(module.parameters()) + list(module.buffers()):
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
    return total


def estimate_bytes(path: str, quantize: str) -> int:
    """Rough size of a checkpoint before loading it: weight files on disk, scaled for quantization."""
    p = Path(path)
    if not p.is_dir():
        return 0
    size = sum(f.stat().st_size for f in p.rglob("*.safetensors"))
    return int(size * _QUANT_FACTOR.get(quantize, 1.0))


class ModelRegistry:
    """Lazy, thread-safe, memory-budgeted access to every model in the config."""

    def __init__(self, config: Config, progress: Progress | None = None):
        self.config = config
        self.progress = progress
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.RLock()
        self.evictions: list[str] = []
        self.load_count: dict[str, int] = {}

    # -- placement -------------------------------------------------------------------------
    @property
    def device(self) -> str:
        if self.config.device != "auto":
            return self.config.device
        return "cuda" if _torch().cuda.is_available() else "cpu"

    def dtype_for(self, spec: ModelSpec):
        torch = _torch()
        name = spec.dtype if spec.dtype != "auto" else self.config.dtype
        if name == "auto":
            return torch.float16 if self.device == "cuda" else torch.float32
        return getattr(torch, name)

    @property
    def budget_bytes(self) -> int:
        return int(self.config.memory_budget_gb * 2**30)

    # -- public API ------------------------------------------------------------------------
    def available(self) -> list[str]:
        return sorted(self.config.models)

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def used_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def is_loaded(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Any:
        """The loaded model bundle or pipeline for a config key, loading it first if needed."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                entry = self._load(name)
                self._entries[name] = entry
            entry.last_used = time.monotonic()
            self._entries.move_to_end(name)
            return entry.obj

    def unload(self, name: str) -> bool:
        with self._lock:
            entry = self._entries.pop(name, None)
        if entry is None:
            return False
        del entry
        self._free()
        return True

    def unload_all(self) -> None:
        for name in self.loaded():
            self.unload(name)

    # -- internals -------------------------------------------------------------------------
    def _report(self, name: str, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(name, fraction, message)

    def _free(self) -> None:
        gc.collect()
        torch = _torch()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _make_room(self, name: str, needed: int) -> None:
        while self._entries and self.used_bytes() + needed > self.budget_bytes:
            victim, _ = self._entries.popitem(last=False)
            self.evictions.append(victim)
            self._report(name, 0.0, f"unloading {victim} to stay within the memory budget")
            self._free()

    def _resolve_path(self, name: str, spec: ModelSpec) -> str:
        tiny = self.config.tiny_path
        path = Path(spec.path)
        if tiny is not None and path.parent == tiny and not path.exists():
            from chat import tiny as tiny_builder

            self._report(name, 0.0, f"building the tiny offline checkpoint '{path.name}'")
            tiny_builder.ensure(tiny, path.name)
        local = spec.path.startswith(("/", ".", "~")) or path.exists()
        if local and not path.is_dir():
            raise ModelLoadError(
                f"Checkpoint folder '{spec.path}' for model '{name}' does not exist; "
                f"run 'mmchat build-tiny' or fix 'models.{name}.path' in the config."
            )
        return str(path) if local else spec.path

    def _load(self, name: str) -> Entry:
        spec = self.config.model(name)
        try:
            loader, what, accepted = loader_for(name)
        except KeyError:
            raise ModelLoadError(f"No loader for model '{name}'; known kinds: llava, clip, siglip, blip_caption, "
                                 "blip_vqa, sam, pix2pix, inpaint, txt2img, controlnet.") from None
        path = self._resolve_path(name, spec)
        self._make_room(name, estimate_bytes(path, spec.quantize))
        settings = LoadSettings(self.device, self.dtype_for(spec), spec.quantize, spec.revision)
        self._report(name, 0.0, f"loading {name} from {spec.path}")
        start = time.perf_counter()
        try:
            check_model_type(path, settings, accepted, what)
            obj = loader(path, settings)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear sentence
            raise ModelLoadError(_explain(name, spec.path, what, exc)) from exc
        seconds = time.perf_counter() - start
        self.load_count[name] = self.load_count.get(name, 0) + 1
        nbytes = footprint(obj)
        self._report(name, 1.0, f"loaded {name} in {seconds:.1f} s ({nbytes / 2**20:.0f} MiB)")
        entry = Entry(name, obj, nbytes, seconds, time.monotonic())
        self._make_room(name, nbytes)
        return entry


def _explain(name: str, path: str, what: str, exc: Exception) -> str:
    text = str(exc)
    lowered = text.lower()
    if "out of memory" in lowered:
        return f"Not enough memory to load model '{name}' ({path}); lower memory_budget_gb or use a smaller checkpoint."
    if isinstance(exc, OSError) or "connect" in lowered or "offline" in lowered or "resolve" in lowered:
        return (
            f"Could not load model '{name}' from '{path}': it is not in the local Hugging Face cache and cannot be "
            f"downloaded here; download it on a connected machine or point 'models.{name}.path' at a local folder."
        )
    first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
    return f"Checkpoint '{path}' for model '{name}' is not a usable {what}: {first}"
