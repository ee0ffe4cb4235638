"""The SD pipelines share one VAE, one text encoder and one tokenizer when the checkpoints' parts are the same
(architecture and weights), and never when they differ; shared parts count once against the budget and stay on
the device while another pipeline uses them."""

import json
import shutil

import pytest

from chat.config import load_config
from chat.registry import ModelRegistry, footprint

from tests.conftest import TINY_CONFIG

PIPELINES = ("pix2pix", "inpaint", "txt2img")


def _config(**overrides):
    return load_config(TINY_CONFIG, **overrides)


def _distinct(pipes, part):
    return len({id(getattr(p, part)) for p in pipes})


def test_three_pipelines_with_the_same_parts_load_one_vae_text_encoder_and_tokenizer(tiny_dir):
    registry = ModelRegistry(_config())
    messages = []
    registry.add_progress_listener(lambda name, fraction, message: messages.append(message))
    pipes = [registry.get(name) for name in PIPELINES]
    assert _distinct(pipes, "vae") == 1 and _distinct(pipes, "text_encoder") == 1 and _distinct(pipes, "tokenizer") == 1
    assert _distinct(pipes, "unet") == 3  # the UNets differ (4, 8 and 9 input channels)
    loaded = [m for m in messages if m.startswith("loaded txt2img")]
    assert len(loaded) == 1 and "uses pix2pix's text_encoder, tokenizer, vae (the same architecture and weights)" in \
        loaded[0]
    # the budget counts the shared parts once
    shared = footprint(pipes[0].vae) + footprint(pipes[0].text_encoder)
    assert registry.used_bytes() == sum(footprint(p) for p in pipes) - 2 * shared
    # sketch-to-image still builds on txt2img's parts
    from tools.generate import controlnet_pipeline

    sketch = controlnet_pipeline(registry)
    assert sketch.vae is pipes[0].vae and sketch.unet is pipes[2].unet


def _copy(tiny_dir, tmp_path, name="txt2img"):
    folder = tmp_path / f"{name}_copy"
    shutil.copytree(tiny_dir / name, folder)
    return folder


def test_a_text_encoder_with_other_weights_is_not_merged(tiny_dir, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    folder = _copy(tiny_dir, tmp_path)
    weights = folder / "text_encoder" / "model.safetensors"
    tensors = load_file(str(weights))
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 1e-3  # fine-tuned a little: same shapes, same config
    save_file(tensors, str(weights), metadata={"format": "pt"})
    config = _config()
    config.models["txt2img"].path = str(folder)
    registry = ModelRegistry(config)
    pix2pix, txt2img = registry.get("pix2pix"), registry.get("txt2img")
    assert txt2img.text_encoder is not pix2pix.text_encoder
    assert txt2img.vae is pix2pix.vae and txt2img.tokenizer is pix2pix.tokenizer
    ids = pix2pix.tokenizer("a cat", return_tensors="pt").input_ids
    with torch.no_grad():
        assert not torch.equal(pix2pix.text_encoder(ids)[0], txt2img.text_encoder(ids)[0])


def test_a_part_of_another_architecture_is_not_merged_even_with_the_same_weight_file(tiny_dir, tmp_path):
    folder = _copy(tiny_dir, tmp_path)
    path = folder / "vae" / "config.json"
    data = json.loads(path.read_text())
    data["scaling_factor"] = 0.5  # what the pipeline scales latents by: another model, same tensors
    path.write_text(json.dumps(data))
    config = _config()
    config.models["txt2img"].path = str(folder)
    registry = ModelRegistry(config)
    pix2pix, txt2img = registry.get("pix2pix"), registry.get("txt2img")
    assert txt2img.vae is not pix2pix.vae and txt2img.vae.config.scaling_factor == 0.5
    assert txt2img.text_encoder is pix2pix.text_encoder


def test_file_fields_that_do_not_change_the_model_do_not_prevent_sharing(tiny_dir, tmp_path):
    folder = _copy(tiny_dir, tmp_path)
    path = folder / "text_encoder" / "config.json"
    data = json.loads(path.read_text())
    data.update(_name_or_path="somewhere/else", transformers_version="4.0.0")
    path.write_text(json.dumps(data))
    config = _config()
    config.models["txt2img"].path = str(folder)
    registry = ModelRegistry(config)
    assert registry.get("txt2img").text_encoder is registry.get("pix2pix").text_encoder


def test_a_pipeline_leaving_the_gpu_leaves_the_parts_another_one_uses(tiny_dir):
    registry = ModelRegistry(_config(offload={"ram_gb": 64}))
    moved = []
    registry.memory.offload_device = "ram"  # the device ("cpu") plays the GPU
    registry.memory.move = lambda obj, device: moved.append((obj, device))
    pix2pix = registry.get("pix2pix")
    inpaint = registry.get("inpaint")
    unet_bytes = footprint(pix2pix.unet)
    registry.memory.budget_bytes = registry.used_bytes() + unet_bytes // 2  # room for one more UNet, not two
    txt2img = registry.get("txt2img")
    assert registry.offloaded() == ["pix2pix"] and moved == [(pix2pix.unet, "ram")]  # not the shared VAE
    assert registry.get("pix2pix") is pix2pix and registry.load_count["pix2pix"] == 1
    assert moved[-1] == (pix2pix, registry.device) and registry.offloaded() == ["inpaint"]
    assert inpaint.vae is txt2img.vae is pix2pix.vae


@pytest.mark.parametrize("part", ["vae", "text_encoder"])
def test_identity_needs_the_files_on_this_machine(tiny_dir, tmp_path, part):
    from chat.registry.sharing import TensorDigests, part_identity

    folder = _copy(tiny_dir, tmp_path)
    digests = TensorDigests()
    same = part_identity(folder, part, "X", False, "float32", "device", digests)
    assert same == part_identity(tiny_dir / "pix2pix", part, "X", False, "float32", "device", digests)
    assert same != part_identity(tiny_dir / "pix2pix", part, "X", False, "float16", "device", digests)  # dtype
    assert same != part_identity(tiny_dir / "pix2pix", part, "X", False, "float32", "offload", digests)
    for weights in (folder / part).glob("*.safetensors"):
        weights.unlink()
        weights.symlink_to(tmp_path / "not-downloaded")  # a dangling link, as a partial hub download leaves
    assert part_identity(folder, part, "X", False, "float32", "device", digests) is None


def test_an_fp32_file_and_its_fp16_copy_are_the_same_part_at_float16(tiny_dir, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from chat.registry.sharing import TensorDigests, part_identity

    folder = _copy(tiny_dir, tmp_path)
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    half = {k: v.to(torch.float16) for k, v in load_file(str(weights)).items()}
    weights.unlink()
    save_file(half, str(folder / "vae" / "diffusion_pytorch_model.fp16.safetensors"))  # only the fp16 variant
    digests = TensorDigests(tmp_path / "digests.json")
    at_fp16 = part_identity(tiny_dir / "pix2pix", "vae", "AutoencoderKL", True, "float16", "device", digests)
    assert at_fp16 == part_identity(folder, "vae", "AutoencoderKL", True, "float16", "device", digests)
    assert at_fp16 != part_identity(folder, "vae", "AutoencoderKL", False, "float32", "device", digests)
