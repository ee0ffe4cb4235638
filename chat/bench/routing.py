"""What the router adds to a turn: ``python -m chat.bench.routing [--runs N] [--quick] [--json]``.

On the CPU benchmark's LLaVA (CLIP ViT-B/16 at 336 px + an 8 x 1024 Llama, random weights, float32), one question
about an image, three ways, in one run:

1. the model alone: the system sentence and the question, streamed (no tools offered);
2. a first turn through ``Router.respond``: the tools offered, the decision, then the streamed answer (the decision
   is forced to "answer": random weights would call tools this config does not hold);
3. a follow-up through ``Router.respond`` on the same session (the conversation's KV cache kept).

Times are to the first text delta (TTFT, so answers of different lengths do not count) and to the turn's end;
medians of ``--runs``. The router's added time per turn is (2) minus (1). It runs on any checkout with
``chat.router.Router`` (so an older commit can be measured with the same file).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from chat.bench.timing import median, ms

QUESTION = "Is it a cat or a dog?"
FOLLOW_UP = "And what colour is it?"


def _alone(assistant, image) -> tuple[float, float]:
    from langchain_core.messages import HumanMessage, SystemMessage

    from chat.model_view import SYSTEM

    model = assistant.chat_model
    messages = [SystemMessage(SYSTEM), HumanMessage(content=[model.image_part(image),
                                                             {"type": "text", "text": f"[img1.v1] {QUESTION}"}])]
    start, first = time.perf_counter(), None
    for chunk in model.stream(messages):
        if first is None and chunk.content:
            first = time.perf_counter()
    end = time.perf_counter()
    return (first or end) - start, end - start


def _through_router(router, session, text) -> tuple[float, float]:
    from chat.events import Delta

    start, first = time.perf_counter(), None
    for event in router.respond(session, text):
        if first is None and isinstance(event, Delta) and event.text.strip():
            first = time.perf_counter()
    end = time.perf_counter()
    return (first or end) - start, end - start


def run(runs: int, quick: bool) -> dict:
    from chat.assistant import Assistant
    from chat.bench.cpu import synthetic_image
    from chat.bench.models import CPU_DIMS, QUICK_DIMS, bench_config, build_llava
    from chat.router import Router
    from chat.session import Session

    dims = QUICK_DIMS if quick else CPU_DIMS
    times: dict[str, list] = {"alone": [], "first": [], "follow": []}
    with tempfile.TemporaryDirectory(prefix="mmchat-bench-llava-") as tmp:
        assistant = Assistant(bench_config(build_llava(Path(tmp) / "llava", dims), max_new_tokens=16))
        router = Router(assistant)
        router.choice_margin = float("inf")
        chat = assistant.mllm
        image = synthetic_image(640, 480)
        for i in range(runs + 1):  # the first round warms up
            chat.forget()
            alone = _alone(assistant, image)
            chat.forget()
            session = Session()
            session.add_image(image)
            first = _through_router(router, session, QUESTION)
            follow = _through_router(router, session, FOLLOW_UP)
            if i:
                times["alone"].append(alone)
                times["first"].append(first)
                times["follow"].append(follow)
        prompt_tokens = chat.last_stats.get("prompt_tokens")
        assistant.registry.unload_all()
    out = {"model": dims.describe(), "runs": runs, "follow_up_prompt_tokens": prompt_tokens}
    for way, values in times.items():
        out[f"{way}_ttft_ms"] = ms(median([v[0] for v in values]))
        out[f"{way}_turn_ms"] = ms(median([v[1] for v in values]))
    out["router_added_ttft_ms"] = ms((out["first_ttft_ms"] - out["alone_ttft_ms"]) / 1000)
    return out


def render(r: dict) -> str:
    return (f"on {r['model']}, medians of {r['runs']}: the model alone {r['alone_ttft_ms']} ms to its first words "
            f"({r['alone_turn_ms']} ms in all); a first turn through the router {r['first_ttft_ms']} ms "
            f"({r['first_turn_ms']} ms): the router adds {r['router_added_ttft_ms']} ms; a follow-up "
            f"{r['follow_ttft_ms']} ms ({r['follow_turn_ms']} ms)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chat.bench.routing", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smaller model (a smoke test of the machinery)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.runs, args.quick)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
