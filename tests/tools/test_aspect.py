"""Padding to square as LLaVA-1.5 was trained (tools.aspect): LLaVA's own pixels, the mean colour, when to pad."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from tools.aspect import centre_crops, expand2square, input_side, mean_colour, pads, square_images, shrunk


def llava_expand2square(pil_img, background_color):
    """haotian-liu/LLaVA llava/mm_utils.py, verbatim: the reference the training data went through."""
    width, height = pil_img.size
    if width == height:
        return pil_img
    elif width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    else:
        result = Image.new(pil_img.mode, (height, height), background_color)
        result.paste(pil_img, ((height - width) // 2, 0))
        return result


def clip_processor(**kwargs):
    from transformers import CLIPImageProcessorPil

    defaults = dict(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, do_center_crop=True,
                    image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
    return CLIPImageProcessorPil(**{**defaults, **kwargs})


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.mark.parametrize("size", [(451, 300), (300, 451), (7, 300), (300, 7), (301, 100), (1, 2), (64, 64)])
def test_the_pixels_are_llavas(photo, size):
    image = ImageOps.fit(photo, size)
    fill = mean_colour(clip_processor())
    assert fill == (122, 116, 104)  # LLaVA truncates mean * 255
    ours, theirs = expand2square(image, fill), llava_expand2square(image, fill)
    assert ours.size == theirs.size == (max(size),) * 2
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_only_processors_that_centre_crop_are_padded_by_default():
    from transformers import SiglipImageProcessorPil

    clip = clip_processor()
    siglip = SiglipImageProcessorPil(size={"height": 384, "width": 384}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    anyres = clip_processor()
    anyres.image_grid_pinpoints = [[336, 672], [672, 336]]  # LLaVA-NeXT tiles the image instead
    assert centre_crops(clip) and pads(clip) and pads(clip, "pad") and not pads(clip, "processor")
    assert not centre_crops(siglip) and not pads(siglip) and pads(siglip, "pad")
    assert not centre_crops(anyres) and not pads(anyres)
    assert mean_colour(siglip) == (127, 127, 127)
    with pytest.raises(ValueError, match="image_aspect_ratio"):
        pads(clip, "crop")


def test_square_images_keeps_the_whole_photo_in_the_square(photo):
    processor = clip_processor()
    wide = ImageOps.fit(photo, (6000, 1500))
    (square,) = square_images([wide], processor)
    assert square.width == square.height == 2 * input_side(processor)  # shrunk first, twice the model's 336
    rows = np.asarray(square).reshape(square.height, -1, 3)
    fill = np.all(rows == (122, 116, 104), axis=(1, 2))
    assert fill[: square.height * 3 // 8 - 1].all() and fill[square.height * 5 // 8 + 1:].all()
    assert not fill[square.height * 3 // 8 + 1: square.height * 5 // 8 - 1].any()  # the photo, its full width
    assert square_images([wide], processor, "processor")[0].size == (2688, 672)  # shorter side kept at 2 x 336
    grey = Image.new("L", (40, 20), 90)
    assert square_images([grey], processor)[0].mode == "RGB"


def test_shrinking_keeps_the_geometry_and_small_images_alone(photo):
    big = ImageOps.fit(photo, (4000, 3000))
    assert shrunk(big, 336, padded=True).size == (672, 504)
    assert shrunk(big, 384, padded=False).size == (1024, 768)
    small = ImageOps.fit(photo, (1000, 750))
    assert shrunk(small, 336, padded=True) is small and shrunk(big, None, padded=True) is big
