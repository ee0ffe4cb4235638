"""Zero-shot scoring on the tiny CLIP/SigLIP checkpoints: maths, cache, region-aware renderings, schemas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from pydantic import ValidationError

import tools.scoring as scoring
import tools.scoring.encoders as encoders
from chat.errors import UserError
from tools.aspect import expand2square, mean_colour
from tools.markers import Marker
from tools.scoring import EmbeddingCache, ScoreInput, ScoreResult, score_chart, score_labels
from tools.scoring.chart import chart_figure, label_fonts


@pytest.fixture(scope="module")
def registry(assistant):
    return assistant.registry


@pytest.fixture
def image():
    im = Image.new("RGB", (96, 80), (150, 160, 150))
    draw = ImageDraw.Draw(im)
    draw.rectangle((10, 10, 40, 40), fill=(30, 60, 200))
    draw.ellipse((55, 35, 85, 70), fill=(40, 160, 60))
    return im


def test_clip_softmax_scores_sum_to_one_and_are_sorted(registry, image):
    result = score_labels(registry, image, ["cat", "dog", "a red car"])
    assert result.mode == "softmax" and result.model == "clip" and not result.region
    assert sorted(result.labels) == ["a red car", "cat", "dog"]
    assert math.isclose(sum(result.scores), 1.0, abs_tol=1e-5)
    assert result.scores == sorted(result.scores, reverse=True)
    assert all(isinstance(s, float) for s in result.scores)


def test_clip_scores_match_the_models_own_forward(registry, image):
    bundle = registry.get("clip")
    labels = ["cat", "dog", "bird"]
    result = score_labels(registry, image, labels)
    square = expand2square(image, mean_colour(bundle.processor))  # CLIP sees the whole image, padded to square
    inputs = bundle.processor(images=square, text=[f"a photo of a {x}." for x in labels], padding=True,
                              return_tensors="pt")
    with torch.inference_mode():
        expected = bundle.model(**inputs).logits_per_image.softmax(-1)[0].tolist()
    got = result.as_dict()
    assert [got[x] for x in labels] == pytest.approx(expected, abs=1e-5)


def test_siglip_sigmoid_scores_lie_in_the_open_unit_interval(registry, image):
    single = score_labels(registry, image, ["a dog"], model="siglip")
    assert single.mode == "sigmoid" and single.labels == ["a dog"]
    assert 0.0 < single.scores[0] < 1.0
    several = score_labels(registry, image, ["a dog", "a cat", "a tree"], model="siglip")
    assert all(0.0 < s < 1.0 for s in several.scores)
    bundle = registry.get("siglip")
    inputs = bundle.processor(images=image, text=["a photo of a a dog."], padding="max_length", max_length=64,
                              return_tensors="pt")
    inputs.pop("attention_mask", None)  # SigLIP attends to its pad tokens, as trained (see the test below)
    with torch.inference_mode():
        expected = torch.sigmoid(bundle.model(**inputs).logits_per_image)[0, 0].item()
    assert single.scores[0] == pytest.approx(expected, abs=1e-5)


def test_siglip_texts_are_encoded_without_an_attention_mask(registry):
    """SigLIP was trained with no text attention mask (the real so400m tokenizer returns none: transformers'
    convert_siglip_to_hf.py sets model_input_names=["input_ids"]; the tiny one is built the same way). A tokenizer
    that returns a mask (made here from the tiny one) and one that does not give the same embeddings: the model's
    own forward on the input ids alone."""
    import copy

    from chat.loaders import Bundle

    bundle = registry.get("siglip")
    prompts = ["a photo of a dog.", "a photo of a very small red bicycle."]
    tokens = bundle.processor(text=prompts, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
    assert set(tokens) == {"input_ids"}  # as the real checkpoint's
    masking = copy.deepcopy(bundle.processor)
    masking.tokenizer.model_input_names = ["input_ids", "attention_mask"]
    masked_tokens = masking(text=prompts, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
    assert set(masked_tokens) == {"input_ids", "attention_mask"}
    assert torch.equal(masked_tokens["input_ids"], tokens["input_ids"]) and not masked_tokens["attention_mask"].all()
    with torch.inference_mode():
        real = encoders.normalise(bundle.model.get_text_features(input_ids=tokens["input_ids"]).pooler_output)
        masked = encoders.normalise(bundle.model.get_text_features(**masked_tokens).pooler_output)
    without = encoders.encode_texts(bundle, prompts)
    with_mask = encoders.encode_texts(Bundle(masking, bundle.model), prompts)
    assert torch.allclose(with_mask, real, atol=1e-5) and torch.allclose(without, real, atol=1e-5)
    assert not torch.allclose(masked, real, atol=1e-3)  # a mask would change what SigLIP computes


def test_cached_and_uncached_scores_agree(registry, image):
    cache = EmbeddingCache()
    marker = Marker(x=25, y=25, shape="circle", color="red", radius=18)
    for kwargs in ({}, {"markers": [marker]}, {"model": "siglip"}):
        score_labels(registry, image, ["warm", "up", "cat"], cache=cache, **kwargs)  # fills the cache
        cached = score_labels(registry, image, ["cat", "dog", "fish"], cache=cache, **kwargs)
        fresh = score_labels(registry, image, ["cat", "dog", "fish"], **kwargs)
        assert cached.labels == fresh.labels
        assert np.allclose(cached.scores, fresh.scores, atol=1e-5, rtol=0)


def test_vision_encoder_runs_once_for_two_label_sets(registry, image, monkeypatch):
    model = registry.get("clip").model
    calls = []
    original = model.get_image_features

    def spy(*args, **kwargs):
        calls.append(kwargs["pixel_values"].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "get_image_features", spy)
    cache = EmbeddingCache()
    first = score_labels(registry, image, ["cat", "dog"], cache=cache)
    second = score_labels(registry, image, ["car", "boat", "cat"], cache=cache)
    assert calls == [1]
    assert cache.image_encodes == 1
    assert cache.text_encodes == 4  # "cat" was encoded once
    assert first.as_dict()["cat"] != second.as_dict()["cat"]  # different competitors, different softmax
    # a copy of the same pixels is the same image
    score_labels(registry, image.copy(), ["tree"], cache=cache)
    assert calls == [1]


def test_region_scoring_draws_a_red_ellipse_and_changes_scores(registry, image, monkeypatch):
    encoded: list[Image.Image] = []
    original = encoders.encode_images

    def spy(bundle, images):
        encoded.extend(images)
        return original(bundle, images)

    monkeypatch.setattr(encoders, "encode_images", spy)
    marker = Marker(x=25, y=25, shape="circle", color="red", radius=20)
    labels = ["a blue square", "a green circle", "grass"]
    whole = score_labels(registry, image, labels)
    assert len(encoded) == 1 and encoded[0].tobytes() == image.tobytes()
    encoded.clear()
    region = score_labels(registry, image, labels, markers=[marker])
    assert region.region and region.renderings == ["ellipse", "ellipse+blur", "ellipse+grey"]
    assert len(encoded) == 3
    assert region.as_dict() != pytest.approx(whole.as_dict(), abs=1e-6)

    # the plain rendering differs from the image only on a red outline around the marked region
    plain = np.asarray(encoded[0].convert("RGB")).astype(int)
    diff = np.abs(plain - np.asarray(image).astype(int)).sum(axis=2) > 30
    ys, xs = np.nonzero(diff)
    assert xs.size > 0
    r, g, b = plain[ys, xs].T
    assert np.mean((r > 150) & (r > g + 60) & (r > b + 60)) > 0.8  # mostly red pixels
    x0, y0, x1, y1 = scoring.fitted_ellipse(marker, image.size)
    assert abs(xs.min() - x0) <= 5 and abs(xs.max() - x1) <= 5 and abs(ys.min() - y0) <= 5 and abs(ys.max() - y1) <= 5
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert not diff[int(cy), int(cx)]  # the inside of the region is untouched
    # the greyed rendering changes pixels outside the ellipse (the green object), the plain one does not
    grey = np.asarray(encoded[2].convert("RGB")).astype(int)
    assert np.abs(grey[52, 70] - plain[52, 70]).sum() > 30


def test_ensemble_off_uses_the_outside_rendering_only(registry, image):
    marker = Marker(x=70, y=52, shape="circle", color="red", radius=15)
    cache = EmbeddingCache()
    result = score_labels(registry, image, ["x", "y"], markers=[marker], outside="grey", ensemble=False, cache=cache)
    assert result.renderings == ["ellipse+grey"] and cache.image_encodes == 1
    with pytest.raises(UserError, match="outside"):
        score_labels(registry, image, ["x"], markers=[marker], outside="sepia", ensemble=False)


def test_fitted_ellipse_encloses_the_region():
    circle = Marker(x=50, y=50, shape="circle", color="red", radius=20)
    x0, y0, x1, y1 = scoring.fitted_ellipse(circle, (100, 100))
    assert abs((x1 - x0) - 40) <= 3 and abs((y1 - y0) - 40) <= 3  # a circle's ellipse is the circle
    box = Marker(x=50, y=50, shape="box", color="red", bbox=(30, 40, 70, 60))
    x0, y0, x1, y1 = scoring.fitted_ellipse(box, (100, 100))
    assert (x1 - x0) == pytest.approx(40 * math.sqrt(2), abs=3)  # an enclosing ellipse reaches the corners
    assert (y1 - y0) == pytest.approx(20 * math.sqrt(2), abs=3)


def test_prompt_templates_are_ensembled(registry, image):
    cache = EmbeddingCache()
    templates = ("a photo of a {}.", "a drawing of a {}.", "{}")
    result = score_labels(registry, image, ["cat", "dog"], templates=templates, cache=cache)
    assert cache.text_encodes == 6
    assert math.isclose(sum(result.scores), 1.0, abs_tol=1e-5)
    with pytest.raises(UserError, match="template"):
        score_labels(registry, image, ["cat"], templates=("no slot here",))


def test_cache_is_a_bounded_lru(registry):
    cache = EmbeddingCache(max_entries=2)
    images = [Image.new("RGB", (40, 40), (i * 60, 0, 0)) for i in range(3)]
    for im in images:
        score_labels(registry, im, ["a"], cache=cache)
    assert cache.stats()["images"] == 2 and cache.image_encodes == 3
    score_labels(registry, images[2], ["a"], cache=cache)  # still cached
    assert cache.image_encodes == 3
    score_labels(registry, images[0], ["a"], cache=cache)  # evicted first
    assert cache.image_encodes == 4


def test_embedding_entries_0_in_the_config_turns_the_cache_off(registry, image):
    from chat.assistant import Assistant
    from chat.config import load_config

    from tests.conftest import TINY_CONFIG

    cache = Assistant(load_config(TINY_CONFIG, cache={"embedding_entries": 0})).embedding_cache
    first = score_labels(registry, image, ["cat", "dog"], cache=cache)
    second = score_labels(registry, image, ["cat", "dog"], cache=cache)
    assert first.scores == second.scores and cache.image_encodes == 2 and cache.text_encodes == 4
    assert cache.stats()["images"] == 0 and cache.stats()["texts"] == 0 and cache.hits == 0
    with pytest.raises(ValueError, match="0 \\(no cache\\) or more"):
        EmbeddingCache(-1)


def test_bad_labels_are_rejected_by_the_schema():
    def message(**kwargs) -> str:
        with pytest.raises(ValidationError) as info:
            ScoreInput(**kwargs)
        return str(info.value)

    assert "no labels given" in message(labels=[])
    assert "label 2 is empty" in message(labels=["cat", "   "])
    assert "101 labels given; at most 100" in message(labels=[f"thing {i}" for i in range(101)])
    assert "must be a list of strings" in message(labels="cat, dog")
    assert "extra" in message(labels=["cat"], colour="red").lower()
    assert "model" in message(labels=["cat"], model="dino")
    ok = ScoreInput(labels=[" cat ", "dog", "cat", "Dog", "a  red car"])
    assert ok.labels == ["cat", "dog", "a red car"] and ok.model == "clip" and ok.region
    schema = ScoreInput.model_json_schema()["properties"]
    assert all(schema[name].get("description") for name in ("labels", "model", "region"))
    assert "image" not in schema  # image ids are the chat's: chat.toolbox adds the field


def test_score_labels_reports_bad_labels_as_user_errors(registry, image):
    with pytest.raises(UserError, match="No labels given"):
        score_labels(registry, image, [])
    with pytest.raises(UserError, match="empty"):
        score_labels(registry, image, ["cat", ""])


def test_result_table_summary_and_chart():
    result = ScoreResult(labels=["cat", "dog"], scores=[0.71, 0.29], mode="softmax", model="clip")
    assert result.summary() == "cat 0.71, dog 0.29"
    assert result.table().splitlines()[2] == "| cat | 0.710 |"
    assert result.best == "cat"
    chart = score_chart(result)
    assert chart.mode == "RGB" and chart.width > 200 and chart.height > 100


def _ticks(result: ScoreResult) -> list[str]:
    """The bar labels from the top down."""
    ax = chart_figure(result).axes[0]
    return [text for _, text in sorted(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels())), reverse=True)]


@pytest.mark.parametrize("labels", [["cat", "dog", "bird"], ["Ⓐ circled", "Ⓑ circled", "plain"],
                                    ["猫", "犬", "a cat"], ["\u0378", "x", "\u0379 y"]])
def test_chart_draws_labels_in_any_script_or_numbers_them_never_empty_boxes(labels):
    import warnings

    result = ScoreResult(labels=labels, scores=[0.5, 0.3, 0.2], mode="softmax", model="clip")
    _, undrawable = label_fonts(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" when it draws a box
        ticks = _ticks(result)
        score_chart(result)
    # A label no installed font has is numbered as its row in the table (#1 is the best); the others are drawn.
    assert ticks == [f"#{i}" if undrawable & set(label) else label for i, label in enumerate(labels, start=1)]
    assert ("no font here draws that label" in chart_figure(result).axes[0].get_xlabel()) == bool(undrawable)
    if labels[0] == "\u0378":  # unassigned code points: only a placeholder font "has" them
        assert ticks == ["#1", "x", "#3"]


def test_label_fonts_adds_only_what_the_base_font_lacks():
    assert label_fonts(["cat", "Ünïcødé", "кошка"]) == (["DejaVu Sans"], set())
    fonts, undrawable = label_fonts(["Ⓐ"])  # DejaVu Sans lacks circled letters; matplotlib's STIX fonts have them
    assert fonts[0] == "DejaVu Sans" and len(fonts) >= 2 and not undrawable
    assert label_fonts(["a\u0378"])[1] == {"\u0378"}
