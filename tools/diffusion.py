"""What every Stable Diffusion tool shares (:mod:`tools.edit`, :mod:`tools.generate`): limits, the seed, sizes,
the one-sentence input checks, the result type and the step callback.

    >>> seed = resolve_seed(None)                       # a fresh random seed, reported in the result
    >>> working_size((333, 517), 512)                   # (328, 512): longest side 512, multiples of 8
    >>> parse_seed(" 7 "), parse_size("640x448")        # (7, (640, 448)): a seed box and a size box

Result convention: every function that makes an image returns an :class:`ImageResult` with the image and the
seed that produced it; ``seed=None`` picks a random seed and reports it, so any result can be reproduced by
passing ``result.seed`` back with the same arguments.

Sizes: Stable Diffusion works on multiples of 8 near its native resolution (``unet.sample_size * 8``: 512 for
SD 1.5 and its tiny test checkpoints). Progress is ``progress(step, total)`` after every denoising step; a
callback may raise to cancel. The ``check_*`` helpers raise :class:`tools.errors.UserError` before any model
loads.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Callable

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from tools.errors import UserError
from tools.text import MAX_PROMPT_CHARS, clean_text

Progress = Callable[[int, int], None]  # progress(step, total), step counts from 1

MAX_STEPS = 150  # diffusion steps at most: the limit of every diffusion tool and of tools.edit_steps
MAX_SEED = 2**32 - 1
MIN_SIDE = 64  # no working side below this (the VAE and UNet need a few latent pixels)

STEPS_FIELD = dict(ge=1, le=MAX_STEPS, description=f"Denoising steps, 1 to {MAX_STEPS}; more is slower and finer. "
                   "Leave empty for the configured default (about 20).")
SEED_FIELD = dict(ge=0, le=MAX_SEED, description="Random seed 0 to 4294967295 to reproduce an earlier result; "
                  "leave empty for a new random seed (the seed used is reported).")


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
# Inputs: what a person typed, and the checks before any compute
# --------------------------------------------------------------------------------------------
def parse_seed(value: Any) -> int | None:
    """A seed as typed (a box, ``--seed S``): empty means None (a new random seed), else a whole number from 0
    to MAX_SEED; UserError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    problem = UserError(f"The seed must be a whole number from 0 to {MAX_SEED}, not {value!r}.")
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise problem
    try:
        seed = int(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise problem from None
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"The seed must be a whole number from 0 to {MAX_SEED}, not {seed}.")
    return seed


_SIZE = re.compile(r"\s*(\d{1,6})\s*[x×*,]\s*(\d{1,6})\s*", re.IGNORECASE)


def parse_size(text: Any) -> tuple[int, int]:
    """``'640x448'`` (also ``640×448``, ``640*448``, ``640,448``) -> (640, 448); the range is the schema's to
    check. UserError when it is not WIDTHxHEIGHT."""
    match = _SIZE.fullmatch(str(text if text is not None else ""))
    if not match:
        raise UserError(f"The size must be WIDTHxHEIGHT in pixels, e.g. 640x448, not '{text}'.")
    return int(match.group(1)), int(match.group(2))


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
        return clean_text(value, what, example, limit)
    except ValueError as exc:
        text = str(exc)
        raise UserError(text[0].upper() + text[1:] + ".") from None


def check_image(image: Any, what: str = "image") -> Image.Image:
    if not isinstance(image, Image.Image):
        raise UserError(f"The {what} must be an image, not {type(image).__name__}.")
    if image.width < 1 or image.height < 1:
        raise UserError(f"The {what} has no pixels.")
    return image if image.mode == "RGB" else image.convert("RGB")


# --------------------------------------------------------------------------------------------
# Sizes, generators, progress
# --------------------------------------------------------------------------------------------
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


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` at ``size`` (Lanczos); the image itself when it already has that size."""
    return image if image.size == tuple(size) else image.resize(tuple(size), Image.Resampling.LANCZOS)


def make_generator(pipe, seed: int):
    import torch

    device = getattr(pipe, "_execution_device", None) or pipe.device
    device = torch.device(device)
    return torch.Generator("cpu" if device.type == "mps" else device).manual_seed(seed)


def step_callback(progress: Progress | None, steps: int | None = None):
    """A diffusers ``callback_on_step_end`` that reports ``progress(step, total)``; None without progress.

    Counted in the steps asked for: PNDM (SD-1.5's scheduler) runs one model evaluation more than the steps
    (151 for 150), so the first, extra one is not reported and a person who asked for 150 sees 1/150 ... 150/150.
    A pipeline that runs fewer (img2img strength below 1) counts its own."""
    if progress is None:
        return None

    def on_step_end(pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        runs = int(getattr(pipe, "num_timesteps", 0) or steps or step + 1)
        total = min(runs, int(steps)) if steps else runs
        done = step + 1 - (runs - total)  # the extra evaluations come first (PNDM's warm-up)
        if done >= 1:
            progress(done, total)
        return callback_kwargs

    return on_step_end


__all__ = [
    "MAX_PROMPT_CHARS", "MAX_SEED", "MAX_STEPS", "MIN_SIDE", "SEED_FIELD", "STEPS_FIELD", "ImageResult", "Progress",
    "check_image", "check_steps", "check_text", "clean_text", "make_generator", "native_side", "parse_seed",
    "parse_size", "resize", "resolve_seed", "round8", "step_callback", "working_size",
]
