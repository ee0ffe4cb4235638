"""Tiny LLaVA-1.5 and ViP-LLaVA: the hub checkpoints' configs, processors and chat templates, small weights.

Everything but depth and width comes from the real checkpoints' files (``chat/tiny/hub``): the 336 px CLIP
tower with patch 14 (576 image tokens, CLS dropped), the image processor (shortest edge 336, centre crop, CLIP
mean/std), the processor fields, the chat template, the special tokens and their order (``<image>`` and
``<pad>`` after the vocabulary), ViP-LLaVA's five ``vision_feature_layers`` over a 24-layer tower.
Quantization friendly: every linear of the language model has in_features 64 or 128, so NF4 works on CPU.
"""

from __future__ import annotations

from pathlib import Path

from . import fixtures
from .common import image_processor, save_model, seeded
from .text_tokenizers import WORD_MARK

LLAVA = fixtures.REPOS["llava"]
VIP_LLAVA = fixtures.REPOS["vip_llava"]

# The hub templates: "USER: <image>\n{text} ASSISTANT: {answer} USER: ..." and
# "{system}###Human: <image>\n{text}###Assistant: {answer}...". chat.bench reuses the first.
LLAVA_TEMPLATE = fixtures.chat_template(LLAVA)
VIP_LLAVA_TEMPLATE = fixtures.chat_template(VIP_LLAVA)

TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4)
# LLaVA reads layer -2 of its tower: two layers suffice. ViP-LLaVA reads layers -2, -5, -8, -11 and 6: it keeps
# the real 24 layers (narrow and cheap) so that every index names the same layer as in the real tower.
VISION = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, projection_dim=64)
VIP_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=24, num_attention_heads=4, projection_dim=32)


def padded_vocab(tokenizer, multiple: int = 64) -> int:
    """The embedding rows: the tokenizer's size rounded up to ``multiple`` (32002 -> 32064 in the real one)."""
    return -(-len(tokenizer) // multiple) * multiple


def _config(repo: str, tokenizer):
    """The hub config with tiny text and vision widths and the local tokenizer's ids."""
    from transformers import AutoConfig

    data = fixtures.model_config(repo)
    data["text_config"].update(TEXT, vocab_size=padded_vocab(tokenizer), bos_token_id=tokenizer.bos_token_id,
                               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    data["vision_config"].update(VIP_VISION if repo == VIP_LLAVA else VISION)
    data["image_token_index"] = tokenizer.convert_tokens_to_ids(tokenizer.image_token)
    data["pad_token_id"] = tokenizer.pad_token_id
    model_type = data.pop("model_type")
    return AutoConfig.for_model(model_type, **data)


def _processor(repo: str, tokenizer):
    from transformers import LlavaProcessor

    fields = fixtures.load(repo, "processor_config.json")
    return LlavaProcessor(
        image_processor=image_processor(repo, "CLIPImageProcessorPil"),
        tokenizer=tokenizer,
        patch_size=fields["patch_size"],
        vision_feature_select_strategy=fields["vision_feature_select_strategy"],
        num_additional_image_tokens=fields["num_additional_image_tokens"],
        image_token=fields["image_token"],
        chat_template=fixtures.chat_template(repo),
    )


def _generation_config(tokenizer):
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=32,
    )


def _speak_in_words(model, tokenizer) -> None:
    """Zero the output rows of every token that does not start a word (byte pieces, word continuations, the
    special tokens but ``</s>``, the rows that only pad the vocabulary): their logit is 0, below the largest
    random logit, so the random model's greedy gibberish is whole words separated by spaces and streams in
    several chunks, as a real model's answer does (a trained model never answers in byte pieces or ``<pad>``)."""
    words = {i for token, i in tokenizer.get_vocab().items() if token.startswith(WORD_MARK)}
    quiet = [i for i in range(model.config.text_config.vocab_size) if i not in words and i != tokenizer.eos_token_id]
    model.get_output_embeddings().weight[quiet] = 0


def _build(directory: Path, repo: str) -> None:
    from transformers import AutoModelForImageTextToText

    from .text_tokenizers import llama_tokenizer

    tokenizer = llama_tokenizer()
    config = _config(repo, tokenizer)
    with seeded():
        model = AutoModelForImageTextToText.from_config(config)
        _speak_in_words(model, tokenizer)
    model.generation_config = _generation_config(tokenizer)
    save_model(model, directory)
    _processor(repo, tokenizer).save_pretrained(str(directory))


def build_llava(directory: Path) -> None:
    """LlavaForConditionalGeneration + LlavaProcessor, shaped like llava-hf/llava-1.5-7b-hf."""
    _build(directory, LLAVA)


def build_vip_llava(directory: Path) -> None:
    """VipLlavaForConditionalGeneration + LlavaProcessor, shaped like llava-hf/vip-llava-7b-hf."""
    _build(directory, VIP_LLAVA)
