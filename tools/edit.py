"""Editing images by talking: instruct-pix2pix (whole image), inpainting in a marked region, object removal.

    >>> result = edit_image(registry, image, "make it winter", seed=7)            # whole image
    >>> mask = mask_from_markers(session_markers, image.size)
    >>> result = inpaint(registry, image, mask, "a red balloon")                  # only the marked region
    >>> result = remove_object(registry, image, mask, target="the dog")           # fill with background
    >>> result.image, result.seed                                                 # PIL image, seed used

Result convention (shared with :mod:`tools.generate`): every function that makes an image returns an
:class:`ImageResult` with the image (always the size of the input, or the requested size) and the seed
that produced it. ``seed=None`` picks a random seed and reports it, so any result can be reproduced by
passing ``result.seed`` back with the same arguments.

Sizes: Stable Diffusion works on multiples of 8 near its native resolution (``unet.sample_size * 8``:
512 for SD 1.5, 64 for the tiny test checkpoints). Inputs are resized to a *working size* (longest side
= native side, each side a multiple of 8) and the result comes back at the input's size, so a 333x517 input
comes back 333x517. A whole-image edit brings back the model's *change*, not its low-resolution picture
(:mod:`tools.keep_detail`): a 12 MP photo keeps its detail wherever the model changed little. Inpainting crops a window around the region first (at least the native side, when the image is
larger), so a small region of a large photo is repainted at full detail, and composites the result with
a feathered mask: pixels outside the feathered mask are the input's, bit for bit.

Checks (empty instruction, bad steps, empty mask) raise :class:`chat.errors.UserError` before any model
is loaded. Progress is reported as ``progress(step, total)`` after every denoising step; ``total`` is the
number of scheduler steps actually run (PNDM runs one more than asked). A progress callback may raise to
cancel. Models come from the registry (``models.get("pix2pix" | "inpaint")``), which owns device and dtype.
"""

from __future__ import annotations

import secrets
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chat.config import MAX_STEPS
from chat.errors import UserError
from tools.keep_detail import apply_change, vae_roundtrip

Progress = Callable[[int, int], None]  # progress(step, total), step counts from 1

MAX_SEED = 2**32 - 1
MAX_PROMPT_CHARS = 1000
MIN_SIDE = 64  # no working side below this (the VAE and UNet need a few latent pixels)
REMOVE_PROMPT = "background, empty scene, seamless, natural continuation of the surroundings"
REMOVE_NEGATIVE = "{target}, object, person, animal, text, watermark, logo, frame, blurry, distorted, artifacts"
EMPTY_MASK = "The marked region is empty; click on the image first."


# --------------------------------------------------------------------------------------------
# Inputs (the router's tool schemas) and results
# --------------------------------------------------------------------------------------------
def _clean_text(value: Any, what: str, example: str, limit: int = MAX_PROMPT_CHARS) -> str:
    if not isinstance(value, str):
        raise ValueError(f"the {what} must be text, e.g. {example}")
    text = " ".join(value.split())
    if not text:
        raise ValueError(f"the {what} is empty; say what to do, e.g. {example}")
    if len(text) > limit:
        raise ValueError(f"the {what} is {len(text)} characters long; the limit is {limit}")
    return text


STEPS_FIELD = dict(ge=1, le=MAX_STEPS, description=f"Denoising steps, 1 to {MAX_STEPS}; more is slower and finer. "
                   "Leave empty for the configured default (about 20).")
SEED_FIELD = dict(ge=0, le=MAX_SEED, description="Random seed 0 to 4294967295 to reproduce an earlier result; "
                  "leave empty for a new random seed (the seed used is reported).")
IMAGE_FIELD = dict(description="Id of the image to edit, e.g. 'img1' or 'img1.v2'; leave empty for the active image.")


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
    image: str | None = Field(None, **IMAGE_FIELD)
    region: bool = Field(
        True,
        description="When the image has markers (clicked points, boxes), repaint only the marked region "
        "(inpainting). False edits the whole image even if it has markers.",
    )

    @field_validator("instruction", mode="before")
    @classmethod
    def _instruction(cls, value):
        return _clean_text(value, "instruction", "'make it winter'")


class RemoveInput(BaseModel):
    """Remove the marked object from an image and fill its place with matching background. The object is
    the region designated by the markers on the image (click on it first)."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(
        "the object",
        description="What is being removed, in a few words (e.g. 'the dog', 'the power lines'); it steers the "
        "model away from painting it back.",
    )
    steps: int | None = Field(None, **STEPS_FIELD)
    seed: int | None = Field(None, **SEED_FIELD)
    image: str | None = Field(None, **IMAGE_FIELD)

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value):
        return _clean_text(value, "target", "'the dog'", limit=200)


class ImageResult(BaseModel):
    """An image made by a tool and the seed that made it (pass it back to reproduce the image)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    image: Image.Image
    seed: int = Field(ge=0, le=MAX_SEED)
    working_size: tuple[int, int] = Field(description="(width, height) the model actually ran at")

    def summary(self) -> str:
        w, h = self.image.size
        return f"{w}x{h} image (seed {self.seed}, computed at {self.working_size[0]}x{self.working_size[1]})"


# --------------------------------------------------------------------------------------------
# Shared diffusion helpers (also used by tools.generate)
# --------------------------------------------------------------------------------------------
def resolve_seed(seed: int | None) -> int:
    """``seed`` checked, or a fresh random one."""
    if seed is None:
        return secrets.randbelow(MAX_SEED + 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise UserError(f"The seed must be a whole number from 0 to {MAX_SEED}, not {seed!r}.")
    return int(seed)


def check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= int(steps) <= MAX_STEPS:
        raise UserError(f"The number of steps must be a whole number from 1 to {MAX_STEPS}, not {steps!r}.")
    return int(steps)


def check_text(value: Any, what: str, example: str, limit: int = MAX_PROMPT_CHARS) -> str:
    """The cleaned prompt/instruction, or a UserError saying what is wrong with it."""
    try:
        return _clean_text(value, what, example, limit)
    except ValueError as exc:
        text = str(exc)
        raise UserError(text[0].upper() + text[1:] + ".") from None


def check_image(image: Any, what: str = "image") -> Image.Image:
    if not isinstance(image, Image.Image):
        raise UserError(f"The {what} must be an image, not {type(image).__name__}.")
    if image.width < 1 or image.height < 1:
        raise UserError(f"The {what} has no pixels.")
    return image if image.mode == "RGB" else image.convert("RGB")


def native_side(pipe) -> int:
    """The resolution a pipeline's UNet was trained at: 512 for SD 1.5 (and the tiny ones), 768 for SD 2."""
    sample = getattr(pipe.unet.config, "sample_size", 64)
    sample = max(sample) if isinstance(sample, (tuple, list)) else int(sample)
    return int(sample) * int(getattr(pipe, "vae_scale_factor", 8))


def round8(value: float, multiple: int = 8) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def working_size(size: tuple[int, int], side: int, multiple: int = 8) -> tuple[int, int]:
    """``size`` scaled so its longest side is ``side``, each side a multiple of 8 and at least 64."""
    w, h = size
    scale = side / max(w, h)
    return max(MIN_SIDE, round8(w * scale, multiple)), max(MIN_SIDE, round8(h * scale, multiple))


def make_generator(pipe, seed: int):
    import torch

    device = getattr(pipe, "_execution_device", None) or pipe.device
    device = torch.device(device)
    return torch.Generator("cpu" if device.type == "mps" else device).manual_seed(seed)


def step_callback(progress: Progress | None):
    """A diffusers ``callback_on_step_end`` that reports ``progress(step, total)``; None without progress."""
    if progress is None:
        return None

    def on_step_end(pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        progress(step + 1, int(getattr(pipe, "num_timesteps", 0) or step + 1))
        return callback_kwargs

    return on_step_end


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == tuple(size) else image.resize(tuple(size), Image.Resampling.LANCZOS)


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
    working = _resize(image, size)
    reference = vae_roundtrip(pipe, working)
    # 3. denoise
    out = pipe(
        prompt=instruction,
        image=working,
        num_inference_steps=steps,
        guidance_scale=float(guidance_scale),
        image_guidance_scale=float(image_guidance_scale),
        generator=make_generator(pipe, seed),
        callback_on_step_end=step_callback(progress),
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
        image=_resize(crop, size),
        mask_image=region,
        height=size[1],
        width=size[0],
        strength=1.0,
        num_inference_steps=steps,
        guidance_scale=float(guidance_scale),
        generator=make_generator(pipe, seed),
        callback_on_step_end=step_callback(progress),
    ).images[0]
    # 4. composite: original * (1 - alpha) + result * alpha, exactly the original where alpha == 0
    painted = np.asarray(_resize(out.convert("RGB"), crop.size), dtype=np.float32)
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
    "EditInput", "RemoveInput", "ImageResult", "edit_image", "inpaint", "remove_object", "mask_from_markers",
    "feather_mask", "working_size", "native_side", "resolve_seed",
)
