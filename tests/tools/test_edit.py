"""Editing on the tiny Stable Diffusion checkpoints (2 steps): pix2pix, inpainting, object removal."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image
from pydantic import ValidationError

from chat.errors import UserError
from tests.conftest import ROOT
from tools.diffusion import ImageResult, working_size
from tools.edit import (
    EMPTY_MASK,
    EditInput,
    RemoveInput,
    _crop_box,
    edit_image,
    feather_mask,
    inpaint,
    mask_from_markers,
    remove_object,
)

ODD = (333, 517)  # neither side a multiple of 8


@pytest.fixture(scope="module")
def registry(assistant):
    return assistant.registry


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:ODD[1], 0:ODD[0]]
    base = np.stack([xx * 255 // ODD[0], yy * 255 // ODD[1], np.full_like(xx, 120)], -1)
    noise = rng.integers(-20, 20, base.shape)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def region():
    mask = np.zeros((ODD[1], ODD[0]), dtype=bool)
    mask[200:260, 120:180] = True
    return mask


class NoModels:
    def get(self, name):
        raise AssertionError(f"{name} must not load: the inputs are invalid")


def test_pix2pix_keeps_odd_size_and_reports_progress(registry, photo):
    calls = []
    result = edit_image(registry, photo, "make it winter", steps=2, seed=1, progress=lambda s, n: calls.append((s, n)))
    assert isinstance(result, ImageResult) and result.seed == 1
    assert result.image.size == ODD and result.image.mode == "RGB"
    assert result.working_size[0] % 8 == 0 and result.working_size[1] % 8 == 0
    assert calls == [(1, 2), (2, 2)]


def test_pix2pix_random_seed_is_reported_and_reproducible(registry, photo):
    small = photo.resize((64, 64))
    first = edit_image(registry, small, "make it blue", steps=2)
    assert 0 <= first.seed < 2**32
    again = edit_image(registry, small, "make it blue", steps=2, seed=first.seed)
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))


def test_inpaint_preserves_outside_exactly_and_changes_inside(registry, photo, region):
    calls = []
    result = inpaint(registry, photo, region, "a red balloon", steps=2, seed=3, dilate=8, feather=6,
                     progress=lambda s, n: calls.append((s, n)))
    assert result.image.size == ODD and calls == [(1, 2), (2, 2)]
    before, after = np.asarray(photo), np.asarray(result.image)
    alpha = feather_mask(region, 8, 6)
    outside = alpha == 0
    assert outside.sum() > 0.8 * outside.size
    assert np.array_equal(before[outside], after[outside])  # pixel for pixel
    assert (before[region] != after[region]).any(axis=-1).mean() > 0.5


def test_remove_keeps_odd_size_and_outside(registry, photo, region):
    result = remove_object(registry, photo, region, target="the balloon", steps=2, seed=4, dilate=4, feather=4)
    assert result.image.size == ODD and result.seed == 4
    outside = feather_mask(region, 4, 4) == 0
    assert np.array_equal(np.asarray(photo)[outside], np.asarray(result.image)[outside])


def test_small_region_of_large_image_is_repainted_in_a_window(registry):
    image = Image.new("RGB", (900, 700), (90, 120, 150))
    mask = np.zeros((700, 900), dtype=bool)
    mask[300:330, 400:440] = True
    result = inpaint(registry, image, mask, "a bird", steps=1, seed=0, dilate=2, feather=2)
    assert result.image.size == (900, 700)
    changed = (np.asarray(result.image) != np.asarray(image)).any(axis=-1)
    ys, xs = np.nonzero(changed)
    assert changed.any() and ys.min() >= 300 - 5 and xs.max() < 440 + 5


def test_crop_box_holds_region_and_context():
    alpha = np.zeros((700, 900), dtype=np.float32)
    alpha[300:330, 400:440] = 1
    x0, y0, x1, y1 = _crop_box(alpha, 512)
    assert x0 <= 400 and x1 >= 440 and y0 <= 300 and y1 >= 330
    assert x1 - x0 >= 512 and y1 - y0 >= 512 and x1 <= 900 and y1 <= 700 and x0 >= 0 and y0 >= 0
    small = np.zeros((100, 80), dtype=np.float32)
    small[10:20, 10:20] = 1
    assert _crop_box(small, 512) == (0, 0, 80, 100)  # the whole image when it is smaller than the window


def test_feather_mask_ramps_to_exact_zero():
    mask = np.zeros((60, 60), dtype=bool)
    mask[25:35, 25:35] = True
    alpha = feather_mask(mask, dilate=4, feather=5)
    assert alpha.dtype == np.float32 and alpha.shape == mask.shape
    assert (alpha[mask] == 1).all() and alpha[30, 21] == 1  # dilated by 4
    row = alpha[30, 10:26]
    assert (np.diff(row) >= 0).all() and 0 < alpha[30, 18] < 1  # the feathered band
    assert (alpha[30, :14] == 0).all() and alpha[0, 0] == 0
    assert np.array_equal(feather_mask(mask, 0, 0) > 0, mask)


def test_working_size_rounds_to_multiples_of_8():
    assert working_size((333, 517), 512) == (328, 512)
    assert working_size((4000, 3000), 512) == (512, 384)
    w, h = working_size((3000, 100), 512)
    assert w == 512 and h == 64  # never below 64


def test_checks_run_before_any_model_loads(photo, region):
    with pytest.raises(UserError, match="instruction is empty"):
        edit_image(NoModels(), photo, "   ")
    with pytest.raises(UserError, match="steps"):
        edit_image(NoModels(), photo, "make it red", steps=0)
    with pytest.raises(UserError, match="seed"):
        edit_image(NoModels(), photo, "make it red", seed=-3)
    with pytest.raises(UserError) as info:
        inpaint(NoModels(), photo, np.zeros_like(region), "a cat")
    assert str(info.value) == EMPTY_MASK
    with pytest.raises(UserError, match="mask is 10x10 but the image is 333x517"):
        inpaint(NoModels(), photo, np.ones((10, 10), bool), "a cat")
    with pytest.raises(UserError, match="target is empty"):
        remove_object(NoModels(), photo, region, target=" ")
    with pytest.raises(UserError, match="must be an image"):
        edit_image(NoModels(), "img1", "make it red")


def test_mask_from_markers_is_the_union_of_regions():
    from tools.markers import Marker

    markers = [Marker(x=20, y=20, shape="circle", radius=6), Marker(x=60, y=40, shape="circle", radius=6)]
    mask = mask_from_markers(markers, (80, 64))
    assert mask.shape == (64, 80) and mask.dtype == bool
    assert mask[20, 20] and mask[40, 60] and not mask[40, 20] and not mask[0, 79]
    assert not mask_from_markers([], (80, 64)).any()


def test_edit_schemas():
    e = EditInput(instruction="  make it  winter ")
    assert e.instruction == "make it winter" and e.region is True and e.steps is None and e.seed is None
    assert EditInput(instruction="x", steps=150, seed=2**32 - 1, region=False).seed == 2**32 - 1
    with pytest.raises(ValidationError, match="Extra inputs"):  # image ids are the chat's (chat.toolbox adds them)
        EditInput(instruction="x", image="img2.v3")
    for bad, match in [
        (dict(instruction=""), "instruction is empty"),
        (dict(instruction="x", steps=0), "greater than or equal to 1"),
        (dict(instruction="x", steps=151), "less than or equal to 150"),
        (dict(instruction="x", seed=-1), "greater than or equal to 0"),
        (dict(instruction="x", seed=2**32), "less than or equal to 4294967295"),
        (dict(instruction="x", strength=0.5), "Extra inputs"),
        (dict(), "Field required"),
    ]:
        with pytest.raises(ValidationError, match=match):
            EditInput(**bad)
    assert RemoveInput().target == "the object"
    with pytest.raises(ValidationError, match="target is empty"):
        RemoveInput(target="  ")
    with pytest.raises(ValidationError, match="Extra inputs"):
        RemoveInput(prompt="x")
    props = EditInput.model_json_schema()["properties"]
    assert all(props[k].get("description") for k in props)
    assert "marked region" in props["region"]["description"]


def test_the_config_and_the_tools_share_one_steps_limit(assistant, tmp_path):
    """A profile may set tools.edit_steps up to the limit /edit --steps names, and no further."""
    from chat.config import load_config
    from chat.lc_tools import make_tools, run_tool
    from tools.diffusion import MAX_STEPS

    tiny = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    profile = tmp_path / "steps.yaml"
    for steps in (MAX_STEPS, MAX_STEPS + 1):
        tiny["tools"]["edit_steps"] = steps
        profile.write_text(yaml.safe_dump(tiny))
        if steps == MAX_STEPS:
            assert load_config(profile).tools.edit_steps == MAX_STEPS
    with pytest.raises(UserError) as info:
        load_config(profile)
    assert "tools.edit_steps" in str(info.value) and f"less than or equal to {MAX_STEPS}" in str(info.value)

    session = assistant.sessions.create()
    session.add_image(Image.new("RGB", (64, 64), (90, 120, 200)))
    edit = {t.name: t for t in make_tools(assistant, session)}["edit"]
    out = run_tool(edit, {"instruction": "make it snowy", "steps": 1000})
    assert out.error == f"Invalid steps for edit: input should be less than or equal to {MAX_STEPS}."
    assert f"1 to {MAX_STEPS}" in EditInput.model_json_schema()["properties"]["steps"]["description"]


def test_step_counter_never_passes_the_steps_asked_for():
    """A scheduler that runs one timestep more than asked (151 for 150) still reports 1/150 ... 150/150."""
    from types import SimpleNamespace

    from tools.diffusion import step_callback

    seen = []
    callback = step_callback(lambda step, total: seen.append((step, total)), 150)
    pipe = SimpleNamespace(num_timesteps=151)
    for step in range(151):
        callback(pipe, step, None, {})
    assert seen[0] == (1, 150) and seen[-1] == (150, 150) and all(t == 150 for _, t in seen)
    fewer = []  # a pipeline that runs fewer (img2img strength < 1) reports its own count
    short = step_callback(lambda step, total: fewer.append((step, total)), 20)
    for step in range(8):
        short(SimpleNamespace(num_timesteps=8), step, None, {})
    assert fewer[-1] == (8, 8)
