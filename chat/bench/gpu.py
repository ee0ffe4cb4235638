"""GPU speed of the chat model at full size: LLaVA-1.5-7B dimensions, random weights, no download.

    python -m chat.bench gpu [--tokens 128] [--runs 3] [--modes fp16,nf4,nf4-followup,fp16-static,nf4-static]
                             [--workdir DIR] [--out DIR] [--deadline 560] [--device cuda|cpu] [--json]

Every step runs in its own process (:mod:`chat.bench.gpu_worker`), one after another, under one overall deadline
(``--deadline`` seconds from the start; a step still running then is killed, later ones are not started):

1. ``build``: ``LlavaForConditionalGeneration`` with llava-1.5-7b-hf's config (:mod:`chat.bench.architectures`)
   and random float16 weights made on the GPU, saved (safetensors, ~14 GB) with a processor (336 px, patch 14:
   576 image tokens) into ``--workdir``. Reused by a later run only when complete (:mod:`chat.bench.checkpoint`).
2. One step per mode: load through ``chat.loaders.load_mllm`` (the registry's loader: fp16, or NF4 with double
   quantization and fp16 compute, vision tower / projector / lm_head unquantized), warm up, then greedy
   generation on one image + prompt with exactly ``--tokens`` new tokens, ``--runs`` times: weights VRAM, peak
   VRAM while loading and while generating (this process only), time-to-first-token and decode tokens/s.
   ``*-static`` modes generate into one static KV cache with a ``CompileConfig`` (transformers compiles the
   decode step, CUDA graphs included, only with a static cache); graphs compiled, graph breaks and CUDA graphs
   recorded or skipped are counted while warming up and while timed (where nothing should be new).
   transformers marks bitsandbytes 4-bit as not compileable; ``nf4-static`` lifts that flag to try it.
   ``nf4-followup``: the follow-up vs first-turn TTFT of :mod:`chat.bench.followup` with the NF4 model.

Each step writes ``OUT/steps/STEP.json`` as it gets further (and its output to ``STEP.log``, torch's compile
and CUDA-graph log to ``STEP.torch.log``); ``OUT/gpu.json`` holds every finished step and is rewritten after
each one, so a cut run keeps what finished. A failing step is reported on its own row. Without a CUDA device it
exits with code 2 and one line; ``--device cpu`` runs the same steps on a tiny LLaVA (a check of the machinery).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from chat.bench import BenchUnavailable

MODES = ("fp16", "nf4", "nf4-followup", "fp16-static", "nf4-static")
IMAGE_SIZE, PATCH_SIZE = 336, 14
DEADLINE_S = 560  # of a 600 s command: room to copy the results out
TORCH_LOGS = "graph_breaks,recompiles,cudagraphs"
NO_CUDA = ("no CUDA device found: this benchmark builds LLaVA-1.5-7B on an NVIDIA GPU "
           "(run it on a GPU machine; 'python -m chat.bench cpu' and 'memory' run anywhere)")


def parse_modes(text: str) -> list[str]:
    """``"fp16,nf4"`` -> ``["fp16", "nf4"]``; ValueError naming an unknown mode."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown mode '{(unknown or [text])[0]}' for --modes; choose from {', '.join(MODES)}")
    return list(dict.fromkeys(modes))


def check_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise BenchUnavailable(NO_CUDA)


def mode_settings(mode: str) -> dict:
    """quantize, static cache and compile flags of one mode."""
    return {"quantize": "nf4" if mode.startswith("nf4") else "none", "static": mode.endswith("-static")}


def llava_7b(tokenizer):
    """llava-1.5-7b-hf's config with the ids of the local tokenizer (vocab stays 32064)."""
    from chat.bench.architectures import llava_7b_config
    from chat.tiny.text_tokenizers import IMAGE_TOKEN

    config = llava_7b_config(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    config.image_token_index = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config.image_token_id = config.image_token_index
    return config


def _summary(row: dict) -> str:
    name = row["step"]
    if "error" in row:
        return f"{name} failed: {row['error']}"
    if name == "build":
        how = "reused" if row.get("reused") else f"built in {row.get('build_s')} s"
        return f"checkpoint {how} ({row.get('checkpoint_gib')} GiB)"
    if name == "nf4-followup":
        return f"{name}: follow-up / first TTFT {row.get('followup_ttft_ms')} / {row.get('first_ttft_ms')} ms"
    return (f"{name}: {row.get('decode_tokens_per_s')} tok/s, TTFT {row.get('ttft_ms')} ms, "
            f"peak {row.get('peak_gib', '?')} GiB ({row['wall_s']} s)")


def bench(modes: list[str], *, workdir: Path, out: Path, deadline_s: float = DEADLINE_S, tokens: int = 128,
          runs: int = 3, prompt: str = "Describe the image in detail.", device: str = "cuda",
          worker: list[str] | None = None, min_start_s: float = 20.0, progress=None) -> dict:
    """Run the build step and then each mode in its own process; the combined result (also ``out/gpu.json``).

    ``worker``: the command of a step (default ``python -m chat.bench.gpu_worker``); ``progress(line)`` is told
    of every finished step."""
    from chat.bench.gpu_stats import torch_log_counts, versions
    from chat.bench.steps import Step, run_steps
    from chat.store import atomic_write

    start = time.monotonic()
    worker = worker or [sys.executable, "-m", "chat.bench.gpu_worker"]
    checkpoint = Path(workdir) / ("llava-1.5-7b-random" if device == "cuda" else "llava-tiny-random")
    out, steps_dir = Path(out), Path(out) / "steps"
    result: dict = {"device": device, "versions": versions(), "tokens": tokens, "runs": runs,
                    "deadline_s": deadline_s, "checkpoint": None, "modes": [], "followup": None}

    def step(name: str) -> Step:
        argv = [*worker, name, "--checkpoint", str(checkpoint), "--out", str(steps_dir / f"{name}.json"),
                "--tokens", str(tokens), "--runs", str(runs), "--prompt", prompt, "--device", device]
        env = {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "TORCH_LOGS": TORCH_LOGS,
               "TORCH_LOGS_OUT": str(steps_dir / f"{name}.torch.log")}
        return Step(name, argv, steps_dir / f"{name}.json", steps_dir / f"{name}.log", env)

    def done(row: dict) -> None:
        if row["step"] != "build" and (steps_dir / f"{row['step']}.torch.log").exists():
            row["torch_log"] = torch_log_counts(steps_dir / f"{row['step']}.torch.log")
        if row["step"] == "build":
            result["checkpoint"] = row
        elif row["step"] == "nf4-followup":
            result["followup"] = row
        else:
            result["modes"].append(row)
        result["elapsed_s"] = round(time.monotonic() - start, 1)
        atomic_write(out / "gpu.json", json.dumps(result, indent=1).encode(), fsync=False)
        if progress:
            progress(_summary(row))

    steps_dir.mkdir(parents=True, exist_ok=True)
    rows = run_steps([step("build")] + [step(m) for m in modes], start + deadline_s, min_start_s=min_start_s,
                     on_done=done, stop_if=lambda row: "the checkpoint was not built" if row["step"] == "build"
                     and "error" in row else None)
    result["finished"] = all("error" not in row for row in rows)
    atomic_write(out / "gpu.json", json.dumps(result, indent=1).encode(), fsync=False)
    return result


def run(args) -> tuple[dict, str]:
    device = getattr(args, "device", "cuda")
    if device == "cuda":
        check_cuda()
    modes = args.modes if isinstance(args.modes, list) else parse_modes(args.modes)
    with tempfile.TemporaryDirectory(prefix="mmchat-bench-gpu-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        out = Path(args.out) if getattr(args, "out", None) else workdir / "results"
        result = bench(modes, workdir=workdir, out=out, deadline_s=getattr(args, "deadline", DEADLINE_S),
                       tokens=args.tokens, runs=args.runs, prompt=args.prompt, device=device,
                       progress=lambda line: print(f"chat.bench gpu: {line}", file=sys.stderr, flush=True))
    return result, render(result)


def render(result: dict) -> str:
    v, build = result.get("versions") or {}, result.get("checkpoint") or {}
    lines = [f"LLaVA-1.5-7B dimensions (random weights) on {v.get('gpu') or result['device']} (driver {v.get('driver')}; "
             f"torch {v.get('torch')}, CUDA {v.get('cuda')}, transformers {v.get('transformers')}, bitsandbytes "
             f"{v.get('bitsandbytes')}): {result['tokens']} new tokens, median of {result['runs']} runs",
             f"checkpoint: {_summary(build) if build else 'not built'}; {result.get('elapsed_s')} s in all "
             f"(deadline {result['deadline_s']} s)", ""]
    lines.append(f"{'mode':<13}{'weights':>8}{'load pk':>8}{'gen pk':>8}{'TTFT ms':>9}{'tok/s':>8}{'warm-up s':>10}"
                 f"{'compiled':>9}{'breaks':>7}{'cg skips':>9}  new in timed runs")
    for row in result["modes"]:
        if "error" in row:
            lines.append(f"{row['step']:<13}failed: {row['error']}")
            continue
        w, t = row.get("warmup_compile") or {}, row.get("timed_compile") or {}
        new = f"{t.get('graphs_compiled', 0)} graphs, {t.get('cudagraphs_recorded', 0)} cudagraphs"
        lines.append(f"{row['step']:<13}{row.get('weights_gib', '-'):>8}{row.get('load_peak_gib', '-'):>8}"
                     f"{row.get('peak_gib', '-'):>8}{row['ttft_ms']:>9}{row['decode_tokens_per_s']:>8}"
                     f"{row['warmup_s']:>10}{'yes' if row.get('compiled') else 'no':>9}"
                     f"{w.get('graph_breaks', 0):>7}{w.get('cudagraph_skips', 0) + t.get('cudagraph_skips', 0):>9}  {new}")
    f = result.get("followup")
    if f:
        lines.append("")
        if "error" in f:
            lines.append(f"NF4 follow-up failed: {f['error']}")
        else:
            lines.append(f"NF4 follow-up vs first TTFT: {f['followup_ttft_ms']} / {f['first_ttft_ms']} ms = "
                         f"{f['ttft_ratio']} (greedy identical: {f['greedy_identical']})")
    return "\n".join(lines)
