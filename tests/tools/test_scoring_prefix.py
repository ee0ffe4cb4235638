"""New labels on an image seen before: the embedding cache spares the vision encoder and the prompt template's
prefix (CLIP's text encoder is causal), and the scores stay those of the model's own forward.

The model has CLIP ViT-B/32's geometry (12 text layers of 512, 77 positions, 224 px, patch 32) with random
weights and the locally trained CLIP tokenizer (``chat.bench.scoring.build_vit_b32``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tools.scoring import EmbeddingCache, encode_texts, label_embeddings, score_labels
from tools.scoring.text_prefix import reuses_prefix

LABELS = ["red cat", "golden retriever", "猫", "dog", "a blue bus near a tree"]


@pytest.fixture(scope="module")
def vit_b32():
    from chat.bench.scoring import build_vit_b32

    return build_vit_b32()


def small_clip(eos_token_id=None):
    """A 2-layer CLIP of width 64 with the same tokenizer and 77 positions (for what does not need the real width)."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from chat.loaders import Bundle
    from chat.tiny.common import clip_image_processor
    from chat.tiny.text_tokenizers import clip_tokenizer

    tokenizer = clip_tokenizer()
    text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
                          bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                          eos_token_id=eos_token_id or tokenizer.eos_token_id)
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                              image_size=224, patch_size=32, projection_dim=32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=32))
    return {"clip": Bundle(CLIPProcessor(image_processor=clip_image_processor(224), tokenizer=tokenizer), model.eval())}


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return Image.fromarray(data.chelsea())


def models_own_scores(bundle, image, labels, template="a photo of a {}."):
    """Softmax of transformers' CLIPModel forward over the whole prompts: what the scores must be (the image padded
    to square first, as every CLIP-style image is scored: see tools.aspect)."""
    from tools.aspect import square_images

    image = square_images([image], bundle.processor, "auto")[0]
    inputs = bundle.processor(images=image, text=[template.replace("{}", x) for x in labels], padding=True,
                              return_tensors="pt")
    with torch.inference_mode():
        return dict(zip(labels, bundle.model(**inputs).logits_per_image.softmax(-1)[0].tolist()))


def test_scores_with_and_without_the_cache_are_the_models_own(vit_b32, photo):
    cache = EmbeddingCache()
    score_labels(vit_b32, photo, ["warm", "up"], cache=cache)  # the image and the template are seen
    cached = score_labels(vit_b32, photo, LABELS, cache=cache).as_dict()
    fresh = score_labels(vit_b32, photo, LABELS).as_dict()
    expected = models_own_scores(vit_b32["clip"], photo, LABELS)
    for label in LABELS:
        assert cached[label] == pytest.approx(fresh[label], abs=1e-6)
        assert cached[label] == pytest.approx(expected[label], abs=1e-6)
    assert cache.stats()["prefixes"] == 1


@pytest.mark.parametrize("templates, width", [
    (("a photo of a {}.", "a drawing of a {}.", "{}", "{}s in the wild", "itap of a{}"), 512),  # empty, glued
    (tuple(f"picture number {i} of a {{}}." for i in range(9)), 64),  # more than one batch of 16 prompts
])
def test_label_embeddings_equal_the_text_encoders_own_for_any_template(vit_b32, templates, width):
    bundle = vit_b32["clip"] if width == 512 else small_clip()["clip"]
    got = label_embeddings(bundle, "clip", LABELS, templates, EmbeddingCache())
    full = encode_texts(bundle, [t.replace("{}", x) for x in LABELS for t in templates])  # get_text_features
    expected = torch.nn.functional.normalize(full.view(len(LABELS), len(templates), -1).mean(dim=1), dim=-1)
    assert (got - expected).abs().max().item() < 1e-6


def test_a_seen_image_runs_neither_the_vision_encoder_nor_the_template_again(vit_b32, photo, monkeypatch):
    model = vit_b32["clip"].model
    images, texts = [], []
    original = model.get_image_features

    def spy(*args, **kwargs):
        images.append(kwargs["pixel_values"].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "get_image_features", spy)
    hook = model.text_model.embeddings.register_forward_hook(lambda m, args, kwargs, out: texts.append(
        tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        cache = EmbeddingCache()
        score_labels(vit_b32, photo, ["blue dog", "green car"], cache=cache)
        # first time: the image once, the whole prompts once ("<bos> a photo of a blue dog . <eos>": 9 tokens)
        assert images == [1] and texts == [(2, 9)]
        images.clear(), texts.clear()
        score_labels(vit_b32, photo, ["red cat", "white horse", "pink cup"], cache=cache)
        assert images == [] and texts == [(3, 4)]  # only the new labels' tokens
        assert cache.image_encodes == 1 and cache.prefix_encodes == 1
    finally:
        hook.remove()


def test_the_cache_memory_stays_bounded():
    models = small_clip()
    cache = EmbeddingCache(max_entries=3, max_texts=10, max_prefixes=2)
    rng = np.random.default_rng(0)
    for n in range(5):
        image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        templates = (f"a photo number {n} of a {{}}.", f"{n} {{}}")
        score_labels(models, image, [f"red cat {n}", f"dog {n}", "bird"], templates=templates, cache=cache)
    stats = cache.stats()
    assert stats["images"] == 3 and stats["texts"] == 10 and stats["prefixes"] == 2
    assert stats["prefix_encodes"] == 10  # evicted prefixes are encoded again, never kept beyond the limit
    text = models["clip"].model.config.text_config
    longest_prefix = 8  # "<bos> a photo number 4 of a"
    bound = (3 + 10) * 32 * 4 + 2 * text.num_hidden_layers * 2 * longest_prefix * text.hidden_size * 4
    assert 0 < cache.nbytes() <= bound


def test_legacy_clip_configs_pool_at_the_largest_id_as_transformers_does():
    bundle = small_clip(eos_token_id=2)["clip"]  # configs from before transformers#24773
    tokenizer = bundle.processor.tokenizer
    assert tokenizer.eos_token_id == len(tokenizer) - 1  # as in CLIP's vocabulary: EOS is the largest id
    assert bundle.model.text_model.eos_token_id == 2 and reuses_prefix(bundle)
    got = label_embeddings(bundle, "legacy", LABELS, ("a photo of a {}.",), EmbeddingCache())
    expected = encode_texts(bundle, [f"a photo of a {x}." for x in LABELS])
    assert (got - expected).abs().max().item() < 1e-6


def test_siglip_reads_whole_prompts(assistant):
    """SigLIP's text encoder is bidirectional: a prefix's states depend on the label, so none is reused."""
    bundle = assistant.registry.get("siglip")
    assert not reuses_prefix(bundle)
    cache = EmbeddingCache()
    score_labels(assistant.registry, Image.new("RGB", (64, 64), (200, 30, 30)), ["cat", "dog"], model="siglip",
                 cache=cache)
    assert cache.prefix_encodes == 0 and cache.text_encodes == 2
