"""Configuration: pydantic models loaded from YAML.

Every model has ``extra="forbid"`` so a misspelt key is an error that names the key and the file.
Model paths may contain ``{tiny}``, replaced by the tiny-checkpoint directory (env ``MMCHAT_TINY_DIR``
overrides the YAML's ``tiny_dir``). Nothing here touches the disk except :func:`load_config`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from chat.errors import UserError, explain
from tools.diffusion import MAX_STEPS  # diffusion steps at most: the limit of tools.edit_steps too

DEFAULT_CONFIG = "configs/default.yaml"
QuantMode = Literal["none", "nf4", "int8"]
DType = Literal["auto", "float32", "float16", "bfloat16"]
AspectRatio = Literal["auto", "pad", "processor"]  # how a non-square image reaches a vision tower (tools/aspect.py)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelSpec(Strict):
    """One checkpoint: a hub id or a local folder. The last three keys matter for the chat model only."""

    path: str
    quantize: QuantMode = "none"
    dtype: DType = "auto"
    revision: str | None = None
    # pad: paste the image centred on a square of the processor's mean colour first (LLaVA-1.5's training);
    # processor: as the checkpoint's processor does it (CLIP-style ones centre-crop away the sides);
    # auto: pad when the processor would centre-crop (LLaVA-1.5, ViP-LLaVA, CLIP), else as the processor does
    image_aspect_ratio: AspectRatio = "auto"
    # How the chat model is prompted. Unset (auto, None), each follows the family of the loaded checkpoint as it was
    # fine-tuned (chat/prompt_format.py TRAININGS), so changing models.<name>.path alone is enough.
    # chat_template: auto | checkpoint (its own chat template) | vicuna_v1 (LLaVA-1.5's) | llava_v1 (ViP-LLaVA's)
    chat_template: Literal["auto", "checkpoint", "vicuna_v1", "llava_v1"] = "auto"
    max_images: int | None = Field(None, ge=1)  # images in one prompt at most
    context_tokens: int | None = Field(None, ge=256)  # prompt + answer tokens the history is trimmed to


class GenerationConfig(Strict):
    max_new_tokens: int = Field(256, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=0, le=65535)
    auth: str | None = None  # "user:pass"; env MMCHAT_AUTH also works
    queue_size: int = Field(16, ge=1)
    concurrency: int = Field(1, ge=1)
    login_max_failures: int = Field(5, ge=1)  # wrong passwords for one user name within login_window_s ...
    login_window_s: float = Field(60.0, gt=0)
    login_cooldown_s: float = Field(60.0, ge=0)  # ... refuse that name's logins for this long
    file_cache_s: int = Field(3600, ge=1)  # Gradio's copies of served files are deleted after this (delete_cache)


class LimitsConfig(Strict):
    max_upload_bytes: int = Field(25 * 2**20, ge=1)
    max_pixels: int = Field(4096 * 4096, ge=1)  # larger images get a working copy
    max_image_pixels_hard: int = Field(144_000_000, ge=1)  # refuse above (decompression bombs)
    max_images_per_session: int = Field(32, ge=1)
    max_message_chars: int = Field(8000, ge=1)
    max_labels: int = Field(100, ge=1)
    max_tool_steps: int = Field(4, ge=1, le=20)  # tool calls the chat model may make for one message
    max_import_bytes: int = Field(2**30, ge=1)  # an imported export, uncompressed (zip bombs are refused)
    max_import_files: int = Field(4096, ge=1)  # files in an imported export


class ToolsConfig(Strict):
    click_radius: int = Field(40, ge=2)  # px around a click; x (longer side / 1000) on images over 1000 px
    click_region: Literal["circle", "sam"] = "circle"  # sam: clicks select the object under them (SAM mask)
    # a phrase matches "ambiguously" when another place scores within this many logits of the best: the chat
    # then shows the places numbered and asks which one instead of acting on a guess
    find_margin: float = Field(1.0, ge=0.0, le=100.0)
    # grounded answers: a phrase is drawn when its best region scores above this (logits over neutral captions)
    grounded_min_score: float = 0.0
    prompt_templates: list[str] = ["a photo of a {}."]
    som_method: Literal["slic", "sam"] = "slic"
    som_max_regions: int = Field(24, ge=1, le=200)
    edit_steps: int = Field(20, ge=1, le=MAX_STEPS)  # the tools' own limit
    guidance_scale: float = Field(7.5, ge=0.0, le=50.0)
    image_guidance_scale: float = Field(1.5, ge=0.0, le=20.0)
    mask_dilate: int = Field(8, ge=0)
    mask_feather: int = Field(6, ge=0)
    classify_rounds: int = Field(2, ge=1, le=10)
    # BLIP captions start from this prompt, cut from the caption (BLIP's trained one; "" decodes without one)
    caption_prompt: str = Field("a picture of", max_length=200)


class CacheConfig(Strict):
    """Work kept across turns (see chat/turn_cache.py)."""

    prefix_slots: int = Field(4, ge=0, le=64)  # conversations whose KV cache is kept; 0 turns reuse off
    prefix_gb: float = Field(1.0, ge=0)  # GiB those KV caches take together at most (the oldest leave first)
    vision_entries: int = Field(64, ge=0)  # images whose projected features are kept
    embedding_entries: int = Field(256, ge=0)  # CLIP/SigLIP image and text embeddings


class OffloadConfig(Strict):
    """Where each model waits when it is not running (see chat/registry/memory.py and the README's Memory)."""

    resident: list[str] = []  # models that stay on the device once loaded (only out-of-memory recovery moves them)
    ram_gb: float = Field(0.0, ge=0)  # CPU RAM that holds models moved off the GPU; 0: unload them instead
    pinned: bool = True  # models in CPU RAM sit in page-locked memory: they go back to the GPU about twice as fast
    disk: list[str] = []  # models never kept in CPU RAM: unloaded when they leave the device, loaded from disk
    diffusers: Literal["auto", "always", "never"] = "auto"  # enable_model_cpu_offload for SD pipelines on a GPU;
    # auto: only for a pipeline that would not fit beside the resident models


class RemoteLLM(Strict):
    """An OpenAI-compatible server (vLLM, Ollama, ...) that replaces the local chat model.

    The key comes from the environment variable named by ``api_key_env`` (kept out of the YAML), or from
    ``api_key``; with neither, "EMPTY" is sent (vLLM and Ollama need none).
    """

    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str  # the name the server knows the model by
    api_key: str | None = None  # plain text in the YAML; prefer api_key_env
    api_key_env: str | None = None  # name of an environment variable holding the key
    timeout_s: float = Field(120.0, gt=0)  # per request
    max_retries: int = Field(1, ge=0, le=10)  # on connection errors, 429 and 5xx
    # pad: images go padded to square (CLIP mean colour), so a server whose processor centre-crops (vLLM serving
    # LLaVA-1.5) still sees the whole image and its markers; original: as they are (models that take any shape)
    image_aspect_ratio: Literal["pad", "original"] = "pad"

    @field_validator("api_key_env")
    @classmethod
    def _env_is_set(cls, name: str | None) -> str | None:
        if name is not None and not os.environ.get(name):
            raise PydanticCustomError("env_unset", "the environment variable {name} (the API key) is not set; "
                                      "export it before starting mmchat", {"name": name})
        return name

    @model_validator(mode="after")
    def _one_key(self) -> RemoteLLM:
        if self.api_key is not None and self.api_key_env is not None:
            raise PydanticCustomError("two_keys", "set either api_key or api_key_env, not both")
        return self

    def key(self) -> str:
        """The API key to send (read from the environment now when ``api_key_env`` is set)."""
        if self.api_key_env is None:
            return self.api_key or "EMPTY"
        value = os.environ.get(self.api_key_env)
        if not value:
            raise UserError(f"The environment variable {self.api_key_env} (remote_llm.api_key_env) is not set; "
                            "export it before starting mmchat.")
        return value


class Config(Strict):
    profile: str = "default"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: DType = "auto"
    # GiB of the device for mmchat: weights, kept caches and each call's activations (chat/registry/budget.py);
    # auto: on a GPU what is free once the CUDA context exists, less memory_margin_gb; on a CPU half the RAM
    memory_budget_gb: PositiveFloat | Literal["auto"] = "auto"
    memory_margin_gb: float = Field(0.25, ge=0)  # left free by auto: the allocator's fragmentation
    offload: OffloadConfig = OffloadConfig()
    data_dir: str = "~/.local/share/mmchat"
    tiny_dir: str | None = None  # set in the tiny profile: missing tiny checkpoints are built on use
    chat_model: str = "llava"  # key in ``models``
    models: dict[str, ModelSpec]
    generation: GenerationConfig = GenerationConfig()
    server: ServerConfig = ServerConfig()
    limits: LimitsConfig = LimitsConfig()
    tools: ToolsConfig = ToolsConfig()
    cache: CacheConfig = CacheConfig()
    remote_llm: RemoteLLM | None = None

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise UserError(f"No model named '{name}' in the config; add it under 'models:'.")
        return self.models[name]

    @property
    def data_path(self) -> Path:
        return Path(os.path.expanduser(self.data_dir))

    @property
    def tiny_path(self) -> Path | None:
        raw = os.environ.get("MMCHAT_TINY_DIR") or self.tiny_dir
        return Path(os.path.expanduser(raw)) if raw else None


def _resolve_tiny(config: Config) -> Config:
    tiny = config.tiny_path
    for spec in config.models.values():
        if "{tiny}" in spec.path:
            if tiny is None:
                raise UserError("A model path uses {tiny} but the config sets no 'tiny_dir'.")
            spec.path = spec.path.replace("{tiny}", str(tiny))
    return config


def gpu_memory() -> int | None:
    """Total bytes of the first CUDA GPU; None without one (torch is imported only where an NVIDIA driver is)."""
    if not (os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia")):
        return None
    try:
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - a broken driver is no GPU here
        return None


def profile_for_gpu(total_bytes: int | None) -> str:
    """The shipped profile for a card of ``total_bytes``: configs/gpu-8gb, -12gb or -16gb.yaml for the largest of
    those sizes it has (within 10%: an "8 GB" card may report 7.6 GiB; smaller cards get the 8 GB profile), the
    default (24 GB) for larger cards and without a GPU."""
    if total_bytes is None:
        return DEFAULT_CONFIG
    gib = total_bytes / 2**30
    if gib >= 24 * 0.9:
        return DEFAULT_CONFIG
    card = max((n for n in (12, 16) if gib >= n * 0.9), default=8)
    return str(Path(DEFAULT_CONFIG).parent / f"gpu-{card}gb.yaml")


def config_path(explicit: str | None = None) -> Path:
    """``--config``, else ``$MMCHAT_CONFIG``, else the shipped profile for this machine's GPU."""
    return Path(explicit or os.environ.get("MMCHAT_CONFIG") or profile_for_gpu(gpu_memory()))


def load_config(path: str | os.PathLike | None = None, **overrides) -> Config:
    """Read and validate a YAML config; errors name the file and the offending key."""
    p = config_path(str(path) if path else None)
    if not p.is_file():
        raise UserError(f"Config file {p} not found; pass --config PATH or set MMCHAT_CONFIG.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"Config file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"Config file {p} must be a mapping of keys to values.")
    data.update(overrides)
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        raise UserError(explain(e, prefix=f"Config file {p}: ", default="key '{}'")) from None
    if config.chat_model not in config.models:
        raise UserError(f"Config file {p}: key 'chat_model': '{config.chat_model}' is not under 'models'.")
    for key in ("resident", "disk"):
        unknown = [name for name in getattr(config.offload, key) if name not in config.models]
        if unknown:
            raise UserError(f"Config file {p}: key 'offload.{key}': '{unknown[0]}' is not under 'models'.")
    return _resolve_tiny(config)
