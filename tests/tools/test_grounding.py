"""``find``: a phrase to regions. Geometry and the neutral prior (pure), candidates on real photos, sorted scores
and boxes inside the image, the ambiguity flag, the per-image cache (the image is encoded once), the chat-model
box hook (a scripted callable) turned into a SAM mask, and the overlay."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from pydantic import ValidationError
from skimage import data

from tools.errors import explain
from tools.grounding import (
    PHRASE, CandidateCache, CandidateOptions, FindInput, GroundingError, box_iou, draw_regions, find_regions,
    is_ambiguous, mask_box, mask_iou, padded_square_box, prior_subtracted, propose_candidates, sam_box_mask,
)
from tools.grounding.candidates import to_size
from tools.grounding.geometry import scale_box
from tools.scoring import EmbeddingCache


def photo_with_objects(which: str = "coffee") -> tuple[Image.Image, dict[str, tuple[int, int, int, int]]]:
    """A scikit-image photo with a green disk (top left) and a blue square (bottom right) on it, and their boxes."""
    image = Image.fromarray(getattr(data, which)())
    w, h = image.size
    s = w // 6
    objects = {"green disk": (w // 10, h // 10, w // 10 + s, h // 10 + s),
               "blue square": (w - w // 10 - s, h - h // 10 - s, w - w // 10, h - h // 10)}
    draw = ImageDraw.Draw(image)
    draw.ellipse(objects["green disk"], fill=(30, 200, 60))
    x0, y0, x1, y1 = objects["blue square"]
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=(30, 60, 220))
    return image, objects


@pytest.fixture(scope="module")
def tiny(assistant):
    return assistant.registry, assistant.registry.get("sam")


# -- pure: geometry, the prior, ambiguity, the schema ---------------------------------------------------------
def test_box_iou_on_known_boxes():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching, exclusive ends
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (2, 2, 4, 4)) == pytest.approx(4 / 100)
    assert box_iou((0, 0, 0, 10), (0, 0, 0, 10)) == 0.0  # empty boxes


def test_mask_iou_and_mask_box():
    a = np.zeros((20, 30), bool)
    a[2:6, 3:9] = True  # 4 x 6 = 24 px
    b = np.zeros_like(a)
    b[4:8, 3:9] = True  # overlaps 2 rows: 12 px
    assert mask_iou(a, b) == pytest.approx(12 / 36)
    assert mask_box(a) == (3, 2, 9, 6)  # exclusive ends
    with pytest.raises(GroundingError):
        mask_box(np.zeros((4, 4), bool))


def test_padded_square_box_undoes_llava_padding():
    # 600 x 400: padded to 600 x 600 with 100 px above and below
    assert padded_square_box([0, 0, 1, 1], (600, 400)) == (0, 0, 600, 400)
    assert padded_square_box([0.5, 0.5, 1.0, 1.0], (600, 400)) == (300, 200, 600, 400)
    assert padded_square_box([0.25, 0.25, 0.5, 0.5], (600, 400)) == (150, 50, 300, 200)
    assert padded_square_box([0.25, 0.25, 0.5, 0.5], (400, 600)) == (50, 150, 200, 300)  # portrait: side pads
    for bad in ([0.5, 0.5, 0.4, 0.9], [0, 0, 1], ["a", 0, 1, 1], [0, 0, 1.5, 1], [0, 0, 1, 0.1]):  # last: padding
        with pytest.raises(GroundingError):
            padded_square_box(bad, (600, 400))


def test_prior_subtraction_cancels_a_rendering_bias_and_keeps_the_phrase_signal():
    phrase = torch.tensor([[3.0, 1.0, 2.0]])  # [prompts, candidates]
    prior = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [4.0, 2.0]]])  # [prompts, candidates, texts]
    assert prior_subtracted(phrase, prior).tolist() == [[1.5, 1.0, -1.0]]
    # a candidate CLIP likes whatever the text (+10 to every logit of candidate 2) gains nothing
    bias = torch.tensor([0.0, 0.0, 10.0])
    assert torch.allclose(prior_subtracted(phrase + bias, prior + bias[:, None]), prior_subtracted(phrase, prior))
    assert int(phrase[0].argmax()) == 0 and int((phrase + bias)[0].argmax()) == 2  # raw logits are fooled


def test_ambiguous_only_for_a_close_second_in_another_place():
    boxes = [(0, 0, 10, 10), (50, 50, 60, 60), (1, 1, 10, 10)]
    assert is_ambiguous([5.0, 4.5, 1.0], boxes, margin=1.0)
    assert not is_ambiguous([5.0, 3.5, 1.0], boxes, margin=1.0)
    assert is_ambiguous([5.0, 3.5, 1.0], boxes, margin=2.0)  # the margin is the caller's
    assert not is_ambiguous([5.0, 1.0, 4.9], boxes, margin=1.0)  # the close one is the same place (IoU 0.81)
    assert not is_ambiguous([5.0], boxes[:1], margin=10.0)


def test_find_input_validates_once_with_readable_sentences():
    args = FindInput(phrase="  the   red\ncup ")
    assert args.phrase == "the red cup" and args.method == "auto" and args.top_k == 3
    for bad, words in [({"phrase": ""}, "empty"), ({"phrase": "   "}, "empty"), ({"phrase": "x" * 201}, "201"),
                       ({"phrase": 3}, "text"), ({"phrase": "a", "top_k": 0}, "top_k"),
                       ({"phrase": "a", "method": "magic"}, "method"), ({"phrase": "a", "extra": 1}, "extra")]:
        with pytest.raises(ValidationError) as info:
            FindInput(**bad)
        sentence = explain(info.value, names=PHRASE)
        assert words in sentence and sentence.endswith(".") and "\n" not in sentence


# -- candidates -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["coffee", "chelsea"])
def test_candidates_cover_the_objects_of_a_real_photo(which):
    image, objects = photo_with_objects(which)
    cands = propose_candidates(image, None, CandidateOptions())
    assert 2 <= len(cands) <= 32 and set(cands.sources) == {"som"}
    boxes = [mask_box(cands.full_mask(i)) for i in range(len(cands))]
    for name, box in objects.items():
        assert max(box_iou(b, box) for b in boxes) >= 0.8, name
    for i in range(len(cands)):
        for j in range(i):
            assert mask_iou(cands.masks[i], cands.masks[j]) <= 0.8  # deduplicated


def test_sam_candidates_join_and_are_deduplicated(tiny):
    _, sam = tiny
    image, _ = photo_with_objects("coffee")
    options = CandidateOptions(sam_points=4, sam_min_iou=0.0, som_regions=0, max_candidates=16)
    cands = propose_candidates(image, sam, options)
    assert 1 <= len(cands) <= 16 and set(cands.sources) == {"sam"}
    assert cands.masks.shape[1:] == (cands.work.height, cands.work.width) and max(cands.work.size) == 512
    ious = [mask_iou(cands.masks[i], cands.masks[j]) for i in range(len(cands)) for j in range(i)]
    assert all(v <= options.dedupe_iou for v in ious)


# -- the tool -------------------------------------------------------------------------------------------------
def test_find_returns_sorted_regions_with_boxes_inside_the_image(tiny):
    registry, sam = tiny
    image = Image.fromarray(data.chelsea())  # 451 x 300
    result = find_regions(registry, image, {"phrase": "the cat's left ear", "top_k": 5}, sam=sam)
    assert result.method == "ensemble" and len(result.regions) == 5 and result.candidates >= 5
    scores = [r.score for r in result.regions]
    assert scores == sorted(scores, reverse=True)
    assert [r.id for r in result.regions] == [1, 2, 3, 4, 5]
    for r in result.regions:
        x0, y0, x1, y1 = r.bbox
        assert 0 <= x0 < x1 <= 451 and 0 <= y0 < y1 <= 300
        assert r.mask.shape == (300, 451) and mask_box(r.mask) == r.bbox and r.area == r.mask.sum()
        assert set(r.prompts) == {"circle", "blur", "grey"}
        assert r.score == pytest.approx(np.mean(list(r.prompts.values())), abs=1e-5)  # the ensemble's mean
    payload = result.to_json()
    assert set(payload) >= {"regions", "method", "ambiguous"} and "mask" not in payload["regions"][0]


def test_one_prompt_methods_score_with_that_prompt_only(tiny):
    registry, sam = tiny
    image, _ = photo_with_objects("coffee")
    cache = EmbeddingCache()
    for method in ("circle", "blur", "grey"):
        result = find_regions(registry, image, {"phrase": "the blue square", "method": method}, sam=sam, cache=cache)
        assert result.method == method
        assert all(set(r.prompts) == {method} and r.score == pytest.approx(r.prompts[method]) for r in result.regions)


def test_the_margin_decides_ambiguity(tiny):
    registry, sam = tiny
    image, _ = photo_with_objects("coffee")
    caches = dict(cache=EmbeddingCache(), candidate_cache=CandidateCache())
    wide = find_regions(registry, image, {"phrase": "the green disk", "margin": 100}, sam=sam, **caches)
    assert wide.ambiguous  # random weights: every other place is within 100 logits
    exact = find_regions(registry, image, {"phrase": "the green disk", "margin": 0}, sam=sam, **caches)
    assert not exact.ambiguous and exact.regions[0].bbox == wide.regions[0].bbox


def test_a_second_phrase_on_the_same_image_encodes_only_its_text(tiny, monkeypatch):
    registry, sam = tiny
    image, _ = photo_with_objects("astronaut")
    clip = registry.get("clip").model
    calls = {"image": 0, "text": 0}
    for kind in ("image", "text"):
        original = getattr(clip, f"get_{kind}_features")

        def counting(*args, _original=original, _kind=kind, **kwargs):
            calls[_kind] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(clip, f"get_{kind}_features", counting)
    cache, candidates = EmbeddingCache(), CandidateCache()
    first = find_regions(registry, image, {"phrase": "the blue square"}, sam=sam, cache=cache,
                         candidate_cache=candidates)
    assert calls["image"] >= 1 and cache.image_encodes == 3 * first.candidates  # every rendering, in batches
    assert calls["image"] == -(-cache.image_encodes // 16)  # batches of 16
    before, texts = dict(calls), cache.text_encodes
    second = find_regions(registry, image, {"phrase": "the green disk"}, sam=sam, cache=cache,
                          candidate_cache=candidates)
    assert calls["image"] == before["image"] and cache.image_encodes == 3 * first.candidates  # no image again
    assert cache.text_encodes == texts + 1  # only the new phrase (whichever text path encodes it)
    assert candidates.proposals == 1 and second.candidates == first.candidates


def test_llava_hook_turns_the_models_box_into_a_sam_mask(tiny):
    registry, sam = tiny
    image, objects = photo_with_objects("coffee")  # 600 x 400: the square pads 100 px above and below
    asked = []
    x0, y0, x1, y1 = objects["blue square"]

    def box_from_model(img, phrase):
        asked.append((img.size, phrase))
        return [x0 / 600, (y0 + 100) / 600, x1 / 600, (y1 + 100) / 600]

    result = find_regions(registry, image, {"phrase": "the blue square", "top_k": 32}, sam=sam,
                          box_from_model=box_from_model)
    assert asked == [((600, 400), "the blue square")]
    assert result.method == "llava" and all(r.method == "llava+ensemble" for r in result.regions)
    (model_region,) = [r for r in result.regions if r.source == "llava"]
    # its mask is SAM's answer to the box prompt (on the working copy), cut to the box and a 10% margin
    cands = CandidateCache().get(image, EmbeddingCache.image_digest(image), sam, CandidateOptions())
    pixels = padded_square_box(box_from_model(image, ""), image.size)
    assert box_iou(pixels, objects["blue square"]) > 0.97  # the padding undone (to a pixel of rounding)
    work_box = scale_box(pixels, image.size, cands.work.size)
    sam_mask = sam_box_mask(sam, cands.work, work_box)
    bx0, by0, bx1, by1 = work_box
    dx, dy = max(1, round(0.1 * (bx1 - bx0))), max(1, round(0.1 * (by1 - by0)))
    inside = np.zeros_like(sam_mask)
    inside[by0 - dy:by1 + dy, bx0 - dx:bx1 + dx] = True
    expected = sam_mask & inside if (sam_mask & inside).any() else inside & False
    if not expected.any():  # SAM found nothing there: the box itself is the region
        expected[by0:by1, bx0:bx1] = True
    assert np.array_equal(model_region.mask, to_size(expected, image.size))
    # CLIP and the chat model vote together: the best region is where the model's box is
    assert box_iou(result.regions[0].bbox, objects["blue square"]) >= 0.8
    without = find_regions(registry, image, {"phrase": "the blue square", "method": "ensemble", "top_k": 32},
                           sam=sam)
    bonus = {r.bbox: r.score for r in result.regions}
    for r in without.regions:  # every shared candidate's score rose by 2 x IoU with the model's box
        if r.bbox in bonus:
            assert bonus[r.bbox] - r.score == pytest.approx(2.0 * box_iou(r.bbox, objects["blue square"]), abs=0.15)


def test_llava_method_needs_a_hook_and_a_good_box(tiny):
    registry, sam = tiny
    image = Image.fromarray(data.chelsea())
    with pytest.raises(GroundingError, match="llava"):
        find_regions(registry, image, {"phrase": "the cat", "method": "llava"}, sam=sam)
    with pytest.raises(GroundingError, match="box"):
        find_regions(registry, image, {"phrase": "the cat", "method": "llava"}, sam=sam,
                     box_from_model=lambda im, p: [0.9, 0.9, 0.1, 0.1])
    # auto falls back to CLIP alone, and says so
    result = find_regions(registry, image, {"phrase": "the cat"}, sam=sam,
                          box_from_model=lambda im, p: "no box, sorry")
    assert result.method == "ensemble" and any("not four numbers" in n for n in result.notes)


def test_overlay_numbers_the_regions_and_tints_the_best(tiny):
    registry, sam = tiny
    image, _ = photo_with_objects("coffee")
    result = find_regions(registry, image, {"phrase": "the blue square", "top_k": 3}, sam=sam)
    out = np.asarray(draw_regions(image, result.regions)).astype(int)
    base = np.asarray(image).astype(int)
    best = result.regions[0].mask
    assert out.shape == base.shape
    assert (out[best][:, 0] - base[best][:, 0]).mean() > 20  # tinted red
    untouched = ~np.logical_or.reduce([r.mask for r in result.regions])
    untouched[:30] = False  # room for labels that sit near the top edge
    changed = np.any(out != base, axis=-1) & untouched
    assert changed.mean() < 0.02  # only outlines and numbers spill outside the regions


def test_a_cache_too_small_for_the_renderings_says_so(tiny):
    registry, sam = tiny
    image, _ = photo_with_objects("coffee")
    cache = EmbeddingCache(max_entries=4)
    result = find_regions(registry, image, {"phrase": "the blue square", "method": "circle"}, cache=cache,
                          options=CandidateOptions(sam_points=0))
    assert result.candidates > 4 and any("embedding cache keeps 4 images" in n for n in result.notes)
    roomy = find_regions(registry, image, {"phrase": "the blue square", "method": "circle"}, cache=EmbeddingCache(),
                         options=CandidateOptions(sam_points=0))
    assert not any("embedding cache" in n for n in roomy.notes)


def test_summary_notes_are_not_part_of_the_last_region():
    """In the chat (Markdown) the chat model's note was drawn inside the last region's list item, as if it
    were about that region; it is its own paragraph after the list."""
    from markdown_it import MarkdownIt

    from tools.grounding import FindResult, Region

    regions = [Region(id=k, bbox=(0, 0, 10 * k, 10 * k), score=-0.1 * k, method="ensemble", source="som")
               for k in (1, 2, 3)]
    result = FindResult(phrase="the eye", method="ensemble", model="clip", regions=regions, ambiguous=True,
                        candidates=16, notes=["The chat model's box is empty. Scored by CLIP alone."])
    html = MarkdownIt().render(result.summary())
    items = html.split("<li>")[1:]
    assert len(items) == 3 and all("Scored by CLIP alone" not in item.split("</li>")[0] for item in items)
    assert "<p>note: The chat model's box is empty. Scored by CLIP alone.</p>" in html
