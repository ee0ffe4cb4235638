"""A whole-image edit made at the model's resolution, applied to the full-resolution photo.

instruct-pix2pix works at about 512 px: resizing its output back to a 12 MP photo would return a blurred 512 px
image. Instead the *change* the model made is carried to full resolution and added to the original:

    result = upsampled(edited) + keep * (original - upsampled(reference))
           = original + upsampled(edited - reference) + (1 - keep) * (upsampled(reference) - original)

where ``reference`` is the working copy as the pipeline's own VAE gives it back (encoded and decoded: what the
model returns of a part it leaves alone), so ``original - upsampled(reference)`` is the detail the working size
and the VAE cannot hold. ``keep`` is 1 where the model changed little, so there the result is the original plus
the (smooth) change; it falls to 0 where the model changed a lot (more than ``CHANGED`` levels), so new content is
not overlaid with the old content's fine detail.

    >>> reference = vae_roundtrip(pipe, working)
    >>> result = apply_change(photo, edited, reference)
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

KEPT, CHANGED = 12.0, 40.0  # 0-255 levels: below KEPT the original's detail is kept whole, above CHANGED dropped


def vae_roundtrip(pipe, image: Image.Image) -> Image.Image:
    """``image`` (at the working size) encoded and decoded by the pipeline's VAE, as instruct-pix2pix encodes its
    input image (the latent distribution's mode) and decodes its result."""
    import torch

    vae = pipe.vae
    device = getattr(pipe, "_execution_device", None) or pipe.device
    pixels = pipe.image_processor.preprocess(image).to(device=device, dtype=vae.dtype)
    with torch.inference_mode():
        latents = vae.encode(pixels).latent_dist.mode()
        decoded = vae.decode(latents).sample
    return pipe.image_processor.postprocess(decoded.float(), output_type="pil")[0].convert("RGB")


def _changed_box(change: Image.Image, size: tuple[int, int], margin: int = 4) -> tuple[int, int, int, int] | None:
    """The box (full-size pixels) around where ``change`` (working size) exceeds ``KEPT``, widened by ``margin``
    working pixels for the resampling's reach; None when the model changed nothing that much."""
    ys, xs = np.nonzero(np.asarray(change) > KEPT)
    if xs.size == 0:
        return None
    sx, sy = size[0] / change.width, size[1] / change.height
    x0, x1 = max(0, xs.min() - margin), min(change.width, xs.max() + 1 + margin)
    y0, y1 = max(0, ys.min() - margin), min(change.height, ys.max() + 1 + margin)
    return int(x0 * sx), int(y0 * sy), min(size[0], int(np.ceil(x1 * sx))), min(size[1], int(np.ceil(y1 * sy)))


def apply_change(original: Image.Image, edited: Image.Image, reference: Image.Image) -> Image.Image:
    """The model's change (``edited`` against ``reference``, both at the working size) applied to ``original``
    at its own resolution, keeping its detail where the model changed little (see the module's docstring).

    Computed as ``original + up(edited - reference) + (1 - keep) * (up(reference) - original)``, the last term
    only in the box around what changed a lot: a 12 MP photo costs three float resizes and one pass."""
    if edited.size != reference.size:
        raise ValueError(f"the edited image is {edited.size}, its reference {reference.size}; they must match")
    size = original.size
    delta = np.asarray(edited.convert("RGB"), np.float32) - np.asarray(reference.convert("RGB"), np.float32)
    # 1. the change, upsampled, on the original
    out = np.asarray(original.convert("RGB")).astype(np.float32)  # (np.array(image, float32) is 3x slower)
    for channel in range(3):
        out[..., channel] += np.asarray(Image.fromarray(np.ascontiguousarray(delta[..., channel]), "F")
                                        .resize(size, Image.Resampling.LANCZOS))
    # 2. how much the model changed each pixel, smoothed over a couple of working pixels
    change = Image.fromarray(np.clip(np.abs(delta).max(axis=2), 0, 255).astype(np.uint8), "L")
    change = change.filter(ImageFilter.GaussianBlur(1.5))
    box = _changed_box(change, size)
    if box is not None:  # 3. where it changed a lot, its own pixels rather than the original's detail
        x0, y0, x1, y1 = box
        crop = (x1 - x0, y1 - y0)
        sx, sy = reference.width / size[0], reference.height / size[1]
        source = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
        level = np.asarray(change.resize(crop, Image.Resampling.BILINEAR, box=source), np.float32)
        keep = np.clip((CHANGED - level) / (CHANGED - KEPT), 0.0, 1.0)
        keep = (keep * keep * (3 - 2 * keep))[..., None]  # smoothstep
        base = np.asarray(reference.convert("RGB").resize(crop, Image.Resampling.LANCZOS, box=source), np.float32)
        out[y0:y1, x0:x1] += (1.0 - keep) * (base - np.asarray(original.convert("RGB").crop(box)).astype(np.float32))
    return Image.fromarray(np.rint(out, out=out).clip(0, 255, out=out).astype(np.uint8), "RGB")


__all__ = ["CHANGED", "KEPT", "apply_change", "vae_roundtrip"]
