"""GPU speed of the chat model at full size: LLaVA-1.5-7B dimensions, random weights, no download.

    python -m chat.bench gpu [--tokens 128] [--runs 3] [--modes fp16,nf4,fp16-static,nf4-static] [--workdir DIR] [--json]

1. Build ``LlavaForConditionalGeneration`` with llava-1.5-7b-hf's config (written in code, see
   :mod:`chat.bench.architectures`) and random float16 weights directly on the GPU; save it once (safetensors,
   ~14 GB) with a processor (336 px, patch 14: 576 image tokens) into ``--workdir`` or a temporary folder.
2. For each mode, load it through ``chat.loaders.load_mllm`` (the registry's loader: fp16, or NF4 with double
   quantization and fp16 compute, vision tower / projector / lm_head unquantized) and run greedy generation
   on one image + prompt with exactly ``--tokens`` new tokens (``min_new_tokens``), ``--runs`` times after a
   warm-up: weights VRAM, peak VRAM (``torch.cuda.max_memory_allocated``), time-to-first-token and decode
   tokens/s (tokens after the first / time after the first).
3. ``*-static`` modes: ``cache_implementation="static"`` and a ``CompileConfig`` (torch.compile of the decode
   step; transformers compiles only with a static cache). transformers marks bitsandbytes 4-bit as not
   compileable; bitsandbytes >= 0.46 registers its 4-bit ops as torch custom ops, so ``nf4-static`` lifts that
   flag on the loaded model to try it (a failure is reported for that mode, the others still run).
4. The follow-up vs first-turn TTFT of :mod:`chat.bench.cpu` on the NF4 model (``MultimodalChat`` over a GPU
   registry), when ``nf4`` is among the modes.

Without a CUDA device it exits with code 2 and one line.
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

from chat.bench import BenchUnavailable

MODES = ("fp16", "nf4", "fp16-static", "nf4-static")
IMAGE_SIZE, PATCH_SIZE = 336, 14
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


def build_checkpoint(directory: Path) -> Path:
    """Random float16 LLaVA-1.5-7B built on the GPU and saved with its processor (once per folder)."""
    import torch

    from chat.bench.models import save_llava
    from chat.tiny.text_tokenizers import llama_tokenizer

    if (directory / "config.json").is_file() and any(directory.glob("*.safetensors")):
        return directory
    save_llava(directory, llava_7b(llama_tokenizer()), IMAGE_SIZE, PATCH_SIZE, device="cuda", dtype=torch.float16)
    gc.collect()
    torch.cuda.empty_cache()
    return directory


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
    """transformers refuses to compile bitsandbytes models (``is_compileable`` False); lift it on this instance."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and not quantizer.is_compileable:
        cls = type(quantizer)
        quantizer.__class__ = type(cls.__name__ + "Compileable", (cls,), {"is_compileable": property(lambda self: True)})


def measure(bundle, mode: str, tokens: int, runs: int, prompt: str) -> dict:
    import torch
    from transformers import CompileConfig

    from chat.bench.cpu import synthetic_image
    from chat.bench.timing import median

    settings = mode_settings(mode)
    model, processor = bundle.model, bundle.processor
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    inputs = processor(images=synthetic_image(640, 480), text=text, return_tensors="pt").to("cuda")
    inputs["pixel_values"] = inputs["pixel_values"].to(torch.float16)
    kwargs = dict(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                  pad_token_id=processor.tokenizer.pad_token_id)
    if settings["static"]:
        _allow_compile(model)
        kwargs.update(cache_implementation="static", compile_config=CompileConfig(fullgraph=False))

    def once() -> tuple[float, float, float]:
        clock = TokenClock()
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(**inputs, streamer=clock, **kwargs)
        torch.cuda.synchronize()
        t = clock.times
        decode = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else float("nan")
        return t[0] - start, decode, time.perf_counter() - start

    warm_start = time.perf_counter()
    once()  # warm-up (compiles in the static modes)
    if settings["static"]:
        once()  # a second warm-up: the first compiled call may still record CUDA graphs
    warmup_s = time.perf_counter() - warm_start
    torch.cuda.reset_peak_memory_stats()
    results = [once() for _ in range(runs)]
    return {
        "mode": mode,
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "new_tokens": tokens,
        "ttft_ms": round(median(r[0] for r in results) * 1000, 1),
        "decode_tokens_per_s": round(median(r[1] for r in results), 1),
        "total_s": round(median(r[2] for r in results), 2),
        "peak_vram_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "warmup_s": round(warmup_s, 1),
    }


def _load(path: Path, quantize: str):
    import torch

    from chat.loaders import LoadSettings, load_mllm

    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    start = time.perf_counter()
    bundle = load_mllm(str(path), LoadSettings("cuda", torch.float16, quantize))
    torch.cuda.synchronize()
    return bundle, (torch.cuda.memory_allocated() - before) / 2**30, time.perf_counter() - start


def run(args) -> tuple[dict, str]:
    check_cuda()
    import torch

    modes = args.modes if isinstance(args.modes, list) else parse_modes(args.modes)
    tmp = None
    if args.workdir:
        workdir = Path(args.workdir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="mmchat-bench-7b-")
        workdir = Path(tmp.name)
    result: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "tokens": args.tokens,
                    "runs": args.runs, "modes": []}
    try:
        start = time.perf_counter()
        path = build_checkpoint(workdir / "llava-1.5-7b-random")
        result["build_s"] = round(time.perf_counter() - start, 1)
        for mode in modes:
            settings = mode_settings(mode)
            bundle = None
            try:
                bundle, weights_gib, load_s = _load(path, settings["quantize"])
                row = measure(bundle, mode, args.tokens, args.runs, args.prompt)
                row.update(weights_vram_gib=round(weights_gib, 2), load_s=round(load_s, 1))
                if mode == "nf4":
                    result["followup"] = _followup(path, bundle)
            except Exception as exc:  # noqa: BLE001 - one failing mode must not hide the others
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                row = {"mode": mode, "error": f"{type(exc).__name__}: {first}"}
            finally:
                del bundle
                gc.collect()
                torch.cuda.empty_cache()
            result["modes"].append(row)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return result, render(result)


def _followup(path: Path, bundle) -> dict:
    """Follow-up vs first TTFT on the loaded NF4 model, through a registry that already holds it."""
    from chat.bench.followup import followup_ttft
    from chat.bench.models import bench_config
    from chat.registry import Entry, ModelRegistry

    registry = ModelRegistry(bench_config(path, device="cuda", dtype="float16", quantize="nf4", budget_gb=70))
    registry._entries["llava"] = Entry("llava", bundle, 0, 0.0, time.monotonic())  # reuse the loaded model
    try:
        return followup_ttft(registry, runs=3, new_tokens=16)
    finally:
        registry._entries.clear()


def render(result: dict) -> str:
    lines = [f"LLaVA-1.5-7B dimensions (random weights) on {result['device']}: {result['tokens']} new tokens, "
             f"median of {result['runs']} runs (checkpoint built in {result.get('build_s', '?')} s)", ""]
    lines.append(f"{'mode':<13}{'weights GiB':>12}{'peak GiB':>10}{'TTFT ms':>10}{'decode tok/s':>14}{'warm-up s':>11}")
    for row in result["modes"]:
        if "error" in row:
            lines.append(f"{row['mode']:<13}failed: {row['error']}")
            continue
        lines.append(f"{row['mode']:<13}{row['weights_vram_gib']:>12}{row['peak_vram_gib']:>10}{row['ttft_ms']:>10}"
                     f"{row['decode_tokens_per_s']:>14}{row['warmup_s']:>11}")
    f = result.get("followup")
    if f:
        lines.append("")
        lines.append(f"NF4 follow-up vs first TTFT: {f['followup_ttft_ms']} / {f['first_ttft_ms']} ms = {f['ttft_ratio']} "
                     f"(greedy identical: {f['greedy_identical']})")
    return "\n".join(lines)
