"""Full-size architectures of the default profile, written in code (nothing is downloaded).

Each config key of ``configs/default.yaml`` maps to the models its loader builds. The configs copy the
published ``config.json`` of each checkpoint (only the fields that change parameter shapes matter):

| key | checkpoint | built here as |
|---|---|---|
| llava | llava-hf/llava-1.5-7b-hf | LlavaForConditionalGeneration: CLIP ViT-L/14-336 + 2-layer MLP + Llama-2-7B (vocab 32064) |
| vip_llava | llava-hf/vip-llava-7b-hf | VipLlavaForConditionalGeneration: same towers, 5 vision layers concatenated |
| clip | openai/clip-vit-large-patch14-336 | CLIPModel ViT-L/14 at 336 px |
| siglip | google/siglip-so400m-patch14-384 | SiglipModel so400m at 384 px |
| blip_caption | Salesforce/blip-image-captioning-large | BlipForConditionalGeneration, ViT-L vision |
| blip_vqa | Salesforce/blip-vqa-base | BlipForQuestionAnswering, ViT-B vision |
| sam | facebook/sam-vit-base | SamModel ViT-B |
| pix2pix / inpaint / txt2img | SD 1.5 derivatives | UNet (in_channels 8 / 9 / 4) + VAE + CLIP ViT-L/14 text encoder |
| controlnet | lllyasviel/sd-controlnet-scribble | ControlNetModel (SD 1.5) |

Models are built on the meta device (``accelerate.init_empty_weights``): shapes without memory, in well
under a second each. :func:`build` returns ``{component name: module}`` for one key.
"""

from __future__ import annotations

from typing import Callable

LLAMA2_7B = dict(
    vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5,
    pad_token_id=0, tie_word_embeddings=False,
)
CLIP_L14_336_VISION = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
    image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu",
)
CLIP_L14_TEXT = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu",
)
SD15_BLOCKS = dict(
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768, attention_head_dim=8,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
)
LLAVA_IMAGE_TOKEN = 32000
VIP_LAYERS = [-2, -5, -8, -11, 6]

# llava-1.5: which modules stay unquantized under NF4 (same list as chat/loaders.load_mllm)
LLAVA_SKIP = ("model.vision_tower", "model.multi_modal_projector", "lm_head")


def llava_7b_config(vip: bool = False, **text_overrides):
    """The config of llava-hf/llava-1.5-7b-hf (or vip-llava-7b-hf), built in code."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, VipLlavaConfig

    text = LlamaConfig(**{**LLAMA2_7B, **text_overrides})
    vision = CLIPVisionConfig(**CLIP_L14_336_VISION)
    common = dict(
        vision_config=vision, text_config=text, image_token_index=LLAVA_IMAGE_TOKEN,
        projector_hidden_act="gelu", image_seq_length=576, tie_word_embeddings=False,
    )
    if vip:
        return VipLlavaConfig(vision_feature_layers=list(VIP_LAYERS), **common)
    return LlavaConfig(vision_feature_layer=-2, vision_feature_select_strategy="default", **common)


def _llava(vip: bool = False):
    from transformers import LlavaForConditionalGeneration, VipLlavaForConditionalGeneration

    cls = VipLlavaForConditionalGeneration if vip else LlavaForConditionalGeneration
    return {"model": cls(llava_7b_config(vip))}


def _clip():
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    config = CLIPConfig(
        text_config=CLIPTextConfig(**CLIP_L14_TEXT), vision_config=CLIPVisionConfig(**CLIP_L14_336_VISION),
        projection_dim=768,
    )
    return {"model": CLIPModel(config)}


def _siglip():
    from transformers import SiglipConfig, SiglipModel, SiglipTextConfig, SiglipVisionConfig

    shape = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16)
    config = SiglipConfig(
        text_config=SiglipTextConfig(vocab_size=32000, max_position_embeddings=64, projection_size=1152, **shape),
        vision_config=SiglipVisionConfig(image_size=384, patch_size=14, **shape),
    )
    return {"model": SiglipModel(config)}


def _blip(large: bool, vqa: bool):
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipForQuestionAnswering
    from transformers import BlipTextConfig, BlipVisionConfig

    vision_hidden = 1024 if large else 768
    vision = BlipVisionConfig(
        hidden_size=vision_hidden, intermediate_size=4 * vision_hidden, num_hidden_layers=24 if large else 12,
        num_attention_heads=16 if large else 12, image_size=384, patch_size=16,
    )
    text = BlipTextConfig(vocab_size=30524, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                          num_attention_heads=12, encoder_hidden_size=vision_hidden)
    config = BlipConfig(text_config=text, vision_config=vision, projection_dim=512, image_text_hidden_size=256)
    cls = BlipForQuestionAnswering if vqa else BlipForConditionalGeneration
    return {"model": cls(config)}


def _sam():
    from transformers import SamConfig, SamModel

    return {"model": SamModel(SamConfig())}  # the defaults are sam-vit-base's


def unet(in_channels: int = 4):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=64, in_channels=in_channels, out_channels=4,
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, **SD15_BLOCKS,
    )


def vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=512, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )


def text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**CLIP_L14_TEXT))


def _pipeline(in_channels: int):
    return {"unet": unet(in_channels), "vae": vae(), "text_encoder": text_encoder()}


def _controlnet():
    from diffusers import ControlNetModel

    return {"controlnet": ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(16, 32, 96, 256),
                                          **SD15_BLOCKS)}


# config key -> (builder, checkpoint it mirrors)
ARCHITECTURES: dict[str, tuple[Callable[[], dict], str]] = {
    "llava": (lambda: _llava(False), "llava-hf/llava-1.5-7b-hf"),
    "vip_llava": (lambda: _llava(True), "llava-hf/vip-llava-7b-hf"),
    "clip": (_clip, "openai/clip-vit-large-patch14-336"),
    "siglip": (_siglip, "google/siglip-so400m-patch14-384"),
    "blip_caption": (lambda: _blip(large=True, vqa=False), "Salesforce/blip-image-captioning-large"),
    "blip_vqa": (lambda: _blip(large=False, vqa=True), "Salesforce/blip-vqa-base"),
    "sam": (_sam, "facebook/sam-vit-base"),
    "pix2pix": (lambda: _pipeline(8), "timbrooks/instruct-pix2pix"),
    "inpaint": (lambda: _pipeline(9), "stable-diffusion-v1-5/stable-diffusion-inpainting"),
    "txt2img": (lambda: _pipeline(4), "stable-diffusion-v1-5/stable-diffusion-v1-5"),
    "controlnet": (_controlnet, "lllyasviel/sd-controlnet-scribble"),
}


def family(key: str) -> str:
    """The architecture a config key stands for; keys like ``llava_13b`` fall back on their prefix (as in the
    registry). KeyError when there is none."""
    if key in ARCHITECTURES:
        return key
    for name in sorted(ARCHITECTURES, key=len, reverse=True):
        if key.startswith(name):
            return name
    raise KeyError(key)


def build(key: str) -> dict:
    """``{component: module}`` of one config key, on the meta device (no memory, no download)."""
    from accelerate import init_empty_weights

    builder, _ = ARCHITECTURES[family(key)]
    with _quiet(), init_empty_weights(include_buffers=True):
        return builder()


class _quiet:
    """No config/generation-config chatter from transformers while building on meta."""

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self._level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(self._level)
        return False
