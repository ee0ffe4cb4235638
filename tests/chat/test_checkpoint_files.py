"""Which files of a checkpoint a load reads (and so ``mmchat pull`` downloads): pure rules over file listings.

The listings are shaped like the hub's (the file names such repositories carry: several weight formats side by
side, variants, a safety checker, root single-file checkpoints, docs); they are illustrations of the rules, not a
record of any repository's current contents."""

from __future__ import annotations

from chat.checkpoint_files import choose_weights, missing_files, wanted_files, weight_format

LLAVA_LIKE = [
    ".gitattributes", "README.md", "added_tokens.json", "chat_template.json", "config.json",
    "generation_config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
    "model-00003-of-00003.safetensors", "model.safetensors.index.json", "preprocessor_config.json",
    "processor_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
]
BIN_ONLY_CLIP_LIKE = [
    ".gitattributes", "README.md", "config.json", "merges.txt", "preprocessor_config.json", "pytorch_model.bin",
    "special_tokens_map.json", "tf_model.h5", "flax_model.msgpack", "tokenizer.json", "tokenizer_config.json",
    "vocab.json",
]
SD_LIKE = [
    ".gitattributes", "README.md", "model_index.json", "v1-5-pruned.ckpt", "v1-5-pruned.safetensors",
    "v1-inference.yaml", "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json", "safety_checker/model.safetensors", "safety_checker/model.fp16.safetensors",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors",
    "text_encoder/pytorch_model.bin", "text_encoder/pytorch_model.fp16.bin",
    "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.safetensors", "unet/diffusion_pytorch_model.bin",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin",
]
SD_INDEX = {
    "_class_name": "StableDiffusionPipeline", "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"], "image_encoder": [None, None], "requires_safety_checker": True,
}
SD_SIDE = ["feature_extractor/preprocessor_config.json", "model_index.json", "scheduler/scheduler_config.json",
           "text_encoder/config.json", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
           "tokenizer/tokenizer_config.json", "tokenizer/vocab.json", "unet/config.json", "vae/config.json"]


def test_weight_names_are_parsed_with_their_format_and_variant():
    assert weight_format("model.safetensors") == ("safetensors", None)
    assert weight_format("model-00001-of-00003.safetensors") == ("safetensors", None)
    assert weight_format("model.safetensors.index.json") == ("safetensors", None)
    assert weight_format("diffusion_pytorch_model.fp16.safetensors") == ("safetensors", "fp16")
    assert weight_format("model.fp16-00001-of-00002.safetensors") == ("safetensors", "fp16")
    assert weight_format("diffusion_pytorch_model.safetensors.index.fp16.json") == ("safetensors", "fp16")
    assert weight_format("pytorch_model.bin") == ("bin", None)
    assert weight_format("diffusion_pytorch_model.non_ema.safetensors") == ("safetensors", "non_ema")
    for other in ("v1-5-pruned.safetensors", "sd-v1-5.ckpt", "tf_model.h5", "config.json", "flax_model.msgpack"):
        assert weight_format(other) is None, other


def test_a_transformers_checkpoint_reads_its_sharded_safetensors_and_side_files_only():
    assert wanted_files(LLAVA_LIKE, "transformers") == sorted(
        f for f in LLAVA_LIKE if f not in (".gitattributes", "README.md"))


def test_a_bin_only_checkpoint_reads_the_bin_and_never_other_frameworks():
    wanted = wanted_files(BIN_ONLY_CLIP_LIKE, "transformers")
    assert "pytorch_model.bin" in wanted
    assert not {"tf_model.h5", "flax_model.msgpack", "README.md", ".gitattributes"} & set(wanted)
    choice = choose_weights(BIN_ONLY_CLIP_LIKE)
    assert not choice.safetensors and "read pytorch_model.bin" in choice.note


def test_safetensors_win_over_bin_beside_them_and_transformers_ignore_variants():
    names = ["model.safetensors", "pytorch_model.bin", "model.fp16.safetensors"]
    assert choose_weights(names, fp16=True).files == ("model.safetensors",)


def test_an_sd_pipeline_at_fp16_reads_the_fp16_variant_of_each_component():
    wanted = wanted_files(SD_LIKE, "pipeline", fp16=True, model_index=SD_INDEX)
    assert wanted == sorted(SD_SIDE + [
        "text_encoder/model.fp16.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors",  # no fp16 variant in this folder: the plain file
    ])


def test_an_sd_pipeline_at_float32_reads_the_plain_files():
    wanted = wanted_files(SD_LIKE, "pipeline", fp16=False, model_index=SD_INDEX)
    assert wanted == sorted(SD_SIDE + [
        "text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors"])
    # never the safety checker, root single-file checkpoints, non-EMA weights or .bin copies
    assert not [f for f in wanted if f.startswith("safety_checker") or "pruned" in f or "non_ema" in f
                or f.endswith(".bin")]


def test_a_pipeline_needs_its_model_index_first():
    assert wanted_files(SD_LIKE, "pipeline") == ["model_index.json"]


def test_only_fp16_files_at_float32_are_still_read():
    assert choose_weights(["diffusion_pytorch_model.fp16.safetensors"], fp16=False, variants=True).variant == "fp16"


def test_a_controlnet_reads_its_root_weights_with_the_variant_rule():
    names = ["config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
             "diffusion_pytorch_model.bin", "README.md"]
    assert wanted_files(names, "diffusers_model", fp16=True) == [
        "config.json", "diffusion_pytorch_model.fp16.safetensors"]


def test_missing_files_name_what_a_partial_copy_lacks():
    pulled = wanted_files(SD_LIKE, "pipeline", fp16=True, model_index=SD_INDEX)
    assert missing_files(pulled, SD_LIKE, "pipeline", True, SD_INDEX) == []
    partial = [f for f in pulled if not f.startswith("unet/diffusion") and f != "tokenizer/vocab.json"]
    assert missing_files(partial, SD_LIKE, "pipeline", True, SD_INDEX) == ["tokenizer/vocab.json", "unet/weights"]
    # plain weights already cached stand in for the fp16 variant: nothing is missing
    plain = wanted_files(SD_LIKE, "pipeline", fp16=False, model_index=SD_INDEX)
    assert missing_files(plain, SD_LIKE, "pipeline", True, SD_INDEX) == []
    assert missing_files(["config.json"], None, "transformers") == ["weights"]
