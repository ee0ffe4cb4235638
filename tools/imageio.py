"""Reading images from files or bytes, safely: every problem is one clear sentence.

Handles EXIF orientation, palette/alpha/CMYK/16-bit modes, animated images (first frame), and refuses
decompression bombs and non-images (SVG, HTML, truncated files) before they reach a model.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from tools.errors import UserError

ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "MPO"}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
_HARD_PIXELS = 144_000_000
_MARKUP = (b"<svg", b"<?xml", b"<!doctype", b"<html", b"<!--", b"<head", b"<body", b"<script")


def _bytes_text(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} bytes"


def extension(data: bytes) -> str:
    """The file extension for image bytes that :func:`load_image_bytes` accepted (from their format)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            return EXTENSIONS.get(image.format or "", "png")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np

        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if image.mode.startswith("I;16"):  # 16-bit: 0..65535 maps to 0..255 (a flat grey stays grey)
            scaled = arr / 257
        else:
            scaled = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype("uint8")).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image_bytes(data: bytes, name: str = "the image", limits=None) -> Image.Image:
    """Decode bytes into an RGB image, or raise UserError saying what is wrong with it."""
    max_bytes = getattr(limits, "max_upload_bytes", None)
    hard = getattr(limits, "max_image_pixels_hard", _HARD_PIXELS)
    if not data:
        raise UserError(f"{name} is empty (0 bytes); choose an image file.")
    if max_bytes is not None and len(data) > max_bytes:
        raise UserError(f"{name} is {_bytes_text(len(data))}; the limit is {_bytes_text(max_bytes)}.")
    head = data[:256].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if head.startswith(_MARKUP):
        raise UserError(f"{name} is SVG/HTML, not a raster image; upload a PNG, JPEG or WebP.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
            image = Image.open(io.BytesIO(data))
            if image.format not in ALLOWED_FORMATS:
                article = "an" if (image.format or "?")[0] in "AEFHILMNORSX" else "a"
                raise UserError(f"{name} is {article} {image.format} file; upload a PNG, JPEG, WebP, GIF, BMP or TIFF.")
            w, h = image.size
            if w * h > hard:
                raise UserError(f"{name} is too large: {w}x{h} pixels, more than the {hard / 1e6:.0f}-megapixel limit.")
            if w < 1 or h < 1:
                raise UserError(f"{name} has no pixels.")
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return _to_rgb(image)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{name} is too large: too many pixels to decode safely (a decompression bomb?).") from None
    except UnidentifiedImageError:
        raise UserError(f"{name} is not an image Pillow can read; upload a PNG, JPEG or WebP.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).split("\n")[0] or "corrupt data"
        raise UserError(f"{name} could not be decoded ({reason}); it may be truncated or corrupt.") from None


def load_image_file(path: str | os.PathLike, limits=None) -> Image.Image:
    p = Path(path)
    if not p.exists():
        raise UserError(f"Image file {p} does not exist.")
    if not p.is_file():
        raise UserError(f"{p} is not a file.")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"Cannot read {p}: {exc.strerror or exc}.") from None
    return load_image_bytes(data, name=str(p), limits=limits)


def working_copy(image: Image.Image, max_pixels: int) -> Image.Image:
    """A downscaled copy for models when an allowed image is larger than ``max_pixels``."""
    w, h = image.size
    if w * h <= max_pixels:
        return image
    scale = (max_pixels / (w * h)) ** 0.5
    return image.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.Resampling.LANCZOS)
