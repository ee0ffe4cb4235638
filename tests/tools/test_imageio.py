"""Hostile and unusual image files: each is decoded correctly or refused with one clear sentence."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from chat.config import LimitsConfig
from chat.errors import UserError
from tools.imageio import load_image_bytes, working_copy


def _png(image):
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(w, h):
    """A valid PNG header claiming w x h pixels with almost no data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


REFUSED = {
    "empty": (b"", "empty"),
    "truncated png": (_png(Image.new("RGB", (64, 64), "red"))[:60], "truncated or corrupt"),
    "text named png": (b"hello, I am not an image at all" * 3, "not an image"),
    "svg": (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG/HTML"),
    "html": (b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "SVG/HTML"),
    "bomb": (_bomb_png(20000, 20000), "too large"),
    "over the limit": (_bomb_png(13000, 12000), "megapixel limit"),
    "pdf": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "not an image"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_with_one_sentence(case):
    data, phrase = REFUSED[case]
    with pytest.raises(UserError) as err:
        load_image_bytes(data, "upload.png")
    message = str(err.value)
    assert phrase in message and "\n" not in message and "Traceback" not in message


def test_upload_size_limit():
    with pytest.raises(UserError, match="limit is"):
        load_image_bytes(_png(Image.new("RGB", (300, 300))), limits=LimitsConfig(max_upload_bytes=100))


MODES = {
    "1x1": Image.new("RGB", (1, 1), (10, 20, 30)),
    "cmyk": Image.new("CMYK", (8, 8), (0, 255, 255, 0)),
    "grey16": Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)),
    "palette": Image.new("RGB", (8, 8), "blue").convert("P"),
    "alpha": Image.new("RGBA", (8, 8), (255, 0, 0, 0)),
    "greyscale": Image.new("L", (8, 8), 128),
}


@pytest.mark.parametrize("case", sorted(MODES))
def test_unusual_modes_become_rgb(case):
    fmt = "TIFF" if case == "cmyk" else "PNG"
    buf = io.BytesIO()
    MODES[case].save(buf, format=fmt)
    image = load_image_bytes(buf.getvalue())
    assert image.mode == "RGB" and image.size == MODES[case].size


def test_transparent_pixels_become_white():
    assert load_image_bytes(_png(MODES["alpha"])).getpixel((0, 0)) == (255, 255, 255)


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert load_image_bytes(buf.getvalue()).getpixel((8, 8))[0] > 200


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif)
    assert load_image_bytes(buf.getvalue()).size == (20, 40)


def test_working_copy_downscales_only_big_images():
    big = Image.new("RGB", (4000, 3000))
    copy = working_copy(big, 1_000_000)
    assert copy.size[0] * copy.size[1] <= 1_000_000 and abs(copy.size[0] / copy.size[1] - 4 / 3) < 0.01
    small = Image.new("RGB", (100, 100))
    assert working_copy(small, 1_000_000) is small
