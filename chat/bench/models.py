"""Random-weight LLaVA checkpoints of a chosen size, built locally and saved like a real llava-hf folder.

The benchmarks load them through :class:`chat.registry.ModelRegistry` (and so through
``chat.loaders.load_mllm``), so the code path measured is the one the assistant runs. Speed depends on the
shapes, not on the weights. The tokenizer and chat template are the tiny LLaVA's (trained locally); the
processor is adapted to the vision tower (image size, patch size, one ``<image>`` token per patch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LlavaDims:
    """The shapes of a LLaVA-1.5-style model: Llama text model, CLIP vision tower, 2-layer projector."""

    hidden: int = 1024
    intermediate: int = 2816
    layers: int = 8
    heads: int = 16
    vocab: int | None = None  # None: the tokenizer's size
    vision_hidden: int = 768
    vision_intermediate: int = 3072
    vision_layers: int = 12
    vision_heads: int = 12
    image_size: int = 336
    patch_size: int = 16

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def describe(self) -> str:
        return (f"Llama {self.layers}x{self.hidden} (ffn {self.intermediate}) + CLIP {self.vision_layers}x"
                f"{self.vision_hidden} at {self.image_size} px / patch {self.patch_size} "
                f"({self.image_tokens} image tokens)")


# The CPU benchmark's model: CLIP ViT-B/16 at 336 px (441 image tokens) and a 8-layer, 1024-wide Llama;
# about 0.2 B parameters, a first turn that the image tokens dominate, seconds per turn on 2 cores.
CPU_DIMS = LlavaDims()
# --quick: seconds in total, for tests.
QUICK_DIMS = LlavaDims(hidden=128, intermediate=256, layers=2, heads=4, vision_hidden=64, vision_intermediate=128,
                       vision_layers=2, vision_heads=4, image_size=64, patch_size=8)


def llava_config(dims: LlavaDims, tokenizer):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    from chat.tiny.text_tokenizers import IMAGE_TOKEN

    text = LlamaConfig(
        vocab_size=dims.vocab or len(tokenizer), hidden_size=dims.hidden, intermediate_size=dims.intermediate,
        num_hidden_layers=dims.layers, num_attention_heads=dims.heads, num_key_value_heads=dims.heads,
        max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    vision = CLIPVisionConfig(
        hidden_size=dims.vision_hidden, intermediate_size=dims.vision_intermediate,
        num_hidden_layers=dims.vision_layers, num_attention_heads=dims.vision_heads, image_size=dims.image_size,
        patch_size=dims.patch_size, projection_dim=dims.vision_hidden, hidden_act="quick_gelu",
    )
    return LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=dims.image_tokens, projector_hidden_act="gelu", vision_feature_layer=-2,
        vision_feature_select_strategy="default", tie_word_embeddings=False,
    )


def processor_for(image_size: int, patch_size: int, tokenizer=None):
    """A LlavaProcessor with the tiny LLaVA's tokenizer and chat template, for this vision tower."""
    from transformers import LlavaProcessor

    from chat.tiny.common import clip_image_processor
    from chat.tiny.llava import LLAVA_TEMPLATE
    from chat.tiny.text_tokenizers import llama_tokenizer

    return LlavaProcessor(
        image_processor=clip_image_processor(image_size),
        tokenizer=tokenizer or llama_tokenizer(),
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=LLAVA_TEMPLATE,
    )


def save_llava(directory: str | Path, config, image_size: int, patch_size: int, *, device: str = "cpu",
               dtype=None, seed: int = 0) -> Path:
    """Build a random-weight ``LlavaForConditionalGeneration`` of ``config`` on ``device`` and save it with its
    processor into ``directory`` (safetensors), ready for ``from_pretrained``. Returns the folder."""
    import torch
    from transformers import GenerationConfig, LlavaForConditionalGeneration
    from transformers.utils import logging as hf_logging

    from chat.tiny.text_tokenizers import llama_tokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = llama_tokenizer()
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), torch.device(device):
            torch.manual_seed(seed)
            model = LlavaForConditionalGeneration._from_config(config, dtype=dtype or torch.float32)
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model.eval().save_pretrained(str(directory), safe_serialization=True)
    finally:
        hf_logging.set_verbosity(level)
    del model
    processor_for(image_size, patch_size, tokenizer).save_pretrained(str(directory))
    return directory


def build_llava(directory: str | Path, dims: LlavaDims = CPU_DIMS, *, device: str = "cpu", dtype=None) -> Path:
    """A random-weight LLaVA of ``dims`` saved into ``directory``."""
    from chat.tiny.text_tokenizers import llama_tokenizer

    config = llava_config(dims, llama_tokenizer())
    return save_llava(directory, config, dims.image_size, dims.patch_size, device=device, dtype=dtype)


def bench_config(llava_path: str | Path, *, device: str = "cpu", dtype: str = "float32", quantize: str = "none",
                 budget_gb: float = 64.0, max_new_tokens: int = 16):
    """A :class:`chat.config.Config` whose chat model is the checkpoint at ``llava_path``."""
    from chat.config import Config

    return Config.model_validate({
        "profile": "bench",
        "device": device,
        "dtype": dtype,
        "memory_budget_gb": budget_gb,
        "chat_model": "llava",
        # a LLaVA-1.5-shaped checkpoint: prompted as the default profile's (vicuna_v1, 1 image, 2048 tokens)
        "models": {"llava": {"path": str(llava_path), "quantize": quantize}},
        "generation": {"max_new_tokens": max_new_tokens, "temperature": 0.0},
    })
