"""Tiny LLaVA-1.5 and ViP-LLaVA: CLIP vision tower + projector + Llama, with the real chat templates.

Quantization friendly: every linear of the language model has in_features 64 or 128, so NF4 works
on CPU. The processor expands ``<image>`` to one token per patch (CLS dropped), exactly as the real
``llava-hf`` processors do (``num_additional_image_tokens=1``, strategy ``default``).
"""

from __future__ import annotations

from pathlib import Path

from .common import IMAGE_SIZE, PATCH_SIZE, clip_image_processor, clip_vision_kwargs, save_model, seeded

# llava-hf/llava-1.5-7b-hf's template: "USER: <image>\n{text} ASSISTANT: {answer} USER: ..."
LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}"
    "{% endfor %}"
    "{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}"
    "{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}"
    "{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# llava-hf/vip-llava-7b-hf's template: "{system}###Human: <image>\n{text}###Assistant: {answer}..."
VIP_LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'][0]['text'] }}"
    "{% elif message['role'] == 'user' %}{{ '###Human: '}}"
    "{% else %}{{ '###' + message['role'].title() + ': '}}"
    "{% endif %}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}"
    "{% endfor %}"
    "{# Render all text next #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}"
    "{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '###Assistant:' }}{% endif %}"
)

VIP_LAYERS = [-2, -3, 1]  # ViP-LLaVA concatenates several vision layers (CLS dropped)


def _text_config(tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def _processor(tokenizer, template: str):
    from transformers import LlavaProcessor

    return LlavaProcessor(
        image_processor=clip_image_processor(IMAGE_SIZE),
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=template,
    )


def _generation_config(tokenizer):
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=32,
    )


def _build(directory: Path, vip: bool) -> None:
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration
    from transformers import VipLlavaConfig, VipLlavaForConditionalGeneration

    from .text_tokenizers import IMAGE_TOKEN, llama_tokenizer

    tokenizer = llama_tokenizer()
    vision = CLIPVisionConfig(**clip_vision_kwargs(num_hidden_layers=3 if vip else 2))
    patches = (IMAGE_SIZE // PATCH_SIZE) ** 2
    common = dict(
        vision_config=vision,
        text_config=_text_config(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=patches,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    if vip:
        config = VipLlavaConfig(vision_feature_layer=list(VIP_LAYERS), **common)
        model_cls = VipLlavaForConditionalGeneration
    else:
        config = LlavaConfig(vision_feature_layer=-2, vision_feature_select_strategy="default", **common)
        model_cls = LlavaForConditionalGeneration
    with seeded():
        model = model_cls(config)
    model.generation_config = _generation_config(tokenizer)
    save_model(model, directory)
    _processor(tokenizer, VIP_LLAVA_TEMPLATE if vip else LLAVA_TEMPLATE).save_pretrained(str(directory))


def build_llava(directory: Path) -> None:
    """LlavaForConditionalGeneration + LlavaProcessor (LLaVA-1.5 chat template)."""
    _build(directory, vip=False)


def build_vip_llava(directory: Path) -> None:
    """VipLlavaForConditionalGeneration + LlavaProcessor (ViP-LLaVA chat template)."""
    _build(directory, vip=True)
