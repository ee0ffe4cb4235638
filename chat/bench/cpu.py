"""CPU benchmarks in one command; every figure is a median of N runs or a ratio of two medians of one run.

    python -m chat.bench cpu [--quick] [--runs N] [--only scoring|followup|markers|router|grounding] [--threads N] [--json]

1. scoring: new labels on an image seen before, with the embedding cache vs without (``chat.bench.scoring``:
   random-weight CLIPs of the shipped checkpoint's dimensions and geometry, ViT-L/14 at 336 px, then of
   ViT-B/32's, the hard case for the cache; the cache holds the image's embedding and the prompt template's
   prefix, so only the labels' own tokens are encoded; without it, the image and the whole prompts).
2. followup: time-to-first-token of a follow-up question vs the first turn on a random-weight LLaVA of
   meaningful size, through ``MultimodalChat.stream`` and through ``Router.respond`` (``chat.bench.followup``).
3. markers: ``draw_markers`` (circle, arrow, box; plain and with the outside blurred) and ``set_of_mark``
   (SLIC proposals, numbered marks) on 2048 px images.
4. router: a slash-command turn through ``chat.router.Router.respond`` with a near no-op tool (``/mark``, one
   marker on a small image) vs the tool call alone, and a free-text turn answered by a fake (instant) chat model
   vs the model alone: the router's own cost per turn (session bookkeeping, prompt and image parts, trace).
5. grounding: ``find`` on a 1024 px photo with 32 candidates, the first phrase vs a second phrase on the same
   image (``chat.bench.grounding``: CLIP of ViT-B/32 dimensions, random weights).
6. structured: the cost of constrained decoding (tool arguments, structured output) per token and per turn
   (``chat.bench.structured``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from chat.bench.timing import median, median_time, ms

FIRST_QUESTION = "Describe the image in detail please."
# a follow-up the router answers in words (a question about one thing's colour would go to find first), as long
FOLLOW_UP_QUESTION = "How many cars are there on the road?"
PARTS = ("scoring", "followup", "markers", "router", "grounding", "structured")


def _torch():
    import torch

    return torch


def synthetic_image(width: int, height: int, seed: int = 0):
    """A synthetic photo-like RGB image: smooth colour fields, a few shapes, mild noise (deterministic)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([
        128 + 100 * np.sin(x / width * 3.1 + c) * np.cos(y / height * 2.3 + 2 * c) for c in range(3)
    ], axis=-1)
    image = Image.fromarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width * 0.8)), int(rng.integers(0, height * 0.8))
        w, h = int(rng.integers(width // 12, width // 4)), int(rng.integers(height // 12, height // 4))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x0 + w, y0 + h), fill=colour)
    return image


# ------------------------------------------------------------------------------------------------
# 1. scoring: embedding cache
# ------------------------------------------------------------------------------------------------
def scoring(runs: int, quick: bool) -> dict:
    """The shipped CLIP's geometry (the figure the target is judged by), then ViT-B/32's (the hard case for the
    cache: 50 image tokens) as ``hard_case``; ``--quick`` runs only the small one, with 2 labels."""
    from chat.bench import scoring as bench_scoring

    keys = ("model", "compares", "image", "labels", "runs", "with_cache_ms", "without_cache_ms", "speedup",
            "max_score_diff", "max_diff_from_model", "with_cache_cpu_ms", "without_cache_cpu_ms", "cpu_speedup", "spent")
    if quick:
        result = bench_scoring.run(runs=runs, n_labels=2, dims="vit-b32")
        return {key: result[key] for key in keys}
    shipped = bench_scoring.run(runs=runs, n_labels=5, dims=bench_scoring.SHIPPED)
    hard = bench_scoring.run(runs=runs, n_labels=5, dims="vit-b32")
    return {**{key: shipped[key] for key in keys}, "hard_case": {key: hard[key] for key in keys}}


# ------------------------------------------------------------------------------------------------
# 2. follow-up vs first time-to-first-token: chat/bench/followup.py
# ------------------------------------------------------------------------------------------------
def followup(runs: int, quick: bool, quantize: str = "none") -> dict:
    from chat.bench import followup as bench_followup

    return bench_followup.run(runs, quick, quantize)


# ------------------------------------------------------------------------------------------------
# 3. markers and Set-of-Mark on 2048 px images
# ------------------------------------------------------------------------------------------------
def markers(runs: int, quick: bool) -> dict:
    try:
        from tools.markers import Marker, draw_markers
        from tools.som import set_of_mark
    except ImportError:
        return {"skipped": "tools/markers.py or tools/som.py is not in this checkout"}
    width, height = (256, 192) if quick else (2048, 1536)
    image = synthetic_image(width, height, seed=1)
    points = [
        Marker(x=width // 4, y=height // 3, shape="circle"),
        Marker(x=width // 2, y=height // 2, shape="arrow"),
        Marker(x=3 * width // 4, y=2 * height // 3, shape="box"),
    ]
    plain = median_time(lambda: draw_markers(image, points), runs)
    blurred = median_time(lambda: draw_markers(image, points, outside="blur"), runs)
    som = median_time(lambda: set_of_mark(image), runs)
    _, marks, _ = set_of_mark(image)
    return {
        "image": f"{width}x{height}",
        "markers_ms": ms(plain),
        "markers_blur_outside_ms": ms(blurred),
        "som_ms": ms(som),
        "som_marks": len(marks),
    }


# ------------------------------------------------------------------------------------------------
# 4. router overhead per turn
# ------------------------------------------------------------------------------------------------
def _median_turns(make_session, text: str, router, runs: int) -> float:
    """Median seconds of ``router.respond(session, text)`` consumed to its Done, a fresh session each time."""
    times = []
    for i in range(runs + 1):
        session = make_session()
        start = time.perf_counter()
        events = list(router.respond(session, text))
        elapsed = time.perf_counter() - start
        if type(events[-1]).__name__ != "Done":
            raise RuntimeError(f"the turn '{text}' did not end with Done")
        if i:
            times.append(elapsed)
    return median(times)


def router(runs: int, quick: bool) -> dict:
    """A slash command with a near no-op tool (``/mark``: one marker on a small image) through the router vs the
    tool call alone; and a free-text turn answered by a fake chat model (instant), i.e. the router's own cost."""
    try:
        from chat.router import Router
    except ImportError:
        return {"skipped": "chat/router.py is not in this checkout"}
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from chat.assistant import Assistant
    from chat.config import load_config
    from chat.session import Session
    from tools.markers import Marker, draw_markers

    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="mmchat-bench-data-") as data:
        config = load_config(root / "configs" / "tiny.yaml", data_dir=data)
        assistant = Assistant(config)
        fake = FakeListChatModel(responses=["It is a picture of shapes."])
        rt = Router(assistant, chat_model=fake)
        image = synthetic_image(320, 240, seed=2)
        marker = Marker(x=160, y=120, shape="circle")

        def make_session():
            session = Session()
            session.add_image(image)
            session.add_marker(marker)
            return session

        slash = _median_turns(make_session, "/mark", rt, runs)
        tool = median_time(lambda: draw_markers(image, [marker]), runs)
        chat = _median_turns(make_session, "What is in the red circle?", rt, runs)
        model = median_time(lambda: list(fake.stream("What is in the red circle?")), runs)
    return {
        "slash_turn_ms": ms(slash, 2),
        "tool_alone_ms": ms(tool, 2),
        "slash_overhead_ms": ms(slash - tool, 2),
        "chat_turn_ms": ms(chat, 2),
        "fake_model_alone_ms": ms(model, 2),
        "chat_overhead_ms": ms(chat - model, 2),
        "image": "320x240",
    }


# ------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------
def run(args) -> tuple[dict, str]:
    torch = _torch()
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    quick = bool(getattr(args, "quick", False))
    runs = getattr(args, "runs", None) or (2 if quick else 5)
    parts = getattr(args, "only", None) or list(PARTS)
    quantize = getattr(args, "quantize", "none")
    result: dict = {"mode": "quick" if quick else "full", "runs": runs, "threads": torch.get_num_threads(),
                    "torch": torch.__version__}
    if "scoring" in parts:
        result["scoring"] = scoring(runs, quick)
    if "followup" in parts:
        result["followup"] = followup(runs, quick, quantize)
    if "markers" in parts:
        result["markers"] = markers(runs, quick)
    if "router" in parts:
        result["router"] = router(runs, quick)
    if "grounding" in parts:
        from chat.bench import grounding

        result["grounding"] = grounding.run(runs, quick)
    if "structured" in parts:
        from chat.bench import structured

        result["structured"] = structured.run(runs, quick)
    return result, render(result)


def render(result: dict) -> str:
    lines = [f"CPU benchmarks ({result['mode']}, {result['threads']} threads, median of {result['runs']} runs)"]

    def skipped(part: dict) -> bool:
        if "skipped" in part:
            lines.append(f"  skipped: {part['skipped']}")
            return True
        return False

    if "scoring" in result:
        s = result["scoring"]
        lines.append(f"new labels on a seen image ({s.get('model', '')}):")
        if not skipped(s):
            lines.append(f"  {s['compares']}")
            lines.append(f"  with cache {s['with_cache_ms']} ms, without {s['without_cache_ms']} ms: "
                         f"{s['speedup']}x faster ({s['labels']} labels on a {s['image']} image; max score difference "
                         f"{s['max_score_diff']:.1e}, from the model's own forward {s['max_diff_from_model']:.1e})")
            lines.append(f"  CPU time of the process: {s['with_cache_cpu_ms']} vs {s['without_cache_cpu_ms']} ms: "
                         f"{s['cpu_speedup']}x (not counting waits for other jobs)")
            p = s["spent"]
            lines.append(f"  spent alone: the image {p['image_ms']} ms, the whole prompts' text pass "
                         f"{p['whole_prompts_text_ms']} ms, the labels' own tokens {p['own_tokens_text_ms']} ms")
            if "hard_case" in s:
                h = s["hard_case"]
                lines.append(f"  the hard case, {h['model']}: with cache {h['with_cache_ms']} ms, without "
                             f"{h['without_cache_ms']} ms: {h['speedup']}x (CPU time {h['cpu_speedup']}x; max score "
                             f"difference {h['max_score_diff']:.1e})")
    if "followup" in result:
        f = result["followup"]
        lines.append(f"follow-up vs first time-to-first-token ({f['model']}, {f['params_m']}M params, "
                     f"quantize {f['quantize']}):")
        lines.append(f"  first turn {f['first_ttft_ms']} ms ({f['prompt_tokens_first']} prompt tokens); follow-up "
                     f"{f['followup_ttft_ms']} ms ({f['prompt_tokens_followup']} tokens, {f['reused_tokens_followup']} "
                     f"reused, {f['images_encoded_followup']} images encoded)")
        lines.append(f"  ratio {f['ttft_ratio']} (target <= 0.3); vs the same follow-up without reuse "
                     f"({f['followup_uncached_ttft_ms']} ms): {f['uncached_ttft_ratio']}; first streamed piece ratio "
                     f"{f['first_piece_ratio']}; greedy answers identical: {f['greedy_identical']}")
        lines.append(f"  router's constrained choice among {f['choice_options']} options: {f['choice_ms']} ms vs "
                     f"{f['choice_per_option_ms']} ms for one full forward per option: {f['choice_speedup']}x faster "
                     f"(max score difference {f['choice_max_diff']:.1e}); {f['choice_vs_first_ttft']}x a first-turn TTFT")
        lines.append(f"  through Router.respond (choice + streamed answer): first turn {f['router_first_ttft_ms']} ms, "
                     f"follow-up {f['router_followup_ttft_ms']} ms: ratio {f['router_ttft_ratio']}; vs the follow-up "
                     f"with empty caches ({f['router_followup_uncached_ttft_ms']} ms): {f['router_uncached_ratio']}; "
                     f"{f['router_reused_tokens']} of {f['router_prompt_tokens']} answer-prompt tokens reused, "
                     f"{f['router_images_encoded']} images encoded; greedy answers identical: {f['router_greedy_identical']}")
    if "markers" in result:
        m = result["markers"]
        lines.append(f"markers and Set-of-Mark on a {m.get('image', '?')} image:")
        if not skipped(m):
            lines.append(f"  draw_markers (3 markers) {m['markers_ms']} ms; with the outside blurred "
                         f"{m['markers_blur_outside_ms']} ms; set_of_mark {m['som_ms']} ms ({m['som_marks']} marks)")
    if "router" in result:
        r = result["router"]
        lines.append("router overhead per turn:")
        if not skipped(r):
            lines.append(f"  '/mark' (one marker, {r['image']}): turn {r['slash_turn_ms']} ms vs draw_markers alone "
                         f"{r['tool_alone_ms']} ms: +{r['slash_overhead_ms']} ms")
            lines.append(f"  free text answered by a fake chat model: turn {r['chat_turn_ms']} ms vs the model alone "
                         f"{r['fake_model_alone_ms']} ms: +{r['chat_overhead_ms']} ms")
    if "grounding" in result:
        g = result["grounding"]
        lines.append(f"find on a {g['image']} photo ({g['candidates']} candidates x 3 visual prompts, {g['model']}):")
        lines.append(f"  first phrase {g['first_ms']} ms ({g['images_encoded_first']} renderings encoded); second phrase "
                     f"on the same image {g['second_ms']} ms ({g['images_encoded_second']} renderings, "
                     f"{g['texts_encoded_second']} text encoded): ratio {g['ratio']}")
    if "structured" in result:
        from chat.bench import structured

        lines.extend(structured.render(result["structured"]))
    return "\n".join(lines)


__all__ = ["run", "render", "synthetic_image", "PARTS"]
