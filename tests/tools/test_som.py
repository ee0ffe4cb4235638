"""Set-of-Mark: numbered regions a person can read, references parsed from text, cited regions highlighted."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from chat.errors import UserError
from tools.som import Mark, highlight_marks, label_point, parse_mark_refs, propose_regions, set_of_mark

BLOCKS = [(220, 40, 40), (40, 180, 60), (40, 70, 220), (240, 220, 50), (30, 30, 30), (240, 240, 240)]


def blocks(w=300, h=200, seed=0) -> Image.Image:
    """Six flat colour blocks (3 x 2) with a little noise: six obvious regions."""
    arr = np.zeros((h, w, 3), dtype=np.int16)
    for i, colour in enumerate(BLOCKS):
        r, c = divmod(i, 3)
        arr[r * h // 2:(r + 1) * h // 2, c * w // 3:(c + 1) * w // 3] = colour
    arr += np.random.default_rng(seed).integers(-6, 7, arr.shape, dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def block_centres(w=300, h=200):
    return [((c * w // 3 + (c + 1) * w // 3) // 2, (r * h // 2 + (r + 1) * h // 2) // 2)
            for r in range(2) for c in range(3)]


@pytest.fixture(scope="module")
def som_blocks():
    image = blocks()
    return image, *set_of_mark(image, max_regions=24)


def test_marks_are_unique_numbered_and_their_labels_sit_inside_their_regions(som_blocks):
    image, marked, marks, masks = som_blocks
    assert marked.size == image.size and marked.mode == "RGB"
    assert [m.id for m in marks] == list(range(1, len(marks) + 1)) and len(marks) == len(masks)
    for mark, mask in zip(marks, masks):
        assert mask.shape == (200, 300) and mask.dtype == bool
        x, y = mark.center
        assert mask[y, x], f"label of mark {mark.id} is outside its region"
        x0, y0, x1, y1 = mark.label_box
        assert 0 <= x0 <= x1 < image.width and 0 <= y0 <= y1 < image.height
        assert mark.area == mask.sum() and mark.bbox[2] <= image.width and mark.bbox[3] <= image.height
    assert np.sum([m.astype(int) for m in masks], axis=0).max() == 1  # disjoint


def test_the_six_blocks_become_six_marks(som_blocks):
    _, _, marks, masks = som_blocks
    assert len(marks) == 6
    owners = [next(i for i, m in enumerate(masks) if m[y, x]) for x, y in block_centres()]
    assert sorted(owners) == list(range(6))
    assert [o + 1 for o in owners] == [1, 2, 3, 4, 5, 6]  # numbered in reading order


def test_numbers_contrast_with_the_image_under_them(som_blocks):
    image, marked, marks, _ = som_blocks
    arr = np.asarray(marked).astype(int)
    for mark in marks:
        x0, y0, x1, y1 = mark.label_box
        box = arr[y0:y1 + 1, x0:x1 + 1].mean(axis=-1)
        background = np.median(box)
        under = np.asarray(image.convert("L")).astype(int)[y0:y1 + 1, x0:x1 + 1].mean()
        assert abs(background - under) > 60  # dark box on bright blocks, light box on dark ones
        assert box.max() - box.min() > 200  # the digits are visible on the box


def test_max_regions_and_options():
    image = blocks()
    marked, marks, masks = set_of_mark(image, max_regions=3, fill=True, boundaries=False)
    assert 1 <= len(marks) <= 3 and len(masks) == len(marks)
    regions = propose_regions(image, max_regions=4)
    assert 1 <= len(regions) <= 4 and all(r.shape == (200, 300) for r in regions)
    with pytest.raises(UserError, match="needs the SAM model"):
        set_of_mark(image, method="sam")
    with pytest.raises(Exception):
        set_of_mark(image, max_regions=0)


def test_a_flat_image_is_one_region_labelled_near_its_middle():
    marked, marks, masks = set_of_mark(Image.new("RGB", (640, 480), (120, 120, 120)))
    assert len(marks) == 1 and marks[0].area == 640 * 480
    x, y = marks[0].center
    assert abs(x - 320) < 40 and abs(y - 240) < 40


@pytest.mark.parametrize("text, ids", [
    ("The cat is [2] and the dog is mark 4.", [2, 4]),
    ("marks 2 and 5, then region 4", [2, 5, 4]),
    ("see #2 and [3] and again [2]", [2, 3]),
    ("There are 3 cats and 2 dogs.", []),
    ("Regions 1, 3, and 7 are trees; Mark 10 is sky.", [1, 3, 7, 10]),
    ("[1, 6] look alike", [1, 6]),
    ("", []),
])
def test_parse_mark_refs(text, ids):
    assert parse_mark_refs(text) == ids


def test_parse_and_highlight_round_trip(som_blocks):
    image, _, _, masks = som_blocks
    ids = parse_mark_refs("The cat is [2] and the dog is mark 4.")
    assert ids == [2, 4]
    out = highlight_marks(image, masks, ids)
    diff = np.any(np.asarray(out).astype(int) != np.asarray(image).astype(int), axis=-1)
    cited = masks[1] | masks[3]
    assert not diff[~cited].any()  # nothing outside the cited regions changes
    assert diff[masks[1]].mean() > 0.5 and diff[masks[3]].mean() > 0.5
    with pytest.raises(UserError, match="no mark 9"):
        highlight_marks(image, masks, [9])


def test_highlight_accepts_marks_and_dicts(som_blocks):
    image, _, marks, masks = som_blocks
    by_box = highlight_marks(image, marks, [1], color="green")
    by_dict = highlight_marks(image, {1: masks[0]}, [1], color="green")
    x0, y0, x1, y1 = marks[0].bbox
    assert np.asarray(by_box)[y0 + 20, x0 + 20, 1] > np.asarray(image)[y0 + 20, x0 + 20, 1]
    assert np.array_equal(np.asarray(by_box), np.asarray(by_dict))  # block 1 is its own box
    assert isinstance(marks[0], Mark)


def test_label_point_is_deep_inside():
    mask = np.zeros((100, 200), dtype=bool)
    mask[10:90, 20:60] = True  # a tall bar ...
    mask[40:60, 60:190] = True  # ... with a long thin arm
    x, y = label_point(mask)
    assert 25 <= x <= 55 and 20 <= y <= 80


def test_sam_method_on_a_tiny_random_model():
    import torch
    from transformers import (
        SamConfig, SamImageProcessorPil, SamMaskDecoderConfig, SamModel, SamProcessor, SamPromptEncoderConfig,
        SamVisionConfig,
    )

    vision = SamVisionConfig(hidden_size=32, output_channels=16, num_hidden_layers=1, num_attention_heads=2,
                             image_size=64, patch_size=8, window_size=4, global_attn_indexes=[0], mlp_dim=32,
                             num_pos_feats=8)
    config = SamConfig(vision_config=vision,
                       prompt_encoder_config=SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8),
                       mask_decoder_config=SamMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_attention_heads=2,
                                                                iou_head_hidden_dim=16))
    torch.manual_seed(0)
    bundle = SimpleNamespace(model=SamModel(config).eval(), processor=SamProcessor(image_processor=SamImageProcessorPil(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 32}, mask_pad_size={"height": 32, "width": 32})))
    image = blocks()
    marked, marks, masks = set_of_mark(image, max_regions=5, method="sam", sam_bundle=bundle)
    assert len(marks) <= 5 and marked.size == image.size
    for mark, mask in zip(marks, masks):
        assert mask.shape == (200, 300) and mask[mark.center[1], mark.center[0]]


def test_set_of_mark_on_a_2048_image_is_fast():
    image = blocks(2048, 2048).resize((2048, 2048))
    ImageDraw.Draw(image).ellipse((600, 600, 1400, 1400), fill=(120, 60, 160))
    start = time.perf_counter()
    marked, marks, masks = set_of_mark(image)
    assert time.perf_counter() - start < 3.0 and marked.size == (2048, 2048) and len(marks) >= 6


# --------------------------------------------------------------------------------------------
# The fast proposals are the method they replaced (tests/tools/som_reference.py), on real photos
# --------------------------------------------------------------------------------------------
def photo(name: str, size: tuple[int, int]) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB").resize(size, Image.Resampling.BICUBIC)


@pytest.mark.parametrize("name, size", [
    ("chelsea", (2048, 1536)),  # the benchmark's size
    ("astronaut", (1999, 1333)),  # the working copy is not an exact fraction of it
    ("coffee", (2800, 2700)),  # boundaries wide enough to be grown twice
])
def test_marks_on_photos_are_those_of_the_method_before_the_speed_up(name, size):
    from scipy import ndimage

    from tests.tools import som_reference as reference
    from tools.regions import mask_bbox

    image = photo(name, size)
    marked, marks, masks = set_of_mark(image)
    before, ref_marks, ref_masks = reference.set_of_mark(image)
    assert len(marks) == len(ref_masks) >= 5  # the same number of marks
    for mark, mask, ref_mark, ref in zip(marks, masks, ref_marks, ref_masks):
        assert (mask & ref).sum() / (mask | ref).sum() > 0.95, f"mark {mark.id} is not the region it was"
        assert mark.bbox == mask_bbox(mask) and mark.area == mask.sum()
        x, y = mark.center
        assert mask[y, x], f"the number of mark {mark.id} is outside its region"
        # as deep inside its region as before (the depth grid is coarser; on a wide plateau the point may move)
        depth = ndimage.distance_transform_edt(np.pad(mask[::4, ::4], 1))[1:-1, 1:-1]
        old_x, old_y = ref_mark.center
        assert depth[y // 4, x // 4] >= 0.9 * depth[old_y // 4, old_x // 4] - 1, f"mark {mark.id}'s number is shallower"
    covered, ref_covered = np.logical_or.reduce(masks), np.logical_or.reduce(ref_masks)
    assert (covered == ref_covered).mean() > 0.99 and covered.mean() > 0.8  # the regions cover the image as before
    # the boundary lines are the same pixels in the same colours: outside the numbers' boxes nothing differs
    numbers = np.zeros(covered.shape, dtype=bool)
    for mark in marks + ref_marks:
        x0, y0, x1, y1 = mark.label_box
        numbers[y0:y1 + 1, x0:x1 + 1] = True
    differ = np.any(np.asarray(marked) != np.asarray(before), axis=-1) & ~numbers
    assert differ.mean() < 0.001


def test_set_of_mark_is_faster_than_the_method_before_the_speed_up():
    from tests.tools import som_reference as reference

    image = photo("chelsea", (2048, 1536))
    set_of_mark(image), reference.set_of_mark(image)  # imports warm for both; both draw the same marks
    old, new = [], []
    for _ in range(3):  # alternating, so both see the same machine load
        start = time.perf_counter()
        reference.set_of_mark(image)
        old.append(time.perf_counter() - start)
        start = time.perf_counter()
        set_of_mark(image)
        new.append(time.perf_counter() - start)
    assert np.median(new) * 1.3 < np.median(old), f"{np.median(new):.3f} s vs {np.median(old):.3f} s before"


def test_a_thin_region_the_depth_grid_misses_still_gets_its_number_on_it():
    mask = np.zeros((1000, 1000), dtype=bool)
    mask[3, :] = True  # a one-pixel cross whose row and column fall between the grid's points
    mask[:, 5] = True
    x, y = label_point(mask)
    assert mask[y, x]
