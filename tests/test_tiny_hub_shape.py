"""The tiny checkpoints carry the real checkpoints' geometry and files (``chat/tiny/hub``), compared against the
hub fixtures themselves, never against constants repeated here."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
import yaml

from chat.tiny import fixtures

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parents[1]
LLAVAS = ["llava", "vip_llava"]


@pytest.fixture(scope="module")
def built(tiny_dir) -> Path:
    return tiny_dir


def _repo(family: str) -> str:
    return fixtures.REPOS[family]


def _photo(width: int = 640, height: int = 360):
    """A real photo (scikit-image's cat) at a 16:9 size."""
    from skimage import data

    return Image.fromarray(data.chelsea()).resize((width, height))


def test_every_default_checkpoint_has_a_fixture_and_a_tiny_family():
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text(encoding="utf-8"))
    paths = {name: spec["path"] for name, spec in config["models"].items()}
    assert paths == fixtures.REPOS
    for repo in paths.values():
        assert (fixtures.folder(repo) / ("model_index.json" if "diffusion" in repo or "pix2pix" in repo
                                          else "config.json")).is_file(), repo
    sources = (fixtures.HUB / "SOURCES.md").read_text(encoding="utf-8")
    assert all(f"## {repo}" in sources or repo in sources for repo in paths.values())


def test_the_package_data_globs_ship_every_fixture_file():
    """``pip install`` (wheel or editable) ships exactly what pyproject's package-data globs match."""
    import tomllib

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["chat.tiny"]
    files = [p.relative_to(fixtures.HUB.parent).as_posix() for p in fixtures.HUB.rglob("*") if p.is_file()]
    assert len(files) > 40
    missing = [f for f in files if not any(fnmatch.fnmatchcase(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert missing == []


@pytest.mark.parametrize("family", LLAVAS)
def test_llava_image_processor_processor_fields_and_tokens_per_image_are_the_hubs(built, family):
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor

    repo = _repo(family)
    processor = AutoProcessor.from_pretrained(built / family)
    real_image_processor = AutoImageProcessor.from_pretrained(str(fixtures.folder(repo)))
    assert processor.image_processor.to_dict() == real_image_processor.to_dict()
    fields = fixtures.load(repo, "processor_config.json")
    assert processor.patch_size == fields["patch_size"]
    assert processor.num_additional_image_tokens == fields["num_additional_image_tokens"]
    assert processor.vision_feature_select_strategy == fields["vision_feature_select_strategy"]
    assert processor.image_token == fields["image_token"]

    real = fixtures.load(repo)
    side, patch = real["vision_config"]["image_size"], real["vision_config"]["patch_size"]
    model = AutoModelForImageTextToText.from_pretrained(built / family)
    assert (model.config.vision_config.image_size, model.config.vision_config.patch_size) == (side, patch)
    tokens = (side // patch) ** 2  # CLS dropped by the "default" strategy
    assert tokens == 576 == model.config.image_seq_length
    inputs = processor(images=_photo(), text=f"USER: {processor.image_token}\nhi ASSISTANT:", return_tensors="pt")
    assert tuple(inputs["pixel_values"].shape) == (1, 3, side, side)
    assert (inputs["input_ids"] == model.config.image_token_id).sum().item() == tokens
    with torch.no_grad():
        features = model.get_image_features(pixel_values=inputs["pixel_values"])
    features = features.pooler_output if hasattr(features, "pooler_output") else features
    features = features[0] if isinstance(features, (list, tuple)) else features
    assert features.reshape(-1, model.config.text_config.hidden_size).shape[0] == tokens


@pytest.mark.parametrize("family", LLAVAS)
def test_chat_template_is_the_hubs_byte_for_byte(built, family):
    from transformers import AutoProcessor

    template = fixtures.chat_template(_repo(family))
    processor = AutoProcessor.from_pretrained(built / family)
    assert processor.chat_template == template
    assert (built / family / "chat_template.jinja").read_text(encoding="utf-8") == template
    if family == "llava":  # the hub also ships the template as a .jinja file
        assert fixtures.text(_repo(family), "chat_template.jinja") == template


def test_vip_llava_reads_the_hubs_vision_layers_from_a_tower_of_the_real_depth(built):
    from transformers import AutoConfig

    real = fixtures.load(_repo("vip_llava"))
    config = AutoConfig.from_pretrained(built / "vip_llava")
    assert list(config.vision_feature_layer) == real["vision_feature_layers"]
    assert config.vision_config.num_hidden_layers == real["vision_config"]["num_hidden_layers"]


@pytest.mark.parametrize("family", LLAVAS)
def test_llama_tokenizer_has_the_real_special_tokens_ids_and_settings(built, family):
    from transformers import AutoConfig, AutoTokenizer

    repo = _repo(family)
    real = fixtures.load(repo, "tokenizer_config.json")
    real_ids = {token["content"]: int(i) for i, token in real["added_tokens_decoder"].items()}
    tokenizer = AutoTokenizer.from_pretrained(built / family)
    config = AutoConfig.from_pretrained(built / family)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in real_ids}
    # <unk> <s> </s> keep their real ids; <image> then <pad> follow the vocabulary, as 32000 and 32001 do
    for token in ("<unk>", "<s>", "</s>"):
        assert ids[token] == real_ids[token]
    assert ids["<pad>"] - ids["<image>"] == real_ids["<pad>"] - real_ids["<image>"] == 1
    assert ids["<image>"] == len(tokenizer) - 2
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token, tokenizer.pad_token) == (
        real["bos_token"], real["eos_token"], real["unk_token"], real["pad_token"])
    assert tokenizer.image_token == real["image_token"]
    assert tokenizer.padding_side == real["padding_side"]
    assert config.image_token_id == ids["<image>"] and config.pad_token_id == ids["<pad>"]
    real_config = fixtures.load(repo)
    assert real_config["image_token_index"] == real_ids["<image>"] and real_config["pad_token_id"] == real_ids["<pad>"]
    # the vocabulary padded to a multiple of 64, like 32002 -> 32064
    assert config.text_config.vocab_size % 64 == real_config["text_config"]["vocab_size"] % 64 == 0
    assert config.text_config.vocab_size - len(tokenizer) < 64
    assert config.text_config.max_position_embeddings == real_config["text_config"]["max_position_embeddings"]
    encoded = tokenizer("hello <image> world").input_ids
    assert encoded[0] == tokenizer.bos_token_id and encoded[-1] != tokenizer.eos_token_id  # add_bos, no eos
    assert real["add_bos_token"] and not real["add_eos_token"]
    assert encoded.count(ids["<image>"]) == 1


def test_language_models_stay_nf4_quantizable(built):
    from transformers import AutoConfig

    for family in LLAVAS:
        text = AutoConfig.from_pretrained(built / family).text_config
        assert text.hidden_size % 64 == 0 and text.intermediate_size % 64 == 0


def test_clip_has_the_hub_geometry_and_processor(built):
    from transformers import AutoImageProcessor, AutoModel, AutoProcessor

    repo = _repo("clip")
    real = fixtures.load(repo)
    processor = AutoProcessor.from_pretrained(built / "clip")
    assert processor.image_processor.to_dict() == AutoImageProcessor.from_pretrained(str(fixtures.folder(repo))).to_dict()
    model = AutoModel.from_pretrained(built / "clip")
    for key in ("image_size", "patch_size"):
        assert getattr(model.config.vision_config, key) == real["vision_config"][key]
    assert model.config.text_config.max_position_embeddings == real["text_config"]["max_position_embeddings"]
    assert processor.tokenizer.model_max_length == fixtures.load(repo, "tokenizer_config.json")["model_max_length"]
    # the hub's legacy ids: eos 2 pools the highest id, which is <|endoftext|> in both vocabularies
    assert model.config.text_config.eos_token_id == real["text_config"]["eos_token_id"]
    assert processor.tokenizer.convert_tokens_to_ids("<|endoftext|>") == len(processor.tokenizer) - 1
    side = real["vision_config"]["image_size"]
    inputs = processor(text=["a cat"], images=[_photo()], return_tensors="pt", padding=True)
    assert tuple(inputs["pixel_values"].shape) == (1, 3, side, side)


def test_siglip_is_built_the_real_way_and_returns_no_attention_mask(built):
    from transformers import AutoImageProcessor, AutoModel, AutoProcessor

    repo = _repo("siglip")
    real_tokenizer = fixtures.load(repo, "tokenizer_config.json")
    real = fixtures.load(repo)
    processor = AutoProcessor.from_pretrained(built / "siglip")
    assert type(processor.tokenizer).__name__ == real_tokenizer["tokenizer_class"]
    assert (built / "siglip" / "spiece.model").is_file()
    assert processor.tokenizer.model_input_names == real_tokenizer["model_input_names"] == ["input_ids"]
    assert processor.tokenizer.model_max_length == real_tokenizer["model_max_length"]
    assert processor.image_processor.to_dict() == AutoImageProcessor.from_pretrained(str(fixtures.folder(repo))).to_dict()
    inputs = processor(text=["a red cat", "a dog"], images=[_photo()], padding="max_length",
                       max_length=real_tokenizer["model_max_length"], return_tensors="pt")
    assert "attention_mask" not in inputs
    assert set(processor.tokenizer(["a cat", "a dog on a mat"], padding=True)) == {"input_ids"}
    side, patch = real["vision_config"]["image_size"], real["vision_config"]["patch_size"]
    assert tuple(inputs["pixel_values"].shape) == (1, 3, side, side)
    assert inputs["input_ids"].shape == (2, real_tokenizer["model_max_length"])
    # punctuation and case are canonicalised away, and </s> ends every text, as SiglipTokenizer does
    ids = processor.tokenizer("A red CAT!").input_ids
    assert ids == processor.tokenizer("a red cat").input_ids and ids[-1] == processor.tokenizer.eos_token_id
    model = AutoModel.from_pretrained(built / "siglip")
    assert model.config.text_config.max_position_embeddings == real_tokenizer["model_max_length"]
    assert model.vision_model.embeddings.num_patches == (side // patch) ** 2 == 729


@pytest.mark.parametrize("family", ["blip_caption", "blip_vqa"])
def test_blip_has_the_hub_geometry_processor_and_decoder_tokens(built, family):
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor

    repo = _repo(family)
    real = fixtures.load(repo)
    processor = AutoProcessor.from_pretrained(built / family)
    assert processor.image_processor.to_dict() == AutoImageProcessor.from_pretrained(str(fixtures.folder(repo))).to_dict()
    config = AutoConfig.from_pretrained(built / family)
    assert config.architectures == real["architectures"]
    for key in ("image_size", "patch_size"):
        assert getattr(config.vision_config, key) == real["vision_config"][key]
    special = fixtures.load(repo, "special_tokens_map.json")
    tokenizer = processor.tokenizer
    assert tokenizer.bos_token == special["bos_token"] and tokenizer.sep_token == special["sep_token"]
    assert config.text_config.bos_token_id == tokenizer.bos_token_id
    # [DEC] and [ENC] come right after the word-piece vocabulary, like 30522 and 30523 after bert-base-uncased
    assert tokenizer.convert_tokens_to_ids(special["bos_token"]) == len(tokenizer) - 2
    assert real["text_config"]["bos_token_id"] == real["text_config"]["vocab_size"] - 2
    side = real["vision_config"]["image_size"]
    assert tuple(processor(images=_photo(), return_tensors="pt")["pixel_values"].shape) == (1, 3, side, side)


def test_sam_pads_to_1024_and_predicts_256_pixel_masks(built):
    from transformers import AutoImageProcessor, SamModel, SamProcessor

    repo = _repo("sam")
    real = fixtures.load(repo)
    processor = SamProcessor.from_pretrained(built / "sam")
    image_processor = processor.image_processor
    assert image_processor.to_dict() == AutoImageProcessor.from_pretrained(str(fixtures.folder(repo))).to_dict()
    side = real["vision_config"]["image_size"]
    assert side == image_processor.size["longest_edge"] == image_processor.pad_size["height"] == 1024
    photo = _photo()
    inputs = processor(images=photo, input_points=[[[320, 180]]], return_tensors="pt")
    assert tuple(inputs["pixel_values"].shape) == (1, 3, side, side)
    assert inputs["reshaped_input_sizes"][0].tolist() == [576, side]  # 16:9 scaled to the longest edge, then padded
    model = SamModel.from_pretrained(built / "sam")
    assert model.config.vision_config.patch_size == real["vision_config"]["patch_size"]
    with torch.no_grad():
        out = model(**inputs)
    low_res = 4 * side // real["vision_config"]["patch_size"]
    assert low_res == image_processor.mask_pad_size["height"] == 256
    assert tuple(out.pred_masks.shape[-2:]) == (low_res, low_res)
    masks = image_processor.post_process_masks(out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"])
    assert tuple(masks[0].shape[-2:]) == (photo.height, photo.width)


@pytest.mark.parametrize("family", ["txt2img", "pix2pix", "inpaint"])
def test_stable_diffusion_pipelines_have_the_hub_classes_schedulers_and_512_px(built, family):
    import diffusers

    from tools.diffusion import native_side

    repo = _repo(family)
    index = fixtures.load(repo, "model_index.json")
    pipe = getattr(diffusers, index["_class_name"]).from_pretrained(built / family)
    assert type(pipe).__name__ == json.loads((built / family / "model_index.json").read_text())["_class_name"]
    assert type(pipe.scheduler).__name__ == index["scheduler"][1]
    real_scheduler = fixtures.load(repo, "scheduler/scheduler_config.json")
    for key, value in real_scheduler.items():
        if not key.startswith("_"):
            assert pipe.scheduler.config[key] == value, key
    real_unet = fixtures.load(repo, "unet/config.json")
    real_vae = fixtures.load(repo, "vae/config.json")
    for key in ("in_channels", "out_channels", "sample_size"):
        assert pipe.unet.config[key] == real_unet[key], key
    assert len(pipe.vae.config.block_out_channels) == len(real_vae["block_out_channels"])
    assert pipe.vae.config.latent_channels == real_vae["latent_channels"]
    assert native_side(pipe) == real_vae["sample_size"] == 512
    real_text = fixtures.load(repo, "text_encoder/config.json")
    assert pipe.text_encoder.config.max_position_embeddings == real_text["max_position_embeddings"]
    assert pipe.tokenizer.model_max_length == fixtures.load(repo, "tokenizer/tokenizer_config.json")["model_max_length"]


def test_txt2img_default_size_is_the_native_512(built):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(built / "txt2img")
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red cat", num_inference_steps=1, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (fixtures.load(_repo("txt2img"), "vae/config.json")["sample_size"],) * 2


def test_controlnet_matches_the_hub_conditioning(built):
    from diffusers import ControlNetModel

    real = fixtures.load(_repo("controlnet"))
    controlnet = ControlNetModel.from_pretrained(built / "controlnet")
    for key in ("in_channels", "controlnet_conditioning_channel_order", "flip_sin_to_cos", "freq_shift"):
        assert controlnet.config[key] == real[key], key
    # four conditioning blocks, three of them downsampling: a 512 px sketch meets 64 px latents
    assert len(controlnet.config.conditioning_embedding_out_channels) == len(real["conditioning_embedding_out_channels"])
