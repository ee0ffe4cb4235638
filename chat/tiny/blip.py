"""Tiny BLIP: image captioning (BlipForConditionalGeneration) and VQA (BlipForQuestionAnswering).

Both share one BERT word-piece tokenizer (``[DEC]`` starts the decoder, ``[SEP]`` ends it, like
Salesforce/blip-*) and one 32 px ViT; the weights of the two families differ (different seeds).
"""

from __future__ import annotations

from pathlib import Path

from .common import CLIP_MEAN, CLIP_STD, IMAGE_SIZE, PATCH_SIZE, save_model, seeded


def _config(tokenizer):
    from transformers import BlipConfig, BlipTextConfig, BlipVisionConfig

    hidden = 64
    vision = BlipVisionConfig(
        hidden_size=hidden,
        intermediate_size=128,
        projection_dim=hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )
    text = BlipTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        encoder_hidden_size=hidden,
        intermediate_size=128,
        projection_dim=hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return BlipConfig(
        text_config=text, vision_config=vision, projection_dim=hidden, image_text_hidden_size=hidden
    )


def _processor(tokenizer):
    from transformers import BlipImageProcessorPil, BlipProcessor

    image_processor = BlipImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=CLIP_MEAN, image_std=CLIP_STD
    )
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _generation_config(tokenizer):
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=20,
    )


def _build(directory: Path, model_cls_name: str, seed: int) -> None:
    import transformers

    from .text_tokenizers import bert_tokenizer

    tokenizer = bert_tokenizer()
    with seeded(seed):
        model = getattr(transformers, model_cls_name)(_config(tokenizer))
    model.generation_config = _generation_config(tokenizer)
    save_model(model, directory)
    _processor(tokenizer).save_pretrained(str(directory))


def build_blip_caption(directory: Path) -> None:
    """BlipForConditionalGeneration + BlipProcessor; captions with or without a text prefix."""
    _build(directory, "BlipForConditionalGeneration", seed=1)


def build_blip_vqa(directory: Path) -> None:
    """BlipForQuestionAnswering + BlipProcessor; ``generate(pixel_values, input_ids)`` answers."""
    _build(directory, "BlipForQuestionAnswering", seed=2)
