"""Regions from clicks: discs, boxes around masks, markers fitted to masks, SAM on a tiny random model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from chat.errors import UserError
from tools.markers import region_mask
from tools.regions import circle_region, marker_for_mask, mask_bbox, sam_masks, sam_region


@pytest.fixture(scope="module")
def tiny_sam():
    """A random-weight SamModel with 64 px inputs and its processor (built here, in well under a second)."""
    import torch
    from transformers import (
        SamConfig, SamImageProcessorPil, SamMaskDecoderConfig, SamModel, SamProcessor, SamPromptEncoderConfig,
        SamVisionConfig,
    )

    channels = 16
    vision = SamVisionConfig(
        hidden_size=32, output_channels=channels, num_hidden_layers=1, num_attention_heads=2, image_size=64,
        patch_size=8, window_size=4, global_attn_indexes=[0], mlp_dim=32, num_pos_feats=channels // 2,
    )
    prompt = SamPromptEncoderConfig(hidden_size=channels, image_size=64, patch_size=8, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=channels, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16)
    torch.manual_seed(0)
    model = SamModel(SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder))
    processor = SamProcessor(image_processor=SamImageProcessorPil(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 32}, mask_pad_size={"height": 32, "width": 32},
    ))
    return SimpleNamespace(processor=processor, model=model.eval())


def scene(w=120, h=90) -> Image.Image:
    image = Image.new("RGB", (w, h), (200, 210, 220))
    ImageDraw.Draw(image).ellipse((20, 20, 60, 60), fill=(200, 40, 30))
    return image


def test_circle_region_is_a_disc_around_the_click():
    mask = circle_region(50, 40, (100, 80), 15)
    assert mask.shape == (80, 100) and mask.dtype == bool and mask[40, 50] and not mask[40, 70]
    assert abs(mask.sum() - math.pi * 15 ** 2) < 0.06 * math.pi * 15 ** 2
    with pytest.raises(UserError, match=r"Point \(150, 40\) is outside the image \(100x80\)"):
        circle_region(150, 40, (100, 80), 15)


def test_mask_bbox_is_tight_and_exclusive():
    mask = np.zeros((50, 60), dtype=bool)
    mask[10:20, 5:45] = True
    assert mask_bbox(mask) == (5, 10, 45, 20)
    with pytest.raises(UserError, match="empty"):
        mask_bbox(np.zeros((5, 5), dtype=bool))


@pytest.mark.parametrize("shape", ["ellipse", "box", "circle", "cross", "point", "arrow"])
def test_marker_for_mask_designates_the_mask(shape):
    mask = np.zeros((90, 120), dtype=bool)
    mask[30:50, 40:90] = True
    marker = marker_for_mask(mask, shape=shape, color="blue")
    assert marker.shape == shape and marker.color == "blue" and mask[marker.y, marker.x]
    if shape in ("ellipse", "box", "circle", "cross", "arrow"):
        assert region_mask(marker, (120, 90))[mask].all()  # the whole object is inside the marked region


def test_marker_for_a_ring_shaped_mask_lands_on_the_ring():
    ring = circle_region(60, 45, (120, 90), 30) & ~circle_region(60, 45, (120, 90), 20)
    marker = marker_for_mask(ring, shape="point")
    assert ring[marker.y, marker.x]


def test_sam_region_returns_a_mask_of_the_image_size(tiny_sam):
    image = scene()
    mask = sam_region(tiny_sam, image, positive=[(40, 40)], negative=[(100, 80)])
    assert mask.shape == (90, 120) and mask.dtype == bool and mask.any()
    single = sam_region(tiny_sam, image.convert("L"), positive=[(40, 40)])
    assert single.shape == (90, 120) and single.dtype == bool


def test_sam_region_refuses_clicks_outside_the_image(tiny_sam):
    with pytest.raises(UserError, match=r"Point \(500, 5\) is outside the image \(120x90\)"):
        sam_region(tiny_sam, scene(), positive=[(500, 5)])
    with pytest.raises(Exception):
        sam_region(tiny_sam, scene(), positive=[])


def test_sam_masks_one_per_point(tiny_sam):
    masks, scores = sam_masks(tiny_sam, scene(), [(10, 10), (40, 40), (100, 80)], batch=2)
    assert masks.shape == (3, 90, 120) and masks.dtype == bool and scores.shape == (3,)
