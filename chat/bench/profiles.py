"""A memory profile proved by computation: its tools run through the registry's own placement policy.

Every model's weights (per component) come from the full-size architectures (:func:`chat.bench.memory.compute`),
every call's activations from :mod:`chat.bench.activations`. A :class:`chat.registry.ModelMemory` (the registry's
own: the same budget, resident models, LRU eviction, offload to CPU RAM, shared SD parts, model CPU offload)
places fake models of those sizes as the tools ask for them. For each tool it records the device peak of its call
(weights on the device + the caches at their limits + the call's activations) and what had to move first: bytes
from CPU RAM (offloaded models, and the parts of a pipeline under model CPU offload, every call) or from disk.

The budget is the profile's ``memory_budget_gb``, or for ``auto`` what the card leaves once the CUDA context is
made (:data:`CONTEXT_GIB`, or measured with a GPU) less ``memory_margin_gb``. The pipelines' VAE and text encoder
are counted as one shared pair: the SD 1.5 checkpoints' parts are the same (the registry checks it at load).

A tool switch is a tool's call right after another's, once every tool has run (the first load of each model is
not a switch). The worst switch is the slowest over every ordered pair of tools.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace

GIB = 2**30
CONTEXT_GIB = 0.5  # the CUDA context and cuBLAS workspace of a torch 2.x process (0.3 to 0.5 GiB); measured on a GPU
# (tool, the models it calls in order); the chat model's answer and the router's constrained choice are "chat"
TOOLS: list[tuple[str, tuple[str, ...]]] = [
    ("chat", ("llava",)), ("score", ("clip",)), ("score siglip", ("siglip",)), ("classify", ("llava", "clip")),
    ("caption", ("blip_caption",)), ("ask BLIP", ("blip_vqa",)), ("click SAM", ("sam",)), ("find", ("sam", "clip")),
    ("edit", ("pix2pix",)), ("edit marked, remove", ("inpaint",)), ("generate", ("txt2img",)),
    ("sketch", ("txt2img", "controlnet")),
]
PIPELINES = ("pix2pix", "inpaint", "txt2img")


def card_gib(config) -> int:
    """The card a profile is made for: ``gpu-12gb`` -> 12; the default profile is for 24 GB."""
    match = re.search(r"(\d+)gb", config.profile)
    return int(match.group(1)) if match else 24


@dataclass
class Call:
    tool: str
    models: list[str]
    weights_bytes: int  # on the device during the call
    peak_bytes: int  # weights + caches + the call's activations
    from_ram: int = 0  # bytes moved from CPU RAM before (and, under model CPU offload, during) the call
    from_disk: int = 0  # bytes read from disk
    seconds: float = 0.0  # what moving them takes at the speeds given


@dataclass
class Proof:
    profile: str
    config: str
    card_gib: int
    budget_bytes: int
    context_gib: float
    resident: list[str]
    on_device: list[str]  # after every tool ran once
    in_ram: list[str]
    on_disk: list[str]
    ram_bytes: int  # CPU RAM the waiting models hold at most
    calls: list[Call]
    worst: Call
    worst_after: str
    caches: dict[str, int] = field(default_factory=dict)  # device bytes of each cache at its limit
    notes: list[str] = field(default_factory=list)

    @property
    def peak_bytes(self) -> int:
        return max(c.peak_bytes for c in self.calls)

    @property
    def fits(self) -> bool:
        """Whether every tool's peak plus the CUDA context fits the card the profile is made for."""
        return self.peak_bytes + self.context_gib * GIB <= self.card_gib * GIB

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(peak_gib=round(self.peak_bytes / GIB, 2), budget_gib=round(self.budget_bytes / GIB, 2),
                   peak_with_context_gib=round(self.peak_bytes / GIB + self.context_gib, 2), fits=self.fits)
        return out


class Simulation:
    """The registry's placement policy over fake models with the computed sizes."""

    def __init__(self, config, rows: dict, phases: dict, budget: int, speeds: dict):
        from chat.registry import ModelMemory
        from chat.registry.loading import ModelLoader

        self.config, self.rows, self.phases, self.speeds = config, rows, phases, speeds
        self.memory = ModelMemory(config, call_bytes=self._call_of, device="cuda")
        self.memory.budget_bytes = budget
        self.memory.move = lambda obj, device: None  # fake models: nothing to move, nothing to collect
        self.memory.free = lambda: None
        self.loader = ModelLoader(config, self.memory, lambda *a: None)
        self.ram_peak = 0

    def offloads(self, key: str) -> bool:
        what = "pipeline" if key in PIPELINES else "model"
        return self.loader.model_cpu_offload(what, self.rows[key].bytes, key)

    def _call_of(self, key: str, components: dict[str, int] | None = None) -> int:
        from chat.registry import budget

        phases = self.phases[key]
        if key.startswith(("llava", "vip_llava")):
            return budget.llava_call_bytes(self.config.model(key), self.config, phases[0].bytes / 2**20)
        extra = 0
        if key == "controlnet" and self.offloads("txt2img"):  # the txt2img UNet visits with it
            extra = self.rows["txt2img"].component_bytes["unet"]
        if components is None:
            return max(p.bytes for p in phases) + extra
        return max(p.bytes + sum(components.get(c, 0) for c in p.components) for p in phases)

    def _entry(self, key: str):
        import time

        from chat.registry import Entry

        row = self.rows[key]
        if key not in PIPELINES:
            return Entry(key, object(), row.bytes, 0.0, time.monotonic(), call_bytes=self._call_of(key))
        fake = SimpleNamespace(components={c: object() for c in row.component_bytes})  # parts move one by one
        part_of = {c: f"shared:{c}" if c != "unet" else f"{key}:unet" for c in row.component_bytes}
        if self.offloads(key):
            return Entry(key, fake, 0, 0.0, time.monotonic(), offloadable=False, part_of=part_of,
                         call_bytes=self._call_of(key, row.component_bytes), host_bytes=row.bytes)
        parts = {part_of[c]: b for c, b in row.component_bytes.items()}
        return Entry(key, fake, row.bytes, 0.0, time.monotonic(), parts=parts, part_of=part_of,
                     call_bytes=self._call_of(key))

    def _load(self, key: str):
        entry = self._entry(key)
        self.memory.make_room(key, self.memory.new_bytes(entry) if entry.offloadable else 0)
        self.memory.make_room(key, self.memory.new_bytes(entry), entry.call_bytes)
        return entry

    def call(self, tool: str, models: tuple[str, ...]) -> Call:
        from chat.registry.budget import cache_bytes

        memory = self.memory
        before = memory.placement()
        held = set(before.device_parts)
        in_ram = set(before.in_ram)
        known = set(before.on_device) | in_ram
        entries, peak, weights = [], 0, 0
        for m in models:  # each model's call runs once it is on the device, in the tool's order
            entry = memory.acquire(m, lambda m=m: self._load(m))
            entries.append(entry)
            weights = max(weights, memory.used_bytes())
            peak = max(peak, memory.used_bytes() + cache_bytes(self.config) + entry.call_bytes)
        from_ram = from_disk = loaded = pageable = 0
        for entry in entries:
            new = sum(b for k, b in entry.sizes().items() if k not in held)
            held |= set(entry.sizes())
            if not entry.offloadable:
                pageable += entry.host_bytes  # model CPU offload: every part visits the device, every call
            if entry.name in in_ram:
                from_ram += new
            elif entry.name not in known:
                row = self.rows[entry.name]
                from_disk += int(row.disk_bytes * (new or row.bytes) / max(row.bytes, 1))
                loaded += new or entry.host_bytes
        self.ram_peak = max(self.ram_peak, memory.placement().host_bytes)
        pinned = self.speeds["pinned"] if self.config.offload.pinned else self.speeds["pageable"]
        seconds = (from_ram / pinned + (pageable + loaded) / self.speeds["pageable"]
                   + from_disk / self.speeds["disk"])
        return Call(tool, list(models), weights, peak, from_ram + pageable, from_disk, round(seconds, 3))


def trace(keys, side: int = 512) -> dict:
    """``{key: [Phase]}``: each model's call traced on its full-size architecture (:mod:`chat.bench.activations`)."""
    from chat.bench.activations import phases

    return {key: phases(key, side) for key in keys}


def activations_mib(traced: dict) -> dict[str, dict[str, float]]:
    """MiB each call adds over the weights, by phase (what :data:`chat.registry.budget.ACTIVATION_MIB` holds)."""
    return {key: {p.name: round(p.bytes / 2**20, 1) for p in phases} for key, phases in traced.items()}


def prove(config_path: str, speeds: dict, context_gib: float | None = None, traced: dict | None = None,
          counted: dict | None = None) -> Proof:
    """Run every tool of a profile through the registry's policy: peaks, resident set, worst switch. ``traced``
    (:func:`trace`) and ``counted`` (:func:`chat.bench.memory.compute`) may be shared between profiles."""
    from chat.bench.memory import budget_bytes, compute
    from chat.config import load_config
    from chat.registry.budget import cache_parts

    config = load_config(config_path)
    rows = {r.key: r for r in compute(config_path, "cuda", counted).rows}
    traced = traced if traced is not None else {}
    traced.update(trace(k for k in rows if k not in traced))
    card = card_gib(config)
    context_gib = CONTEXT_GIB if context_gib is None else context_gib
    budget = budget_bytes(config, context_gib)
    tools = [(t, m) for t, m in TOOLS if all(k in rows for k in m)]

    def warm() -> Simulation:
        sim = Simulation(config, rows, traced, budget, speeds)
        for tool, models in tools:
            sim.call(tool, models)
        return sim

    first = warm()
    calls = {tool: first.call(tool, models) for tool, models in tools}
    worst, worst_after, ram_peak = None, "", first.ram_peak
    for before, before_models in tools:
        for tool, models in tools:
            if tool == before:
                continue
            sim = warm()
            sim.call(before, before_models)
            call = sim.call(tool, models)
            ram_peak = max(ram_peak, sim.ram_peak)
            if call.peak_bytes > calls[tool].peak_bytes:
                calls[tool] = call
            if worst is None or call.seconds > worst.seconds:
                worst, worst_after = call, before
    state = warm()
    placed = state.memory.placement()
    offload = config.offload
    proof = Proof(
        profile=config.profile, config=str(config_path), card_gib=card, budget_bytes=budget, context_gib=context_gib,
        resident=[k for k in rows if k in offload.resident],
        on_device=[n for n in placed.on_device if n not in placed.self_managed],
        in_ram=list(placed.waiting_in_ram),
        on_disk=[k for k in rows if k in offload.disk or (offload.ram_gb <= 0 and k not in offload.resident)],
        ram_bytes=ram_peak, calls=list(calls.values()), worst=worst, worst_after=worst_after,
        caches=cache_parts(config),
    )
    offloaded = [k for k in PIPELINES if k in rows and state.offloads(k)]
    if offloaded:
        proof.notes.append(f"{', '.join(offloaded)} run under model CPU offload (offload.diffusers "
                           f"{offload.diffusers}): each call moves their parts to the GPU one at a time")
    unused = [k for k in rows if not any(k in m for _, m in tools)]
    if unused:
        proof.notes.append(f"{', '.join(unused)}: no tool uses it (an alternative chat model); not placed here")
    return proof


def prove_all(paths: list[str], speeds: dict, counted: dict | None = None, traced: dict | None = None,
              context_gib: float | None = None) -> list[Proof]:
    """:func:`prove` for each profile, the architectures counted and traced once."""
    counted = {} if counted is None else counted
    traced = {} if traced is None else traced
    return [prove(path, speeds, context_gib, traced, counted) for path in paths]


def render_activations(traced: dict) -> str:
    """What each model's call adds over its weights, by phase (traced on the full-size architectures)."""
    lines = ["Each call's device memory beyond the weights, MiB (float16, traced on the meta device; SD at 512 px, "
             "LLaVA prefill over 2048 tokens with its KV cache, 16 CLIP/SigLIP images or prompts, SAM at 1024 px "
             "with 64 points):"]
    for key, phases in activations_mib(traced).items():
        lines.append(f"  {key:<14}" + ", ".join(f"{name} {mib:.0f}" for name, mib in phases.items()))
    return "\n".join(lines)


def _gib(n: int) -> str:
    return f"{n / GIB:.2f}"


def render(proofs: list[Proof], speeds: dict, context_source: str = "") -> str:
    """Each profile's resident set, the peak of each tool's call and the worst switch, as text."""
    lines = [f"CUDA context: {context_source}."] if context_source else []
    lines += [f"Tool switches at: host to GPU {speeds['pinned'] / 1e9:.1f} GB/s pinned, {speeds['pageable'] / 1e9:.1f} "
             f"GB/s pageable ({speeds.get('host_source', 'given')}); disk {speeds['disk'] / 1e9:.2f} GB/s "
             f"({speeds.get('disk_source', 'given')})."]
    for p in proofs:
        fits = p.fits
        caches = ", ".join(f"{k.replace('_', ' ')} {v / 2**20:.0f} MiB" for k, v in p.caches.items())
        lines += ["", f"Profile {p.profile} ({p.config}) for {p.card_gib} GB cards: budget {_gib(p.budget_bytes)} GiB "
                      f"(CUDA context {p.context_gib:.2f} GiB outside it); caches at their limits: {caches}",
                  f"  resident: {', '.join(p.resident) or '-'}; on the GPU once every tool ran: "
                  f"{', '.join(p.on_device) or '-'}",
                  f"  in CPU RAM: {', '.join(p.in_ram) or '-'} ({_gib(p.ram_bytes)} GiB at most); "
                  f"from disk: {', '.join(p.on_disk) or '-'}",
                  f"  {'tool':<22}{'models':<22}{'weights':>9}{'peak':>8}{'RAM->GPU':>10}{'disk':>8}{'move s':>8}"]
        for c in p.calls:
            lines.append(f"  {c.tool:<22}{'+'.join(c.models):<22}{_gib(c.weights_bytes):>9}{_gib(c.peak_bytes):>8}"
                         f"{_gib(c.from_ram):>10}{_gib(c.from_disk):>8}{c.seconds:>8.2f}")
        w = p.worst
        lines.append(f"  worst switch: {w.tool} after {p.worst_after}: {_gib(w.from_ram)} GiB from CPU RAM, "
                     f"{_gib(w.from_disk)} GiB from disk, {w.seconds:.2f} s"
                     if w.seconds > 0 else "  worst switch: none moves anything (every tool stays on the GPU)")
        lines.append(f"  peak {_gib(p.peak_bytes)} GiB + CUDA context {p.context_gib:.2f} GiB against the "
                     f"{p.card_gib} GB card: {'fits' if fits else 'DOES NOT FIT'}")
        lines.extend(f"  note: {n}" for n in p.notes)
    return "\n".join(lines)
