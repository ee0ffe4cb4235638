"""Loading one model: its checkpoint folder (tiny ones built on demand), the load itself within the budget
(retried once after freeing the other models when memory runs out), and errors as one clear sentence that says
which cause it is (:mod:`chat.registry.load_errors`). What a loader chose or filled in (a ``.bin`` file, fp16
variants, processor fields) ends the ``loaded`` line as notes and stays on the entry (``Entry.notes``).

Diffusers pipelines on a GPU may instead use ``enable_model_cpu_offload()`` (``offload.diffusers``): the
pipeline lives in CPU RAM and each component visits the GPU while it runs, so the budget is charged only
its largest component. ``auto`` does so for a pipeline that would not fit in the budget on its own.
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
from chat.registry.load_errors import explain
from chat.registry.memory import Entry, ModelMemory, Progress, _torch
from chat.registry.sizes import estimate_bytes, footprint, peak_footprint


class ModelLoader(ModelMemory):
    """Loads a model from the config into the memory of :class:`ModelMemory`."""

    def __init__(self, config: Config, progress: Progress | None = None):
        super().__init__(config, progress)
        self.load_count: dict[str, int] = {}

    def _model_cpu_offload(self, what: str, estimate: int) -> bool:
        """Whether a diffusers pipeline should run under ``enable_model_cpu_offload`` (GPU only)."""
        mode = self.config.offload.diffusers
        if self.device != "cuda" or mode == "never" or not what.endswith("pipeline"):
            return False
        return mode == "always" or estimate > self.budget_bytes

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

    def _load(self, name: str) -> Entry:
        spec = self.config.model(name)
        try:
            loader, what, accepted = loader_for(name)
        except KeyError:
            raise ModelLoadError(f"No loader for model '{name}'; known kinds: llava, clip, siglip, blip_caption, "
                                 "blip_vqa, sam, pix2pix, inpaint, txt2img, controlnet.") from None
        path = self._resolve_path(name, spec)
        dtype = self.dtype_for(spec)
        quantize = spec.quantize if loader.__name__ == "load_mllm" else "none"  # only LLaVA-style models quantize
        estimate = estimate_bytes(path, quantize, _torch().empty((), dtype=dtype).element_size(), spec.revision)
        cpu_offload = self._model_cpu_offload(what, estimate)
        if cpu_offload:
            estimate = 0  # charged its largest component once loaded
        self._make_room(name, estimate)
        progress = LoadProgress(lambda fraction, message: self._report(name, fraction, message), f"loading {name}")
        settings = LoadSettings("cpu" if cpu_offload else self.device, dtype, spec.quantize, spec.revision, progress)
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
        nbytes = peak_footprint(obj) if cpu_offload else footprint(obj)
        how = ", model CPU offload" if cpu_offload else ""
        notes = "".join(f"; note: {note}" for note in settings.notes)
        self._report(name, 1.0, f"loaded {name} in {seconds:.1f} s ({nbytes / 2**20:.0f} MiB{how}){notes}")
        entry = Entry(name, obj, nbytes, seconds, time.monotonic(), offloadable=not cpu_offload,
                      notes=list(settings.notes))
        self._make_room(name, nbytes)
        return entry

    def _load_once(self, loader, path: str, settings: LoadSettings, cpu_offload: bool, name: str) -> Any:
        """Load; when memory runs out, unload every other model (device and CPU RAM) and try once more."""
        def load():
            obj = loader(path, settings)
            if cpu_offload:
                obj.enable_model_cpu_offload(device=self.device)
            return obj

        try:
            return load()
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
            if not is_out_of_memory(exc) or not (self._entries or self._offloaded):
                raise
        self._free()
        for other in list(self._entries) + list(self._offloaded):
            self._report(name, 0.0, f"unloading {other} to make room for {name}")
            self.unload(other)
        return load()
