"""Benchmark: scoring new labels on an image seen before, with and without the embedding cache.

    python -m chat.bench.scoring [--runs 7] [--labels 5] [--device cpu|cuda] [--json]

Builds a randomly initialised CLIP with ViT-B/32 dimensions (vision: hidden 768, 12 layers, patch 32,
224 px; text: hidden 512, 12 layers; projection 512) and a locally trained tokenizer, so nothing is
downloaded; speed depends on the shapes, not the weights. Each run scores ``--labels`` labels never
seen before on one image: with the cache the vision encoder is skipped (the image was scored once
before), without it both towers run. Prints the median times and the speedup.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

WORDS = ("cat", "dog", "car", "tree", "house", "bird", "boat", "chair", "lamp", "horse", "apple", "flower")


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
    score_labels(models, image, ["warm", "up"], cache=cache)  # the image is now "seen"
    score_labels(models, image, ["warm", "up"])  # warm both paths once

    def labels(run: int, which: str) -> list[str]:
        return [f"{which} {WORDS[i % len(WORDS)]} {run}" for i in range(n_labels)]

    def timed(fn) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t

    cached, uncached, max_diff = [], [], 0.0
    before = cache.image_encodes
    for r in range(runs):
        cached.append(timed(lambda: score_labels(models, image, labels(r, "cached"), cache=cache)))
        uncached.append(timed(lambda: score_labels(models, image, labels(r, "fresh"))))
    assert cache.image_encodes == before, "the cached runs must not run the vision encoder"
    # the same labels scored both ways agree
    a = score_labels(models, image, labels(0, "cached"), cache=cache)
    b = score_labels(models, image, labels(0, "cached"))
    max_diff = max(abs(x - y) for x, y in zip(a.scores, b.scores))
    with_cache, without = statistics.median(cached), statistics.median(uncached)
    return {
        "model": "CLIP ViT-B/32 dimensions (random init)",
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
        print(f"  with cache    {result['with_cache_ms']:8.1f} ms  (text encoder only)")
        print(f"  without cache {result['without_cache_ms']:8.1f} ms  (vision + text encoders)")
        print(f"  speedup       {result['speedup']:8.2f}x  (max score difference {result['max_score_diff']:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
