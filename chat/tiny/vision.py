"""Tiny dual encoders (CLIP, SigLIP) and a tiny Segment Anything model."""

from __future__ import annotations

from pathlib import Path

from .common import IMAGE_SIZE, PATCH_SIZE, clip_image_processor, clip_vision_kwargs, save_model, seeded

SIGLIP_MAX_LENGTH = 64  # SigLIP pools the last token: texts are padded to exactly this length
SAM_IMAGE_SIZE = 64
SAM_PATCH_SIZE = 8


def build_clip(directory: Path) -> None:
    """CLIPModel + CLIPProcessor (CLIPTokenizer trained locally); projection_dim 64, 32 px images."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from .text_tokenizers import clip_tokenizer

    tokenizer = clip_tokenizer()
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=64,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = CLIPConfig(
        text_config=text, vision_config=CLIPVisionConfig(**clip_vision_kwargs()), projection_dim=64
    )
    with seeded():
        model = CLIPModel(config)
    save_model(model, directory)
    CLIPProcessor(image_processor=clip_image_processor(IMAGE_SIZE), tokenizer=tokenizer).save_pretrained(
        str(directory)
    )


def build_siglip(directory: Path) -> None:
    """SiglipModel + SiglipProcessor; texts pad to ``max_length`` 64 (the real checkpoints' length)."""
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor
    from transformers import SiglipTextConfig, SiglipVisionConfig

    from .text_tokenizers import siglip_tokenizer

    tokenizer = siglip_tokenizer(max_length=SIGLIP_MAX_LENGTH)
    tiny = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    text = SiglipTextConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=SIGLIP_MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **tiny,
    )
    vision = SiglipVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, **tiny)
    with seeded():
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    save_model(model, directory)
    image_processor = SiglipImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(directory))


def build_sam(directory: Path) -> None:
    """SamModel + SamProcessor: 64 px inputs, 8x8 image embeddings, 32x32 low-resolution masks."""
    from transformers import SamConfig, SamImageProcessorPil, SamMaskDecoderConfig, SamModel
    from transformers import SamProcessor, SamPromptEncoderConfig, SamVisionConfig

    channels = 32
    vision = SamVisionConfig(
        hidden_size=64,
        output_channels=channels,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=SAM_IMAGE_SIZE,
        patch_size=SAM_PATCH_SIZE,
        window_size=4,
        global_attn_indexes=[1],
        mlp_dim=128,
        num_pos_feats=channels // 2,
    )
    prompt = SamPromptEncoderConfig(
        hidden_size=channels, image_size=SAM_IMAGE_SIZE, patch_size=SAM_PATCH_SIZE, mask_input_channels=4
    )
    decoder = SamMaskDecoderConfig(
        hidden_size=channels, mlp_dim=64, num_attention_heads=4, iou_head_hidden_dim=32
    )
    config = SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    with seeded():
        model = SamModel(config)
    save_model(model, directory)
    low_res = SAM_IMAGE_SIZE // SAM_PATCH_SIZE * 4
    image_processor = SamImageProcessorPil(
        size={"longest_edge": SAM_IMAGE_SIZE},
        pad_size={"height": SAM_IMAGE_SIZE, "width": SAM_IMAGE_SIZE},
        mask_size={"longest_edge": low_res},
        mask_pad_size={"height": low_res, "width": low_res},
    )
    SamProcessor(image_processor=image_processor).save_pretrained(str(directory))
