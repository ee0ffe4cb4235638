"""Benchmark: scoring new labels on an image seen before, with and without the embedding cache.

    python -m chat.bench.scoring [--runs 7] [--labels 5] [--device cpu|cuda] [--json]

Builds a randomly initialised CLIP with ViT-B/32 dimensions (vision: hidden 768, 12 layers, patch 32,
224 px; text: hidden 512, 12 layers; projection 512) and a locally trained tokenizer, so nothing is
downloaded; speed depends on the shapes, not the weights. Each run scores ``--labels`` labels never
seen before (a colour and an object, "red cat": one token each, in CLIP's vocabulary as in this one) on
one 640x480 image, the same labels both ways, with the prompt template "a photo of a {}.":

* with the cache: the image was scored before (its embedding is cached) and so was the template (the keys
  and values of "<bos> a photo of a" are cached): the text encoder runs each label's own tokens only;
* without it (no cache object, as a first call): the image is preprocessed and encoded, the template's
  prefix once, then each label's tokens.

Prints the median times, the speedup and the largest score difference between the two.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

COLOURS = ("red", "green", "blue", "yellow", "black", "white", "orange", "purple", "pink", "brown", "gray", "gold")
OBJECTS = ("cat", "dog", "car", "tree", "house", "bird", "boat", "chair", "horse", "apple", "flower", "bus", "cup",
           "bottle", "table", "book", "clock", "vase", "kite", "ball", "hat", "shoe", "bag", "plate", "bowl")


def new_labels(count: int, start: int) -> list[str]:
    """``count`` two-word labels ("red cat") from the ``start``-th on, none repeated within 300."""
    pairs = [f"{c} {o}" for o in OBJECTS for c in COLOURS]
    return [pairs[(start + i) % len(pairs)] for i in range(count)]


def build_vit_b32(device: str = "cpu"):
    """``{"clip": Bundle}``: a random-weight CLIP of ViT-B/32 dimensions with its processor."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from chat.loaders import Bundle
    from chat.tiny.common import clip_image_processor
    from chat.tiny.text_tokenizers import clip_tokenizer

    tokenizer = clip_tokenizer()
    text = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
        num_attention_heads=8, max_position_embeddings=77, projection_dim=512, hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        image_size=224, patch_size=32, projection_dim=512, hidden_act="quick_gelu",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=512))
    model = model.to(device).eval()
    processor = CLIPProcessor(image_processor=clip_image_processor(224), tokenizer=tokenizer)
    return {"clip": Bundle(processor, model)}


def _image(seed: int = 0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8))


def run(runs: int = 7, n_labels: int = 5, device: str = "cpu") -> dict:
    import torch

    from tools.scoring import EmbeddingCache, score_labels

    start = time.perf_counter()
    models = build_vit_b32(device)
    build_s = time.perf_counter() - start
    image = _image()
    cache = EmbeddingCache()
    score_labels(models, image, ["warm", "up"], cache=cache)  # the image (and the template) are now "seen"
    score_labels(models, image, ["warm", "up"])  # warm both paths once

    def labels(run: int) -> list[str]:
        return new_labels(n_labels, 1 + run * n_labels)

    def timed(fn) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t

    cached, uncached, results = [], [], []
    before = cache.image_encodes, cache.prefix_encodes
    for r in range(runs):  # alternating, so both see the same machine load; the same new labels both ways
        results.append([None, None])
        cached.append(timed(lambda: results[-1].__setitem__(0, score_labels(models, image, labels(r), cache=cache))))
        uncached.append(timed(lambda: results[-1].__setitem__(1, score_labels(models, image, labels(r)))))
    assert (cache.image_encodes, cache.prefix_encodes) == before, "the cached runs must not run the vision encoder"
    max_diff = max(abs(x - y) for a, b in results for x, y in zip(a.scores, b.scores))
    assert all(a.labels == b.labels for a, b in results)
    with_cache, without = statistics.median(cached), statistics.median(uncached)
    return {
        "model": "CLIP ViT-B/32 dimensions (random init)",
        "compares": "cached image and template prefix vs no cache (image, prefix and labels encoded)",
        "device": device,
        "threads": torch.get_num_threads(),
        "labels": n_labels,
        "runs": runs,
        "build_s": round(build_s, 2),
        "with_cache_ms": round(with_cache * 1000, 1),
        "without_cache_ms": round(without * 1000, 1),
        "speedup": round(without / with_cache, 2),
        "max_score_diff": max_diff,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chat.bench.scoring", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per mode (median reported)")
    parser.add_argument("--labels", type=int, default=5, help="new labels scored per run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.labels < 1:
        parser.error("--runs and --labels must be at least 1")
    result = run(args.runs, args.labels, args.device)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} on {result['device']} ({result['threads']} threads), "
              f"{result['labels']} new labels on a seen image, median of {result['runs']} runs:")
        print(f"  with cache    {result['with_cache_ms']:8.1f} ms  (the labels' own tokens through the text encoder)")
        print(f"  without cache {result['without_cache_ms']:8.1f} ms  (image preprocessed and encoded, the template's "
              "prefix, the labels)")
        print(f"  speedup       {result['speedup']:8.2f}x  (max score difference {result['max_score_diff']:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
