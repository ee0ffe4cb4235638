"""A whole-image edit keeps the photo: on a 12 MP photo, the parts the model did not change keep their detail.

Random tiny weights change every pixel, so the measurement uses a deterministic stand-in for instruct-pix2pix:
a pipeline with a lossy VAE (2x2 average / bilinear: it loses fine detail as Stable Diffusion's does) that returns
its working-size input as its VAE gives it back, with one region changed and a little seeded drift elsewhere (the
real model never reproduces the untouched parts exactly). The real tiny pipeline's size test is in test_edit.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from tools.diffusion import native_side, working_size
from tools.diffusion import resize as _resize
from tools.edit import edit_image
from tools.keep_detail import apply_change, vae_roundtrip

BOX = (0.55, 0.2, 0.85, 0.6)  # the region the stand-in changes, as fractions of the image (x0, y0, x1, y1)
DRIFT = 2.0  # 0-255 levels of seeded noise the stand-in adds everywhere


class LossyVae:
    """AutoencoderKL's interface over a 2x2 average (encode) and a bilinear upsampling (decode)."""

    dtype = torch.float32

    def encode(self, x):
        latents = torch.nn.functional.avg_pool2d(x, 2)
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: latents))

    def decode(self, z):
        return SimpleNamespace(sample=torch.nn.functional.interpolate(z, scale_factor=2, mode="bilinear"))


class StandInPix2Pix:
    """Deterministic instruct-pix2pix: ``change(pixels, box)`` edits the working-size image as its VAE returns it."""

    def __init__(self, change, drift: float = DRIFT, side: int = 512):
        from diffusers.image_processor import VaeImageProcessor

        self.change, self.drift = change, drift
        self.vae, self.vae_scale_factor = LossyVae(), 8
        self.image_processor = VaeImageProcessor(vae_scale_factor=8)
        self.unet = SimpleNamespace(config=SimpleNamespace(sample_size=side // 8))
        self.device = self._execution_device = torch.device("cpu")

    def __call__(self, *, image, num_inference_steps, callback_on_step_end=None, **_):
        pixels = np.asarray(vae_roundtrip(self, image), np.float32)
        h, w = pixels.shape[:2]
        box = (int(BOX[0] * w), int(BOX[1] * h), int(BOX[2] * w), int(BOX[3] * h))
        pixels = self.change(pixels, box) + np.random.default_rng(0).normal(0, self.drift, pixels.shape)
        for step in range(num_inference_steps):
            if callback_on_step_end:
                callback_on_step_end(self, step, None, {})
        return SimpleNamespace(images=[Image.fromarray(np.rint(pixels).clip(0, 255).astype(np.uint8))])


class Models:
    def __init__(self, pipe):
        self.pipe = pipe

    def get(self, name):
        assert name == "pix2pix"
        return self.pipe


def invert_box(pixels, box):
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = 255 - pixels[y0:y1, x0:x1]
    return pixels


def warmer(pixels, _box):
    return pixels + np.array([12.0, 0.0, -12.0], np.float32)


@pytest.fixture(scope="module")
def photo():
    """About 12 MP of real photos at their own scale (scikit-image's, tiled): detail everywhere."""
    from skimage import data

    width, height, row = 4000, 3000, 500
    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.hubble_deep_field(),
               data.immunohistochemistry()]
    canvas = Image.new("RGB", (width, height))
    i = 0
    for y in range(0, height, row):
        x = 0
        while x < width:
            tile = Image.fromarray(sources[i % len(sources)])
            tile = tile.resize((round(tile.width * row / tile.height), row), Image.Resampling.LANCZOS)
            canvas.paste(tile, (x, y))
            x, i = x + tile.width, i + 1
    return canvas


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def unchanged_area(size: tuple[int, int], margin: float = 0.03) -> np.ndarray:
    """Everything but the changed box grown by ``margin`` of the longer side (resampling spreads a change)."""
    w, h = size
    m = int(margin * max(w, h))
    mask = np.ones((h, w), dtype=bool)
    mask[max(0, int(BOX[1] * h) - m):int(BOX[3] * h) + m, max(0, int(BOX[0] * w) - m):int(BOX[2] * w) + m] = False
    return mask


def old_edit(pipe, photo: Image.Image) -> Image.Image:
    """What edit_image returned before: the model's working-size picture resized to the photo's size."""
    working = _resize(photo, working_size(photo.size, native_side(pipe)))
    out = pipe(prompt="make it winter", image=working, num_inference_steps=2).images[0]
    return _resize(out, photo.size)


def test_a_partial_edit_of_a_12_mp_photo_keeps_the_rest_of_it(photo):
    pipe = StandInPix2Pix(invert_box)
    result = edit_image(Models(pipe), photo, "make it winter", steps=2, seed=0)
    assert result.image.size == photo.size == (4000, 3000)
    original, after, before = np.asarray(photo), np.asarray(result.image), np.asarray(old_edit(pipe, photo))
    keep = unchanged_area(photo.size)
    kept, resized = psnr(after[keep], original[keep]), psnr(before[keep], original[keep])
    print(f"\nPSNR of the unchanged area against the original: {resized:.1f} dB resized back (before), "
          f"{kept:.1f} dB with the change applied at full resolution (after)")
    assert kept >= 38 and kept >= resized + 10
    # the change itself is there, as strong as the model made it
    w, h = photo.size
    inner = (slice(int(0.25 * h), int(0.55 * h)), slice(int(0.6 * w), int(0.8 * w)))
    assert np.abs(after[inner].astype(int) - original[inner]).mean() > 60
    assert np.abs(after[inner].astype(int) - before[inner]).mean() < 12


def test_a_subtle_edit_of_the_whole_photo_is_applied_everywhere_with_its_detail(photo):
    crop = photo.crop((0, 0, 1600, 1200))
    result = edit_image(Models(StandInPix2Pix(warmer)), crop, "make it warmer", steps=1, seed=0)
    shift = np.asarray(result.image, np.float32).mean(axis=(0, 1)) - np.asarray(crop, np.float32).mean(axis=(0, 1))
    assert shift[0] > 8 and shift[2] < -8 and abs(shift[1]) < 2  # warmer, everywhere
    assert psnr(np.asarray(result.image, np.float32) - shift, np.asarray(crop)) > 35  # and nothing else lost


def test_no_change_gives_the_original_back_exactly(photo):
    crop = photo.crop((500, 500, 1500, 1300))
    working = _resize(crop, working_size(crop.size, 512))
    reference = vae_roundtrip(StandInPix2Pix(invert_box), working)
    assert np.array_equal(np.asarray(apply_change(crop, reference, reference)), np.asarray(crop))
