"""Loading one model: its checkpoint folder (tiny ones built on demand), the load itself within the budget
(retried once after freeing the other models when memory runs out), and errors as one clear sentence that says
which cause it is (:mod:`chat.registry.load_errors`). What a loader chose or filled in (a ``.bin`` file, fp16
variants, processor fields, parts shared with another pipeline) ends the ``loaded`` line as notes and stays on the
entry (``Entry.notes``).

Diffusers pipelines on a GPU may instead use ``enable_model_cpu_offload()`` (``offload.diffusers``): the
pipeline lives in CPU RAM and each component visits the GPU while it runs, so the budget is charged nothing while
it waits and, during a call, the largest of its components with that component's activations. ``auto`` does so
for a pipeline that would not fit beside the resident models.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from chat.config import Config, ModelSpec
from chat.errors import ModelLoadError, is_out_of_memory
from chat.load_progress import LoadProgress, transformers_bars
from chat.loaders import Bundle, LoadSettings, check_model_type, loader_for
from chat.prompt_format import format_note
from chat.registry import budget
from chat.registry.load_errors import explain
from chat.registry.memory import Entry, ModelMemory, Progress, _torch
from chat.registry.sharing import SharedParts
from chat.registry.sizes import estimate_bytes, footprint


class ModelLoader:
    """Loads a model from the config into ``memory`` (making room there first), sharing the parts of pipelines
    that are the same (``parts``)."""

    def __init__(self, config: Config, memory: ModelMemory, report: Progress, parts: SharedParts | None = None):
        self.config = config
        self.memory = memory
        self._report = report
        self.parts = parts if parts is not None else SharedParts()
        self.load_count: dict[str, int] = {}
        self._hooks_of: str | None = None  # the offloaded pipeline whose hooks the shared parts carry now
        self._configs: dict[tuple[str, str, str | None], Any] = {}  # (name, path, revision) -> transformers config

    def checkpoint_config(self, name: str) -> Any:
        """The transformers config of ``name``'s checkpoint, read from its ``config.json`` without loading any
        weights (a missing tiny checkpoint is built first); kept, so it is read once per checkpoint."""
        from transformers import AutoConfig

        spec = self.config.model(name)
        key = (name, spec.path, spec.revision)
        if key not in self._configs:
            self._configs[key] = AutoConfig.from_pretrained(self._resolve_path(name, spec), revision=spec.revision)
        return self._configs[key]

    def model_cpu_offload(self, what: str, estimate: int, name: str = "") -> bool:
        """Whether a diffusers pipeline should run under ``enable_model_cpu_offload`` (GPU only)."""
        mode = self.config.offload.diffusers
        if self.memory.device != "cuda" or mode == "never" or not what.endswith("pipeline"):
            return False
        if mode == "always":
            return True
        return self.memory.resident_bytes() + estimate + self.memory.reserved_bytes(name) > self.memory.budget_bytes

    def _resolve_path(self, name: str, spec: ModelSpec) -> str:
        tiny = self.config.tiny_path
        path = Path(spec.path)
        if tiny is not None and path.parent == tiny and not path.exists():
            from chat import tiny as tiny_builder

            self._report(name, 0.0, f"building the tiny offline checkpoint '{path.name}'")
            tiny_builder.ensure(tiny, path.name)
        local = spec.path.startswith(("/", ".", "~")) or path.exists()
        if local and not path.is_dir():
            raise ModelLoadError(
                f"Checkpoint folder '{spec.path}' for model '{name}' does not exist; "
                f"run 'mmchat build-tiny' or fix 'models.{name}.path' in the config.", "missing_folder"
            )
        return str(path) if local else spec.path

    def load(self, name: str) -> Entry:
        spec = self.config.model(name)
        try:
            loader, what, accepted = loader_for(name)
        except KeyError:
            raise ModelLoadError(f"No loader for model '{name}'; known kinds: llava, clip, siglip, blip_caption, "
                                 "blip_vqa, sam, pix2pix, inpaint, txt2img, controlnet.") from None
        path = self._resolve_path(name, spec)
        dtype = self.memory.dtype_for(spec)
        quantize = spec.quantize if loader.__name__ == "load_mllm" else "none"  # only LLaVA-style models quantize
        estimate = estimate_bytes(path, quantize, _torch().empty((), dtype=dtype).element_size(), spec.revision)
        cpu_offload = self.model_cpu_offload(what, estimate, name)
        self.memory.make_room(name, 0 if cpu_offload else estimate)
        progress = LoadProgress(lambda fraction, message: self._report(name, fraction, message), f"loading {name}")
        device = "cpu" if cpu_offload else self.memory.device
        settings = LoadSettings(device, dtype, spec.quantize, spec.revision, progress, shared=self.parts, owner=name,
                                placement="offload" if cpu_offload else "device")
        self._report(name, 0.0, f"loading {name} from {spec.path}")
        # transformers would ask the hub's conversion bot to convert a .bin-only repository: never from here
        os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")
        start = time.perf_counter()
        try:
            progress.phase(0.01, 0.05, "reading the config")
            check_model_type(path, settings, accepted, what)
            with transformers_bars(progress):
                obj = self._load_once(loader, path, settings, cpu_offload, name)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear sentence
            kind, sentence = explain(name, spec.path, what, exc, spec.revision)
            raise ModelLoadError(sentence, kind) from exc
        seconds = time.perf_counter() - start
        if isinstance(obj, Bundle):  # how its images are made square (tools/aspect.py) travels with the model
            obj.image_aspect_ratio = spec.image_aspect_ratio
            note = format_note(spec.chat_template, getattr(obj.model, "config", None))
            settings.notes.extend([note] if note else [])  # a trained format set by hand for another family
        self.load_count[name] = self.load_count.get(name, 0) + 1
        entry = self._entry(name, obj, seconds, settings, cpu_offload)
        size = entry.host_bytes if cpu_offload else entry.nbytes
        how = ", model CPU offload" if cpu_offload else ""
        notes = "".join(f"; note: {note}" for note in settings.notes)
        self._report(name, 1.0, f"loaded {name} in {seconds:.1f} s ({size / 2**20:.0f} MiB{how}){notes}")
        self.memory.make_room(name, self.memory.new_bytes(entry), entry.call_bytes)
        return entry

    def _entry(self, name: str, obj: Any, seconds: float, settings: LoadSettings, cpu_offload: bool) -> Entry:
        """The entry of a loaded model: its weights by part (shared parts under their shared key) and its call."""
        now = time.monotonic()
        notes = list(settings.notes)
        components = getattr(obj, "components", None)
        if not isinstance(components, dict):
            call = budget.call_bytes(name, self.config)
            return Entry(name, obj, footprint(obj), seconds, now, notes=notes, call_bytes=call)
        modules = {c: m for c, m in components.items() if isinstance(m, _torch().nn.Module)}
        sizes = {c: footprint(m) for c, m in modules.items()}
        part_of = {c: f"shared:{settings.parts[c]}" if c in settings.parts else f"{name}:{c}" for c in modules}
        if cpu_offload:  # waits in CPU RAM; each part visits the device during a call
            self._hooks_of = name  # enable_model_cpu_offload put its hooks on the shared parts
            call = budget.call_bytes(name, self.config, sizes)
            return Entry(name, obj, 0, seconds, now, offloadable=False, notes=notes, part_of=part_of, call_bytes=call,
                         host_bytes=sum(sizes.values()))
        parts = {part_of[c]: sizes[c] for c in modules}
        return Entry(name, obj, sum(parts.values()), seconds, now, notes=notes, parts=parts, part_of=part_of,
                     call_bytes=budget.call_bytes(name, self.config))

    def before_call(self, entry: Entry) -> None:
        """A pipeline under model CPU offload whose parts are shared: its own offload hooks on them (diffusers
        leaves the hooks of the pipeline that ran last on a shared part), so each part leaves the device when
        the next one comes, as in an unshared pipeline."""
        shared = any(key.startswith("shared:") for key in entry.part_of.values())
        if entry.offloadable or not shared or entry.name == self._hooks_of:
            return
        entry.obj.enable_model_cpu_offload(device=self.memory.device)
        self._hooks_of = entry.name

    def _load_once(self, loader, path: str, settings: LoadSettings, cpu_offload: bool, name: str) -> Any:
        """Load; when memory runs out, unload every other model (device and CPU RAM) and try once more."""
        def load():
            obj = loader(path, settings)
            if cpu_offload:
                obj.enable_model_cpu_offload(device=self.memory.device)
            return obj

        try:
            return load()
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
            if not is_out_of_memory(exc) or not (self.memory.loaded() or self.memory.offloaded()):
                raise
        self.memory.free()
        for other in self.memory.loaded() + self.memory.offloaded():
            self._report(name, 0.0, f"unloading {other} to make room for {name}")
            self.memory.unload(other)
        settings.parts.clear()
        return load()
