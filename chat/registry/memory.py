"""Where loaded models live: device and dtype, and one memory budget kept by moving models off the device.

When one more model would exceed ``memory_budget_gb``, the least recently used models leave the device:

- On a GPU with ``offload.ram_gb > 0`` they are *offloaded*: moved to CPU RAM (in place, so every reference
  stays valid) and moved back on their next use, which is much faster than loading them again. The offloaded
  models share ``offload.ram_gb``; the least recently used of them are unloaded when it is full.
- Otherwise they are unloaded. On a CPU-only machine this is always the case: the models already live in
  RAM, there is nowhere to offload to, so offloading would be unloading.

Whoever keeps something per model that must go with it (the chat model's KV prefix cache and vision-feature
cache) registers ``on_unload(name, callback)``: the callback runs whenever that model is offloaded or unloaded.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from chat.config import Config, ModelSpec
from chat.errors import describe
from chat.registry.sizes import GIB

# progress(model_name, fraction in [0, 1], message)
Progress = Callable[[str, float, str], None]
# on_unload listener: listener(model_name), called after the model was offloaded or unloaded
UnloadListener = Callable[[str], None]


@dataclass
class Entry:
    name: str
    obj: Any
    nbytes: int  # what it costs the device budget
    load_seconds: float
    last_used: float
    offloadable: bool = True  # False for pipelines under enable_model_cpu_offload (they manage themselves)
    notes: list[str] = field(default_factory=list)  # what the loader chose or filled in, one line each


def _torch():
    import torch

    return torch


class ModelMemory:
    """The models on the device (least recently used first), those waiting in CPU RAM, and the budget.

    The base of :class:`chat.registry.ModelRegistry`; every method that changes placement is called with
    ``self._lock`` held or takes it.
    """

    def __init__(self, config: Config, progress: Progress | None = None):
        self.config = config
        self.progress = progress  # may be replaced at any time (the UI chains its own)
        self._entries: OrderedDict[str, Entry] = OrderedDict()  # on the device, least recently used first
        self._offloaded: OrderedDict[str, Entry] = OrderedDict()  # in CPU RAM, least recently used first
        self._lock = threading.RLock()
        self.evictions: list[str] = []  # models pushed off the device to make room (offloaded or unloaded)
        self.offloads: list[str] = []  # those of them that were moved to CPU RAM rather than unloaded
        self._unload_listeners: dict[str, list[UnloadListener]] = {}

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

    # -- what is where ---------------------------------------------------------------------
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

    def entry(self, name: str) -> Entry | None:
        """The entry of a loaded (or offloaded) model: its bytes, load time and notes; None when not loaded."""
        with self._lock:
            return self._entries.get(name) or self._offloaded.get(name)

    # -- freeing ---------------------------------------------------------------------------
    def on_unload(self, name: str, callback: UnloadListener) -> Callable[[], None]:
        """Call ``callback(name)`` each time model ``name`` leaves the device or memory: offloaded to CPU RAM or
        unloaded to stay within the budget, unloaded from CPU RAM, or by ``unload`` / ``unload_all`` /
        ``free_memory`` (also the out-of-memory retries). For caches kept beside a model that hold device memory
        or belong to its weights. Returns a function that removes the listener.

        The callback runs in the thread that freed the model, possibly while the registry's lock is held: keep it
        short (clear a cache) and never load a model from it. If it raises, the error is logged and freeing goes on.
        """
        with self._lock:
            self._unload_listeners.setdefault(name, []).append(callback)

        def remove() -> None:
            with self._lock:
                listeners = self._unload_listeners.get(name, [])
                if callback in listeners:
                    listeners.remove(callback)

        return remove

    def unload(self, name: str) -> bool:
        with self._lock:
            entry = self._entries.pop(name, None) or self._offloaded.pop(name, None)
        if entry is None:
            return False
        del entry
        self._notify_unload(name)
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

    # -- internals -------------------------------------------------------------------------
    def _notify_unload(self, name: str) -> None:
        with self._lock:
            listeners = list(self._unload_listeners.get(name, []))
        for listener in listeners:
            try:
                listener(name)
            except Exception as exc:  # noqa: BLE001 - a listener must not stop memory from being freed
                logging.getLogger(__name__).warning("on_unload listener for %s failed: %s", name, describe(exc))

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
            self._notify_unload(victim_name)
            self._free()

    def _offload(self, entry: Entry) -> bool:
        """Move a model pushed off the device into CPU RAM when allowed; False means: unload it."""
        target = self.offload_device
        if target is None or not entry.offloadable or entry.nbytes > self.offload_budget_bytes:
            return False
        while self._offloaded and self.offloaded_bytes() + entry.nbytes > self.offload_budget_bytes:
            dropped, _ = self._offloaded.popitem(last=False)
            self._report(entry.name, 0.0, f"unloading {dropped} from CPU RAM (offload.ram_gb is full)")
            self._notify_unload(dropped)
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
