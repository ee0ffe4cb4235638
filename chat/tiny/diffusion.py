"""Tiny Stable Diffusion pipelines (txt2img, instruct-pix2pix, inpaint) and a matching ControlNet, hub-shaped.

Each pipeline is its real repository's pipeline class, scheduler (class and config as the hub ships them),
UNet input channels (4 txt2img, 8 pix2pix: latents + image latents, 9 inpaint: latents + mask + masked-image
latents) and geometry (``chat/tiny/hub``): UNet ``sample_size`` 64 and a VAE with four blocks (downsampling
factor 8), so the native size is 512 px, and a 77-token CLIP text encoder. Only depth and width are small;
cross-attention sits at the UNet's lower level only and the VAE is 4-8 channels wide without its mid-block
attention, so 512 px stays cheap on a CPU. All three pipelines share the same text encoder, tokenizer and
VAE (same configs, same seeds).
"""

from __future__ import annotations

from pathlib import Path

from . import fixtures
from .common import save_model, seeded

TXT2IMG = fixtures.REPOS["txt2img"]
TEXT_HIDDEN = 32
NORM_GROUPS = 8
UNET = dict(
    block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=TEXT_HIDDEN, attention_head_dim=2,
    norm_num_groups=NORM_GROUPS, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
)


def _tokenizer(repo: str):
    from .text_tokenizers import clip_tokenizer

    real = fixtures.load(repo, "tokenizer/tokenizer_config.json")
    return clip_tokenizer(model_max_length=real["model_max_length"])


def _text_encoder(repo: str, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    data = fixtures.model_config(repo, "text_encoder/config.json")
    data.update(vocab_size=len(tokenizer), hidden_size=TEXT_HIDDEN, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, projection_dim=TEXT_HIDDEN)
    for key in ("architectures", "model_type"):
        data.pop(key, None)
    with seeded(10):
        return CLIPTextModel(CLIPTextConfig(**data))


def _diffusers_config(repo: str, name: str, **tiny) -> dict:
    data = {k: v for k, v in fixtures.load(repo, name).items() if not k.startswith("_")}
    data.update(tiny)
    return data


def _vae(repo: str):
    from diffusers import AutoencoderKL

    config = _diffusers_config(repo, "vae/config.json", block_out_channels=(4, 8, 8, 8), layers_per_block=1,
                               norm_num_groups=4, mid_block_add_attention=False)
    with seeded(11):
        return AutoencoderKL(**config)


def unet_config(repo: str) -> dict:
    """The repository's UNet2DConditionModel config with tiny widths (the ControlNet shares its down path)."""
    return _diffusers_config(repo, "unet/config.json", **UNET)


def _scheduler(repo: str):
    import diffusers

    name = fixtures.load(repo, "model_index.json")["scheduler"][1]
    return getattr(diffusers, name).from_config(fixtures.load(repo, "scheduler/scheduler_config.json"))


def _save_pipeline(directory: Path, family: str, seed: int) -> None:
    import diffusers
    from diffusers import UNet2DConditionModel

    repo = fixtures.REPOS[family]
    tokenizer = _tokenizer(repo)
    with seeded(seed):
        unet = UNet2DConditionModel(**unet_config(repo))
    pipeline_cls = getattr(diffusers, fixtures.load(repo, "model_index.json")["_class_name"])
    pipeline = pipeline_cls(
        vae=_vae(repo),
        text_encoder=_text_encoder(repo, tokenizer),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler(repo),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(str(directory), safe_serialization=True)


def build_txt2img(directory: Path) -> None:
    """StableDiffusionPipeline shaped like stable-diffusion-v1-5 (UNet in_channels 4, PNDM)."""
    _save_pipeline(directory, "txt2img", seed=20)


def build_pix2pix(directory: Path) -> None:
    """StableDiffusionInstructPix2PixPipeline shaped like timbrooks/instruct-pix2pix (in_channels 8, Euler a)."""
    _save_pipeline(directory, "pix2pix", seed=21)


def build_inpaint(directory: Path) -> None:
    """StableDiffusionInpaintPipeline shaped like stable-diffusion-inpainting (in_channels 9, DDIM)."""
    _save_pipeline(directory, "inpaint", seed=22)


def build_controlnet(directory: Path) -> None:
    """ControlNetModel shaped like lllyasviel/sd-controlnet-scribble, matching the tiny txt2img UNet (same down
    blocks); four conditioning-embedding blocks like the real one, so condition images are downsampled by 8.

    The zero-initialised output convolutions get PyTorch's default random init, and the condition
    embedding variance-preserving (He) init, so that the condition image visibly changes the result
    (a real ControlNet is trained; zeros would make it a no-op).
    """
    import torch
    from diffusers import ControlNetModel

    real = {k: v for k, v in fixtures.load(fixtures.REPOS["controlnet"]).items() if not k.startswith("_")}
    down = unet_config(TXT2IMG)
    tiny = {key: down[key] for key in ("block_out_channels", "layers_per_block", "cross_attention_dim",
                                       "attention_head_dim", "norm_num_groups", "down_block_types")}
    with seeded(23):
        controlnet = ControlNetModel(**{**real, **tiny, "conditioning_embedding_out_channels": (4, 8, 8, 16)})
        for conv in list(controlnet.controlnet_down_blocks) + [controlnet.controlnet_mid_block]:
            conv.reset_parameters()
        for module in controlnet.controlnet_cond_embedding.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    save_model(controlnet, directory)
