"""Square images for vision towers trained on squares: pad them (LLaVA's ``expand2square``), never crop them.

CLIP-style image processors (LLaVA-1.5's, ViP-LLaVA's, CLIP ViT-L/14-336's) resize the short side and cut a
centred square out of the image: on a 16:9 photo the outer 22 % of the width never reaches the model, and a
marker placed there is never seen. LLaVA-1.5 and ViP-LLaVA were trained with ``image_aspect_ratio pad``: the
image is pasted centred on a square canvas filled with the processor's mean colour, and the processor then
resizes that square whole (haotian-liu/LLaVA ``llava/mm_utils.py`` ``expand2square`` and ``process_images``).

    >>> square = expand2square(photo, mean_colour(processor))          # (122, 116, 104) for CLIP's mean
    >>> images = square_images([photo], processor, "auto")             # what the processor should receive

The setting (``models.<name>.image_aspect_ratio`` in the config):

- ``pad``: always pad to square first;
- ``processor``: hand the image to the checkpoint's processor as it is (CLIP-style ones centre-crop, SigLIP's
  squeezes the image to a square, LLaVA-NeXT's tiles it);
- ``auto`` (the default): pad exactly when the processor would centre-crop a non-square image to one square,
  which is the case of every LLaVA-1.5 / ViP-LLaVA / CLIP checkpoint and of none of the others.

Pure Pillow: nothing here loads a model.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from PIL import Image

AspectRatio = Literal["auto", "pad", "processor"]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's image mean: the fill when a processor has none
CLIP_FILL = tuple(int(x * 255) for x in CLIP_MEAN)  # (122, 116, 104): LLaVA-1.5's padding colour


def _image_processor(processor: Any) -> Any:
    """The image processor of a multimodal processor (or the image processor itself)."""
    return getattr(processor, "image_processor", processor)


def mean_colour(processor: Any) -> tuple[int, int, int]:
    """The processor's mean colour as 0-255 ints, truncated as LLaVA does: (122, 116, 104) for CLIP's mean."""
    mean = getattr(_image_processor(processor), "image_mean", None) or CLIP_MEAN
    if isinstance(mean, (int, float)):
        mean = (mean, mean, mean)
    return tuple(int(x * 255) for x in mean)  # type: ignore[return-value]


def expand2square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """``image`` pasted centred on a square canvas of its longer side filled with ``fill`` (RGB); a square
    image comes back as it is. The same pixels as LLaVA's ``expand2square`` for an RGB image."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new("RGB", (side, side), tuple(fill))
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def centre_crops(processor: Any) -> bool:
    """Whether the processor cuts a non-square image down to one centred square, losing its sides.

    A processor that tiles the image (LLaVA-NeXT's ``image_grid_pinpoints``, "anyres") sees all of it, and one
    without ``do_center_crop`` (SigLIP, BLIP: resized to a square) squeezes it but keeps every pixel.
    """
    image_processor = _image_processor(processor)
    if getattr(image_processor, "image_grid_pinpoints", None):
        return False
    return bool(getattr(image_processor, "do_center_crop", False))


def pads(processor: Any, setting: str = "auto") -> bool:
    """Whether images for ``processor`` are padded to square under ``setting`` (``auto``, ``pad``, ``processor``)."""
    if setting == "pad":
        return True
    if setting == "processor":
        return False
    if setting != "auto":
        raise ValueError(f"image_aspect_ratio must be 'auto', 'pad' or 'processor', not {setting!r}")
    return centre_crops(processor)


def input_side(processor: Any) -> int | None:
    """The side of the square the processor hands the model (336 for LLaVA-1.5), None when it has none."""
    image_processor = _image_processor(processor)
    for attr in ("crop_size", "size"):
        value = getattr(image_processor, attr, None)
        for key in ("height", "shortest_edge"):
            side = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
            if side:
                return int(side)
    return None


def shrunk(image: Image.Image, side: int | None, padded: bool) -> Image.Image:
    """``image`` downscaled (Lanczos) when it is over four times the model's input ``side``, keeping twice that
    side where the processor's resize reads it: the longer side of an image to be padded, the shorter otherwise
    (CLIP-style processors resize the shorter side, SigLIP's squeezes both). Same geometry, a fraction of the
    work: the processor no longer converts and resizes a 24 MP photo (or a 36 MP padded canvas) itself."""
    width, height = image.size
    if not side:
        return image
    scale = 2 * side / (max(width, height) if padded else min(width, height))
    if scale > 0.5:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def square_images(images: Sequence[Image.Image], processor: Any, setting: str = "auto") -> list[Image.Image]:
    """``images`` as ``processor`` should receive them (RGB): padded to square with its mean colour when
    :func:`pads` says so, otherwise as they are; first :func:`shrunk` when much larger than the model's input."""
    padded, side = pads(processor, setting), input_side(processor)
    fill = mean_colour(processor)
    out = []
    for image in images:
        image = shrunk(image if image.mode == "RGB" else image.convert("RGB"), side, padded)
        out.append(expand2square(image, fill) if padded else image)
    return out


__all__ = ["AspectRatio", "CLIP_FILL", "CLIP_MEAN", "centre_crops", "expand2square", "input_side", "mean_colour",
           "pads", "shrunk", "square_images"]
