"""The device memory of each tool's call beyond its weights, traced on the full-size architectures (meta device).

Every model of :mod:`chat.bench.architectures` runs the call a tool makes, on meta tensors (shapes without
memory, a fraction of a second each). :class:`PeakTracker` sees every tensor each operation creates, as the CUDA
caching allocator would hand it out (rounded up to 512 bytes), and frees it when the last reference goes: its
peak is what ``torch.cuda.max_memory_allocated`` would add over the weights. Attention runs as it does on a
GPU in float16, through fused kernels (flash / memory-efficient) that never hold the L x L scores: the output plus
a float32 log-sum-exp per query. SAM's vision encoder writes its attention by hand (relative positions): its
scores are counted as they are.

The calls, at the sizes the tools use (``side`` is the SD working size: 512 for edits and by default for
``generate``, whose ``--size`` goes up to 1024):

| key | phase | what runs |
| --- | --- | --- |
| llava, vip_llava | prefill | one image through the vision tower and projector, then the language model over the trained context (2048 tokens), its KV cache included |
| clip, siglip | images, texts | 16 images (the scoring batch) at 336 / 384 px; 16 prompts of 77 / 64 tokens |
| blip_caption, blip_vqa | generate | the image at 384 px, the text decoder over 40 tokens (question: 32 tokens) |
| sam | encode | the image at 1024 px and 64 point prompts (a click batch), 3 masks each |
| pix2pix | text, encode, denoise, decode | prompt + 2 unconditional (batch 3); the image to latents; the UNet on 3 x 8 channels; the latents to pixels |
| inpaint | text, encode, denoise, decode | batch 2; the masked image to latents; the UNet on 2 x 9 channels; decode |
| txt2img | text, denoise, decode | batch 2; the UNet on 2 x 4 channels; decode |
| controlnet | denoise | the ControlNet on 2 latents + the scribble at full size, then txt2img's UNet with its residuals |

Each phase names the components on the device while it runs (under diffusers' model CPU offload only those are).
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from dataclasses import dataclass

GIB = 2**30
BLOCK = 512  # the CUDA caching allocator's rounding
SCORING_BATCH = 16  # tools/scoring/encoders.py
CLICK_POINTS = 64  # tools/regions.py sam_masks(batch=64)
CAPTION_TOKENS = 40
QUESTION_TOKENS = 32
TRAINED_CONTEXT = 2048  # LLaVA-1.5 and ViP-LLaVA (chat/prompt_format.py TRAININGS)


@dataclass(frozen=True)
class Phase:
    """One step of a call: the components it needs on the device and the bytes it adds over their weights."""

    name: str
    components: tuple[str, ...]
    bytes: int


class PeakTracker:
    """The live and peak bytes of the tensors created inside it (a ``TorchDispatchMode``); the tensors that exist
    when it starts (the weights) are not counted."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.weak import WeakIdKeyDictionary

        tracker = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker._see(out)
                return out

        self.live = self.peak = 0
        self._seen = WeakIdKeyDictionary()
        self._mode = _Mode()

    def _see(self, out) -> None:
        import torch
        from torch.utils._pytree import tree_flatten

        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            if storage in self._seen:
                continue  # a view of a tensor already counted
            size = -(-storage.nbytes() // BLOCK) * BLOCK
            self._seen[storage] = size
            self.live += size
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, size)

    def _free(self, size: int) -> None:
        self.live -= size

    def __enter__(self):
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)


def _fused_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                     enable_gqa=False):
    """What flash / memory-efficient attention allocates: the output and a float32 log-sum-exp per query."""
    import torch

    torch.empty(query.shape[:-1], dtype=torch.float32, device=query.device)
    return torch.empty((*query.shape[:-1], value.shape[-1]), dtype=query.dtype, device=query.device)


@contextmanager
def _gpu_attention():
    import torch.nn.functional as F

    real = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = _fused_attention
    try:
        yield
    finally:
        F.scaled_dot_product_attention = real


def traced(fn) -> int:
    """Peak bytes of the tensors ``fn`` creates (on meta tensors, in inference mode)."""
    import torch

    with _gpu_attention(), torch.inference_mode(), PeakTracker() as tracker:
        fn()
    return tracker.peak


def _meta(*shape, dtype=None):
    import torch

    return torch.empty(*shape, dtype=dtype or torch.float16, device="meta")


def _ids(*shape):
    import torch

    return torch.zeros(*shape, dtype=torch.long, device="meta")


# ------------------------------------------------------------------------------------------------
# One function per family: its phases
# ------------------------------------------------------------------------------------------------
def _llava(models, context: int, dtype) -> list[Phase]:
    model = models["model"]
    text = model.config.text_config
    size = model.config.vision_config.image_size

    def prefill():
        features = model.model.get_image_features(pixel_values=_meta(1, 3, size, size, dtype=dtype))
        embeds = _meta(1, context, text.hidden_size, dtype=dtype)
        out = model.model.language_model(inputs_embeds=embeds, use_cache=True)
        model.lm_head(out.last_hidden_state[:, -1:])
        del features

    return [Phase("prefill", ("model",), traced(prefill))]


def _dual(models, text_tokens: int, dtype) -> list[Phase]:
    model = models["model"]
    size = model.config.vision_config.image_size
    images = traced(lambda: model.get_image_features(pixel_values=_meta(SCORING_BATCH, 3, size, size, dtype=dtype)))
    texts = traced(lambda: model.get_text_features(input_ids=_ids(SCORING_BATCH, text_tokens)))
    return [Phase("images", ("model",), images), Phase("texts", ("model",), texts)]


def _blip(models, vqa: bool, dtype) -> list[Phase]:
    model = models["model"]
    size = model.config.vision_config.image_size

    def generate():
        image = model.vision_model(_meta(1, 3, size, size, dtype=dtype)).last_hidden_state
        if vqa:
            question = model.text_encoder(input_ids=_ids(1, QUESTION_TOKENS), encoder_hidden_states=image)
            model.text_decoder(input_ids=_ids(1, CAPTION_TOKENS), encoder_hidden_states=question.last_hidden_state)
        else:
            model.text_decoder(input_ids=_ids(1, CAPTION_TOKENS), encoder_hidden_states=image)

    return [Phase("generate", ("model",), traced(generate))]


def _sam(models, dtype) -> list[Phase]:
    model = models["model"]
    size = model.config.vision_config.image_size
    encode = traced(lambda: model(pixel_values=_meta(1, 3, size, size, dtype=dtype),
                                  input_points=_meta(1, CLICK_POINTS, 1, 2, dtype=dtype),
                                  input_labels=_ids(1, CLICK_POINTS, 1)))
    return [Phase("encode", ("model",), encode)]


def _text_phase(models, batch: int) -> Phase:
    encoder = models["text_encoder"]
    tokens = encoder.config.max_position_embeddings
    return Phase("text", ("text_encoder",), traced(lambda: encoder(_ids(batch, tokens))))


def _unet_call(unet, batch: int, channels: int, latent: int, text_dim: int, dtype, **extra):
    return unet(_meta(batch, channels, latent, latent, dtype=dtype), _meta(batch, dtype=dtype),
                encoder_hidden_states=_meta(batch, 77, text_dim, dtype=dtype), **extra)


def _pipeline(models, channels: int, batch: int, encodes: bool, side: int, dtype) -> list[Phase]:
    unet, vae = models["unet"], models["vae"]
    latent = side // 8
    text_dim = unet.config.cross_attention_dim
    phases = [_text_phase(models, batch)]
    if encodes:
        phases.append(Phase("encode", ("vae",), traced(
            lambda: vae.encode(_meta(1, 3, side, side, dtype=dtype)).latent_dist.mode())))
    phases.append(Phase("denoise", ("unet",), traced(
        lambda: _unet_call(unet, batch, channels, latent, text_dim, dtype))))
    phases.append(Phase("decode", ("vae",), traced(lambda: vae.decode(_meta(1, 4, latent, latent, dtype=dtype)))))
    return phases


def _controlnet(models, unet, side: int, dtype) -> list[Phase]:
    controlnet = models["controlnet"]
    latent = side // 8
    text_dim = unet.config.cross_attention_dim

    def denoise():
        down, mid = controlnet(_meta(2, 4, latent, latent, dtype=dtype), _meta(2, dtype=dtype),
                               encoder_hidden_states=_meta(2, 77, text_dim, dtype=dtype),
                               controlnet_cond=_meta(2, 3, side, side, dtype=dtype), return_dict=False)
        _unet_call(unet, 2, 4, latent, text_dim, dtype, down_block_additional_residuals=down,
                   mid_block_additional_residual=mid)

    return [Phase("denoise", ("controlnet", "txt2img.unet"), traced(denoise))]


def phases(key: str, side: int = 512, context: int = TRAINED_CONTEXT, dtype_name: str = "float16") -> list[Phase]:
    """The phases of the call a tool makes with config key ``key`` (its family's full-size architecture)."""
    import torch

    from chat.bench.architectures import build, family

    dtype = getattr(torch, dtype_name)
    arch = family(key)
    models = {name: module.to(dtype) for name, module in build(key).items()}
    if arch in ("llava", "vip_llava"):
        return _llava(models, context, dtype)
    if arch in ("clip", "siglip"):
        return _dual(models, 77 if arch == "clip" else 64, dtype)
    if arch in ("blip_caption", "blip_vqa"):
        return _blip(models, arch == "blip_vqa", dtype)
    if arch == "sam":
        return _sam(models, dtype)
    if arch == "controlnet":
        return _controlnet(models, build("txt2img")["unet"].to(dtype), side, dtype)
    channels, batch, encodes = {"pix2pix": (8, 3, True), "inpaint": (9, 2, True), "txt2img": (4, 2, False)}[arch]
    return _pipeline(models, channels, batch, encodes, side, dtype)


def kv_bytes_per_token(key: str, dtype_bytes: int = 2) -> int:
    """Bytes of one token's keys and values in the language model of a LLaVA-style key."""
    from chat.bench.architectures import build

    text = build(key)["model"].config.text_config
    head = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2 * text.num_hidden_layers * text.num_key_value_heads * head * dtype_bytes


def largest_quantized_layer(key: str, dtype_bytes: int = 2) -> int:
    """Bytes of the largest linear weight bitsandbytes dequantizes for a prefill (at the compute dtype)."""
    from chat.bench.architectures import build
    from chat.bench.memory import quantized_linear_weights, _skip

    weights = quantized_linear_weights(build(key)["model"], _skip(key))
    return max((numel for numel, _ in weights.values()), default=0) * dtype_bytes
