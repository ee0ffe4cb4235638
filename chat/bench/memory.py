"""The memory budget of a profile, computed from the full-size architectures (meta device, no download).

    python -m chat.bench memory [--config configs/default.yaml] [--device cuda|cpu] [--json]

Every model of the profile is built on the meta device (see :mod:`chat.bench.architectures`) and its
parameters and buffers are counted at the dtype and quantization the registry would load it with:

- floating tensors at the profile's dtype (``auto``: float16 on a GPU, float32 on a CPU);
- NF4 (bitsandbytes, double quantization, blocks of 64) for the linear layers of a quantized model
  outside its skip list: 4 bits per weight, one uint8 absmax per block of 64, one float32 absmax per 256
  blocks, and per tensor the two code tables and an offset: about 4.13 bits per weight
  (:func:`chat.registry.nf4_bytes`);
- LLM.int8 for ``int8``: one byte per weight plus a float32 scale per output row.

The registry counts the same bytes for a loaded model (:func:`chat.registry.footprint`), so the table is
what the budget sees. Activations, KV caches and the CUDA context come on top of it.

With ``--json``, the top-level ``fits`` answers what a user asks: every profile proven (the one of ``--config``, or
all four shipped) fits its card, i.e. each tool's peak (weights on the device, caches, activations) plus the CUDA
context is at most the card's size; ``fits_by_profile`` gives it per profile. ``all_weights_co_resident`` (the
old meaning of ``fits``) says whether every model of ``--config`` fits its budget at once, which only the 24 GB
default is made for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

GIB = 2**30
# Bytes per parameter in the files a float16 load reads (the hubs' file listings): the llava-hf checkpoints are
# float16 shards, SD 1.5 and its inpainting model ship fp16 variants; the others are float32 files (and
# instruct-pix2pix is counted as float32 too, the larger case).
STORED_BYTES = {"llava": 2, "vip_llava": 2, "txt2img": 2, "inpaint": 2}


@dataclass
class Row:
    key: str
    checkpoint: str
    components: list[str]
    dtype: str
    quantize: str
    params: int
    bytes: int
    note: str = ""
    component_bytes: dict[str, int] = field(default_factory=dict)  # bytes on the device, per component
    disk_bytes: int = 0  # bytes of the weight files a load reads (as stored: STORED_BYTES per parameter)

    @property
    def gib(self) -> float:
        return self.bytes / GIB


@dataclass
class Report:
    config: str
    device: str
    budget_bytes: int
    rows: list[Row]
    shareable_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.rows)

    def co_resident(self) -> list[str]:
        """Models that fit together in the budget, in config order (all of them when the total fits)."""
        fit, used = [], 0
        for row in self.rows:
            if used + row.bytes <= self.budget_bytes:
                fit.append(row.key)
                used += row.bytes
        return fit

    def as_dict(self) -> dict:
        return {
            "config": self.config,
            "device": self.device,
            "budget_gib": round(self.budget_bytes / GIB, 2),
            "total_gib": round(self.total_bytes / GIB, 2),
            "total_bytes": self.total_bytes,
            # every model's weights on the device at once within this config's budget (true only for the 24 GB
            # default: the smaller profiles keep some in CPU RAM or on disk by design; see "fits" for the cards)
            "all_weights_co_resident": self.total_bytes <= self.budget_bytes,
            "co_resident": self.co_resident(),
            "shareable_gib": round(self.shareable_bytes / GIB, 2),
            "models": [dict(asdict(r), gib=round(r.gib, 3)) for r in self.rows],
            "notes": self.notes,
        }


# ------------------------------------------------------------------------------------------------
# Bytes of one module (the per-tensor formulas are the registry's)
# ------------------------------------------------------------------------------------------------
def quantized_linear_weights(model, skip: tuple[str, ...]) -> dict[int, tuple[int, int]]:
    """``id(weight) -> (numel, out_features)`` for the linear layers bitsandbytes would quantize."""
    import torch

    out = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(name == s or name.startswith(s + ".") for s in skip):
            out[id(module.weight)] = (module.weight.numel(), module.weight.shape[0])
    return out


def module_bytes(model, dtype_bytes: int, quantize: str = "none", skip: tuple[str, ...] = ()) -> tuple[int, int]:
    """(parameters, bytes) of a model (meta or real) loaded at ``dtype_bytes`` per float, quantized as told."""
    from chat.registry import int8_bytes, nf4_bytes

    quantized = quantized_linear_weights(model, skip) if quantize != "none" else {}
    params = total = 0
    seen: set[int] = set()
    tensors = list(model.parameters()) + list(model.buffers())
    n_params = sum(1 for _ in model.parameters())
    for i, t in enumerate(tensors):
        if id(t) in seen:
            continue
        seen.add(id(t))
        numel = t.numel()
        if i < n_params:
            params += numel
        if id(t) in quantized:
            total += nf4_bytes(numel) if quantize == "nf4" else int8_bytes(numel, quantized[id(t)][1])
        else:
            total += numel * (dtype_bytes if t.is_floating_point() else t.element_size())
    return params, total


# ------------------------------------------------------------------------------------------------
# A profile
# ------------------------------------------------------------------------------------------------
def _dtype_name(config, spec, device: str) -> str:
    name = spec.dtype if spec.dtype != "auto" else config.dtype
    if name == "auto":
        return "float16" if device == "cuda" else "float32"
    return name


def _skip(key: str) -> tuple[str, ...]:
    from chat.bench.architectures import LLAVA_SKIP, family

    return LLAVA_SKIP if family(key) in ("llava", "vip_llava") else ()


def _count(key: str, dtype_bytes: int, quantize: str) -> tuple[int, dict[str, int]]:
    """(parameters, bytes per component) of config key ``key``'s full-size architecture."""
    from chat.bench.architectures import build

    params, sizes = 0, {}
    for name, module in build(key).items():
        p, b = module_bytes(module, dtype_bytes, quantize, _skip(key))
        params += p
        sizes[name] = b
    return params, sizes


def budget_bytes(config, context_gib: float | None = None) -> int:
    """The profile's budget on its card: ``memory_budget_gb``, or for ``auto`` the card less the CUDA context
    (``context_gib``, by default :data:`chat.bench.profiles.CONTEXT_GIB`) and ``memory_margin_gb``."""
    from chat.bench.profiles import CONTEXT_GIB, card_gib

    setting = config.memory_budget_gb
    if setting == "auto":
        context = CONTEXT_GIB if context_gib is None else context_gib
        return int((card_gib(config) - context - config.memory_margin_gb) * GIB)
    return int(setting * GIB)


def compute(config_path: str = "configs/default.yaml", device: str = "cuda", counted: dict | None = None) -> Report:
    """The memory table of a profile for ``device`` (cuda: the dtype a GPU gets). ``counted`` keeps the counts
    of each (key, dtype, quantization) for the next profile."""
    import torch

    from chat.bench.architectures import ARCHITECTURES, family
    from chat.config import load_config

    config = load_config(config_path)
    counted = {} if counted is None else counted
    rows: list[Row] = []
    per_component: dict[str, dict[str, int]] = {}
    for key, spec in config.models.items():
        try:
            arch = family(key)
        except KeyError:
            continue
        dtype = _dtype_name(config, spec, device)
        dtype_bytes = torch.empty((), dtype=getattr(torch, dtype)).element_size()
        if (key, dtype, spec.quantize) not in counted:
            counted[key, dtype, spec.quantize] = _count(key, dtype_bytes, spec.quantize)
        params, sizes = counted[key, dtype, spec.quantize]
        per_component[key] = dict(sizes)
        checkpoint = ARCHITECTURES[arch][1]
        note = "" if spec.path == checkpoint else f"architecture of {checkpoint} assumed for {spec.path}"
        rows.append(Row(key, checkpoint, list(sizes), dtype, spec.quantize, params, sum(sizes.values()), note,
                        dict(sizes), params * STORED_BYTES.get(arch, 4)))

    report = Report(str(config_path), device, budget_bytes(config), rows)
    pipelines = [k for k in ("pix2pix", "inpaint", "txt2img") if k in per_component]
    if "controlnet" in per_component:
        report.notes.append(
            "controlnet: only the ControlNet is loaded; sketch-to-image builds its pipeline with from_pipe over the "
            "loaded txt2img pipeline, sharing its UNet, VAE and text encoder (nothing copied)."
        )
    if len(pipelines) > 1:
        shared = sum(per_component[k]["vae"] + per_component[k]["text_encoder"] for k in pipelines[1:])
        report.shareable_bytes = shared
        report.notes.append(
            f"{', '.join(pipelines)} are separate checkpoints with a VAE and CLIP text encoder of the same SD 1.5 "
            f"architecture: the registry loads one pair for all when their weights are the same, saving "
            f"{shared / GIB:.2f} GiB (the total above counts every copy; the profiles below count one)."
        )
    return report


def render(report: Report) -> str:
    lines = [f"Memory of {report.config} on {report.device} (full-size architectures, meta device):", ""]
    lines.append(f"{'model':<14}{'checkpoint':<52}{'dtype':<10}{'quant':<6}{'params':>9}{'GiB':>8}")
    for r in report.rows:
        lines.append(f"{r.key:<14}{r.checkpoint:<52}{r.dtype:<10}{r.quantize:<6}"
                     f"{r.params / 1e6:>8.0f}M{r.gib:>8.2f}")
    total, budget = report.total_bytes / GIB, report.budget_bytes / GIB
    lines.append(f"{'total':<82}{total:>17.2f}")
    lines.append("")
    lines.append(f"budget {budget:.2f} GiB: the weights' total {total:.2f} GiB is {total / budget:.0%} of it; "
                 + ("every model can be co-resident." if total <= budget else
                    f"co-resident together: {', '.join(report.co_resident())}.")
                 + " On a GPU the budget also holds the caches at their limits and each call's activations, and a "
                   "profile chooses what stays: the profiles below.")
    for r in report.rows:
        if r.note:
            lines.append(f"note: {r.key}: {r.note}")
    lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines)


def default_profiles() -> list[str]:
    """The shipped GPU profiles, smallest card first: configs/gpu-8gb, -12gb, -16gb and the default (24 GB)."""
    from pathlib import Path

    from chat.config import DEFAULT_CONFIG

    folder = Path(DEFAULT_CONFIG).parent
    return [str(folder / f"gpu-{n}gb.yaml") for n in (8, 12, 16)] + [DEFAULT_CONFIG]


def run(args) -> tuple[dict, str]:
    """(JSON result, text) for ``python -m chat.bench memory``: the weights of ``--config`` (default: the default
    profile) and the proof of that profile, or of every shipped profile when no ``--config`` is given."""
    from chat.bench import profiles, speeds

    paths = [args.config] if args.config else default_profiles()
    counted: dict = {}
    traced: dict = {}
    report = compute(paths[-1], args.device, counted)
    rates = speeds.measure()
    context = speeds.cuda_context_gib()
    proofs = profiles.prove_all(paths, rates, counted, traced, context)
    result = report.as_dict()
    source = ("measured on this GPU" if context is not None else
              f"no GPU here: {profiles.CONTEXT_GIB} GiB assumed (a torch 2.x context with cuBLAS)")
    result["cuda_context"] = {"gib": proofs[0].context_gib, "source": source}
    result["speeds"] = rates
    result["activations_mib"] = profiles.activations_mib(traced)
    result["profiles"] = [p.as_dict() for p in proofs]
    # what a user asks: does each profile fit its card (every tool's peak + the CUDA context <= the card)?
    result["fits"] = all(p.fits for p in proofs)
    result["fits_by_profile"] = {p.profile: p.fits for p in proofs}
    misfits = [p.profile for p in proofs if not p.fits]
    verdict = (f"Every profile fits its card (each tool's peak + the CUDA context): {', '.join(p.profile for p in proofs)}."
               if not misfits else f"DOES NOT FIT its card: {', '.join(misfits)}.")
    text = "\n\n".join([render(report), profiles.render_activations(traced), profiles.render(proofs, rates, source),
                         verdict])
    return result, text
