"""What each model sees of a marked image: the pixels its vision tower receives.

LLaVA-1.5, ViP-LLaVA and CLIP (region scoring) must receive the whole image padded to square as LLaVA-1.5 was
trained (never centre-cropped away); SigLIP receives it squeezed to its square, as it was trained; the number of
image tokens in the prompt is the model's. The pixels are captured with a forward pre-hook on the vision tower and
de-normalised with the processor's mean and std. A marker's red is measured as the redness (R - (G + B) / 2) it
adds to the image: summed over the model's pixels it must match the same sum on the drawn image scaled to the
model's resolution (resampling keeps such sums), and its centre must land where the marker is once the image is
padded (or squeezed) and resized. Every size comes from the loaded processor and model, so the tests hold at the
tiny checkpoints' resolution and at LLaVA-1.5's real 336 px alike.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import pytest
import torch
from PIL import Image, ImageChops, ImageOps

from chat.mllm import GenerationOptions, Turn
from tools.aspect import input_side, mean_colour
from tools.markers import Marker, draw_markers
from tools.scoring import EmbeddingCache, ellipse_markers, render_region, score_labels

QUESTION = "What is in the red circle?"
# name -> (width, height, scikit-image photo it is cut from)
SIZES = {
    "16:9": (1920, 1080, "chelsea"),
    "9:16": (1080, 1920, "rocket"),
    "4:1": (2000, 500, "coffee"),
    "1:4": (500, 2000, "astronaut"),
    "1x1": (1, 1, "astronaut"),
    "7x300": (7, 300, "rocket"),
    "6000x4000": (6000, 4000, "coffee"),
}
# where the person clicked, as fractions of the width and height
SPOTS = {
    "top-left": (0.04, 0.04), "top": (0.5, 0.04), "top-right": (0.96, 0.04),
    "left": (0.04, 0.5), "centre": (0.5, 0.5), "right": (0.96, 0.5),
    "bottom-left": (0.04, 0.96), "bottom": (0.5, 0.96), "bottom-right": (0.96, 0.96),
}
KEPT = (0.5, 1.5)  # share of the marker's red that must reach the model (1.0 = all of it, resampling aside)


# --------------------------------------------------------------------------------------------
# Images and markers
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def photo(name: str) -> Image.Image:
    """A real photo of the given size, cut to its aspect from a scikit-image photo."""
    from skimage import data

    width, height, source = SIZES[name]
    return ImageOps.fit(Image.fromarray(getattr(data, source)()), (width, height), Image.Resampling.LANCZOS)


def click(size: tuple[int, int], spot: str) -> Marker:
    """The marker a click at ``spot`` makes: a red circle (on a 1x1 image, where no ring fits, a red point)."""
    fx, fy = SPOTS[spot]
    x, y = min(size[0] - 1, int(fx * size[0])), min(size[1] - 1, int(fy * size[1]))
    return Marker(x=x, y=y, shape="point" if max(size) < 4 else "circle", color="red")


# --------------------------------------------------------------------------------------------
# Measuring the red
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def vision_input(module):
    """The ``pixel_values`` each forward of ``module`` (a vision tower) receives, as float32 on the CPU."""
    seen: list[torch.Tensor] = []

    def hook(_module, args, kwargs):
        pixels = kwargs.get("pixel_values", args[0] if args else None)
        seen.append(pixels.detach().float().cpu())

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def denormalised(pixel_values: torch.Tensor, processor) -> np.ndarray:
    """One image's pixel values back in 0-255 RGB, (height, width, 3), with the processor's own mean and std."""
    image_processor = getattr(processor, "image_processor", processor)
    mean = np.asarray(image_processor.image_mean, dtype=np.float32)
    std = np.asarray(image_processor.image_std, dtype=np.float32)
    scale = float(getattr(image_processor, "rescale_factor", 1 / 255))
    values = pixel_values.reshape(-1, *pixel_values.shape[-3:])[0].numpy().transpose(1, 2, 0)
    return (values * std + mean) / scale


def redness(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float32)
    return rgb[..., 0] - (rgb[..., 1] + rgb[..., 2]) / 2


def added_red(marked: np.ndarray, plain: np.ndarray) -> tuple[float, tuple[float, float]]:
    """The redness the marker adds (a signed sum: resampling moves it around but keeps the sum) and its centre
    (x, y) in pixels of these arrays."""
    extra = redness(marked) - redness(plain)
    total = float(extra.sum())
    if total <= 0:
        return total, (float("nan"), float("nan"))
    ys, xs = np.indices(extra.shape)
    return total, (float(((xs + 0.5) * extra).sum() / total), float(((ys + 0.5) * extra).sum() / total))


def expected_red(marked: Image.Image, plain: Image.Image, model_size: tuple[int, int], padded: bool):
    """The red of the marker as drawn, carried to the model's pixels: pasted centred on a square of the longer
    side and resized (``padded``), or squeezed to the model's size."""
    box = ImageChops.difference(marked, plain).getbbox()  # only where the marker was drawn (fast on 24 MP)
    if box is None:
        return 0.0, (float("nan"), float("nan"))
    total, (cx, cy) = added_red(np.asarray(marked.crop(box)), np.asarray(plain.crop(box)))
    cx, cy = cx + box[0], cy + box[1]
    (w, h), (mw, mh) = marked.size, model_size
    if padded:
        side = max(w, h)
        ox, oy, sx, sy = (side - w) / 2, (side - h) / 2, mw / side, mh / side
    else:
        ox, oy, sx, sy = 0.0, 0.0, mw / w, mh / h
    return total * sx * sy, ((cx + ox) * sx, (cy + oy) * sy)


def check_seen(what: str, seen: np.ndarray, plain_seen: np.ndarray, marked: Image.Image, plain: Image.Image,
               padded: bool = True) -> float:
    """Assert the marker's red reached the model where it belongs; returns the share of it that did."""
    model_size = (seen.shape[1], seen.shape[0])
    want, (wx, wy) = expected_red(marked, plain, model_size, padded)
    got, (gx, gy) = added_red(seen, plain_seen)
    assert want > 0, f"{what}: the marker drew no red on the image"
    kept = got / want
    assert KEPT[0] <= kept <= KEPT[1], f"{what}: {kept:.0%} of the marker's red reached the model"
    tolerance = max(1.5, 0.03 * max(model_size))
    assert abs(gx - wx) <= tolerance and abs(gy - wy) <= tolerance, (
        f"{what}: the red is at ({gx:.1f}, {gy:.1f}) of the model's {model_size}, expected ({wx:.1f}, {wy:.1f})")
    return kept


# --------------------------------------------------------------------------------------------
# The chat models (LLaVA, ViP-LLaVA)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chats(tiny_config):
    from chat.mllm import MultimodalChat
    from chat.registry import ModelRegistry

    return {name: MultimodalChat(ModelRegistry(tiny_config.model_copy(update={"chat_model": name})))
            for name in ("llava", "vip_llava")}


def chat_sees(chat, image: Image.Image) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """What the vision tower receives when ``image`` is asked about (de-normalised), its pixel values, and the
    prompt's token ids."""
    bundle = chat.bundle
    turns = [Turn("user", QUESTION, [image])]
    with vision_input(bundle.model.model.vision_tower) as seen:
        chat.generate(turns, GenerationOptions(max_new_tokens=1), reuse=False)
    (pixel_values,) = seen
    return denormalised(pixel_values, bundle.processor), pixel_values, chat.inputs(turns)["input_ids"][0]


def check_tokens(chat, pixel_values: torch.Tensor, ids: torch.Tensor) -> None:
    """One square of the processor's size per image, and as many image tokens as the model has patches."""
    model = chat.bundle.model
    side = input_side(chat.bundle.processor)
    assert tuple(pixel_values.shape[-3:]) == (3, side, side)
    patch = model.config.vision_config.patch_size
    assert int((ids == model.config.image_token_id).sum()) == model.config.image_seq_length == (side // patch) ** 2


@pytest.mark.parametrize("name", ["llava", "vip_llava"])
@pytest.mark.parametrize("size", list(SIZES))
def test_a_marker_anywhere_reaches_the_chat_model(chats, name, size):
    chat = chats[name]
    plain = photo(size)
    plain_seen, pixel_values, ids = chat_sees(chat, plain)
    check_tokens(chat, pixel_values, ids)
    for spot in SPOTS:
        marked = draw_markers(plain, [click(plain.size, spot)])
        seen, pixel_values, ids = chat_sees(chat, marked)
        check_tokens(chat, pixel_values, ids)
        check_seen(f"{name}, {size}, {spot}", seen, plain_seen, marked, plain)


def test_the_padding_is_the_processors_mean_colour(chats):
    """A 4:1 photo fills the middle quarter of the model's square; the rest is LLaVA's fill colour."""
    chat = chats["llava"]
    seen, _, _ = chat_sees(chat, photo("4:1"))
    side = seen.shape[0]
    fill = np.asarray(mean_colour(chat.bundle.processor), dtype=np.float32)
    band = side * 3 // 8 - 3  # rows surely outside the photo's middle quarter (resampling blurs its edge)
    assert np.abs(seen[:band] - fill).max() <= 1.5 and np.abs(seen[-band:] - fill).max() <= 1.5
    assert np.abs(seen[side // 2] - fill).max() > 20  # the photo itself


def test_without_padding_the_edges_are_cut_away(tiny_config):
    """The check above can fail: with ``image_aspect_ratio: processor`` in the config (the processor's centre
    crop alone), a marker near a short side of a wide photo never reaches the model; one in the centre does."""
    from chat.mllm import MultimodalChat
    from chat.registry import ModelRegistry

    spec = tiny_config.models["llava"].model_copy(update={"image_aspect_ratio": "processor"})
    chat = MultimodalChat(ModelRegistry(tiny_config.model_copy(update={"models": {"llava": spec}})))
    assert chat.bundle.image_aspect_ratio == "processor"
    plain = photo("16:9")
    plain_seen, _, _ = chat_sees(chat, plain)
    kept = {}
    for spot in ("left", "right", "top-left", "bottom-right", "centre"):
        marked = draw_markers(plain, [click(plain.size, spot)])
        seen = chat_sees(chat, marked)[0]
        square = plain_seen.shape[0]
        want, _ = expected_red(marked, plain, (square * 16 // 9, square), padded=False)  # the 16:9 resized
        kept[spot] = added_red(seen, plain_seen)[0] / want
    assert max(kept["left"], kept["right"], kept["top-left"], kept["bottom-right"]) < 0.05, kept
    assert kept["centre"] > KEPT[0], kept


def test_the_router_shows_the_marked_photo_whole(assistant):
    """The app's own path (the session's version, its markers drawn, downscaled, sent as a data URL, decoded):
    a marker at the left edge of a 16:9 photo reaches the vision tower."""
    from chat.session import Session

    router, bundle = assistant.router, assistant.mllm.bundle
    seen = {}
    for spot in (None, "left"):
        session = Session()
        session.add_image(photo("16:9"))
        if spot:
            session.add_marker(click(photo("16:9").size, spot))
        assistant.mllm.forget()
        with vision_input(bundle.model.model.vision_tower) as pixels:
            list(router.respond(session, QUESTION))
        assert pixels, "the vision tower saw no image"
        seen[spot] = denormalised(pixels[0], bundle.processor)
    check_seen("router, 16:9, left", seen["left"], seen[None], router.view(session, "img1.v1"), photo("16:9"))


# --------------------------------------------------------------------------------------------
# Region scoring (CLIP padded, SigLIP squeezed)
# --------------------------------------------------------------------------------------------
def scorer_sees(registry, name: str, image: Image.Image, marker: Marker | None) -> np.ndarray:
    bundle = registry.get(name)
    with vision_input(bundle.model.vision_model) as seen:
        score_labels(registry, image, ["a cat", "a cup"], model=name, markers=[marker] if marker else [],
                     cache=EmbeddingCache(), ensemble=False)
    (pixel_values,) = seen
    assert tuple(pixel_values.shape[-2:]) == (input_side(bundle.processor),) * 2
    return denormalised(pixel_values, bundle.processor)


@pytest.mark.parametrize(("name", "size"), [("clip", size) for size in SIZES] +
                         [("siglip", size) for size in ("16:9", "1:4", "7x300")])  # squeezing depends on the aspect only
def test_region_scoring_sees_the_red_ellipse_anywhere(assistant, name, size):
    """CLIP (which would centre-crop) gets the rendering padded to square; SigLIP, trained on images squeezed
    to its square without a crop, gets it squeezed: both see the red ellipse wherever the click is."""
    registry = assistant.registry
    plain = photo(size)
    plain_seen = scorer_sees(registry, name, plain, None)
    for spot in SPOTS:
        marker = click(plain.size, spot)
        rendered = render_region(plain, ellipse_markers([marker], plain.size))
        if not np.any(redness(np.asarray(rendered)) - redness(np.asarray(plain)) > 0):
            continue  # a 1x1 image: the ellipse around its only pixel falls outside it
        seen = scorer_sees(registry, name, plain, marker)
        check_seen(f"{name}, {size}, {spot}", seen, plain_seen, rendered, plain, padded=name == "clip")


def test_siglip_is_not_padded(assistant):
    """SigLIP's square is all photo: no band of fill colour at the top of a 16:9 image."""
    bundle = assistant.registry.get("siglip")
    seen = scorer_sees(assistant.registry, "siglip", photo("16:9"), None)
    fill = np.asarray(mean_colour(bundle.processor), dtype=np.float32)
    assert np.abs(seen[: seen.shape[0] // 8] - fill).max() > 20
