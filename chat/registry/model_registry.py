"""The model registry: lazy, thread-safe, memory-budgeted access to every model in the config."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from chat.config import Config, ModelSpec
from chat.errors import OutOfMemory, describe, is_out_of_memory, out_of_memory_message
from chat.registry.loading import ModelLoader
from chat.registry.memory import Entry, ModelMemory, Placement, Progress, UnloadListener
from chat.registry.sharing import SharedParts


def digest_cache() -> Path:
    """Where the shared parts' weight digests are kept between runs (chat.registry.sharing)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "mmchat" / "part-digests.json"


class ModelRegistry:
    """Lazy, thread-safe, memory-budgeted access to every model in the config.

    Made of three parts: ``memory`` (:class:`chat.registry.memory.ModelMemory`: what is on the device, the budget,
    moving models off it), ``loader`` (:class:`chat.registry.loading.ModelLoader`: loading one model into that
    memory) and ``parts`` (:class:`chat.registry.sharing.SharedParts`: the pipelines' VAE, text encoder and
    tokenizer when they are the same). ``get(name)`` loads a model on first use and keeps its call within
    ``memory_budget_gb``.

    What happens (loading, moving, unloading) is told to every progress listener
    (:meth:`add_progress_listener`) as ``callback(name, fraction, message)``; ``progress``, given to the constructor
    or set later, is told first.
    """

    def __init__(self, config: Config, progress: Progress | None = None):
        self.config = config
        self.progress = progress
        self._listeners: list[Progress] = []
        self._listeners_lock = threading.Lock()
        self.memory = ModelMemory(config, self.report)
        self.parts = SharedParts(digest_cache())
        self.loader = ModelLoader(config, self.memory, self.report, self.parts)

    # -- progress --------------------------------------------------------------------------
    def add_progress_listener(self, callback: Progress) -> Callable[[], None]:
        """Tell ``callback(name, fraction, message)`` what the registry does from now on: each load's phases
        (fraction 0 to 1), models moved to CPU RAM, back, or unloaded. Returns a function that removes it. A
        listener that raises is logged and the others are still told."""
        with self._listeners_lock:
            self._listeners.append(callback)

        def remove() -> None:
            with self._listeners_lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return remove

    def report(self, name: str, fraction: float, message: str) -> None:
        """Tell ``progress`` and every listener (what loading, moving and unloading models call)."""
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in ([self.progress] if self.progress is not None else []) + listeners:
            try:
                listener(name, fraction, message)
            except Exception as exc:  # noqa: BLE001 - a listener must not stop a load
                logging.getLogger(__name__).warning("progress listener failed: %s", describe(exc))

    # -- models ----------------------------------------------------------------------------
    def available(self) -> list[str]:
        return sorted(self.config.models)

    def get(self, name: str) -> Any:
        """The loaded model bundle or pipeline for a config key, loading it (or bringing it back from CPU RAM)
        first if needed, with room on the device for its call."""
        with self.memory.lock:
            entry = self.memory.acquire(name, lambda: self.loader.load(name))
            self.loader.before_call(entry)
            return entry.obj

    def model_config(self, name: str) -> Any:
        """The transformers config of a model, without loading it or moving it: the loaded model's own (on the
        device or waiting in CPU RAM), else read from its checkpoint's ``config.json`` (once)."""
        entry = self.memory.entry(name)
        config = getattr(getattr(getattr(entry, "obj", None), "model", None), "config", None)
        return config if config is not None else self.loader.checkpoint_config(name)

    def retry_on_oom(self, work: Callable[[], Any], what: str) -> Any:
        """Run ``work``; if the device runs out of memory, free it (the caches and every other model, to CPU RAM
        where they may wait) and run it once more. The recovery is told to the progress listeners in one sentence;
        a second failure becomes an :class:`OutOfMemory` with one clear sentence. The models stay usable either way."""
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
            if not is_out_of_memory(exc):
                raise
        freed = self.free_memory()
        try:
            result = work()
        except Exception as exc:  # noqa: BLE001
            if is_out_of_memory(exc):
                raise OutOfMemory(out_of_memory_message(what, freed)) from exc
            raise
        moved = f" after moving {', '.join(freed)} off the device" if freed else " after freeing the caches"
        self.report(what, 1.0, f"The device ran out of memory for {what}; it worked on the second try{moved}.")
        return result

    # -- what the memory knows (delegated) -------------------------------------------------
    @property
    def device(self) -> str:
        return self.memory.device

    def dtype_for(self, spec: ModelSpec):
        return self.memory.dtype_for(spec)

    @property
    def budget_bytes(self) -> int:
        return self.memory.budget_bytes

    @property
    def offload_device(self) -> str | None:
        return self.memory.offload_device

    @property
    def evictions(self) -> list[str]:
        return self.memory.evictions

    @property
    def offloads(self) -> list[str]:
        return self.memory.offloads

    @property
    def load_count(self) -> dict[str, int]:
        return self.loader.load_count

    def loaded(self) -> list[str]:
        return self.memory.loaded()

    def offloaded(self) -> list[str]:
        return self.memory.offloaded()

    def used_bytes(self) -> int:
        return self.memory.used_bytes()

    def placement(self) -> Placement:
        """Where every model is now: on the device, in CPU RAM, which parts the device holds (a snapshot)."""
        return self.memory.placement()

    def is_loaded(self, name: str) -> bool:
        return self.memory.is_loaded(name)

    def entry(self, name: str) -> Entry | None:
        return self.memory.entry(name)

    def on_unload(self, name: str, callback: UnloadListener) -> Callable[[], None]:
        return self.memory.on_unload(name, callback)

    def unload(self, name: str) -> bool:
        return self.memory.unload(name)

    def unload_all(self) -> None:
        self.memory.unload_all()

    def free_memory(self, keep: str | None = None) -> list[str]:
        return self.memory.free_memory(keep)
