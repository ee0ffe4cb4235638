"""Where loaded models live: device and dtype, and one memory budget kept by moving models off the device.

Before a model runs, its call must fit: the weights on the device, the caches kept across turns and what the call
adds while it runs (activations, LLaVA's KV cache: :mod:`chat.registry.budget`) stay within the budget. When they
would not, the least recently used models leave the device, except those the profile keeps there
(``offload.resident``):

- On a GPU with ``offload.ram_gb > 0`` they are *offloaded*: moved to CPU RAM (in place, so every reference
  stays valid; page-locked with ``offload.pinned``, so they go back about twice as fast) and moved back on their
  next use, which is much faster than loading them again. The offloaded models share ``offload.ram_gb``; the
  least recently used of them are unloaded when it is full. Models listed in ``offload.disk`` are never kept there.
- Otherwise they are unloaded. On a CPU-only machine this is always the case: the models already live in
  RAM, there is nowhere to offload to, so offloading would be unloading. There the budget counts weights only.

A model's weights are counted by part: parts shared by several pipelines (one VAE, one text encoder:
:mod:`chat.registry.sharing`) are counted once, and a pipeline leaving the device leaves the parts that another
model on the device still uses where they are.

Whoever keeps something per model that must go with it (the chat model's KV prefix cache and vision-feature
cache) registers ``on_unload(name, callback)``: the callback runs whenever that model is offloaded or unloaded.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
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
    nbytes: int  # what its weights cost the device budget (shared parts included)
    load_seconds: float
    last_used: float
    offloadable: bool = True  # False for pipelines under enable_model_cpu_offload (they manage themselves)
    notes: list[str] = field(default_factory=list)  # what the loader chose or filled in, one line each
    parts: dict[str, int] = field(default_factory=dict)  # part key -> bytes; a shared part has one key everywhere
    part_of: dict[str, str] = field(default_factory=dict)  # a pipeline's component -> its part key
    call_bytes: int = 0  # device bytes one call adds over the weights (activations; offloaded pipeline parts)
    host_bytes: int = 0  # bytes it holds in CPU RAM while it counts as loaded (a pipeline under model CPU offload)

    def sizes(self) -> dict[str, int]:
        return self.parts or {self.name: self.nbytes}


@dataclass(frozen=True)
class Placement:
    """Where the models are at one moment (:meth:`ModelMemory.placement`): a read-only snapshot."""

    on_device: tuple[str, ...]  # models that count as loaded, least recently used first
    self_managed: tuple[str, ...]  # those of them under diffusers' model CPU offload: their parts wait in CPU RAM
    in_ram: tuple[str, ...]  # models offloaded to CPU RAM, least recently used first
    device_parts: frozenset[str]  # the part keys on the device (a shared VAE or text encoder is one key)
    host_bytes: int  # CPU RAM the models hold: the offloaded ones and those under model CPU offload

    @property
    def waiting_in_ram(self) -> tuple[str, ...]:
        """Models whose weights are in CPU RAM between calls: offloaded or under model CPU offload."""
        return self.in_ram + self.self_managed


def _torch():
    import torch

    return torch


def _union(entries) -> dict[str, int]:
    out: dict[str, int] = {}
    for entry in entries:
        out.update(entry.sizes())
    return out


class ModelMemory:
    """The models on the device (least recently used first), those waiting in CPU RAM, and the budget.

    ``report(name, fraction, message)`` tells the user what moves; ``call_bytes(name)`` is what a call of a model
    not loaded yet adds over its weights (:func:`chat.registry.budget.call_bytes` by default). Every method that
    changes placement takes ``self.lock``.
    """

    def __init__(self, config: Config, report: Progress | None = None,
                 call_bytes: Callable[[str], int] | None = None, device: str | None = None):
        from chat.registry import budget

        self.config = config
        self._report = report or (lambda name, fraction, message: None)
        self._call_bytes = call_bytes or (lambda name: budget.call_bytes(name, config))
        if device is None:
            device = config.device if config.device != "auto" else (
                "cuda" if _torch().cuda.is_available() else "cpu")
        self.device = device
        # Where the least recently used models go instead of being unloaded: CPU RAM when models run on a GPU and
        # offload.ram_gb > 0. None on a CPU-only machine: the models already live in RAM, so offloading one would
        # free nothing; it is unloaded instead.
        self.offload_device: str | None = None if device == "cpu" or config.offload.ram_gb <= 0 else "cpu"
        self.resident = set(config.offload.resident)
        self.disk = set(config.offload.disk)
        self.counts_calls = device == "cuda"  # on a CPU the budget counts weights only
        self._budget: int | None = None
        self._entries: OrderedDict[str, Entry] = OrderedDict()  # on the device, least recently used first
        self._offloaded: OrderedDict[str, Entry] = OrderedDict()  # in CPU RAM, least recently used first
        self.lock = threading.RLock()
        self.evictions: list[str] = []  # models pushed off the device to make room (offloaded or unloaded)
        self.offloads: list[str] = []  # those of them that were moved to CPU RAM rather than unloaded
        self.restores: list[str] = []  # models brought back from CPU RAM
        self._unload_listeners: dict[str, list[UnloadListener]] = {}

    # -- placement -------------------------------------------------------------------------
    def dtype_for(self, spec: ModelSpec):
        torch = _torch()
        name = spec.dtype if spec.dtype != "auto" else self.config.dtype
        if name == "auto":
            return torch.float16 if self.device == "cuda" else torch.float32
        return getattr(torch, name)

    @property
    def budget_bytes(self) -> int:
        """The device bytes mmchat may use: ``memory_budget_gb``, or measured once when it is ``auto``."""
        if self._budget is None:
            from chat.registry.budget import auto_budget

            setting = self.config.memory_budget_gb
            self._budget = auto_budget(self.config, self.device) if setting == "auto" else int(setting * GIB)
        return self._budget

    @budget_bytes.setter
    def budget_bytes(self, value: int) -> None:
        self._budget = int(value)

    @property
    def offload_budget_bytes(self) -> int:
        return int(self.config.offload.ram_gb * GIB)

    def reserved_bytes(self, name: str, call: int | None = None) -> int:
        """What the budget keeps free beside the weights while ``name`` runs: the kept caches and its call."""
        if not self.counts_calls:
            return 0
        from chat.registry.budget import cache_bytes

        if call is None:
            entry = self._entries.get(name) or self._offloaded.get(name)
            call = entry.call_bytes if entry is not None else self._call_bytes(name)
        return cache_bytes(self.config) + call

    # -- what is where ---------------------------------------------------------------------
    def loaded(self) -> list[str]:
        """Models on the device, least recently used first."""
        with self.lock:
            return list(self._entries)

    def offloaded(self) -> list[str]:
        """Models waiting in CPU RAM (offloaded from the GPU), least recently used first."""
        with self.lock:
            return list(self._offloaded)

    def placement(self) -> Placement:
        """Where every model is now (what the memory bench reports), as a snapshot the caller cannot change."""
        with self.lock:
            return Placement(
                on_device=tuple(self._entries),
                self_managed=tuple(n for n, e in self._entries.items() if not e.offloadable),
                in_ram=tuple(self._offloaded),
                device_parts=frozenset(_union(self._entries.values())),
                host_bytes=sum(e.host_bytes for e in self._entries.values()) + self.offloaded_bytes(),
            )

    def used_bytes(self) -> int:
        """Bytes of weights charged to the device budget (a part shared by several models counts once)."""
        with self.lock:
            return sum(_union(self._entries.values()).values())

    def resident_bytes(self) -> int:
        """Bytes of the resident models (``offload.resident``) on the device."""
        with self.lock:
            return sum(_union(e for n, e in self._entries.items() if n in self.resident).values())

    def offloaded_bytes(self) -> int:
        with self.lock:
            return sum(_union(self._offloaded.values()).values())

    def new_bytes(self, entry: Entry) -> int:
        """Bytes ``entry`` adds to the device: its parts that no other model there holds."""
        with self.lock:
            held = _union(e for n, e in self._entries.items() if n != entry.name)
            return sum(size for key, size in entry.sizes().items() if key not in held)

    def is_loaded(self, name: str) -> bool:
        return name in self._entries

    def entry(self, name: str) -> Entry | None:
        """The entry of a loaded (or offloaded) model: its bytes, load time and notes; None when not loaded."""
        with self.lock:
            return self._entries.get(name) or self._offloaded.get(name)

    # -- using a model ---------------------------------------------------------------------
    def acquire(self, name: str, load: Callable[[], Entry]) -> Entry:
        """The entry of ``name`` on the device, loading it (``load`` makes its own room) or bringing it back from
        CPU RAM first; in every case the room its call needs is made."""
        with self.lock:
            entry = self._entries.get(name)
            if entry is not None:
                self.make_room(name, 0)
            else:
                entry = self._offloaded.pop(name, None)
                if entry is not None:
                    self._restore(entry)
                else:
                    entry = load()
                self._entries[name] = entry
            entry.last_used = time.monotonic()
            self._entries.move_to_end(name)
            return entry

    def make_room(self, name: str, needed: int, call: int | None = None) -> None:
        """Push the least recently used models (never the resident ones, nor ``name``) off the device until
        ``needed`` more bytes of weights and what ``name``'s call needs fit the budget."""
        with self.lock:
            while self.used_bytes() + needed + self.reserved_bytes(name, call) > self.budget_bytes:
                victim = next((n for n in self._entries if n != name and n not in self.resident), None)
                if victim is None:
                    return  # only resident models left: the call runs as it is (out of memory is recovered)
                self._evict(victim, name, "to stay within the memory budget")

    # -- freeing ---------------------------------------------------------------------------
    def on_unload(self, name: str, callback: UnloadListener) -> Callable[[], None]:
        """Call ``callback(name)`` each time model ``name`` leaves the device or memory: offloaded to CPU RAM or
        unloaded to stay within the budget, unloaded from CPU RAM, or by ``unload`` / ``unload_all`` /
        ``free_memory`` (also the out-of-memory retries). For caches kept beside a model that hold device memory
        or belong to its weights. Returns a function that removes the listener.

        The callback runs in the thread that freed the model, possibly while the registry's lock is held: keep it
        short (clear a cache) and never load a model from it. If it raises, the error is logged and freeing goes on.
        """
        with self.lock:
            self._unload_listeners.setdefault(name, []).append(callback)

        def remove() -> None:
            with self.lock:
                listeners = self._unload_listeners.get(name, [])
                if callback in listeners:
                    listeners.remove(callback)

        return remove

    def unload(self, name: str) -> bool:
        with self.lock:
            entry = self._entries.pop(name, None) or self._offloaded.pop(name, None)
        if entry is None:
            return False
        del entry
        self._notify_unload(name)
        self.free()
        return True

    def unload_all(self) -> None:
        for name in self.loaded() + self.offloaded():
            self.unload(name)

    def free_memory(self, keep: str | None = None) -> list[str]:
        """Free the device for a call that ran out of memory: every model but ``keep`` (default: the most recently
        used one), resident ones included, leaves it: to CPU RAM where it may wait there, else unloaded. Their caches
        go with them (``on_unload``). Returns the names that left."""
        with self.lock:
            if keep is None and self._entries:
                keep = next(reversed(self._entries))
            names = [n for n in self._entries if n != keep]
            for name in names:
                self._evict(name, name, "to free memory", count=False)
        self.free()
        return names

    # -- internals -------------------------------------------------------------------------
    def _notify_unload(self, name: str) -> None:
        with self.lock:
            listeners = list(self._unload_listeners.get(name, []))
        for listener in listeners:
            try:
                listener(name)
            except Exception as exc:  # noqa: BLE001 - a listener must not stop memory from being freed
                logging.getLogger(__name__).warning("on_unload listener for %s failed: %s", name, describe(exc))

    def free(self) -> None:
        gc.collect()
        torch = _torch()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def move(self, obj: Any, device: str) -> None:
        """Move a model, bundle or pipeline (or one of its parts) to ``device`` in place (every reference to it
        stays valid); into page-locked memory when it goes to CPU RAM with ``offload.pinned``."""
        torch = _torch()
        if isinstance(obj, torch.nn.Module) or hasattr(obj, "components"):
            obj.to(device)
        elif hasattr(obj, "model"):
            obj.model.to(device)
        if device == "cpu" and self.config.offload.pinned and torch.cuda.is_available():
            _pin(obj)

    def _evict(self, victim_name: str, for_name: str, why: str, count: bool = True) -> None:
        victim = self._entries.pop(victim_name)
        if count:
            self.evictions.append(victim_name)
        if self._offload(victim):
            self._report(for_name, 0.0, f"moved {victim_name} to CPU RAM {why}")
        else:
            self._report(for_name, 0.0, f"unloading {victim_name} {why}")
        del victim
        self._notify_unload(victim_name)
        self.free()

    def _offload(self, entry: Entry) -> bool:
        """Move a model pushed off the device into CPU RAM when allowed; False means: unload it."""
        target = self.offload_device
        size = sum(entry.sizes().values())
        if target is None or not entry.offloadable or entry.name in self.disk or size > self.offload_budget_bytes:
            return False
        while self._offloaded and self.offloaded_bytes() + size > self.offload_budget_bytes:
            dropped, _ = self._offloaded.popitem(last=False)
            self._report(entry.name, 0.0, f"unloading {dropped} from CPU RAM (offload.ram_gb is full)")
            self._notify_unload(dropped)
        try:
            held = _union(self._entries.values())  # parts another model on the device still uses stay there
            if entry.part_of and any(key in held for key in entry.part_of.values()):
                for component, key in entry.part_of.items():
                    if key not in held:
                        self.move(entry.obj.components[component], target)
            else:
                self.move(entry.obj, target)
        except Exception:  # noqa: BLE001 - a model that cannot move is unloaded instead
            return False
        self._offloaded[entry.name] = entry
        self.offloads.append(entry.name)
        return True

    def _restore(self, entry: Entry) -> None:
        """Bring an offloaded model back to the device (making room first)."""
        self.make_room(entry.name, self.new_bytes(entry))
        self._report(entry.name, 0.0, f"moving {entry.name} back to {self.device}")
        self.move(entry.obj, self.device)
        self.restores.append(entry.name)


def _pin(obj: Any) -> None:
    """Put the plain tensors of a model (or a pipeline's models) in page-locked memory (quantized ones stay)."""
    torch = _torch()
    if hasattr(obj, "components"):
        modules = [c for c in obj.components.values() if isinstance(c, torch.nn.Module)]
    else:
        modules = [obj if isinstance(obj, torch.nn.Module) else getattr(obj, "model", None)]
    for module in modules:
        if module is None:
            continue
        for tensor in list(module.parameters()) + list(module.buffers()):
            if type(tensor) in (torch.Tensor, torch.nn.Parameter) and tensor.device.type == "cpu" \
                    and not tensor.is_pinned():
                tensor.data = tensor.data.pin_memory()
