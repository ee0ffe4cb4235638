"""Benchmark: scoring new labels on an image seen before, with and without the embedding cache.

    python -m chat.bench.scoring [--runs 7] [--labels 5] [--model vit-l14-336|vit-b32] [--device cpu|cuda]
                                 [--threads N] [--json]

Builds a randomly initialised CLIP and a locally trained tokenizer, so nothing is downloaded; speed depends on the
shapes, not the weights. The default, ``vit-l14-336``, has the dimensions and geometry of the CLIP the shipped
configs load (:data:`SHIPPED_CHECKPOINT`, openai/clip-vit-large-patch14-336: 336 px, patch 14, so 577 image tokens
through 24 layers of 1024; a text tower of 12 layers of 768): what a person's scoring costs. ``--model vit-b32``
builds ViT-B/32's (vision: hidden 768, 12 layers, patch 32, 224 px; text: hidden 512, 12 layers; projection 512):
the hard case for the cache, 50 image tokens through a vision tower only 2.3 times the text tower's size. Each run
scores ``--labels`` labels never seen before (a colour and an object, "red cat": one token each, in CLIP's
vocabulary as in this one) on one 640x480 RGB image, the same labels both ways, with the prompt template
"a photo of a {}.":

* with the cache: the image was scored before (its embedding is cached) and so was the template (the keys
  and values of "<bos> a photo of a" are cached): the text encoder runs each label's own tokens only
  ("red cat . <eos>": 4 tokens);
* without it (no cache object, as a first call): the image is padded to square, preprocessed and encoded, and
  the whole prompts (9 tokens each) run through the text encoder in one pass.

Runs alternate between the two (the same machine load for both); the figures are the medians of ``--runs``
runs of one process, and their ratio; the same for the process's CPU time (``cpu_speedup``: steadier on a
shared machine, where waiting for other jobs inflates wall times, above all with several threads). ``spent`` times
the parts alone the same way: the image (padding, processor, vision tower), the whole prompts' text pass, the
labels' own tokens' text pass. Every run's scores are compared both ways (``max_score_diff``), and the last run's
against transformers' ``CLIPModel`` forward on the whole prompts and the padded image (``max_diff_from_model``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

COLOURS = ("red", "green", "blue", "yellow", "black", "white", "orange", "purple", "pink", "brown", "gray", "gold")
TEMPLATE = "a photo of a {}."  # the tool's default template (tools.scoring.DEFAULT_TEMPLATES)
OBJECTS = ("cat", "dog", "car", "tree", "house", "bird", "boat", "chair", "horse", "apple", "flower", "bus", "cup",
           "bottle", "table", "book", "clock", "vase", "kite", "ball", "hat", "shoe", "bag", "plate", "bowl")


def new_labels(count: int, start: int) -> list[str]:
    """``count`` two-word labels ("red cat") from the ``start``-th on, none repeated within 300."""
    pairs = [f"{c} {o}" for o in OBJECTS for c in COLOURS]
    return [pairs[(start + i) % len(pairs)] for i in range(count)]


# the text and vision towers' dimensions, from the checkpoints' config.json: ViT-L/14 at 336 px (the CLIP the shipped
# configs load, the default) and ViT-B/32 (openai/clip-vit-base-patch32: the hard case for the cache)
SHIPPED_CHECKPOINT = "openai/clip-vit-large-patch14-336"
SHIPPED = "vit-l14-336"
DIMENSIONS = {
    "vit-b32": (
        dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
        dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224,
             patch_size=32),
        512,
    ),
    "vit-l14-336": (
        dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
        dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=336,
             patch_size=14),
        768,
    ),
}
NAMES = {"vit-b32": "CLIP ViT-B/32 dimensions (random init)", "vit-l14-336": "CLIP ViT-L/14-336 dimensions (random init)"}


def build_clip(dims: str = SHIPPED, device: str = "cpu"):
    """``{"clip": Bundle}``: a random-weight CLIP of the ``dims`` dimensions (:data:`DIMENSIONS`) with its
    processor (the locally trained CLIP tokenizer: its vocabulary is smaller, which only changes the size of a
    table that is looked up, not multiplied)."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from chat.loaders import Bundle
    from chat.tiny.common import clip_image_processor
    from chat.tiny.text_tokenizers import clip_tokenizer

    text_dims, vision_dims, projection = DIMENSIONS[dims]
    tokenizer = clip_tokenizer()
    text = CLIPTextConfig(
        vocab_size=len(tokenizer), **text_dims, max_position_embeddings=77, projection_dim=projection,
        hidden_act="quick_gelu", bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = CLIPVisionConfig(**vision_dims, projection_dim=projection, hidden_act="quick_gelu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection))
    model = model.to(device).eval()
    processor = CLIPProcessor(image_processor=clip_image_processor(vision_dims["image_size"]), tokenizer=tokenizer)
    return {"clip": Bundle(processor, model)}


def build_vit_b32(device: str = "cpu"):
    """``{"clip": Bundle}``: a random-weight CLIP of ViT-B/32 dimensions with its processor."""
    return build_clip("vit-b32", device)


def _image(seed: int = 0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8))


def run(runs: int = 7, n_labels: int = 5, device: str = "cpu", dims: str = SHIPPED) -> dict:
    import torch

    from tools.scoring import EmbeddingCache, score_labels

    start = time.perf_counter()
    models = build_clip(dims, device)
    build_s = time.perf_counter() - start
    image = _image()
    cache = EmbeddingCache()
    score_labels(models, image, ["warm", "up"], cache=cache)  # the image (and the template) are now "seen"
    score_labels(models, image, ["warm", "up"])  # warm both paths once

    def labels(run: int) -> list[str]:
        return new_labels(n_labels, 1 + run * n_labels)

    def timed(fn):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        result = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t, result

    cached, uncached, cached_cpu, uncached_cpu, max_diff = [], [], [], [], 0.0
    before = cache.image_encodes, cache.prefix_encodes
    for r in range(runs):  # alternating, so both see the same machine load; the same new labels both ways
        cpu = time.process_time()
        seconds, a = timed(lambda: score_labels(models, image, labels(r), cache=cache))
        cached.append(seconds)
        cached_cpu.append(time.process_time() - cpu)
        cpu = time.process_time()
        seconds, b = timed(lambda: score_labels(models, image, labels(r)))
        uncached.append(seconds)
        uncached_cpu.append(time.process_time() - cpu)
        assert a.labels == b.labels
        max_diff = max([max_diff] + [abs(x - y) for x, y in zip(a.scores, b.scores)])
    assert (cache.image_encodes, cache.prefix_encodes) == before, "the cached runs must not run the vision encoder"
    model_diff = _diff_from_model(models["clip"], image, a)
    with_cache, without = statistics.median(cached), statistics.median(uncached)
    return {
        "model": NAMES[dims],
        "compares": "cached image and template prefix vs no cache (image encoded, whole prompts in one pass)",
        "device": device,
        "threads": torch.get_num_threads(),
        "image": f"{image.width}x{image.height}",
        "labels": n_labels,
        "runs": runs,
        "build_s": round(build_s, 2),
        "with_cache_ms": round(with_cache * 1000, 1),
        "without_cache_ms": round(without * 1000, 1),
        "speedup": round(without / with_cache, 2),
        # CPU time of the process (every thread): unlike the wall time, it does not count waiting for other jobs on
        # a shared machine (with one thread, the steadiest figure there; with more, it counts their spinning too)
        "with_cache_cpu_ms": round(statistics.median(cached_cpu) * 1000, 1),
        "without_cache_cpu_ms": round(statistics.median(uncached_cpu) * 1000, 1),
        "cpu_speedup": round(statistics.median(uncached_cpu) / max(statistics.median(cached_cpu), 1e-9), 2),
        "max_score_diff": max_diff,
        "max_diff_from_model": model_diff,
        "spent": _parts(models["clip"], image, [labels(r) for r in range(runs)], timed),
    }


def _parts(bundle, image, label_sets: list[list[str]], timed) -> dict:
    """Median ms of what the two paths spend, each part alone, alternating like the runs: the image (padded,
    preprocessed, vision tower), the whole prompts' text pass (no cache), the labels' own tokens' pass (cache)."""
    from tools.scoring import EmbeddingCache, encode_images
    from tools.scoring.text_prefix import encode_with_prefixes

    prefix = TEMPLATE[: TEMPLATE.index("{}")]
    seen = EmbeddingCache()
    encode_with_prefixes(bundle, "clip", [TEMPLATE.format("warm")], [prefix], seen)  # the template's prefix
    image_s, whole_s, own_s = [], [], []
    for labels in label_sets:
        prompts = [TEMPLATE.format(label) for label in labels]
        image_s.append(timed(lambda: encode_images(bundle, [image]))[0])
        whole_s.append(timed(lambda: encode_with_prefixes(bundle, "clip", prompts, [prefix] * len(prompts),
                                                          EmbeddingCache()))[0])
        own_s.append(timed(lambda: encode_with_prefixes(bundle, "clip", prompts, [prefix] * len(prompts), seen))[0])
    return {"image_ms": round(statistics.median(image_s) * 1000, 1),
            "whole_prompts_text_ms": round(statistics.median(whole_s) * 1000, 1),
            "own_tokens_text_ms": round(statistics.median(own_s) * 1000, 1)}


def _diff_from_model(bundle, image, result) -> float:
    """Largest difference between ``result``'s scores and the softmax of the model's own forward on the whole
    prompts and the image padded to square as the tool pads it (transformers' ``CLIPModel``: both towers,
    nothing reused)."""
    import torch

    from tools.aspect import square_images

    prompts = [TEMPLATE.format(label) for label in result.labels]
    square = square_images([image], bundle.processor, "auto")[0]
    inputs = bundle.processor(images=square, text=prompts, padding=True, return_tensors="pt")
    inputs = {k: v.to(bundle.model.device) for k, v in inputs.items()}
    with torch.inference_mode():
        expected = bundle.model(**inputs).logits_per_image.float().softmax(-1)[0].tolist()
    return max(abs(x - y) for x, y in zip(result.scores, expected))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chat.bench.scoring", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per mode (median reported)")
    parser.add_argument("--labels", type=int, default=5, help="new labels scored per run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--model", choices=sorted(DIMENSIONS), default=SHIPPED,
                        help="the CLIP dimensions (vit-l14-336: the shipped CLIP's; vit-b32: the hard case, faster)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's, one per core)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.labels < 1 or args.threads < 0:
        parser.error("--runs and --labels must be at least 1, --threads 0 (torch's default) or more")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = run(args.runs, args.labels, args.device, args.model)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} on {result['device']} ({result['threads']} threads), {result['labels']} new labels on "
              f"a seen {result['image']} image, median of {result['runs']} runs:")
        print(f"  with cache    {result['with_cache_ms']:8.1f} ms  (the labels' own tokens through the text encoder)")
        print(f"  without cache {result['without_cache_ms']:8.1f} ms  (image preprocessed and encoded, whole prompts)")
        print(f"  speedup       {result['speedup']:8.2f}x  (max score difference {result['max_score_diff']:.1e}; from the "
              f"model's own forward {result['max_diff_from_model']:.1e})")
        print(f"  CPU time      {result['with_cache_cpu_ms']:.1f} vs {result['without_cache_cpu_ms']:.1f} ms: "
              f"{result['cpu_speedup']:.2f}x  (all threads; not counting waits for other jobs)")
        spent = result["spent"]
        print(f"  spent alone: image {spent['image_ms']} ms, whole prompts' text pass {spent['whole_prompts_text_ms']} "
              f"ms, the labels' own tokens {spent['own_tokens_text_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
