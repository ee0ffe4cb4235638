"""Tiny LLaVA-NeXT with the real geometry of llava-hf/llava-v1.6-mistral-7b-hf: anyres tiles of 336 px, patch 14.

Only depth and width are tiny (CLIP tower and Mistral language model of hidden 64, two layers each). The image
processor, the grid pinpoints, the feature selection, the processor's token-count fields and the chat template are
the real ones, so an image gets exactly as many placeholder tokens as with the real checkpoint (2,928 for a square
photo: a 336 px overview of 576 tokens plus a 2 x 2 grid of tiles, unpadded, with one newline token per row) and a
different number for every aspect ratio. NF4-ready: every linear of the language model has in_features 64 or 128.

Where the values come from: transformers' ``LlavaNextConfig`` defaults and docs (written from that checkpoint:
pinpoints, vision layer -2, strategy ``default``, CLIP ViT-L/14-336 tower); its ``preprocessor_config.json``
(``LlavaNextImageProcessor``: shortest edge 336, centre crop 336, bicubic, CLIP mean/std, ``do_pad``); its
``processor_config.json`` fields ``patch_size`` 14, ``vision_feature_select_strategy`` ``default`` and
``num_additional_image_tokens`` 1 (the CLS token; without it the count is one short and transformers refuses the
prompt); the chat template as openvinotoolkit/openvino.genai (src/cpp/src/tokenizer.cpp, its map of known
templates: "tiny-random-llava-next, llava-v1.6-mistral (chat_template.json)") quotes it byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from . import fixtures
from .common import save_model, seeded

TILE = 336  # CLIP ViT-L/14-336: each tile (and the overview) is 336 x 336
PATCH = 14
GRID_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]  # (height, width)

# llava-hf/llava-v1.6-mistral-7b-hf's chat_template.json, byte for byte. Mind the hub's own quirk: an assistant
# turn ends with the literal text "<\s> " (a backslash, not the "</s>" end-of-sequence token Mistral was tuned with).
LLAVA_NEXT_MISTRAL_TEMPLATE = (
    r"{% for message in messages %}"
    r"{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    r"{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    r"{# Render all images first #}"
    r"{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    r"{# Render all text next #}"
    r"{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    r"{{' [/INST]' }}"
    r"{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '<\\s> '}}"
    r"{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    r"{% endif %}{% endfor %}"
)


_CLIP = fixtures.load(fixtures.REPOS["llava"], "preprocessor_config.json")


def _image_processor():
    """``LlavaNextImageProcessor`` as the checkpoint configures it (the PIL backend: torchvision is absent)."""
    from transformers import LlavaNextImageProcessorPil

    return LlavaNextImageProcessorPil(
        size={"shortest_edge": TILE},
        crop_size={"height": TILE, "width": TILE},
        image_grid_pinpoints=GRID_PINPOINTS,
        do_center_crop=True,
        do_pad=True,
        image_mean=_CLIP["image_mean"],  # the CLIP ViT-L/14-336 tower's own normalisation
        image_std=_CLIP["image_std"],
    )


def _config(tokenizer):
    from transformers import CLIPVisionConfig, LlavaNextConfig, MistralConfig

    vision = CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        image_size=TILE, patch_size=PATCH, projection_dim=64, hidden_act="quick_gelu",
    )
    text = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=32768,
        rope_theta=1_000_000.0, sliding_window=None, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )
    return LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=GRID_PINPOINTS,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        image_seq_length=(TILE // PATCH) ** 2,
        tie_word_embeddings=False,
    )


def build_llava_next(directory: Path) -> None:
    """LlavaNextForConditionalGeneration + LlavaNextProcessor (llava-v1.6-mistral chat template)."""
    from transformers import GenerationConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor

    from .text_tokenizers import IMAGE_TOKEN, mistral_tokenizer

    tokenizer = mistral_tokenizer()
    with seeded():
        model = LlavaNextForConditionalGeneration(_config(tokenizer))
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, max_new_tokens=32,
    )
    save_model(model, directory)
    LlavaNextProcessor(
        image_processor=_image_processor(),
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token=IMAGE_TOKEN,
        chat_template=LLAVA_NEXT_MISTRAL_TEMPLATE,
    ).save_pretrained(str(directory))
