"""Tiny Stable Diffusion pipelines (txt2img, instruct-pix2pix, inpaint) and a matching ControlNet.

All three pipelines share the same text encoder, tokenizer and VAE (same configs, same seeds); only
the UNet's input channels differ: 4 (txt2img), 8 (pix2pix: latents + image latents), 9 (inpaint:
latents + mask + masked-image latents). The VAE keeps the real downsampling factor 8, so a 64x64
image has 8x8 latents; the UNet's ``sample_size`` 8 makes 64x64 the default output size.
"""

from __future__ import annotations

from pathlib import Path

from .common import save_model, seeded

TEXT_HIDDEN = 32
UNET_CHANNELS = (16, 32)
NORM_GROUPS = 8
VAE_CHANNELS = (8, 16, 16, 16)  # four blocks: downsampling factor 2 ** 3 = 8
LATENT_SIZE = 8  # 64 px images
SCHEDULER_KW = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)


def _tokenizer():
    from .text_tokenizers import clip_tokenizer

    return clip_tokenizer(model_max_length=77)


def _text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=TEXT_HIDDEN,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with seeded(10):
        return CLIPTextModel(config)


def _vae():
    from diffusers import AutoencoderKL

    with seeded(11):
        return AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * len(VAE_CHANNELS),
            up_block_types=("UpDecoderBlock2D",) * len(VAE_CHANNELS),
            block_out_channels=VAE_CHANNELS,
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=NORM_GROUPS,
            sample_size=LATENT_SIZE * 8,
            scaling_factor=0.18215,
        )


def unet_kwargs(in_channels: int) -> dict:
    """The tiny UNet2DConditionModel configuration (shared by the ControlNet)."""
    return dict(
        sample_size=LATENT_SIZE,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=UNET_CHANNELS,
        layers_per_block=1,
        cross_attention_dim=TEXT_HIDDEN,
        attention_head_dim=8,
        norm_num_groups=NORM_GROUPS,
    )


def _unet(in_channels: int, seed: int):
    from diffusers import UNet2DConditionModel

    with seeded(seed):
        return UNet2DConditionModel(**unet_kwargs(in_channels))


def _save_pipeline(pipeline_cls_name: str, directory: Path, in_channels: int, scheduler, seed: int) -> None:
    import diffusers

    tokenizer = _tokenizer()
    pipeline = getattr(diffusers, pipeline_cls_name)(
        vae=_vae(),
        text_encoder=_text_encoder(tokenizer),
        tokenizer=tokenizer,
        unet=_unet(in_channels, seed),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(str(directory), safe_serialization=True)


def build_txt2img(directory: Path) -> None:
    """StableDiffusionPipeline (UNet in_channels 4, PNDM like SD 1.5)."""
    from diffusers import PNDMScheduler

    scheduler = PNDMScheduler(skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1, **SCHEDULER_KW)
    _save_pipeline("StableDiffusionPipeline", directory, 4, scheduler, seed=20)


def build_pix2pix(directory: Path) -> None:
    """StableDiffusionInstructPix2PixPipeline (UNet in_channels 8, Euler ancestral like timbrooks')."""
    from diffusers import EulerAncestralDiscreteScheduler

    scheduler = EulerAncestralDiscreteScheduler(**SCHEDULER_KW)
    _save_pipeline("StableDiffusionInstructPix2PixPipeline", directory, 8, scheduler, seed=21)


def build_inpaint(directory: Path) -> None:
    """StableDiffusionInpaintPipeline (UNet in_channels 9, DDIM)."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(clip_sample=False, set_alpha_to_one=False, steps_offset=1, **SCHEDULER_KW)
    _save_pipeline("StableDiffusionInpaintPipeline", directory, 9, scheduler, seed=22)


def build_controlnet(directory: Path) -> None:
    """ControlNetModel matching the txt2img UNet (same blocks), condition images downsampled by 8.

    The zero-initialised output convolutions get PyTorch's default random init, and the condition
    embedding variance-preserving (He) init, so that the condition image visibly changes the result
    (a real ControlNet is trained; zeros would make it a no-op).
    """
    import torch
    from diffusers import ControlNetModel

    kwargs = unet_kwargs(4)
    for key in ("sample_size", "out_channels", "up_block_types"):
        kwargs.pop(key)
    with seeded(23):
        controlnet = ControlNetModel(conditioning_embedding_out_channels=(8, 8, 16, 16), **kwargs)
        for conv in list(controlnet.controlnet_down_blocks) + [controlnet.controlnet_mid_block]:
            conv.reset_parameters()
        for module in controlnet.controlnet_cond_embedding.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    save_model(controlnet, directory)
