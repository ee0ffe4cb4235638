"""How each model family is loaded from a checkpoint (hub id or folder).

One function per family, all of the same shape: ``load(path, settings) -> bundle``. They are called only
by :class:`chat.registry.ModelRegistry`, which owns device, dtype, quantization and memory. Transformers
models go through Auto classes; diffusers models through their pipelines, whose components are loaded one by
one first. No remote code, safetensors only. Each loader reports its phases to ``settings.progress``
(:mod:`chat.load_progress`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from chat.checkpoint_files import VARIANT, NoWeightsError, cached_snapshot, choose_weights
from chat.load_progress import LoadProgress, quiet_diffusers_bars

# The span of a load that reading weights covers (the rest: config, processor, moving to the device).
WEIGHTS = (0.1, 0.9)


@dataclass(frozen=True)
class LoadSettings:
    """What the registry decided for one load."""

    device: str
    dtype: Any  # torch.dtype
    quantize: str  # none | nf4 | int8
    revision: str | None = None
    progress: LoadProgress = field(default_factory=LoadProgress, compare=False)  # phases of this load
    notes: list[str] = field(default_factory=list, compare=False)  # one line each, shown when the load ends
    shared: Any = field(default=None, compare=False)  # chat.registry.sharing.SharedParts: parts pipelines share
    owner: str = ""  # the config key being loaded (named when another pipeline shares its parts)
    placement: str = "device"  # device | offload (model CPU offload): parts are shared only within one placement
    parts: dict[str, str] = field(default_factory=dict, compare=False)  # component -> identity of a shareable part

    def common(self) -> dict:
        return {"revision": self.revision, "trust_remote_code": False}

    @property
    def fp16(self) -> bool:
        import torch

        return self.dtype == torch.float16


@dataclass
class Bundle:
    """A processor and its model, loaded together."""

    processor: Any
    model: Any
    image_aspect_ratio: str = "auto"  # models.<name>.image_aspect_ratio, set by the registry (tools/aspect.py)

    @property
    def trained_aspect_ratio(self) -> str:
        """How a non-square image reached this model in training (LLaVA's own setting of that name):
        ``"anyres"`` for LLaVA-NeXT, whose processor tiles the image at its own aspect ratio (never pad it to square
        first), else ``"pad"`` (LLaVA-1.5 and ViP-LLaVA were trained on images padded to square)."""
        return "anyres" if getattr(self.model.config, "image_grid_pinpoints", None) else "pad"


def _quantization(settings: LoadSettings, skip: list[str]):
    from transformers import BitsAndBytesConfig

    if settings.quantize == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=settings.dtype,
            llm_int8_skip_modules=skip,
        )
    if settings.quantize == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return None


def _place(model, settings: LoadSettings):
    settings.progress.phase(WEIGHTS[1], 0.99, f"moving to {settings.device}")
    return model.to(settings.device).eval()


def _processor(cls, path: str, settings: LoadSettings):
    settings.progress.phase(0.05, WEIGHTS[0], "the processor")
    return cls.from_pretrained(path, revision=settings.revision)


def _weights(settings: LoadSettings, note: str = "") -> None:
    settings.progress.phase(*WEIGHTS, f"the weights{note}")


def _listing(path: str, revision: str | None, subfolder: str = "") -> tuple[list[str] | None, str]:
    """The file names in a checkpoint's (sub)folder and where the listing comes from: ``folder`` (a local folder),
    ``cache`` (its snapshot in the Hugging Face cache, maybe partial), ``hub`` (online); ``(None, "")`` when unknown
    (the library then tries safetensors, then ``.bin``)."""
    local = Path(path).is_dir()
    folder = Path(path) if local else cached_snapshot(path, revision)
    if folder is not None:
        folder = folder / subfolder
        names = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        return names, "folder" if local else "cache"
    return _hub_listing(path, revision, subfolder)


def _hub_listing(path: str, revision: str | None, subfolder: str) -> tuple[list[str] | None, str]:
    try:
        from huggingface_hub import HfApi, constants

        if constants.is_offline_mode():
            return None, ""
        prefix = f"{subfolder}/" if subfolder else ""
        return [f[len(prefix):] for f in HfApi().list_repo_files(path, revision=revision)
                if f.startswith(prefix) and "/" not in f[len(prefix):]], "hub"
    except Exception:  # noqa: BLE001 - unknown here: the load itself says what is wrong
        return None, ""


def weights_kwargs(path: str, settings: LoadSettings, subfolder: str = "", variants: bool = False) -> dict:
    """``use_safetensors`` (and for diffusers ``variant``) from the files the checkpoint has; a note when the
    choice is a ``.bin`` file. Nothing when the files are unknown: the libraries then try safetensors first.
    A local folder or hub repository without weights raises :class:`NoWeightsError` naming it."""
    names, source = _listing(path, settings.revision, subfolder)
    choice = choose_weights(names, settings.fp16, variants) if names is not None else None
    if choice is None and source == "cache":  # weights not cached yet: what the hub has, when online
        names, source = _hub_listing(path, settings.revision, subfolder)
        choice = choose_weights(names, settings.fp16, variants) if names is not None else None
    if choice is None:
        if source in ("folder", "hub"):
            where = str(Path(path) / subfolder) if subfolder else path
            raise NoWeightsError(where)
        return {}
    if choice.note:
        settings.notes.append(f"{subfolder + ': ' if subfolder else ''}{choice.note}")
    kwargs: dict[str, Any] = {"use_safetensors": choice.safetensors}
    if variants:
        kwargs["variant"] = choice.variant
    return kwargs


def _model(cls, path: str, settings: LoadSettings):
    return cls.from_pretrained(path, dtype=settings.dtype, **settings.common(), **weights_kwargs(path, settings))


def load_mllm(path: str, settings: LoadSettings) -> Bundle:
    """LLaVA-style models (LLaVA 1.5, ViP-LLaVA, ...); the language model may be quantized."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from chat.processor_check import backfill, self_check

    processor = _processor(AutoProcessor, path, settings)
    quant = _quantization(settings, ["model.vision_tower", "model.multi_modal_projector", "lm_head"])
    kwargs = dict(settings.common(), dtype=settings.dtype, **weights_kwargs(path, settings))
    _weights(settings, f", quantizing to {settings.quantize}" if quant is not None else "")
    if quant is not None:
        model = AutoModelForImageTextToText.from_pretrained(
            path, quantization_config=quant, device_map={"": settings.device}, **kwargs
        ).eval()
    else:
        model = _place(AutoModelForImageTextToText.from_pretrained(path, **kwargs), settings)
    note = backfill(processor, model, path, settings.revision)
    if note:
        settings.notes.append(note)
    settings.progress.phase(0.99, 0.995, "self-check: one image through the processor and the vision tower")
    self_check(processor, model)
    return Bundle(processor, model)


def load_dual_encoder(path: str, settings: LoadSettings) -> Bundle:
    """CLIP and SigLIP: an image tower and a text tower scored against each other."""
    from transformers import AutoModel, AutoProcessor

    processor = _processor(AutoProcessor, path, settings)
    _weights(settings)
    model = _model(AutoModel, path, settings)
    return Bundle(processor, _place(model, settings))


def load_blip_caption(path: str, settings: LoadSettings) -> Bundle:
    from transformers import AutoProcessor, BlipForConditionalGeneration

    processor = _processor(AutoProcessor, path, settings)
    _weights(settings)
    model = _model(BlipForConditionalGeneration, path, settings)
    return Bundle(processor, _place(model, settings))


def load_blip_vqa(path: str, settings: LoadSettings) -> Bundle:
    from transformers import AutoProcessor, BlipForQuestionAnswering

    processor = _processor(AutoProcessor, path, settings)
    _weights(settings)
    model = _model(BlipForQuestionAnswering, path, settings)
    return Bundle(processor, _place(model, settings))


def load_sam(path: str, settings: LoadSettings) -> Bundle:
    from transformers import SamModel, SamProcessor

    processor = _processor(SamProcessor, path, settings)
    _weights(settings)
    model = _model(SamModel, path, settings)
    return Bundle(processor, _place(model, settings))


def _shares(path: str, names: list[str]) -> list[float]:
    """Each component's share of the load: the bytes of its folder (equal shares for a hub id)."""
    folder = Path(path)
    sizes = [sum(f.stat().st_size for f in (folder / n).rglob("*") if f.is_file()) if folder.is_dir() else 0
             for n in names]
    total = sum(sizes)
    return [size / total for size in sizes] if total else [1 / max(len(names), 1)] * len(names)


def _components(cls, path: str, settings: LoadSettings) -> dict[str, Any]:
    """The pipeline's diffusers and transformers components (``model_index.json``), loaded one by one so each
    is a step of the load; anything else (and the safety checker, never loaded) is left to the pipeline. A VAE,
    text encoder or tokenizer that is the same as one a loaded pipeline holds (``settings.shared``) is that one."""
    import torch

    index = cls.load_config(path, revision=settings.revision)
    names = [name for name, value in index.items()
             if name != "safety_checker" and isinstance(value, (list, tuple)) and len(value) == 2
             and value[0] in ("diffusers", "transformers") and isinstance(value[1], str)]
    shares = _shares(path, names)
    components: dict[str, Any] = {}
    variants: list[str] = []
    start = WEIGHTS[0]
    shared_from: dict[str, list[str]] = {}  # the model that loaded a shared part -> the parts
    for name, share in zip(names, shares):
        end, begin = start + share * (WEIGHTS[1] - WEIGHTS[0]), start
        start = end
        library, class_name = index[name]
        component_cls = getattr(importlib.import_module(library), class_name, None)
        if component_cls is None:
            continue
        identity = settings.shared.identity(path, settings.revision, name, class_name, settings.fp16,
                                            str(settings.dtype).removeprefix("torch."),
                                            settings.placement) if settings.shared else None
        found = settings.shared.find(identity) if identity is not None else None
        if found is not None:  # the same part as one a loaded pipeline holds: that one, not a copy
            components[name], owner = found
            settings.parts[name] = identity
            shared_from.setdefault(owner, []).append(name)
            settings.progress.phase(begin, end, f"{name} ({class_name}, the one {owner} loaded)")
            continue
        settings.progress.phase(begin, end, f"{name} ({class_name})")
        kwargs: dict[str, Any] = {"subfolder": name, "revision": settings.revision}
        if isinstance(component_cls, type) and issubclass(component_cls, torch.nn.Module):
            kwargs.update(dtype=settings.dtype, **weights_kwargs(path, settings, name, variants=True))
            if kwargs.get("variant"):
                variants.append(name)
        components[name] = component_cls.from_pretrained(path, **kwargs)
        if identity is not None:
            settings.shared.keep(identity, components[name], settings.owner)
            settings.parts[name] = identity
    if shared_from:
        owners = "; ".join(f"{owner}'s {', '.join(parts)}" for owner, parts in shared_from.items())
        settings.notes.append(f"uses {owners} (the same architecture and weights)")
    if variants:
        settings.notes.append(f"{VARIANT} variant weights for {', '.join(variants)}")
    return components


def _pipeline(cls_name: str) -> Callable[[str, LoadSettings], Any]:
    def load(path: str, settings: LoadSettings):
        import diffusers

        cls = getattr(diffusers, cls_name)
        components = _components(cls, path, settings)
        settings.progress.phase(WEIGHTS[1], WEIGHTS[1] + 0.02, "assembling the pipeline")
        with quiet_diffusers_bars():
            pipe = cls.from_pretrained(
                path,
                **components,
                dtype=settings.dtype,
                safety_checker=None,
                requires_safety_checker=False,
                **settings.common(),
            )
        pipe.set_progress_bar_config(disable=True)
        settings.progress.phase(WEIGHTS[1] + 0.02, 0.99, f"moving to {settings.device}")
        return pipe.to(settings.device)

    load.__name__ = f"load_{cls_name}"
    return load


def load_controlnet(path: str, settings: LoadSettings):
    from diffusers import ControlNetModel

    kwargs = {k: v for k, v in settings.common().items() if k != "trust_remote_code"}
    kwargs.update(weights_kwargs(path, settings, variants=True))
    if kwargs.get("variant"):
        settings.notes.append(f"{VARIANT} variant weights")
    _weights(settings)
    model = ControlNetModel.from_pretrained(path, dtype=settings.dtype, **kwargs)
    return _place(model, settings)


# config key -> (loader, what it is, accepted transformers model_types or None for diffusers folders)
LOADERS: dict[str, tuple[Callable[[str, LoadSettings], Any], str, tuple[str, ...] | None]] = {
    "llava": (load_mllm, "LLaVA-style image-text-to-text model", ("llava", "vipllava", "llava_next")),
    "vip_llava": (load_mllm, "ViP-LLaVA image-text-to-text model", ("vipllava", "llava")),
    "clip": (load_dual_encoder, "CLIP model", ("clip",)),
    "siglip": (load_dual_encoder, "SigLIP model", ("siglip", "siglip2")),
    "blip_caption": (load_blip_caption, "BLIP captioning model", ("blip",)),
    "blip_vqa": (load_blip_vqa, "BLIP question-answering model", ("blip",)),
    "sam": (load_sam, "Segment Anything model", ("sam",)),
    "pix2pix": (_pipeline("StableDiffusionInstructPix2PixPipeline"), "instruct-pix2pix pipeline", None),
    "inpaint": (_pipeline("StableDiffusionInpaintPipeline"), "Stable Diffusion inpainting pipeline", None),
    "txt2img": (_pipeline("StableDiffusionPipeline"), "Stable Diffusion text-to-image pipeline", None),
    "controlnet": (load_controlnet, "ControlNet model", None),
}


def loader_for(name: str) -> tuple[Callable[[str, LoadSettings], Any], str, tuple[str, ...] | None]:
    """The loader for a config key; keys like ``llava_13b`` fall back on their prefix."""
    if name in LOADERS:
        return LOADERS[name]
    for key in sorted(LOADERS, key=len, reverse=True):
        if name.startswith(key):
            return LOADERS[key]
    raise KeyError(name)


def check_model_type(path: str, settings: LoadSettings, accepted: tuple[str, ...] | None, what: str) -> None:
    """Refuse a checkpoint of another architecture before loading it (transformers would load it with
    random weights and only a warning)."""
    if accepted is None:
        return
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(path, revision=settings.revision).model_type
    if model_type not in accepted:
        raise ValueError(f"it is a '{model_type}' checkpoint, expected a {what} ({', '.join(accepted)})")


def files_kind(name: str) -> str:
    """How a config key's checkpoint is laid out (:data:`chat.checkpoint_files.Kind`): ``transformers`` (one root
    folder), ``pipeline`` (``model_index.json`` + component folders) or ``diffusers_model`` (ControlNet)."""
    _, what, accepted = loader_for(name)
    if accepted is not None:
        return "transformers"
    return "pipeline" if what.endswith("pipeline") else "diffusers_model"
