"""Reuse across turns: the KV cache of a conversation's prefix and the vision features of each image.

A follow-up question re-renders the whole conversation; its token ids share a long prefix with the
previous turn's prompt + answer. :class:`PrefixCache` hands back the KV cache of the best-matching
previous sequence, cropped to the common prefix, so only the new tokens are prefilled. :class:`VisionCache`
keeps projected image features by content hash, so an image is encoded once however often it is asked about.

Every image becomes a run of identical placeholder tokens, so token ids alone cannot tell two images apart:
prefixes are matched on *keys* (:func:`sequence_keys`), the token ids with each image's placeholder run
replaced by a negative number derived from that image's pixels. A different image, or the same image with a
marker moved, ends the shared prefix right where its run starts. Runs are as long as the processor makes them:
576 tokens for every LLaVA-1.5 image, a different count per size and aspect ratio with LLaVA-NeXT's anyres tiles.
"""

from __future__ import annotations

import copy
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


def pixel_key(pixel_values, image_size=None) -> str:
    """Content key of one preprocessed image ([1, 3, H, W] or [3, H, W]; an anyres image's [tiles, 3, H, W]) and,
    for anyres, its original (height, width), which decides how many of its features the model keeps."""
    arr = pixel_values.detach().to("cpu").contiguous()
    size = "" if image_size is None else str(tuple(int(v) for v in image_size))
    return hashlib.sha1(arr.numpy().tobytes()).hexdigest() + str(tuple(arr.shape)) + size


def image_keys(config, pixel_values, image_sizes=None) -> list[str]:
    """One content key per image of a processed batch, in prompt order.

    With ``image_sizes`` (LLaVA-NeXT's anyres: pixel values [n, tiles, 3, H, W], zero-padded to the batch's largest
    tile count) an image is keyed by its own tiles and its size only, so its key does not change when a larger
    image joins the prompt."""
    if image_sizes is None:
        return [pixel_key(p) for p in pixel_values]
    from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

    tile = config.vision_config.image_size
    return [pixel_key(p[: image_size_to_num_patches(size, config.image_grid_pinpoints, tile)], size)
            for p, size in zip(pixel_values, image_sizes)]


def sequence_keys(ids, image_token_id: int | None, image_keys: list[str], counts: list[int]):
    """``ids`` (1-D) with the placeholder run of image k replaced by a negative number from ``image_keys[k]``.

    ``counts[k]`` is how many placeholder tokens the processor gave image k; the runs follow each other in prompt
    order (never split equally: anyres gives every image size its own count)."""
    keys = ids.detach().to("cpu", torch.int64).clone()
    if image_token_id is None or not image_keys:
        return keys
    where = (keys == image_token_id).nonzero().flatten()
    if len(counts) != len(image_keys) or sum(counts) != len(where):
        raise ValueError(f"the prompt holds {len(where)} image tokens, but the processor counts {sum(counts)} "
                         f"for its {len(image_keys)} image(s)")
    start = 0
    for key, count in zip(image_keys, counts):
        keys[where[start:start + count]] = -1 - int(key[:15], 16)
        start += count
    return keys


def images_within(counts: list[int], image_tokens: int) -> int:
    """How many images (of these per-image token counts, in prompt order) lie wholly within the first
    ``image_tokens`` placeholder tokens."""
    done, total = 0, 0
    for count in counts:
        total += count
        if total > image_tokens:
            break
        done += 1
    return done


def cache_name() -> str:
    """The name of the KV-cache argument and output field: ``cache`` since transformers 5.2x renamed it (the
    old ``past_key_values`` still works there, with a deprecation warning, until its removal)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def cache_bytes(cache) -> int:
    """Bytes held by a transformers KV cache (0 when its layout is unknown)."""
    total = 0
    for layer in getattr(cache, "layers", None) or []:
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            total += tensor.numel() * tensor.element_size() if isinstance(tensor, torch.Tensor) else 0
    return total


class PrefixCache:
    """A few recent (keys, KV cache) pairs; taking one that the new sequence continues removes it until it is
    put back; a sequence that only shares its beginning (a branch) gets a copy and leaves it in place.

    Keys are token ids with images keyed by content (:func:`sequence_keys`); plain token ids work too."""

    def __init__(self, slots: int = 4, min_tokens: int = 8, max_bytes: int | None = None):
        self.slots = slots
        self.min_tokens = min_tokens
        self.max_bytes = max_bytes  # the KV caches kept, together, at most (the oldest leave first)
        self._entries: list[tuple[object, object]] = []
        self._lock = threading.Lock()

    def take(self, ids) -> tuple[object | None, int]:
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
            old_ids, cache = self._entries[best]
            if len(old_ids) - best_len >= self.min_tokens:
                # a branch (another session sharing only the system prompt, an edited turn): the entry's own
                # conversation may still continue, so it stays and this caller gets a copy of the shared prefix
                cache = copy.deepcopy(cache)
            else:
                self._entries.pop(best)
        keep = min(best_len, len(ids) - 1)  # at least one token must be fed to the model
        while keep > 0 and int(ids[keep]) < 0 and int(ids[keep - 1]) == int(ids[keep]):
            keep -= 1  # never cut an image's run of placeholder tokens in two
        if keep < self.min_tokens:
            return None, 0
        cache.crop(keep - cache.get_seq_length())
        return cache, keep

    def put(self, ids, cache) -> None:
        """Keep ``cache`` for the sequence ``ids`` (keys; only the positions the cache holds are kept)."""
        if self.slots <= 0 or cache is None:
            return
        # The KV cache holds every token fed to the model; the last generated token never was, so keep only
        # the ids the cache covers (otherwise a later prefix match could ask to crop the cache by +1).
        ids = ids[: cache.get_seq_length()]
        with self._lock:
            self._entries.append((ids.detach().clone(), cache))
            while len(self._entries) > self.slots or (len(self._entries) > 1 and self.max_bytes is not None
                                                      and sum(cache_bytes(c) for _, c in self._entries) > self.max_bytes):
                self._entries.pop(0)
            if self.max_bytes is not None and cache_bytes(self._entries[-1][1]) > self.max_bytes:
                self._entries.pop()  # one conversation larger than the whole allowance is not kept

    @property
    def bytes(self) -> int:
        with self._lock:
            return sum(cache_bytes(c) for _, c in self._entries)

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
        self.as_list = True  # LLaVA takes a list of per-image features; ViP-LLaVA one stacked tensor

    key = staticmethod(pixel_key)

    def features(self, model, pixel_values, keys: list[str] | None = None, image_sizes=None):
        """Features of each image in a [n, 3, H, W] batch (anyres: [n, tiles, 3, H, W] with ``image_sizes``),
        encoding only the ones not seen before, in the form the model's ``mm_encoder_outputs`` takes (a list, or a
        stacked tensor)."""
        out = []
        for i in range(pixel_values.shape[0]):
            one = pixel_values[i : i + 1]
            sizes = {} if image_sizes is None else {"image_sizes": image_sizes[i : i + 1]}
            k = keys[i] if keys is not None else self.key(one, None if image_sizes is None else image_sizes[i])
            with self._lock:
                hit = self._data.get(k)
                if hit is not None:
                    self._data.move_to_end(k)
            if hit is None:
                with torch.inference_mode():
                    pooled = model.model.get_image_features(pixel_values=one, return_dict=True, **sizes).pooler_output
                self.as_list = isinstance(pooled, (list, tuple))
                hit = pooled[0]
                self.encodes += 1
                with self._lock:
                    self._data[k] = hit
                    while len(self._data) > self.entries:
                        self._data.popitem(last=False)
            out.append(hit)
        return out if self.as_list else torch.stack(out)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
