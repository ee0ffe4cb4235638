"""Bounded LRU caches of CLIP/SigLIP embeddings, so a seen image never runs the vision encoder again."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterable, Sequence

from PIL import Image


class EmbeddingCache:
    """Bounded LRU caches of normalised float32 embeddings (CPU tensors), and of prompt-template prefixes.

    Image entries are keyed by ``(model id, image digest, rendering variant)``, text entries by
    ``(model id, prompt)``, prefix entries by ``(model id, prefix token ids)``: the per-layer keys and values of
    a template's text before its label (CLIP, see :mod:`tools.scoring.text_prefix`; on the model's device, a few
    hundred KiB each, at most ``max_prefixes`` of them). ``image_encodes`` / ``text_encodes`` /
    ``prefix_encodes`` count how many images / prompts / prefixes were actually run through an encoder (cache
    misses); ``hits`` counts lookups served from the cache. ``max_entries=0`` keeps nothing
    (``cache.embedding_entries: 0`` in the config: no cache). Thread-safe.
    """

    def __init__(self, max_entries: int = 256, max_texts: int | None = None, max_prefixes: int | None = None):
        if min(max_entries, max_texts or 0, max_prefixes or 0) < 0:
            raise ValueError("max_entries, max_texts and max_prefixes must be 0 (no cache) or more")
        self.max_images = max_entries
        # text vectors are small and label sets are many: 16 texts per image unless told
        self.max_texts = max_entries * 16 if max_texts is None else max_texts
        # a few templates per model are ever used
        self.max_prefixes = min(max_entries, 8) if max_prefixes is None else max_prefixes
        self._images: OrderedDict[Hashable, Any] = OrderedDict()
        self._texts: OrderedDict[Hashable, Any] = OrderedDict()
        self._prefixes: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.RLock()
        self.image_encodes = 0
        self.text_encodes = 0
        self.prefix_encodes = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._images) + len(self._texts) + len(self._prefixes)

    def clear(self) -> None:
        with self._lock:
            self._images.clear()
            self._texts.clear()
            self._prefixes.clear()

    def stats(self) -> dict[str, int]:
        return {
            "images": len(self._images),
            "texts": len(self._texts),
            "prefixes": len(self._prefixes),
            "image_encodes": self.image_encodes,
            "text_encodes": self.text_encodes,
            "prefix_encodes": self.prefix_encodes,
            "hits": self.hits,
        }

    def nbytes(self) -> int:
        """Bytes held by the cached tensors (embeddings and prefix keys/values), wherever they live."""
        def size(value) -> int:
            if isinstance(value, (list, tuple)):
                return sum(size(v) for v in value)
            return value.numel() * value.element_size() if hasattr(value, "element_size") else 0

        with self._lock:
            return sum(size(v) for store in (self._images, self._texts, self._prefixes) for v in store.values())

    @staticmethod
    def image_digest(image: Image.Image) -> str:
        """sha256 of the pixels, mode and size: equal images share embeddings whatever object holds them (sha256
        rather than sha1: several times faster where the CPU hashes it in hardware)."""
        h = hashlib.sha256()
        h.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
        h.update(image.tobytes())
        return h.hexdigest()

    def _lookup(self, store: OrderedDict, keys: Sequence[Hashable]) -> list[Any]:
        with self._lock:
            found = []
            for key in keys:
                value = store.get(key)
                if value is not None:
                    store.move_to_end(key)
                    self.hits += 1
                found.append(value)
            return found

    def _store(self, store: OrderedDict, limit: int, items: Iterable[tuple[Hashable, Any]]) -> None:
        if limit <= 0:
            return
        with self._lock:
            for key, value in items:
                store[key] = value
                store.move_to_end(key)
            while len(store) > limit:
                store.popitem(last=False)

    def _get(self, store, limit, keys, compute) -> tuple[list[Any], int]:
        """Values for ``keys`` from ``store``; ``compute(missing indices)`` encodes the misses in one go.
        Returns the values and how many were computed."""
        found = self._lookup(store, keys)
        missing = [i for i, v in enumerate(found) if v is None]
        if missing:
            values = compute(missing)
            self._store(store, limit, ((keys[i], v) for i, v in zip(missing, values)))
            for i, v in zip(missing, values):
                found[i] = v
        return found, len(missing)

    def images(self, keys: Sequence[Hashable], compute: Callable[[list[int]], Sequence[Any]]) -> list[Any]:
        """Image embeddings for ``keys``; ``compute(missing indices)`` encodes the misses in one go."""
        found, encoded = self._get(self._images, self.max_images, keys, compute)
        with self._lock:
            self.image_encodes += encoded
        return found

    def texts(self, keys: Sequence[Hashable], compute: Callable[[list[int]], Sequence[Any]]) -> list[Any]:
        """Text embeddings for ``keys``, like :meth:`images`."""
        found, encoded = self._get(self._texts, self.max_texts, keys, compute)
        with self._lock:
            self.text_encodes += encoded
        return found

    def prefix(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """A template prefix's per-layer keys and values for ``key``; ``compute()`` runs it on a miss."""
        (found,), encoded = self._get(self._prefixes, self.max_prefixes, [key], lambda missing: [compute()])
        with self._lock:
            self.prefix_encodes += encoded
        return found
