"""The model registry: lazy, thread-safe, memory-budgeted access to every model in the config."""

from __future__ import annotations

import time
from typing import Any, Callable

from chat.errors import OutOfMemory, is_out_of_memory, out_of_memory_message
from chat.registry.loading import ModelLoader


class ModelRegistry(ModelLoader):
    """Lazy, thread-safe, memory-budgeted access to every model in the config.

    ``get(name)`` loads a model on first use (:class:`chat.registry.loading.ModelLoader`) and keeps the device
    within ``memory_budget_gb`` by moving the least recently used models off it
    (:class:`chat.registry.memory.ModelMemory`).
    """

    def available(self) -> list[str]:
        return sorted(self.config.models)

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
