"""Making new images: text-to-image (Stable Diffusion) and sketch-to-image (ControlNet scribble).

    >>> result = generate_image(registry, "a lighthouse at dusk", seed=3, size=(640, 448))
    >>> result = sketch_to_image(registry, sketch, "a cat on a sofa")     # the sketch fixes the layout
    >>> result.image, result.seed

Both return :class:`tools.diffusion.ImageResult` (the image and the seed that made it; ``seed=None`` picks a
random seed and reports it). Sketch-to-image builds a ``StableDiffusionControlNetPipeline`` on the fly
with ``from_pipe``: it shares the text encoder, VAE, UNet and scheduler of the registry's loaded
"txt2img" pipeline (no weights are copied) and adds the registry's "controlnet" model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.diffusion import (SEED_FIELD, STEPS_FIELD, ImageResult, Progress, check_image, check_steps, check_text,
                             clean_text, make_generator, native_side, resize, resolve_seed, round8, step_callback,
                             working_size)
from tools.errors import UserError

MIN_SIZE, MAX_SIZE = 64, 1024


class _PromptInput(BaseModel):
    """What both pictures from a prompt take: the prompt, the steps, the seed; sizes rounded to multiples of 8."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    steps: int | None = Field(None, **STEPS_FIELD)
    seed: int | None = Field(None, **SEED_FIELD)

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value):
        return clean_text(value, "prompt", "'a lighthouse at dusk, oil painting'")

    @field_validator("width", "height", check_fields=False)
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        return None if value is None else min(MAX_SIZE, max(MIN_SIZE, round8(value)))


class GenerateInput(_PromptInput):
    """Create a new image from a text description (Stable Diffusion text-to-image)."""

    prompt: str = Field(
        description="What the image should show, as a short description with style words, e.g. 'a lighthouse at "
        "dusk, oil painting'. Up to 1000 characters.",
    )
    width: int = Field(512, ge=MIN_SIZE, le=MAX_SIZE,
                       description="Width in pixels, 64 to 1024 (rounded to a multiple of 8); default 512.")
    height: int = Field(512, ge=MIN_SIZE, le=MAX_SIZE,
                        description="Height in pixels, 64 to 1024 (rounded to a multiple of 8); default 512.")


class SketchInput(_PromptInput):
    """Turn a sketch into a picture: the drawing fixes the layout, the prompt says what it shows
    (ControlNet scribble)."""

    prompt: str = Field(
        description="What the finished picture shows, e.g. 'a cat sitting on a sofa, photo'. Up to 1000 characters.",
    )
    width: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE,
                              description="Width in pixels, 64 to 1024 (a multiple of 8); default: the sketch's.")
    height: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE,
                               description="Height in pixels, 64 to 1024 (a multiple of 8); default: the sketch's.")

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) when both are given; None: the sketch's own size."""
        return (self.width, self.height) if self.width and self.height else None


def check_size(size: Any) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise UserError(f"The size must be (width, height) in pixels, not {size!r}.") from None
    if not (MIN_SIZE <= w <= MAX_SIZE and MIN_SIZE <= h <= MAX_SIZE):
        raise UserError(f"The size {w}x{h} is out of range; each side must be {MIN_SIZE} to {MAX_SIZE} pixels.")
    return w, h


def scribble_from_sketch(sketch: Image.Image, size: tuple[int, int] | None = None) -> Image.Image:
    """A ControlNet scribble: white lines on black (RGB). A dark-on-light drawing is inverted; the lines
    are separated from the background with Otsu's threshold. A blank sketch gives an all-black scribble."""
    gray = ImageOps.grayscale(check_image(sketch, "sketch"))
    if size is not None and gray.size != tuple(size):
        gray = gray.resize(tuple(size), Image.Resampling.BOX if size[0] < gray.width else Image.Resampling.BILINEAR)
    values = np.asarray(gray, dtype=np.uint8)
    if np.median(values) > 127:  # the background is light: lines are dark
        values = 255 - values
    lo, hi = int(values.min()), int(values.max())
    if hi - lo < 16:  # no drawing at all
        return Image.new("RGB", gray.size, (0, 0, 0))
    from skimage.filters import threshold_otsu

    level = float(threshold_otsu(values))
    lines = np.where(values > level, 255, 0).astype(np.uint8)
    return Image.fromarray(lines, "L").convert("RGB")


def generate_image(
    models,
    prompt: str,
    *,
    steps: int = 20,
    seed: int | None = None,
    size: tuple[int, int] | None = (512, 512),
    guidance_scale: float = 7.5,
    negative_prompt: str | None = None,
    progress: Progress | None = None,
) -> ImageResult:
    """A new image of ``size`` (width, height) showing ``prompt``; ``size=None`` uses the model's native
    resolution (512x512 for SD 1.5)."""
    # 1. check inputs before any compute
    prompt = check_text(prompt, "prompt", "'a lighthouse at dusk'")
    steps = check_steps(steps)
    seed = resolve_seed(seed)
    requested = check_size(size) if size is not None else None
    # 2. compute at multiples of 8
    pipe = models.get("txt2img")
    if requested is None:
        requested = (native_side(pipe),) * 2
    work = (round8(requested[0]), round8(requested[1]))
    out = pipe(
        prompt=prompt,
        negative_prompt=negative_prompt,
        width=work[0],
        height=work[1],
        num_inference_steps=steps,
        guidance_scale=float(guidance_scale),
        generator=make_generator(pipe, seed),
        callback_on_step_end=step_callback(progress, steps),
    ).images[0]
    return ImageResult(image=resize(out.convert("RGB"), requested), seed=seed, working_size=work)


def controlnet_pipeline(models):
    """A ControlNet pipeline sharing every component of the loaded "txt2img" pipeline (nothing copied).

    ``from_pipe`` casts the new pipeline to float32 unless told otherwise, which would silently upcast the
    shared fp16 UNet/VAE in place: the dtype is passed explicitly.
    """
    import logging

    from diffusers import StableDiffusionControlNetPipeline

    base = models.get("txt2img")
    controlnet = models.get("controlnet")
    # from_pipe ends with pipe.to(dtype=...), a no-op here, but ModelMixin.to warns on every dtype argument
    quiet = logging.getLogger("diffusers.models.modeling_utils")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        pipe = StableDiffusionControlNetPipeline.from_pipe(base, controlnet=controlnet, dtype=base.dtype)
    finally:
        quiet.setLevel(level)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sketch_to_image(
    models,
    sketch: Image.Image,
    prompt: str,
    *,
    steps: int = 20,
    seed: int | None = None,
    size: tuple[int, int] | None = None,
    guidance_scale: float = 7.5,
    conditioning_scale: float = 1.0,
    negative_prompt: str | None = None,
    progress: Progress | None = None,
) -> ImageResult:
    """A picture following the lines of ``sketch`` and showing ``prompt``; the size of the sketch unless
    ``size`` (width, height) is given."""
    # 1. check inputs before any compute
    sketch = check_image(sketch, "sketch")
    prompt = check_text(prompt, "prompt", "'a cat on a sofa'")
    steps = check_steps(steps)
    seed = resolve_seed(seed)
    requested = check_size(size) if size is not None else sketch.size
    # 2. the scribble at the model's resolution
    pipe = controlnet_pipeline(models)
    work = working_size(requested, native_side(pipe))
    scribble = scribble_from_sketch(sketch, work)
    # 3. denoise
    out = pipe(
        prompt=prompt,
        negative_prompt=negative_prompt,
        image=scribble,
        width=work[0],
        height=work[1],
        num_inference_steps=steps,
        guidance_scale=float(guidance_scale),
        controlnet_conditioning_scale=float(conditioning_scale),
        generator=make_generator(pipe, seed),
        callback_on_step_end=step_callback(progress, steps),
    ).images[0]
    return ImageResult(image=resize(out.convert("RGB"), requested), seed=seed, working_size=work)


__all__ = [
    "GenerateInput", "SketchInput", "generate_image", "sketch_to_image", "scribble_from_sketch",
    "controlnet_pipeline", "check_size",
]
