"""The one place models are loaded: lazily, on first use, within one memory budget.

The registry owns device, dtype and quantization for every model, estimates a checkpoint's footprint
before loading it (from the safetensors headers, at the dtype and quantization it will get), and makes room
when one more model would exceed ``memory_budget_gb``: the least recently used models leave the device.

Where they go:

- On a GPU with ``offload.ram_gb > 0`` they are *offloaded*: moved to CPU RAM (in place, so every reference
  stays valid) and moved back on their next use, which is much faster than loading them again. The offloaded
  models share ``offload.ram_gb``; the least recently used of them are unloaded when it is full.
- Otherwise they are unloaded. On a CPU-only machine this is always the case: the models already live in
  RAM, there is nowhere to offload to, so offloading would be unloading.

Diffusers pipelines on a GPU may instead use ``enable_model_cpu_offload()`` (``offload.diffusers``): the
pipeline lives in CPU RAM and each component visits the GPU while it runs, so the budget is charged only
its largest component. ``auto`` does so for a pipeline that would not fit in the budget on its own.
Missing tiny checkpoints are built on demand when the config names a ``tiny_dir``.
"""

from __future__ import annotations

import gc
import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from chat.config import Config, ModelSpec
from chat.errors import ModelLoadError, OutOfMemory, is_out_of_memory, out_of_memory_message
from chat.loaders import LoadSettings, check_model_type, loader_for

# progress(model_name, fraction in [0, 1], message)
Progress = Callable[[str, float, str], None]

GIB = 2**30
NF4_BLOCK, NF4_NESTED_BLOCK = 64, 256
# Modules of LLaVA-style models that stay unquantized (same list as chat.loaders.load_mllm), by name fragment.
_UNQUANTIZED = ("vision_tower", "multi_modal_projector", "lm_head", "embed")
_FLOAT_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}
_SAFETENSORS_ITEMSIZE = {**_FLOAT_DTYPES, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_NOT_LOADED = ("safety_checker", "feature_extractor")  # pipeline folders loaded with safety_checker=None


def nf4_bytes(numel: int) -> int:
    """Bytes of one bitsandbytes NF4 weight with double quantization (blocks of 64): packed 4-bit values, a
    uint8 absmax per block, a float32 absmax per 256 blocks, and per tensor the 16-entry NF4 code, the
    256-entry code of the nested quantization and the offset (float32). About 4.13 bits per weight."""
    blocks = math.ceil(numel / NF4_BLOCK)
    return math.ceil(numel / 2) + blocks + math.ceil(blocks / NF4_NESTED_BLOCK) * 4 + (16 + 256 + 1) * 4


def int8_bytes(numel: int, rows: int) -> int:
    """Bytes of one LLM.int8 weight: one byte per weight, a float32 scale per output row."""
    return numel + rows * 4


@dataclass
class Entry:
    name: str
    obj: Any
    nbytes: int  # what it costs the device budget
    load_seconds: float
    last_used: float
    offloadable: bool = True  # False for pipelines under enable_model_cpu_offload (they manage themselves)


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
            for part in (t, *_quantization_tensors(t)):
                if id(part) not in seen:
                    seen.add(id(part))
                    total += part.numel() * part.element_size()
    return total


def _quantization_tensors(t) -> list:
    """The tensors bitsandbytes keeps beside a quantized weight (4-bit quant state, int8 row scales)."""
    out = []
    state = getattr(t, "quant_state", None)
    while state is not None:
        out += [x for x in (getattr(state, "absmax", None), getattr(state, "code", None),
                            getattr(state, "offset", None)) if hasattr(x, "element_size")]
        state = getattr(state, "state2", None)
    scb = getattr(t, "SCB", None)
    if hasattr(scb, "element_size"):
        out.append(scb)
    return out


def peak_footprint(pipe) -> int:
    """Device bytes of a pipeline under ``enable_model_cpu_offload``: its largest component."""
    torch = _torch()
    sizes = [footprint(c) for c in pipe.components.values() if isinstance(c, torch.nn.Module)]
    return max(sizes, default=0)


def local_folder(path: str, revision: str | None = None) -> Path | None:
    """The folder holding a checkpoint: a local folder, or a hub id's snapshot in the Hugging Face cache
    (looked up offline, never downloaded); None when there is none."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p
    if path.startswith(("/", ".", "~")) or path.count("/") != 1:
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(path, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or no hub library): nothing to estimate from
        return None


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors files a load reads: no variant beside its main file (``x.fp16.safetensors`` next to
    ``x.safetensors``) and no folder the loaders skip (the safety checker)."""
    out = []
    for f in sorted(folder.rglob("*.safetensors")):
        if set(f.relative_to(folder).parts) & set(_NOT_LOADED):
            continue
        parts = f.name.split(".")
        if len(parts) > 2 and (f.parent / f"{parts[0]}.{parts[-1]}").exists():
            continue
        out.append(f)
    return out


def _safetensors_header(path: Path) -> dict:
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        if size <= 0 or size > 100 * 2**20:
            raise ValueError(f"{path} is not a safetensors file")
        return json.loads(handle.read(size))


def _quantized(name: str, shape: list[int]) -> bool:
    return len(shape) == 2 and name.endswith(".weight") and not any(s in name for s in _UNQUANTIZED)


def estimate_bytes(path: str, quantize: str = "none", itemsize: int | None = None, revision: str | None = None) -> int:
    """Bytes a checkpoint will take once loaded, read from its safetensors headers before loading it: floating
    tensors at ``itemsize`` bytes (the dtype it is loaded in; None: as stored), the linear weights of a language
    model in NF4 / int8 when ``quantize`` says so. 0 when the checkpoint is not on this machine."""
    folder = local_folder(path, revision)
    if folder is None:
        return 0
    total = 0
    for file in _weight_files(folder):
        try:
            header = _safetensors_header(file)
        except (OSError, ValueError):
            total += file.stat().st_size
            continue
        for name, info in header.items():
            if name == "__metadata__":
                continue
            shape, dtype = info.get("shape", []), info.get("dtype", "F32")
            numel = math.prod(shape)
            if quantize == "nf4" and _quantized(name, shape):
                total += nf4_bytes(numel)
            elif quantize == "int8" and _quantized(name, shape):
                total += int8_bytes(numel, shape[0])
            elif dtype in _FLOAT_DTYPES and itemsize:
                total += numel * itemsize
            else:
                total += numel * _SAFETENSORS_ITEMSIZE.get(dtype, 4)
    return total


class ModelRegistry:
    """Lazy, thread-safe, memory-budgeted access to every model in the config."""

    def __init__(self, config: Config, progress: Progress | None = None):
        self.config = config
        self.progress = progress
        self._entries: OrderedDict[str, Entry] = OrderedDict()  # on the device, least recently used first
        self._offloaded: OrderedDict[str, Entry] = OrderedDict()  # in CPU RAM, least recently used first
        self._lock = threading.RLock()
        self.evictions: list[str] = []  # models pushed off the device to make room (offloaded or unloaded)
        self.offloads: list[str] = []  # those of them that were moved to CPU RAM rather than unloaded
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
        return int(self.config.memory_budget_gb * GIB)

    @property
    def offload_device(self) -> str | None:
        """Where the least recently used models go instead of being unloaded: CPU RAM when models run on a GPU
        and ``offload.ram_gb`` > 0. None on a CPU-only machine: the models already live in RAM, so offloading
        one would free nothing; it is unloaded instead."""
        if self.device == "cpu" or self.config.offload.ram_gb <= 0:
            return None
        return "cpu"

    @property
    def offload_budget_bytes(self) -> int:
        return int(self.config.offload.ram_gb * GIB)

    # -- public API ------------------------------------------------------------------------
    def available(self) -> list[str]:
        return sorted(self.config.models)

    def loaded(self) -> list[str]:
        """Models on the device, least recently used first."""
        with self._lock:
            return list(self._entries)

    def offloaded(self) -> list[str]:
        """Models waiting in CPU RAM (offloaded from the GPU), least recently used first."""
        with self._lock:
            return list(self._offloaded)

    def used_bytes(self) -> int:
        """Bytes charged to the device budget."""
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def offloaded_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._offloaded.values())

    def is_loaded(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Any:
        """The loaded model bundle or pipeline for a config key, loading it (or bringing it back from CPU RAM)
        first if needed."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                entry = self._offloaded.pop(name, None)
                if entry is not None:
                    self._restore(entry)
                else:
                    entry = self._load(name)
                self._entries[name] = entry
            entry.last_used = time.monotonic()
            self._entries.move_to_end(name)
            return entry.obj

    def unload(self, name: str) -> bool:
        with self._lock:
            entry = self._entries.pop(name, None) or self._offloaded.pop(name, None)
        if entry is None:
            return False
        del entry
        self._free()
        return True

    def unload_all(self) -> None:
        for name in self.loaded() + self.offloaded():
            self.unload(name)

    def free_memory(self, keep: str | None = None) -> list[str]:
        """Unload every model but ``keep`` (default: the most recently used one); the names unloaded."""
        with self._lock:
            if keep is None and self._entries:
                keep = next(reversed(self._entries))
            names = [n for n in list(self._entries) + list(self._offloaded) if n != keep]
        for name in names:
            self._report(name, 0.0, f"unloading {name} to free memory")
            self.unload(name)
        self._free()
        return names

    def retry_on_oom(self, work: Callable[[], Any], what: str) -> Any:
        """Run ``work``; if the device runs out of memory, free every other model and run it once more. A second
        failure becomes an :class:`OutOfMemory` with one clear sentence; the models stay usable either way."""
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
            if not is_out_of_memory(exc):
                raise
        freed = self.free_memory()
        try:
            return work()
        except Exception as exc:  # noqa: BLE001
            if is_out_of_memory(exc):
                raise OutOfMemory(out_of_memory_message(what, freed)) from exc
            raise

    # -- internals -------------------------------------------------------------------------
    def _report(self, name: str, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(name, fraction, message)

    def _free(self) -> None:
        gc.collect()
        torch = _torch()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @staticmethod
    def _move(obj: Any, device: str) -> None:
        """Move a model, bundle or pipeline to ``device`` in place (every reference to it stays valid)."""
        torch = _torch()
        if isinstance(obj, torch.nn.Module) or hasattr(obj, "components"):
            obj.to(device)
        elif hasattr(obj, "model"):
            obj.model.to(device)

    def _make_room(self, name: str, needed: int) -> None:
        """Push the least recently used models off the device until ``needed`` more bytes fit the budget."""
        while self._entries and self.used_bytes() + needed > self.budget_bytes:
            victim_name, victim = self._entries.popitem(last=False)
            self.evictions.append(victim_name)
            if self._offload(victim):
                self._report(name, 0.0, f"moved {victim_name} to CPU RAM to stay within the memory budget")
            else:
                self._report(name, 0.0, f"unloading {victim_name} to stay within the memory budget")
            del victim
            self._free()

    def _offload(self, entry: Entry) -> bool:
        """Move a model pushed off the device into CPU RAM when allowed; False means: unload it."""
        target = self.offload_device
        if target is None or not entry.offloadable or entry.nbytes > self.offload_budget_bytes:
            return False
        while self._offloaded and self.offloaded_bytes() + entry.nbytes > self.offload_budget_bytes:
            dropped, _ = self._offloaded.popitem(last=False)
            self._report(entry.name, 0.0, f"unloading {dropped} from CPU RAM (offload.ram_gb is full)")
        try:
            self._move(entry.obj, target)
        except Exception:  # noqa: BLE001 - a model that cannot move is unloaded instead
            return False
        self._offloaded[entry.name] = entry
        self.offloads.append(entry.name)
        return True

    def _restore(self, entry: Entry) -> None:
        """Bring an offloaded model back to the device (making room first)."""
        self._make_room(entry.name, entry.nbytes)
        self._report(entry.name, 0.0, f"moving {entry.name} back to {self.device}")
        self._move(entry.obj, self.device)

    def _model_cpu_offload(self, what: str, estimate: int) -> bool:
        """Whether a diffusers pipeline should run under ``enable_model_cpu_offload`` (GPU only)."""
        mode = self.config.offload.diffusers
        if self.device != "cuda" or mode == "never" or not what.endswith("pipeline"):
            return False
        return mode == "always" or estimate > self.budget_bytes

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
        dtype = self.dtype_for(spec)
        quantize = spec.quantize if loader.__name__ == "load_mllm" else "none"  # only LLaVA-style models quantize
        estimate = estimate_bytes(path, quantize, _torch().empty((), dtype=dtype).element_size(), spec.revision)
        cpu_offload = self._model_cpu_offload(what, estimate)
        if cpu_offload:
            estimate = 0  # charged its largest component once loaded
        self._make_room(name, estimate)
        settings = LoadSettings("cpu" if cpu_offload else self.device, dtype, spec.quantize, spec.revision)
        self._report(name, 0.0, f"loading {name} from {spec.path}")
        start = time.perf_counter()
        try:
            check_model_type(path, settings, accepted, what)
            obj = self._load_once(loader, path, settings, cpu_offload, name)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear sentence
            raise ModelLoadError(_explain(name, spec.path, what, exc)) from exc
        seconds = time.perf_counter() - start
        self.load_count[name] = self.load_count.get(name, 0) + 1
        nbytes = peak_footprint(obj) if cpu_offload else footprint(obj)
        how = ", model CPU offload" if cpu_offload else ""
        self._report(name, 1.0, f"loaded {name} in {seconds:.1f} s ({nbytes / 2**20:.0f} MiB{how})")
        entry = Entry(name, obj, nbytes, seconds, time.monotonic(), offloadable=not cpu_offload)
        self._make_room(name, nbytes)
        return entry

    def _load_once(self, loader, path: str, settings: LoadSettings, cpu_offload: bool, name: str) -> Any:
        """Load; when memory runs out, unload every other model (device and CPU RAM) and try once more."""
        def load():
            obj = loader(path, settings)
            if cpu_offload:
                obj.enable_model_cpu_offload(device=self.device)
            return obj

        try:
            return load()
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
            if not is_out_of_memory(exc) or not (self._entries or self._offloaded):
                raise
        self._free()
        for other in list(self._entries) + list(self._offloaded):
            self._report(name, 0.0, f"unloading {other} to make room for {name}")
            self.unload(other)
        return load()


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
