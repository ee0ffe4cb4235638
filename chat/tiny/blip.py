"""Tiny BLIP: image captioning (BlipForConditionalGeneration) and VQA (BlipForQuestionAnswering), hub-shaped.

Configs and the image processor come from Salesforce/blip-image-captioning-large and Salesforce/blip-vqa-base
(``chat/tiny/hub``): 384 px, patch 16 (576 patches + CLS), bicubic, CLIP mean/std; a BERT word-piece tokenizer
with ``[DEC]`` (starts the decoder) and ``[ENC]`` appended after the vocabulary, ``[SEP]`` ending answers.
Only depth and width are small; the weights of the two families differ (different seeds).
"""

from __future__ import annotations

from pathlib import Path

from . import fixtures
from .common import image_processor, save_model, seeded

SMALL = dict(hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=64)


def _config(repo: str, tokenizer):
    from transformers import BlipConfig

    data = fixtures.model_config(repo)
    data["vision_config"].update(SMALL)
    data["text_config"].update(
        SMALL, encoder_hidden_size=SMALL["hidden_size"], vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    data.update(projection_dim=SMALL["projection_dim"], image_text_hidden_size=SMALL["hidden_size"])
    data.pop("model_type")
    return BlipConfig(**data)


def _processor(repo: str, tokenizer):
    from transformers import BlipProcessor

    return BlipProcessor(image_processor=image_processor(repo, "BlipImageProcessorPil"), tokenizer=tokenizer)


def _generation_config(tokenizer):
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=20,
    )


def _build(directory: Path, family: str, model_cls_name: str, seed: int) -> None:
    import transformers

    from .text_tokenizers import bert_tokenizer

    repo = fixtures.REPOS[family]
    tokenizer = bert_tokenizer()
    with seeded(seed):
        model = getattr(transformers, model_cls_name)(_config(repo, tokenizer))
    model.generation_config = _generation_config(tokenizer)
    save_model(model, directory)
    _processor(repo, tokenizer).save_pretrained(str(directory))


def build_blip_caption(directory: Path) -> None:
    """BlipForConditionalGeneration + BlipProcessor; captions with or without a text prefix."""
    _build(directory, "blip_caption", "BlipForConditionalGeneration", seed=1)


def build_blip_vqa(directory: Path) -> None:
    """BlipForQuestionAnswering + BlipProcessor; ``generate(pixel_values, input_ids)`` answers."""
    _build(directory, "blip_vqa", "BlipForQuestionAnswering", seed=2)
