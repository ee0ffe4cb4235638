"""How each model family is loaded from a checkpoint (hub id or folder).

One function per family, all of the same shape: ``load(path, settings) -> bundle``. They are called only
by :class:`chat.registry.ModelRegistry`, which owns device, dtype, quantization and memory. Transformers
models go through Auto classes; diffusers models through their pipelines. No remote code, safetensors only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class LoadSettings:
    """What the registry decided for one load."""

    device: str
    dtype: Any  # torch.dtype
    quantize: str  # none | nf4 | int8
    revision: str | None = None

    def common(self) -> dict:
        return {"revision": self.revision, "use_safetensors": True, "trust_remote_code": False}


@dataclass
class Bundle:
    """A processor and its model, loaded together."""

    processor: Any
    model: Any


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
    return model.to(settings.device).eval()


def load_mllm(path: str, settings: LoadSettings) -> Bundle:
    """LLaVA-style models (LLaVA 1.5, ViP-LLaVA, ...); the language model may be quantized."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(path, revision=settings.revision)
    quant = _quantization(settings, ["model.vision_tower", "model.multi_modal_projector", "lm_head"])
    kwargs = dict(settings.common(), dtype=settings.dtype)
    if quant is not None:
        model = AutoModelForImageTextToText.from_pretrained(
            path, quantization_config=quant, device_map={"": settings.device}, **kwargs
        ).eval()
    else:
        model = _place(AutoModelForImageTextToText.from_pretrained(path, **kwargs), settings)
    return Bundle(processor, model)


def load_dual_encoder(path: str, settings: LoadSettings) -> Bundle:
    """CLIP and SigLIP: an image tower and a text tower scored against each other."""
    from transformers import AutoModel, AutoProcessor

    processor = AutoProcessor.from_pretrained(path, revision=settings.revision)
    model = AutoModel.from_pretrained(path, dtype=settings.dtype, **settings.common())
    return Bundle(processor, _place(model, settings))


def load_blip_caption(path: str, settings: LoadSettings) -> Bundle:
    from transformers import AutoProcessor, BlipForConditionalGeneration

    processor = AutoProcessor.from_pretrained(path, revision=settings.revision)
    model = BlipForConditionalGeneration.from_pretrained(path, dtype=settings.dtype, **settings.common())
    return Bundle(processor, _place(model, settings))


def load_blip_vqa(path: str, settings: LoadSettings) -> Bundle:
    from transformers import AutoProcessor, BlipForQuestionAnswering

    processor = AutoProcessor.from_pretrained(path, revision=settings.revision)
    model = BlipForQuestionAnswering.from_pretrained(path, dtype=settings.dtype, **settings.common())
    return Bundle(processor, _place(model, settings))


def load_sam(path: str, settings: LoadSettings) -> Bundle:
    from transformers import SamModel, SamProcessor

    processor = SamProcessor.from_pretrained(path, revision=settings.revision)
    model = SamModel.from_pretrained(path, dtype=settings.dtype, **settings.common())
    return Bundle(processor, _place(model, settings))


def _pipeline(cls_name: str) -> Callable[[str, LoadSettings], Any]:
    def load(path: str, settings: LoadSettings):
        import diffusers

        cls = getattr(diffusers, cls_name)
        pipe = cls.from_pretrained(
            path,
            dtype=settings.dtype,
            safety_checker=None,
            requires_safety_checker=False,
            **settings.common(),
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(settings.device)

    load.__name__ = f"load_{cls_name}"
    return load


def load_controlnet(path: str, settings: LoadSettings):
    from diffusers import ControlNetModel

    kwargs = {k: v for k, v in settings.common().items() if k != "trust_remote_code"}
    return ControlNetModel.from_pretrained(path, dtype=settings.dtype, **kwargs).to(settings.device).eval()


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
