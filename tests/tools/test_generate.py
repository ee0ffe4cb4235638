"""Text-to-image and sketch-to-image on the tiny checkpoints (2 steps)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pydantic import ValidationError

from chat.errors import UserError
from tools.diffusion import native_side
from tools.generate import (
    GenerateInput,
    SketchInput,
    controlnet_pipeline,
    generate_image,
    scribble_from_sketch,
    sketch_to_image,
)


@pytest.fixture(scope="module")
def registry(assistant):
    return assistant.registry


def pixels(result):
    return np.asarray(result.image, dtype=np.int16)


def sketch(drawn: bool, size=(96, 72)):
    im = Image.new("RGB", size, "white")
    if drawn:
        draw = ImageDraw.Draw(im)
        draw.ellipse((16, 12, 80, 60), outline="black", width=4)
        draw.line((0, 70, 95, 30), fill="black", width=3)
    return im


def test_same_seed_same_image_other_seed_other_image(registry):
    a = generate_image(registry, "a red house", steps=2, seed=11, size=(64, 64))
    b = generate_image(registry, "a red house", steps=2, seed=11, size=(64, 64))
    c = generate_image(registry, "a red house", steps=2, seed=12, size=(64, 64))
    assert a.seed == 11 and np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(c))


def test_random_seed_is_returned_and_reproduces(registry):
    first = generate_image(registry, "a boat", steps=1, seed=None, size=(64, 64))
    assert isinstance(first.seed, int) and 0 <= first.seed < 2**32
    again = generate_image(registry, "a boat", steps=1, seed=first.seed, size=(64, 64))
    assert np.array_equal(pixels(first), pixels(again))


@pytest.mark.parametrize("size", [(96, 64), (100, 70)])
def test_requested_size_comes_back(registry, size):
    result = generate_image(registry, "a tree", steps=1, seed=0, size=size)
    assert result.image.size == size
    assert result.working_size[0] % 8 == 0 and result.working_size[1] % 8 == 0


def test_native_size_by_default(registry):
    from chat.tiny import fixtures

    side = fixtures.load(fixtures.REPOS["txt2img"], "vae/config.json")["sample_size"]  # SD-1.5's 512
    assert native_side(registry.get("txt2img")) == side
    assert generate_image(registry, "a tree", steps=1, seed=0, size=None).image.size == (side, side)


def test_progress_once_per_step_asked_for(registry):
    calls = []
    generate_image(registry, "a cat", steps=2, seed=0, size=(64, 64), progress=lambda s, n: calls.append((s, n)))
    assert registry.get("txt2img").num_timesteps == 3  # PNDM (like SD 1.5) runs steps + 1 model evaluations
    assert calls == [(1, 2), (2, 2)]  # counted in the steps asked for: 2/2 at the end, never 1/3


def test_checks_run_before_any_model_loads():
    class NoModels:
        def get(self, name):
            raise AssertionError("nothing should load")

    with pytest.raises(UserError, match="prompt is empty"):
        generate_image(NoModels(), " ")
    with pytest.raises(UserError, match="64 to 1024"):
        generate_image(NoModels(), "a cat", size=(2000, 64))
    with pytest.raises(UserError, match="steps"):
        sketch_to_image(NoModels(), sketch(True), "a cat", steps=500)
    with pytest.raises(UserError, match="sketch must be an image"):
        sketch_to_image(NoModels(), None, "a cat")


def test_scribble_is_white_lines_on_black():
    drawn = np.asarray(scribble_from_sketch(sketch(True)))
    assert drawn.shape == (72, 96, 3) and set(np.unique(drawn)) == {0, 255}
    assert drawn[36, 16].max() == 255 and drawn[36, 48].max() == 0  # on the circle / inside it
    assert (drawn == 0).mean() > 0.7  # mostly black background
    inverted = Image.fromarray(255 - np.asarray(sketch(True)))  # light lines on dark paper: kept as is
    assert np.array_equal(np.asarray(scribble_from_sketch(inverted)), drawn)
    assert not np.asarray(scribble_from_sketch(sketch(False))).any()
    assert scribble_from_sketch(sketch(True, (400, 300)), (64, 48)).size == (64, 48)


def test_controlnet_pipeline_shares_the_loaded_components(registry):
    base = registry.get("txt2img")
    before = {p.data_ptr() for p in base.unet.parameters()}
    dtype = base.unet.dtype
    pipe = controlnet_pipeline(registry)
    assert pipe.unet is base.unet and pipe.vae is base.vae and pipe.text_encoder is base.text_encoder
    assert pipe.controlnet is registry.get("controlnet")
    assert {p.data_ptr() for p in base.unet.parameters()} == before and base.unet.dtype == dtype


def test_sketch_conditions_the_output(registry):
    seen = []
    controlnet = registry.get("controlnet")

    def spy(module, args, kwargs):
        seen.append(kwargs.get("controlnet_cond", args[3] if len(args) > 3 else None).detach().clone())

    handle = controlnet.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        drawn = sketch_to_image(registry, sketch(True), "a cat", steps=2, seed=5)
    finally:
        handle.remove()
    blank = sketch_to_image(registry, sketch(False), "a cat", steps=2, seed=5)
    again = sketch_to_image(registry, sketch(True), "a cat", steps=2, seed=5)
    assert drawn.image.size == (96, 72) and drawn.seed == 5
    assert seen, "the ControlNet was not called"
    cond = seen[0][0].float().mean(0).cpu().numpy()  # first batch item, channels averaged, in [0, 1]
    expected = np.asarray(scribble_from_sketch(sketch(True), drawn.working_size).convert("L")) / 255.0
    assert cond.shape == expected.shape and np.abs(cond - expected).mean() < 0.05
    assert np.array_equal(pixels(drawn), pixels(again))
    assert np.abs(pixels(drawn) - pixels(blank)).mean() > 0.2  # random tiny weights: a small but real effect


def test_generate_schemas():
    g = GenerateInput(prompt=" a  lighthouse ", width=101, height=64)
    assert g.prompt == "a lighthouse" and g.width == 104 and g.height == 64
    assert GenerateInput(prompt="x").width == 512 and GenerateInput(prompt="x").height == 512
    for bad, match in [
        (dict(prompt=""), "prompt is empty"),
        (dict(prompt="x", width=32), "greater than or equal to 64"),
        (dict(prompt="x", height=2048), "less than or equal to 1024"),
        (dict(prompt="x", steps=0), "greater than or equal to 1"),
        (dict(prompt="x", size="512x512"), "Extra inputs"),
    ]:
        with pytest.raises(ValidationError, match=match):
            GenerateInput(**bad)
    s = SketchInput(prompt="a cat")
    assert s.steps is None and s.size is None
    assert SketchInput(prompt="a cat", width=101, height=64).size == (104, 64)  # multiples of 8
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        SketchInput(prompt="a cat", seed=-1)
    with pytest.raises(ValidationError, match="Field required"):
        SketchInput(steps=3)
