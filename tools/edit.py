"""Editing images by talking: instruct-pix2pix (whole image), inpainting in a marked region, object removal.

    >>> result = edit_image(registry, image, "make it winter", seed=7)            # whole image
    >>> mask = mask_from_markers(session_markers, image.size)
    >>> result = inpaint(registry, image, mask, "a red balloon")                  # only the marked region
    >>> result = remove_object(registry, image, mask, target="the dog")           # fill with background
    >>> result.image, result.seed                                                 # PIL image, seed used

Every function returns a :class:`tools.diffusion.ImageResult` (the image, always the size of the input, and
the seed that made it; ``seed=None`` picks a random one and reports it). Sizes, seeds, checks and progress follow
:mod:`tools.diffusion`. A whole-image edit brings back the model's *change*, not its low-resolution picture
(:mod:`tools.keep_detail`): a 12 MP photo keeps its detail wherever the model changed little. Inpainting crops a
window around the region first (at least the native side, when the image is larger), so a small region of a
large photo is repainted at full detail, and composites the result with a feathered mask: pixels outside the
feathered mask are the input's, bit for bit.

Checks (empty instruction, bad steps, empty mask) raise :class:`tools.errors.UserError` before any model is
loaded; ``total`` in ``progress(step, total)`` is the number of scheduler steps actually run (PNDM runs one more
than asked). Models come from the registry (``models.get("pix2pix" | "inpaint")``), which owns device and dtype.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.diffusion import (SEED_FIELD, STEPS_FIELD, ImageResult, Progress, check_image, check_steps, check_text,
                             clean_text, make_generator, native_side, resize, resolve_seed, step_callback, working_size)
from tools.errors import UserError
from tools.keep_detail import apply_change, vae_roundtrip

REMOVE_PROMPT = "background, empty scene, seamless, natural continuation of the surroundings"
REMOVE_NEGATIVE = "{target}, object, person, animal, text, watermark, logo, frame, blurry, distorted, artifacts"
EMPTY_MASK = "The marked region is empty; click on the image first."


# --------------------------------------------------------------------------------------------
# Inputs (the tools' schemas)
# --------------------------------------------------------------------------------------------
class EditInput(BaseModel):
    """Edit an image as instructed. Without markers the whole image is changed (instruct-pix2pix, e.g.
    'make it winter'); with markers on the image only the marked region is repainted (inpainting)."""

    model_config = ConfigDict(extra="forbid")

    instruction: str = Field(
        description="What to change, as an instruction for the whole image ('make it look like a watercolor', "
        "'turn the sky red') or, when the image has markers, what should appear in the marked region "
        "('a red balloon'). Up to 1000 characters.",
    )
    steps: int | None = Field(None, **STEPS_FIELD)
    seed: int | None = Field(None, **SEED_FIELD)
    guidance_scale: float | None = Field(
        None, ge=0.0, le=50.0,
        description="How strongly to follow the instruction (0 to 50, typically 5 to 10); leave empty for the default.",
    )
    region: bool = Field(
        True,
        description="When the image has markers (clicked points, boxes), repaint only the marked region "
        "(inpainting). False edits the whole image even if it has markers.",
    )
    target: str | None = Field(
        None,
        description="The region to repaint, named in words instead of clicked (e.g. 'the cat'): it is found in "
        "the image and only it is repainted with the instruction ('a tiger'). Leave empty to use the markers.",
    )
    choice: int | None = Field(
        None, ge=1, le=32,
        description="When the target matched several places and they were shown numbered: the number chosen.",
    )

    @field_validator("instruction", mode="before")
    @classmethod
    def _instruction(cls, value):
        return clean_text(value, "instruction", "'make it winter'")

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value):
        return None if value is None else clean_text(value, "target", "'the cat'", limit=200)


class RemoveInput(BaseModel):
    """Remove an object from an image and fill its place with matching background. The object is the region
    designated by the markers on the image, or, without markers, the one the target names (found in the image)."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(
        "the object",
        description="What is being removed, in a few words (e.g. 'the dog', 'the power lines'); it steers the "
        "model away from painting it back; without markers it is found in the image by these words.",
    )
    steps: int | None = Field(None, **STEPS_FIELD)
    seed: int | None = Field(None, **SEED_FIELD)
    choice: int | None = Field(
        None, ge=1, le=32,
        description="When the target matched several places and they were shown numbered: the number chosen.",
    )

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value):
        return clean_text(value, "target", "'the dog'", limit=200)


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------
def mask_from_markers(markers: Iterable[Any], size: tuple[int, int], masks=None) -> np.ndarray:
    """The union of the regions the markers designate (:func:`tools.markers.region_mask`; contour markers
    take their mask from ``masks`` by index), a bool array of shape (height, width)."""
    from tools.markers import union_mask

    return np.asarray(union_mask(list(markers), size, masks), dtype=bool)


def check_mask(mask: Any, size: tuple[int, int]) -> np.ndarray:
    """``mask`` as a bool (height, width) array matching ``size``; UserError when it is empty or misshapen."""
    if isinstance(mask, Image.Image):
        mask = np.asarray(mask.convert("L")) > 127
    try:
        mask = np.asarray(mask)
    except Exception:  # noqa: BLE001
        raise UserError("The mask must be an array of booleans the size of the image.") from None
    width, height = size
    if mask.ndim != 2 or mask.shape != (height, width):
        shape = "x".join(str(s) for s in mask.shape[::-1]) or "a scalar"
        raise UserError(f"The mask is {shape} but the image is {width}x{height}; they must match.")
    mask = mask.astype(bool)
    if not mask.any():
        raise UserError(EMPTY_MASK)
    return mask


def feather_mask(mask: np.ndarray, dilate: int = 8, feather: int = 6) -> np.ndarray:
    """Blend weights in [0, 1] (float32, same shape): 1 in ``mask`` grown by ``dilate`` pixels, falling
    smoothly to 0 over the next ``feather`` pixels, and exactly 0 beyond."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if dilate < 0 or feather < 0:
        raise UserError("Mask dilation and feathering must be 0 or more pixels.")
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.float32)
    distance = ndimage.distance_transform_edt(~mask)  # 0 inside, pixels to the region outside
    ramp = np.clip((dilate + feather + 1 - distance) / (feather + 1), 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: keeps 0 and 1 exact
    ramp[distance <= dilate] = 1.0
    return ramp.astype(np.float32)


def _crop_box(alpha: np.ndarray, side: int) -> tuple[int, int, int, int]:
    """A window around the non-zero part of ``alpha``: the region plus context on every side, at least
    ``side`` pixels wide and high when the image allows, clamped to the image."""
    height, width = alpha.shape
    ys, xs = np.nonzero(alpha)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    pad = max(32, (max(x1 - x0, y1 - y0)) // 2)  # context around the region

    def span(lo: int, hi: int, limit: int) -> tuple[int, int]:
        lo, hi = lo - pad, hi + pad
        short = side - (hi - lo)
        if short > 0:
            lo, hi = lo - short // 2, hi + short - short // 2
        if lo < 0:
            lo, hi = 0, hi - lo
        if hi > limit:
            lo, hi = max(0, lo - (hi - limit)), limit
        return lo, hi

    x0, x1 = span(x0, x1, width)
    y0, y1 = span(y0, y1, height)
    return x0, y0, x1, y1


# --------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------
def edit_image(
    models,
    image: Image.Image,
    instruction: str,
    *,
    steps: int = 20,
    seed: int | None = None,
    guidance_scale: float = 7.5,
    image_guidance_scale: float = 1.5,
    progress: Progress | None = None,
) -> ImageResult:
    """Change the whole image as instructed (instruct-pix2pix), e.g. 'make it winter'."""
    # 1. check inputs before any compute
    image = check_image(image)
    instruction = check_text(instruction, "instruction", "'make it winter'")
    steps = check_steps(steps)
    seed = resolve_seed(seed)
    # 2. working copy at the model's resolution, and what the model's VAE keeps of it
    pipe = models.get("pix2pix")
    size = working_size(image.size, native_side(pipe))
    working = resize(image, size)
    reference = vae_roundtrip(pipe, working)
    # 3. denoise
    out = pipe(
        prompt=instruction,
        image=working,
        num_inference_steps=steps,
        guidance_scale=float(guidance_scale),
        image_guidance_scale=float(image_guidance_scale),
        generator=make_generator(pipe, seed),
        callback_on_step_end=step_callback(progress, steps),
    ).images[0]
    # 4. the change applied at the input's size: the photo's own detail stays where the model changed little
    return ImageResult(image=apply_change(image, out.convert("RGB"), reference), seed=seed, working_size=size)


def inpaint(
    models,
    image: Image.Image,
    mask: np.ndarray,
    prompt: str,
    *,
    steps: int = 20,
    seed: int | None = None,
    guidance_scale: float = 7.5,
    dilate: int = 8,
    feather: int = 6,
    negative_prompt: str | None = None,
    progress: Progress | None = None,
) -> ImageResult:
    """Repaint the masked region with ``prompt``; everything outside the feathered mask is kept exactly."""
    # 1. check inputs before any compute
    image = check_image(image)
    mask = check_mask(mask, image.size)
    prompt = check_text(prompt, "prompt", "'a red balloon'")
    if negative_prompt is not None:
        negative_prompt = " ".join(str(negative_prompt).split()) or None
    steps = check_steps(steps)
    seed = resolve_seed(seed)
    alpha = feather_mask(mask, dilate, feather)
    # 2. a window around the region, at the model's resolution
    pipe = models.get("inpaint")
    side = native_side(pipe)
    box = _crop_box(alpha, side)
    crop = image.crop(box)
    size = working_size(crop.size, side)
    crop_alpha = alpha[box[1]:box[3], box[0]:box[2]]
    region = Image.fromarray(((crop_alpha > 0) * 255).astype(np.uint8), "L").resize(size, Image.Resampling.BILINEAR)
    region = region.point(lambda v: 255 if v > 0 else 0)
    # 3. denoise
    out = pipe(
        prompt=prompt,
        negative_prompt=negative_prompt,
        image=resize(crop, size),
        mask_image=region,
        height=size[1],
        width=size[0],
        strength=1.0,
        num_inference_steps=steps,
        guidance_scale=float(guidance_scale),
        generator=make_generator(pipe, seed),
        callback_on_step_end=step_callback(progress, steps),
    ).images[0]
    # 4. composite: original * (1 - alpha) + result * alpha, exactly the original where alpha == 0
    painted = np.asarray(resize(out.convert("RGB"), crop.size), dtype=np.float32)
    original = np.asarray(image, dtype=np.uint8).copy()
    window = original[box[1]:box[3], box[0]:box[2]]
    a = crop_alpha[..., None]
    blended = np.rint(window.astype(np.float32) * (1.0 - a) + painted * a).clip(0, 255).astype(np.uint8)
    original[box[1]:box[3], box[0]:box[2]] = np.where(a > 0, blended, window)
    return ImageResult(image=Image.fromarray(original, "RGB"), seed=seed, working_size=size)


def remove_object(
    models,
    image: Image.Image,
    mask: np.ndarray,
    *,
    target: str = "the object",
    steps: int = 20,
    seed: int | None = None,
    guidance_scale: float = 7.5,
    dilate: int = 8,
    feather: int = 6,
    progress: Progress | None = None,
) -> ImageResult:
    """Erase the masked object: inpaint the region with background, steering away from ``target``."""
    target = check_text(target, "target", "'the dog'", limit=200)
    return inpaint(
        models, image, mask, REMOVE_PROMPT,
        steps=steps, seed=seed, guidance_scale=guidance_scale, dilate=dilate, feather=feather,
        negative_prompt=REMOVE_NEGATIVE.format(target=target), progress=progress,
    )


__all__: Sequence[str] = (
    "EditInput", "RemoveInput", "edit_image", "inpaint", "remove_object", "mask_from_markers", "feather_mask",
    "check_mask",
)
