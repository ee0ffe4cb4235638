"""One step of ``python -m chat.bench gpu`` in its own process: build the checkpoint, or measure one mode.

    python -m chat.bench.gpu_worker STEP --checkpoint DIR --out FILE [--tokens N] [--runs N] [--prompt TEXT]
                                    [--device cuda|cpu]

STEP is ``build`` or a mode of :data:`chat.bench.gpu.MODES`. The figures so far go to ``--out`` (atomically)
after each stage (loaded, warmed up, done), so a step cut at the deadline still tells how far it got. On
``--device cpu`` the same steps run on a tiny LLaVA in float32 (a stand-in that checks the machinery, not a
benchmark: transformers compiles only on accelerators). Exit code 0 when the step finished, 1 when it failed
(its file then says why in one line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from chat.bench.gpu import IMAGE_SIZE, MODES, PATCH_SIZE, llava_7b, mode_settings


class Report:
    """The step's JSON file, rewritten whole (atomically) at every update."""

    def __init__(self, path: Path, **fields):
        self.path, self.row = Path(path), dict(fields)

    def update(self, **fields) -> None:
        from chat.store import atomic_write

        self.row.update(fields)
        atomic_write(self.path, json.dumps(self.row, indent=1).encode(), fsync=False)


def build(checkpoint: Path, device: str, report: Report) -> None:
    """The random-weight checkpoint: LLaVA-1.5-7B dimensions in float16 built on the GPU (a tiny LLaVA on cpu)."""
    from chat.bench.checkpoint import ensure

    if device == "cuda":
        import torch

        from chat.bench.models import save_llava
        from chat.tiny.text_tokenizers import llama_tokenizer

        def make(folder: Path) -> None:
            save_llava(folder, llava_7b(llama_tokenizer()), IMAGE_SIZE, PATCH_SIZE, device="cuda", dtype=torch.float16)
    else:
        from chat.bench.models import QUICK_DIMS, build_llava

        def make(folder: Path) -> None:
            build_llava(folder, QUICK_DIMS)

    done = ensure(checkpoint, make)
    report.update(stage="done", reused=done["reused"], build_s=round(done["build_s"], 1),
                  checkpoint_gib=round(done["bytes"] / 2**30, 2),
                  write_gib_per_s=None if done["reused"] else round(done["bytes"] / 2**30 / done["build_s"], 2))


class TokenClock:
    """A generate() streamer that timestamps every new token (the first ``put`` is the prompt)."""

    def __init__(self):
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        value.cpu()  # waits for the token: the timestamp covers its computation
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def _allow_compile(model) -> None:
    """transformers refuses to compile bitsandbytes models (``is_compileable`` False); lift it on this instance
    (bitsandbytes >= 0.46 registers its 4-bit ops as torch custom ops, so compiling may work)."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and not quantizer.is_compileable:
        cls = type(quantizer)
        quantizer.__class__ = type(cls.__name__ + "Compileable", (cls,), {"is_compileable": property(lambda self: True)})


def _load(checkpoint: Path, quantize: str, device: str):
    import torch

    from chat.loaders import LoadSettings, load_mllm

    dtype = torch.float16 if device == "cuda" else torch.float32
    start = time.perf_counter()
    bundle = load_mllm(str(checkpoint), LoadSettings(device, dtype, quantize))
    if device == "cuda":
        torch.cuda.synchronize()
    return bundle, time.perf_counter() - start


def measure(mode: str, checkpoint: Path, device: str, tokens: int, runs: int, prompt: str, report: Report) -> None:
    """Load the checkpoint as the mode says, warm up, then ``runs`` timed greedy generations of ``tokens`` tokens.

    Static modes generate into one ``StaticCache`` made here and reset before every call: its tensors keep their
    addresses, so the CUDA graphs recorded while warming up are replayed by the timed runs (a new cache per
    ``generate()``, what ``cache_implementation="static"`` does, may record them again). Warm-up repeats until a
    generation compiles and records nothing new (at most 4)."""
    import torch
    from transformers import CompileConfig, StaticCache

    from chat.bench.cpu import synthetic_image
    from chat.bench.gpu_stats import CompileWatch, Vram
    from chat.bench.timing import median
    from chat.turn_cache import cache_bytes, cache_name

    cuda = device == "cuda"
    settings = mode_settings(mode)
    vram = Vram(cuda)
    bundle, load_s = _load(checkpoint, settings["quantize"], device)
    report.update(stage="loaded", load_s=round(load_s, 1), **vram.loaded())
    model, processor = bundle.model, bundle.processor
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    inputs = processor(images=synthetic_image(640, 480), text=text, return_tensors="pt").to(device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    prompt_tokens = int(inputs["input_ids"].shape[1])
    kwargs = dict(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                  pad_token_id=processor.tokenizer.pad_token_id)
    cache = None
    if settings["static"]:
        _allow_compile(model)
        cache = StaticCache(config=model.config, max_cache_len=prompt_tokens + tokens)
        kwargs.update({cache_name(): cache, "compile_config": CompileConfig(fullgraph=False)})
    watch = CompileWatch()
    answers: list[list[int]] = []
    addresses: set[tuple[int, ...]] = set()

    def once() -> tuple[float, float, float]:
        clock = TokenClock()
        with torch.inference_mode():  # the cache's tensors were made in inference mode: reset them in it
            if cache is not None:
                cache.reset()  # in place: same tensors, same addresses
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = model.generate(**inputs, streamer=clock, **kwargs)
        if cuda:
            torch.cuda.synchronize()
        answers.append(out[0, prompt_tokens:].tolist())
        if cache is not None:  # where the KV tensors live: the same every run, or the graphs are stale
            addresses.add(tuple(layer.keys.data_ptr() for layer in cache.layers))
        t = clock.times
        decode = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else float("nan")
        return t[0] - start, decode, time.perf_counter() - start

    start = time.perf_counter()
    warmups = 0
    while True:
        before = watch.snapshot()
        once()
        warmups += 1
        new = CompileWatch.since(before, watch.snapshot())
        if not settings["static"] or warmups >= 4 or not (new["graphs_compiled"] or new["cudagraphs_recorded"]):
            break
    warm = watch.snapshot()
    report.update(stage="warmed up", warmup_s=round(time.perf_counter() - start, 1), warmups=warmups,
                  compiled=getattr(model, "_compiled_call", None) is not None, warmup_compile=warm)
    results = [once() for _ in range(runs)]
    timed = CompileWatch.since(warm, watch.snapshot())
    watch.close()
    report.update(
        stage="done", prompt_tokens=prompt_tokens, new_tokens=tokens,
        ttft_ms=round(median(r[0] for r in results) * 1000, 1),
        decode_tokens_per_s=round(median(r[1] for r in results), 1),
        total_s=round(median(r[2] for r in results), 2),
        runs_ttft_ms=[round(r[0] * 1000, 1) for r in results],
        runs_decode_tokens_per_s=[round(r[1], 1) for r in results],
        timed_compile=timed, graph_break_reasons=watch.break_reasons(),
        same_answer_every_run=all(a == answers[0] for a in answers), answer_ids=answers[0][:32],
        static_cache_gib=round(cache_bytes(cache) / 2**30, 3) if cache is not None else None,
        static_cache_same_tensors=len(addresses) == 1 if cache is not None else None,
        **vram.generated(),
    )


def followup(checkpoint: Path, device: str, runs: int, report: Report) -> None:
    """Follow-up vs first TTFT of :mod:`chat.bench.followup` through a registry holding the NF4 model."""
    from chat.bench.followup import followup_ttft
    from chat.bench.gpu_stats import Vram
    from chat.bench.models import bench_config
    from chat.registry import ModelRegistry

    vram = Vram(device == "cuda")
    dtype = "float16" if device == "cuda" else "float32"
    registry = ModelRegistry(bench_config(checkpoint, device=device, dtype=dtype, quantize="nf4", budget_gb=70))
    start = time.perf_counter()
    registry.get("llava")
    report.update(stage="loaded", load_s=round(time.perf_counter() - start, 1), **vram.loaded())
    result = followup_ttft(registry, runs=runs, new_tokens=16)
    report.update(stage="done", **result, **vram.generated())


def _one_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chat.bench.gpu_worker", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["build", *MODES])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prompt", default="Describe the image in detail.")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    args = parser.parse_args(argv)
    report = Report(args.out, step=args.step, stage="starting")
    start = time.perf_counter()
    try:
        if args.step == "build":
            build(args.checkpoint, args.device, report)
        elif args.step == "nf4-followup":
            followup(args.checkpoint, args.device, args.runs, report)
        else:
            measure(args.step, args.checkpoint, args.device, args.tokens, args.runs, args.prompt, report)
    except Exception as exc:  # noqa: BLE001 - the step's file says what failed, in one line
        report.update(error=_one_line(exc), seconds=round(time.perf_counter() - start, 1))
        print(f"{args.step}: {_one_line(exc)}", file=sys.stderr)
        import traceback

        traceback.print_exc()
        return 1
    report.update(seconds=round(time.perf_counter() - start, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
