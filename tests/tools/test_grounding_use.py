"""Using what ``find`` finds: the target of an edit named in words (never guessed when ambiguous), the chat
model's RefCOCO box, and grounded answers (phrases of the answer highlighted on the image in matching colours).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from tools.edit import feather_mask, remove_object
from tools.grounding import FindResult, GroundingError, Region, find_regions, mask_box
from tools.grounding.grounded import (
    PALETTE, Phrases, draw_grounded, ground_answer, highlight_html, locate_phrases,
)
from tools.grounding.model_box import BOX_PATTERN, box_prompt, parse_box
from tools.grounding.target import AmbiguousTarget, TargetNotFound, choose_target

SIZE = (120, 80)


def region(rank: int, box: tuple[int, int, int, int], score: float) -> Region:
    mask = np.zeros((SIZE[1], SIZE[0]), dtype=bool)
    mask[box[1]:box[3], box[0]:box[2]] = True
    return Region(id=rank, bbox=box, score=score, method="ensemble", source="som", area=int(mask.sum()), mask=mask)


def result(phrase: str, *regions: Region, ambiguous: bool = False) -> FindResult:
    return FindResult(phrase=phrase, method="ensemble", model="clip", regions=list(regions), ambiguous=ambiguous,
                      candidates=len(regions))


# -- the target of an edit ------------------------------------------------------------------------------------
def test_the_best_region_is_the_target_when_the_match_is_clear():
    found = result("the cup", region(1, (10, 10, 40, 40), 3.0), region(2, (60, 10, 90, 40), 0.5))
    assert choose_target(found).id == 1


def test_an_ambiguous_match_asks_which_one_instead_of_guessing():
    found = result("the cup", region(1, (10, 10, 40, 40), 3.0), region(2, (60, 10, 90, 40), 2.9),
                   region(3, (10, 50, 40, 78), 1.0), ambiguous=True)
    with pytest.raises(AmbiguousTarget) as caught:
        choose_target(found)
    message = str(caught.value)
    assert "'the cup'" in message and "1, 2 or 3" in message and message.count(".") <= 3
    assert caught.value.result is found  # the candidates to number on the image
    assert choose_target(found, choice=2).id == 2  # the person's answer
    with pytest.raises(GroundingError, match="no region 7.*1, 2 or 3"):
        choose_target(found, choice=7)


def test_nothing_found_says_so():
    with pytest.raises(TargetNotFound, match="could not find 'the dog'"):
        choose_target(result("the dog"))


def test_remove_by_words_edits_only_inside_the_found_mask(assistant):
    """"Remove the blue square" without a click: find, choose, remove; outside the found mask nothing moved."""
    registry = assistant.registry
    image = Image.fromarray(data.coffee()).resize((200, 150))
    found = find_regions(registry, image, {"phrase": "the blue square", "margin": 0.0}, sam=registry.get("sam"))
    target = choose_target(found)
    out = remove_object(registry, image, target.mask, target="the blue square", steps=2, seed=1, dilate=4,
                        feather=4).image
    outside = feather_mask(target.mask, 4, 4) == 0
    before, after = np.asarray(image), np.asarray(out)
    assert outside.any() and (~outside).any()
    assert np.array_equal(before[outside], after[outside])
    assert not np.array_equal(before[~outside], after[~outside])


# -- the chat model's box -------------------------------------------------------------------------------------
def test_box_prompt_is_llavas_refcoco_question():
    assert box_prompt("  the man in red. ") == ("Please provide the bounding box coordinate of the region this "
                                               "sentence describes: the man in red.")


@pytest.mark.parametrize("text,box", [
    ("[0.23, 0.41, 0.55, 0.98]", (0.23, 0.41, 0.55, 0.98)),
    ("The box is [0.1,0.2,0.3,0.4].", (0.1, 0.2, 0.3, 0.4)),
    ("[0.00, 0.00, 1.00, 1.00]", (0.0, 0.0, 1.0, 1.0)),
])
def test_parse_box(text, box):
    assert parse_box(text) == pytest.approx(box)


@pytest.mark.parametrize("text,words", [
    ("I cannot see it.", "did not answer with a box"),
    ("[0.5, 0.5, 0.4, 0.9]", "empty or outside"),
    ("[0.1, 0.2, 1.3, 0.9]", "empty or outside"),
])
def test_parse_box_refuses_what_is_not_a_box(text, words):
    with pytest.raises(GroundingError, match=words):
        parse_box(text)


def test_box_pattern_accepts_the_trained_shape_only():
    import re

    assert re.fullmatch(BOX_PATTERN, "[0.23, 0.41, 0.55, 0.98]")
    assert re.fullmatch(BOX_PATTERN, "[0.00, 0.10, 1.00, 1.00]")
    for bad in ("[0.2, 0.41, 0.55, 0.98]", "[1.20, 0.41, 0.55, 0.98]", "[0.23,0.41,0.55,0.98]"):
        assert not re.fullmatch(BOX_PATTERN, bad)


# -- grounded answers -----------------------------------------------------------------------------------------
def test_phrases_are_placed_in_the_answer_in_order_and_made_up_ones_dropped():
    answer = "A cat sits next to the red cup, and another cat sleeps."
    spans = locate_phrases(answer, ["the red cup", "A cat", "a dog", "", "cat", "A cat"])
    assert [(p, answer[s:e]) for p, s, e in spans] == [("A cat", "A cat"), ("the red cup", "the red cup"),
                                                       ("cat", "cat")]
    assert spans[2][1] == answer.index("another cat") + len("another ")  # not inside the first "A cat"


def test_phrases_schema_is_what_structured_output_generates():
    schema = Phrases.model_json_schema()
    assert schema["properties"]["phrases"]["type"] == "array" and schema["properties"]["phrases"]["maxItems"] == 6
    assert Phrases.model_validate({"phrases": ["the cup"]}).phrases == ["the cup"]


def test_grounded_answer_colours_the_found_phrases_on_the_image_and_in_the_text():
    answer = "The cup is left of the <plate> & a spoon."
    regions = {"The cup": region(1, (5, 5, 35, 35), 2.0), "the <plate>": region(1, (60, 20, 110, 70), 1.5),
               "a spoon": region(1, (40, 60, 50, 75), -0.5)}
    grounded = ground_answer(answer, ["the <plate>", "The cup", "a spoon", "a fork"],
                             lambda phrase: result(phrase, regions[phrase]))
    assert [p.phrase for p in grounded.phrases] == ["The cup", "the <plate>", "a spoon"]
    assert [p.region is not None for p in grounded.phrases] == [True, True, False]  # below the neutral prior
    assert any("'a fork'" in n for n in grounded.notes) and any("'a spoon'" in n for n in grounded.notes)
    picture = np.asarray(draw_grounded(Image.new("RGB", SIZE, (128, 128, 128)), grounded)).astype(int)
    for item in grounded.found:  # the inside of each region leans to its phrase's colour
        x0, y0, x1, y1 = item.region.bbox
        centre = picture[(y0 + y1) // 2, (x0 + x1) // 2 + 3]
        assert np.argmax(centre) == np.argmax(item.colour)
    assert (picture[70, 45] == 128).all()  # the unfound spoon is not drawn
    page = highlight_html(grounded)
    r, g, b = PALETTE[0]
    assert page.startswith(f'<mark style="background: rgba({r}, {g}, {b}, 0.35)')
    assert "the &lt;plate&gt;<sup>2</sup></mark>" in page and "&amp; a spoon." in page  # escaped, spoon unmarked
    assert grounded.to_json()["phrases"][0]["bbox"] == [5, 5, 35, 35]


def test_grounded_answer_on_a_real_photo_with_the_tiny_models(assistant):
    registry = assistant.registry
    image = Image.fromarray(data.chelsea()).resize((226, 150))
    answer = "A cat lies on a rug."
    grounded = ground_answer(answer, ["A cat", "a rug"],
                             lambda p: find_regions(registry, image, {"phrase": p, "top_k": 1}),
                             min_score=float("-inf"))
    assert [p.phrase for p in grounded.phrases] == ["A cat", "a rug"]
    for item in grounded.phrases:
        assert item.region.mask.shape == (150, 226) and mask_box(item.region.mask) == item.region.bbox
    assert draw_grounded(image, grounded).size == image.size
