"""How many bytes a model takes: estimated from the safetensors headers of the files a load reads, and
counted from the tensors of a loaded model, bundle or pipeline (bitsandbytes quantization state included)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

GIB = 2**30
NF4_BLOCK, NF4_NESTED_BLOCK = 64, 256
# Modules of LLaVA-style models that stay unquantized (same list as chat.loaders.load_mllm), by name fragment.
_UNQUANTIZED = ("vision_tower", "multi_modal_projector", "lm_head", "embed")
_FLOAT_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}
_SAFETENSORS_ITEMSIZE = {**_FLOAT_DTYPES, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def nf4_bytes(numel: int) -> int:
    """Bytes of one bitsandbytes NF4 weight with double quantization (blocks of 64): packed 4-bit values, a
    uint8 absmax per block, a float32 absmax per 256 blocks, and per tensor the 16-entry NF4 code, the
    256-entry code of the nested quantization and the offset (float32). About 4.13 bits per weight."""
    blocks = math.ceil(numel / NF4_BLOCK)
    return math.ceil(numel / 2) + blocks + math.ceil(blocks / NF4_NESTED_BLOCK) * 4 + (16 + 256 + 1) * 4


def int8_bytes(numel: int, rows: int) -> int:
    """Bytes of one LLM.int8 weight: one byte per weight, a float32 scale per output row."""
    return numel + rows * 4


def _torch():
    import torch

    return torch


def footprint(obj: Any) -> int:
    """Bytes held by the parameters and buffers of a model, a bundle or a pipeline."""
    torch = _torch()
    modules = []
    if isinstance(obj, torch.nn.Module):
        modules = [obj]
    elif hasattr(obj, "components"):  # diffusers pipeline
        modules = [c for c in obj.components.values() if isinstance(c, torch.nn.Module)]
    elif hasattr(obj, "model"):
        modules = [obj.model]
    seen, total = set(), 0
    for module in modules:
        for t in list(module.parameters()) + list(module.buffers()):
            for part in (t, *_quantization_tensors(t)):
                if id(part) not in seen:
                    seen.add(id(part))
                    total += part.numel() * part.element_size()
    return total


def _quantization_tensors(t) -> list:
    """The tensors bitsandbytes keeps beside a quantized weight (4-bit quant state, int8 row scales)."""
    out = []
    state = getattr(t, "quant_state", None)
    while state is not None:
        out += [x for x in (getattr(state, "absmax", None), getattr(state, "code", None),
                            getattr(state, "offset", None)) if hasattr(x, "element_size")]
        state = getattr(state, "state2", None)
    scb = getattr(t, "SCB", None)
    if hasattr(scb, "element_size"):
        out.append(scb)
    return out


def peak_footprint(pipe) -> int:
    """Device bytes of a pipeline under ``enable_model_cpu_offload``: its largest component."""
    torch = _torch()
    sizes = [footprint(c) for c in pipe.components.values() if isinstance(c, torch.nn.Module)]
    return max(sizes, default=0)


def local_folder(path: str, revision: str | None = None) -> Path | None:
    """The folder holding a checkpoint: a local folder, or a hub id's snapshot in the Hugging Face cache
    (looked up offline, never downloaded); None when there is none."""
    from chat.checkpoint_files import cached_snapshot

    p = Path(path).expanduser()
    if p.is_dir():
        return p
    return cached_snapshot(path, revision)


def _weight_files(folder: Path, fp16: bool = False) -> list[Path]:
    """The weight files a load reads (:mod:`chat.checkpoint_files`): one format (safetensors first) and, for a
    pipeline, only the components it loads (never the safety checker, nor single-file checkpoints beside them)."""
    from chat.checkpoint_files import local_listing, wanted_files

    index = folder / "model_index.json"
    if index.is_file():
        try:
            model_index = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            model_index = {}
        chosen = wanted_files(local_listing(folder), "pipeline", fp16, model_index)
    else:
        kind = "diffusers_model" if (folder / "config.json").is_file() and "_diffusers_version" in \
            (folder / "config.json").read_text(encoding="utf-8", errors="replace") else "transformers"
        chosen = wanted_files(local_listing(folder), kind, fp16)
    return [folder / f for f in chosen if f.endswith((".safetensors", ".bin"))]


def _safetensors_header(path: Path) -> dict:
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        if size <= 0 or size > 100 * 2**20:
            raise ValueError(f"{path} is not a safetensors file")
        return json.loads(handle.read(size))


def _quantized(name: str, shape: list[int]) -> bool:
    return len(shape) == 2 and name.endswith(".weight") and not any(s in name for s in _UNQUANTIZED)


def estimate_bytes(path: str, quantize: str = "none", itemsize: int | None = None, revision: str | None = None) -> int:
    """Bytes a checkpoint will take once loaded, read from its safetensors headers before loading it: floating
    tensors at ``itemsize`` bytes (the dtype it is loaded in; None: as stored), the linear weights of a language
    model in NF4 / int8 when ``quantize`` says so. 0 when the checkpoint is not on this machine."""
    folder = local_folder(path, revision)
    if folder is None:
        return 0
    total = 0
    for file in _weight_files(folder, itemsize == 2):
        if file.suffix == ".bin":  # a pickle: no header to read; its size on disk
            total += file.stat().st_size
            continue
        try:
            header = _safetensors_header(file)
        except (OSError, ValueError):
            total += file.stat().st_size
            continue
        for name, info in header.items():
            if name == "__metadata__":
                continue
            shape, dtype = info.get("shape", []), info.get("dtype", "F32")
            numel = math.prod(shape)
            if quantize == "nf4" and _quantized(name, shape):
                total += nf4_bytes(numel)
            elif quantize == "int8" and _quantized(name, shape):
                total += int8_bytes(numel, shape[0])
            elif dtype in _FLOAT_DTYPES and itemsize:
                total += numel * itemsize
            else:
                total += numel * _SAFETENSORS_ITEMSIZE.get(dtype, 4)
    return total
