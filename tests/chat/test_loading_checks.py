"""Loading real-world checkpoints: processor fields missing from old hub configs are filled in, a processor that
disagrees with its model fails at load in one sentence, ``.bin``-only checkpoints load with a note, SD components
read their fp16 variant at float16, and each kind of load failure gets its own sentence.

Every checkpoint here is a tiny one copied and altered in a temporary folder, as the hub's older or broken
repositories look."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from chat.config import load_config
from chat.errors import ModelLoadError
from chat.registry import ModelRegistry

from tests.conftest import TINY_CONFIG

FIELDS = ("patch_size", "num_additional_image_tokens", "vision_feature_select_strategy")


def _config(**paths):
    config = load_config(TINY_CONFIG)
    for name, path in paths.items():
        config.models[name].path = str(path)
    return config


def _copy(tiny_dir, family, tmp_path, name=None):
    target = tmp_path / (name or family)
    shutil.copytree(tiny_dir / family, target)
    return target


def _edit_processor(folder, **changes):
    path = folder / "processor_config.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data, indent=2))


def _geometry(folder) -> tuple[int, int]:
    """(image size, patch) of the checkpoint's vision tower, from its config.json (336 and 14, as llava-1.5-7b-hf)."""
    vision = json.loads((folder / "config.json").read_text())["vision_config"]
    return vision["image_size"], vision["patch_size"]


def _load_error(config, name) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as err:
        ModelRegistry(config).get(name)
    return err.value


# -- processor fields -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("removed", [FIELDS, ("num_additional_image_tokens",)], ids=["all three", "CLS count"])
def test_llava_without_processor_fields_loads_and_answers(tiny_dir, tmp_path, removed):
    from chat.mllm import GenerationOptions, MultimodalChat, Turn

    folder = _copy(tiny_dir, "llava", tmp_path)
    _edit_processor(folder, **{key: None for key in removed})
    registry = ModelRegistry(_config(llava=folder))
    chat = MultimodalChat(registry, "llava")
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    answer = chat.generate([Turn("user", "What is in the image?", [image])], GenerationOptions(max_new_tokens=4))
    assert isinstance(answer, str)  # not a TypeError / "Image features and image tokens do not match" mid-chat
    processor = registry.get("llava").processor
    size, patch = _geometry(folder)
    assert (processor.patch_size, processor.num_additional_image_tokens, processor.vision_feature_select_strategy) \
        == (patch, 1, "default")  # the tower's patch and CLS, as the llava-hf processors set them
    inputs = chat.inputs([Turn("user", "hi", [image])])
    tokens = int((inputs["input_ids"] == registry.get("llava").model.config.image_token_id).sum())
    assert tokens == (size // patch) ** 2  # one per patch: 576 for 336 px and patch 14
    notes = registry.entry("llava").notes
    assert any("lacks" in n and all(f in n for f in removed) for n in notes), notes


def test_vip_llava_without_processor_fields_loads(tiny_dir, tmp_path):
    folder = _copy(tiny_dir, "vip_llava", tmp_path)
    _edit_processor(folder, **{key: None for key in FIELDS})
    processor = ModelRegistry(_config(vip_llava=folder)).get("vip_llava").processor
    assert processor.vision_feature_select_strategy == "default" and processor.num_additional_image_tokens == 1


@pytest.mark.parametrize("changes, tokens", [  # what the processor is told, what it then expands an image to
    (lambda patch: {"patch_size": 2 * patch}, lambda size, patch: (size // (2 * patch)) ** 2),
    (lambda patch: {"num_additional_image_tokens": 0}, lambda size, patch: (size // patch) ** 2 - 1),
    (lambda patch: {"vision_feature_select_strategy": "full"}, lambda size, patch: (size // patch) ** 2 + 1),
], ids=["patch doubled", "no CLS", "full"])
def test_inconsistent_processor_fails_at_load_in_one_sentence(tiny_dir, tmp_path, changes, tokens):
    folder = _copy(tiny_dir, "llava", tmp_path, "llava-broken")
    size, patch = _geometry(folder)
    _edit_processor(folder, **changes(patch))
    error = _load_error(_config(llava=folder), "llava")
    message = str(error)
    assert error.kind == "self_check" and "\n" not in message
    assert message.startswith(f"Checkpoint '{folder}' for model 'llava' failed its load-time self-check")
    says = (f"expands one image to {tokens(size, patch)} image tokens "
            f"but the vision tower gives {(size // patch) ** 2} features")
    assert says in message and "processor_config.json" in message


# -- weights formats ----------------------------------------------------------------------------------------------
def _to_bin(folder, stem="model", bin_name="pytorch_model.bin"):
    import torch
    from safetensors.torch import load_file

    source = folder / f"{stem}.safetensors"
    state = load_file(str(source))
    torch.save(state, folder / bin_name)
    source.unlink()
    return state


def test_a_bin_only_checkpoint_loads_with_a_note(tiny_dir, tmp_path):
    import torch

    from tools.scoring.core import score_labels

    folder = _copy(tiny_dir, "clip", tmp_path)
    state = _to_bin(folder)
    seen = []
    registry = ModelRegistry(_config(clip=folder), progress=lambda name, f, msg: seen.append(msg))
    model = registry.get("clip").model
    name = next(k for k in state if k.endswith("embeddings.patch_embedding.weight"))
    assert torch.equal(model.state_dict()[name], state[name])  # the file's weights, not a random init
    loaded = seen[-1]
    assert loaded.startswith("loaded clip") and "note: no safetensors here: read pytorch_model.bin" in loaded
    result = score_labels(registry, Image.new("RGB", (40, 30), "white"), ["a cat", "a dog"], model="clip")
    assert sorted(result.labels) == ["a cat", "a dog"]


def test_safetensors_are_preferred_when_both_are_there(tiny_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = _copy(tiny_dir, "clip", tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, folder / "pytorch_model.bin")  # a decoy
    registry = ModelRegistry(_config(clip=folder))
    model = registry.get("clip").model
    name = next(k for k in state if k.endswith("embeddings.patch_embedding.weight"))
    assert torch.equal(model.state_dict()[name], state[name]) and registry.entry("clip").notes == []


def _add_fp16_variant(folder, components=("unet", "vae", "text_encoder")):
    """Write each component's fp16 variant beside its plain weights, with different values (so the test can
    tell which file a load read): the plain weights halved."""
    import torch
    from safetensors.torch import load_file, save_file

    variants = {}
    for component in components:
        plain = next((folder / component).glob("*.safetensors"))
        state = {k: (v * 0.5).to(torch.float16) if v.is_floating_point() else v
                 for k, v in load_file(str(plain)).items()}
        stem = plain.name[: -len(".safetensors")]
        save_file(state, str(folder / component / f"{stem}.fp16.safetensors"), metadata={"format": "pt"})
        variants[component] = (state, load_file(str(plain)))
    return variants


def _unet_tensor(pipe, state):
    name = next(k for k in state if k.endswith("conv_in.weight"))
    return name, pipe.unet.state_dict()[name]


def test_sd_at_fp16_reads_the_fp16_variant_and_the_plain_files_without_it(tiny_dir, tmp_path):
    import torch

    with_variant = _copy(tiny_dir, "txt2img", tmp_path, "sd-fp16")
    variants = _add_fp16_variant(with_variant)
    plain = _copy(tiny_dir, "txt2img", tmp_path, "sd-plain")
    config = _config(txt2img=with_variant, inpaint=plain)
    config.models["txt2img"].dtype = "float16"
    config.models["inpaint"].dtype = "float16"
    registry = ModelRegistry(config)

    pipe = registry.get("txt2img")
    fp16_state, plain_state = variants["unet"]
    name, loaded = _unet_tensor(pipe, fp16_state)
    assert loaded.dtype == torch.float16 and torch.equal(loaded, fp16_state[name])  # the variant's values
    assert not torch.equal(loaded, plain_state[name].to(torch.float16))
    text = next(iter(variants["text_encoder"][0]))
    assert torch.equal(pipe.text_encoder.state_dict()[text], variants["text_encoder"][0][text])
    assert registry.entry("txt2img").notes == ["fp16 variant weights for text_encoder, unet, vae"]

    # The same pipeline without variant files: the plain files, cast to fp16, and no error.
    config.models["inpaint"].path = str(plain)
    other = registry.get("inpaint")
    # no variant note; only the tokenizer is shared: the plain weights cast to fp16 are not the variant's values
    assert other.unet.dtype == torch.float16
    assert registry.entry("inpaint").notes == ["uses txt2img's tokenizer (the same architecture and weights)"]
    assert other.vae is not pipe.vae and other.text_encoder is not pipe.text_encoder


def test_sd_at_float32_reads_the_plain_files_even_beside_a_variant(tiny_dir, tmp_path):
    import torch

    folder = _copy(tiny_dir, "txt2img", tmp_path, "sd-both")
    variants = _add_fp16_variant(folder)
    registry = ModelRegistry(_config(txt2img=folder))  # the tiny profile's float32
    pipe = registry.get("txt2img")
    fp16_state, plain_state = variants["unet"]
    name, loaded = _unet_tensor(pipe, fp16_state)
    assert loaded.dtype == torch.float32 and torch.equal(loaded, plain_state[name])


def test_a_pipeline_component_with_only_bin_weights_loads_with_a_note(tiny_dir, tmp_path):
    folder = _copy(tiny_dir, "txt2img", tmp_path, "sd-bin")
    _to_bin(folder / "unet", "diffusion_pytorch_model", "diffusion_pytorch_model.bin")
    registry = ModelRegistry(_config(txt2img=folder))
    registry.get("txt2img")
    assert registry.entry("txt2img").notes == [
        "unet: no safetensors here: read diffusion_pytorch_model.bin (a pickle file; safetensors is preferred when "
        "present)"]


# -- load errors: one sentence per cause ----------------------------------------------------------------------------
def _empty(tmp_path, tiny_dir):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def _no_weights(tmp_path, tiny_dir):
    folder = _copy(tiny_dir, "clip", tmp_path, "clip-no-weights")
    (folder / "model.safetensors").unlink()
    return folder


def _sd_no_weights(tmp_path, tiny_dir):
    folder = _copy(tiny_dir, "txt2img", tmp_path, "sd-no-unet")
    for f in (folder / "unet").glob("*.safetensors"):
        f.unlink()
    return folder


@pytest.mark.parametrize("name, make, kind, sentence", [
    ("clip", _empty, "not_checkpoint", "Checkpoint folder '{path}' for model 'clip' is empty; fix "
                                       "'models.clip.path' or download it again."),
    ("clip", _no_weights, "no_weights", "Checkpoint '{path}' for model 'clip' has no weights file"),
    ("txt2img", _sd_no_weights, "no_weights", "Checkpoint '{path}' for model 'txt2img' has no weights file"),
    ("clip", lambda tmp, tiny: tmp / "nowhere", "missing_folder",
     "Checkpoint folder '{path}' for model 'clip' does not exist"),
    ("clip", lambda tmp, tiny: "someone/not-cached-model", "not_cached",
     "Model 'clip' (someone/not-cached-model) is not (fully) in the local Hugging Face cache and cannot be downloaded "
     "here (offline or no connection)"),
    ("txt2img", lambda tmp, tiny: "someone/not-cached-pipeline", "not_cached",
     "Model 'txt2img' (someone/not-cached-pipeline) is not (fully) in the local Hugging Face cache"),
], ids=["empty folder", "no weights", "pipeline without unet weights", "missing path", "hub id offline",
        "pipeline hub id offline"])
def test_each_load_failure_says_its_cause(tiny_dir, tmp_path, name, make, kind, sentence):
    path = make(tmp_path, tiny_dir)
    error = _load_error(_config(**{name: path}), name)
    assert error.kind == kind and "\n" not in str(error)
    assert str(error).startswith(sentence.format(path=path)), str(error)


def test_offline_is_blamed_only_when_files_are_missing():
    from chat.registry.load_errors import classify

    # a cached hub checkpoint of the wrong architecture, offline: its own cause, not "not cached"
    assert classify("org/model", ValueError("it is a 'clip' checkpoint, expected a SAM model (sam)")) == "other"
    missing = OSError("org/model does not appear to have a file named pytorch_model.bin or model.safetensors.")
    assert classify("org/model", missing) == "not_cached"  # tests run with HF_HUB_OFFLINE=1
