"""Reuse across turns: the KV cache of a conversation's prefix and the vision features of each image.

A follow-up question re-renders the whole conversation; its token ids share a long prefix with the
previous turn's prompt + answer. :class:`PrefixCache` hands back the KV cache of the best-matching
previous sequence, cropped to the common prefix, so only the new tokens are prefilled. :class:`VisionCache`
keeps projected image features by content hash, so an image is encoded once however often it is asked about.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch


def common_prefix(a, b) -> int:
    """Length of the common prefix of two 1-D integer tensors."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = (a[:n] != b[:n]).nonzero()
    return int(diff[0]) if len(diff) else n


class PrefixCache:
    """A few recent (token ids, KV cache) pairs; taking one removes it until it is put back."""

    def __init__(self, slots: int = 4, min_tokens: int = 8):
        self.slots = slots
        self.min_tokens = min_tokens
        self._entries: list[tuple[object, object]] = []
        self._lock = threading.Lock()

    def take(self, ids, image_token_id: int | None = None) -> tuple[object | None, int]:
        """The cache sharing the longest prefix with ``ids`` (cropped to it) and that prefix's length."""
        if self.slots <= 0:
            return None, 0
        with self._lock:
            best, best_len = None, 0
            for i, (old_ids, _) in enumerate(self._entries):
                n = common_prefix(old_ids, ids)
                if n > best_len:
                    best, best_len = i, n
            if best is None or best_len < self.min_tokens:
                return None, 0
            _, cache = self._entries.pop(best)
        keep = min(best_len, len(ids) - 1)  # at least one token must be fed to the model
        if image_token_id is not None:  # never cut an image's run of placeholder tokens in two
            while keep > 0 and int(ids[keep]) == image_token_id and int(ids[keep - 1]) == image_token_id:
                keep -= 1
        if keep < self.min_tokens:
            return None, 0
        cache.crop(keep - cache.get_seq_length())
        return cache, keep

    def put(self, ids, cache) -> None:
        if self.slots <= 0 or cache is None:
            return
        # The KV cache holds every token fed to the model; the last generated token never was, so keep only
        # the ids the cache covers (otherwise a later prefix match could ask to crop the cache by +1).
        ids = ids[: cache.get_seq_length()]
        with self._lock:
            self._entries.append((ids.detach().clone(), cache))
            while len(self._entries) > self.slots:
                self._entries.pop(0)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class VisionCache:
    """Projected image features keyed by the hash of the preprocessed pixels (LRU)."""

    def __init__(self, entries: int = 64):
        self.entries = entries
        self._data: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()
        self.encodes = 0

    @staticmethod
    def key(pixel_values) -> str:
        arr = pixel_values.detach().to("cpu").contiguous()
        return hashlib.sha1(arr.numpy().tobytes()).hexdigest() + str(tuple(arr.shape))

    def features(self, model, pixel_values) -> list:
        """Features of each image in a [n, 3, H, W] batch, encoding only the ones not seen before."""
        out = []
        for i in range(pixel_values.shape[0]):
            one = pixel_values[i : i + 1]
            k = self.key(one)
            with self._lock:
                hit = self._data.get(k)
                if hit is not None:
                    self._data.move_to_end(k)
            if hit is None:
                with torch.inference_mode():
                    hit = model.model.get_image_features(pixel_values=one, return_dict=True).pooler_output[0]
                self.encodes += 1
                with self._lock:
                    self._data[k] = hit
                    while len(self._data) > self.entries:
                        self._data.popitem(last=False)
            out.append(hit)
        return out

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
