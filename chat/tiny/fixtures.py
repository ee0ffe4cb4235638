"""The real checkpoints' small files (configs, processor settings, chat templates), shipped in ``chat/tiny/hub``.

``hub/<org>--<repo>/`` holds the non-weight files of each checkpoint named in ``configs/default.yaml`` as the
Hugging Face Hub ships them (``hub/SOURCES.md`` says where each value comes from and which are unverified).
The tiny builders read them, so a tiny checkpoint has the real geometry, processor settings, chat template and
special tokens, with only its depth and width made small.
"""

from __future__ import annotations

import json
from pathlib import Path

HUB = Path(__file__).resolve().parent / "hub"

# tiny family -> the real checkpoint it stands for (configs/default.yaml)
REPOS: dict[str, str] = {
    "llava": "llava-hf/llava-1.5-7b-hf",
    "vip_llava": "llava-hf/vip-llava-7b-hf",
    "clip": "openai/clip-vit-large-patch14-336",
    "siglip": "google/siglip-so400m-patch14-384",
    "blip_caption": "Salesforce/blip-image-captioning-large",
    "blip_vqa": "Salesforce/blip-vqa-base",
    "sam": "facebook/sam-vit-base",
    "pix2pix": "timbrooks/instruct-pix2pix",
    "inpaint": "stable-diffusion-v1-5/stable-diffusion-inpainting",
    "txt2img": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "controlnet": "lllyasviel/sd-controlnet-scribble",
}

# keys that old hub configs carry and transformers 5 no longer uses; dropped before building a tiny config
LEGACY_CONFIG_KEYS = ("ignore_index", "vocab_size", "torch_dtype", "transformers_version", "_name_or_path")


def folder(repo: str) -> Path:
    """The fixture folder of ``repo`` (``org/name``)."""
    path = HUB / repo.replace("/", "--")
    if not path.is_dir():
        raise KeyError(f"no hub fixture for {repo!r}")
    return path


def text(repo: str, name: str) -> str:
    """The text of the file ``name`` (a path inside the repository) of ``repo``'s fixture."""
    return (folder(repo) / name).read_text(encoding="utf-8")


def load(repo: str, name: str = "config.json") -> dict:
    """A JSON file of ``repo``'s fixture."""
    return json.loads(text(repo, name))


def chat_template(repo: str) -> str:
    """The chat template string from ``repo``'s ``chat_template.json``."""
    return load(repo, "chat_template.json")["chat_template"]


def model_config(repo: str, name: str = "config.json") -> dict:
    """``repo``'s model config as a dict without the legacy keys (see ``LEGACY_CONFIG_KEYS``), sub-configs too."""
    def clean(data: dict) -> dict:
        return {
            key: clean(value) if key.endswith("_config") and isinstance(value, dict) else value
            for key, value in data.items()
            if key not in LEGACY_CONFIG_KEYS
        }

    return clean(load(repo, name))
