"""Benchmark: ``find`` on a 1024 px photo, the first phrase vs a second phrase on the same image.

The first call proposes the candidates (Set-of-Mark; SAM is left out so the figure is about CLIP and the
caches), renders every candidate under the three visual prompts and encodes them all in batches; the second,
with the same caches, encodes only its phrase. CLIP has ViT-B/32 dimensions with random weights (as
``chat.bench.scoring``): speed depends on the shapes, not the weights.
"""

from __future__ import annotations

from chat.bench.timing import median, ms, ratio, timed

PHRASES = ("the red ball on the left", "the big blue box", "a small yellow circle", "the dark shape at the top",
           "the green thing in the middle", "the orange square", "a purple ellipse", "the brightest region")


def run(runs: int = 5, quick: bool = False) -> dict:
    from PIL import Image
    from skimage import data

    from chat.bench.scoring import build_vit_b32
    from tools.grounding import CandidateCache, CandidateOptions, find_regions
    from tools.scoring import EmbeddingCache

    models = build_vit_b32()
    side = 256 if quick else 1024
    wanted = 8 if quick else 32
    image = Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.BICUBIC)  # a real photo
    options = CandidateOptions(sam_points=0, som_regions=48, max_candidates=wanted)

    def one_pair(r: int) -> tuple[float, float, dict]:
        cache, candidates = EmbeddingCache(), CandidateCache()
        first_s, first = timed(lambda: find_regions(models, image, {"phrase": PHRASES[r % len(PHRASES)]},
                                                    cache=cache, candidate_cache=candidates, options=options))
        encoded = cache.image_encodes
        texts = cache.text_encodes
        second_s, _ = timed(lambda: find_regions(models, image, {"phrase": PHRASES[(r + 1) % len(PHRASES)]},
                                                      cache=cache, candidate_cache=candidates, options=options))
        facts = {"candidates": first.candidates, "images_encoded_first": encoded,
                 "images_encoded_second": cache.image_encodes - encoded,
                 "texts_encoded_second": cache.text_encodes - texts, "proposals": candidates.proposals}
        return first_s, second_s, facts

    one_pair(len(PHRASES) - 1)  # warm-up
    pairs = [one_pair(r) for r in range(runs)]
    first, second = median(p[0] for p in pairs), median(p[1] for p in pairs)
    facts = pairs[-1][2]
    return {
        "model": "CLIP ViT-B/32 dimensions (random init)",
        "image": f"{side}x{side}",
        "candidates": facts["candidates"],
        "first_ms": ms(first),
        "second_ms": ms(second),
        "ratio": ratio(second, first),
        "images_encoded_first": facts["images_encoded_first"],
        "images_encoded_second": facts["images_encoded_second"],
        "texts_encoded_second": facts["texts_encoded_second"],
        "proposals": facts["proposals"],
    }


__all__ = ["run"]
