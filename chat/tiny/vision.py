"""Tiny dual encoders (CLIP ViT-L/14-336, SigLIP so400m) and a tiny Segment Anything (ViT-B), hub-shaped.

Configs and processors come from the real checkpoints' files (``chat/tiny/hub``): CLIP at 336 px, patch 14,
77 text positions, its legacy text ids (eos 2: the pooled token is the highest id, ``<|endoftext|>``);
SigLIP at 384 px, patch 14, 64 text positions, a SentencePiece tokenizer without attention mask; SAM at
1024 px padded, patch 16, 256x256 low-resolution masks, window 14. Only depth and width are small.
"""

from __future__ import annotations

from pathlib import Path

from . import fixtures
from .common import image_processor, save_model, seeded

CLIP = fixtures.REPOS["clip"]
SIGLIP = fixtures.REPOS["siglip"]
SAM = fixtures.REPOS["sam"]

ENCODER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)


def build_clip(directory: Path) -> None:
    """CLIPModel + CLIPProcessor (CLIPTokenizer trained locally), shaped like openai/clip-vit-large-patch14-336."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    from .text_tokenizers import clip_tokenizer

    real = fixtures.load(CLIP, "tokenizer_config.json")
    tokenizer = clip_tokenizer(model_max_length=real["model_max_length"])
    data = fixtures.model_config(CLIP)
    data["text_config"].update(ENCODER, vocab_size=len(tokenizer), projection_dim=64)
    data["vision_config"].update(ENCODER, projection_dim=64)
    data.update(projection_dim=64)
    data.pop("model_type")
    with seeded():
        model = CLIPModel(CLIPConfig(**data))
    save_model(model, directory)
    processor = CLIPProcessor(image_processor=image_processor(CLIP, "CLIPImageProcessorPil"), tokenizer=tokenizer)
    processor.save_pretrained(str(directory))


def build_siglip(directory: Path) -> None:
    """SiglipModel + SiglipProcessor (SiglipTokenizer, SentencePiece), shaped like google/siglip-so400m-patch14-384."""
    from transformers import SiglipConfig, SiglipModel, SiglipProcessor

    from .text_tokenizers import siglip_tokenizer

    tokenizer = siglip_tokenizer()
    data = fixtures.model_config(SIGLIP)
    # the hub config leaves the text ids at SiglipTextConfig's defaults (bos 49406, eos 49407: outside its
    # 32000 vocabulary, unused: SigLIP pools the last position); here they are the tokenizer's, so loading is quiet
    data["text_config"].update(ENCODER, vocab_size=len(tokenizer), bos_token_id=None,
                               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    data["vision_config"].update(ENCODER)
    data.pop("model_type")
    with seeded():
        model = SiglipModel(SiglipConfig(**data))
    save_model(model, directory)
    processor = SiglipProcessor(image_processor=image_processor(SIGLIP, "SiglipImageProcessorPil"), tokenizer=tokenizer)
    processor.save_pretrained(str(directory))


def build_sam(directory: Path) -> None:
    """SamModel + SamProcessor shaped like facebook/sam-vit-base: 1024 px inputs padded to 1024x1024, 64x64
    image embeddings, 256x256 low-resolution masks, 14x14 attention windows; 32 channels and two encoder
    layers, both windowed (ViT-B makes every third layer global: over 4096 tokens one such layer costs about
    1.5 s per click on a CPU, ten times the rest of the tiny model)."""
    from transformers import SamConfig, SamModel, SamProcessor

    channels = 32
    data = fixtures.model_config(SAM)
    data["vision_config"].update(
        hidden_size=32, output_channels=channels, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64,
        global_attn_indexes=[], num_pos_feats=channels // 2,
    )
    data["prompt_encoder_config"].update(hidden_size=channels, mask_input_channels=4)
    data["mask_decoder_config"].update(hidden_size=channels, mlp_dim=64, num_attention_heads=4, iou_head_hidden_dim=32)
    data.pop("model_type")
    with seeded():
        model = SamModel(SamConfig(**data))
    save_model(model, directory)
    SamProcessor(image_processor=image_processor(SAM, "SamImageProcessorPil")).save_pretrained(str(directory))
