"""Benchmarks (python -m chat.bench) and the registry's memory policy: meta-device memory table, quick CPU run,
the GPU command without CUDA, LRU offload to CPU RAM (faked GPU) vs unload (CPU), pre-load size estimates."""

import json
import os
import subprocess
import sys

import pytest

from chat.config import load_config
from chat.registry import ModelRegistry, estimate_bytes, footprint, nf4_bytes

from tests.conftest import ROOT, TINY_CONFIG

DEFAULT_CONFIG = ROOT / "configs" / "default.yaml"


def _bench(*args, env=None, timeout=240):
    return subprocess.run([sys.executable, "-m", "chat.bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


# -- memory ------------------------------------------------------------------------------------
def test_memory_table_of_the_default_profile_from_meta_architectures():
    from chat.bench.memory import GIB, compute, render

    report = compute(str(DEFAULT_CONFIG), "cuda")
    rows = {r.key: r for r in report.rows}
    assert set(rows) == set(load_config(DEFAULT_CONFIG).models)
    assert 3.5 <= rows["llava"].gib <= 4.5  # NF4 language model + fp16 vision tower, projector, lm_head
    assert 6.9e9 < rows["llava"].params < 7.2e9
    assert 1.9 < rows["txt2img"].gib < 2.1 and rows["pix2pix"].components == ["unet", "vae", "text_encoder"]
    assert report.total_bytes == sum(r.bytes for r in report.rows)
    assert report.total_bytes <= report.budget_bytes and report.co_resident() == list(rows)
    assert 0.5 < report.shareable_bytes / GIB < 1.0
    text = render(report)
    assert "llava-hf/llava-1.5-7b-hf" in text and "total" in text and "co-resident" in text


def test_nf4_bytes_are_about_4_13_bits_per_weight():
    n = 4096 * 11008
    assert 4.12 < nf4_bytes(n) * 8 / n < 4.14


def test_meta_estimate_matches_the_loaded_4bit_llava(tiny_dir):
    """The table's accounting (meta device) and the registry's (loaded bitsandbytes model) agree."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, LlavaForConditionalGeneration

    from chat.bench.architectures import LLAVA_SKIP
    from chat.bench.memory import module_bytes

    config = load_config(TINY_CONFIG)
    loaded = footprint(ModelRegistry(config).get("llava"))
    with init_empty_weights(include_buffers=True):
        meta = LlavaForConditionalGeneration(AutoConfig.from_pretrained(config.models["llava"].path))
    _, estimated = module_bytes(meta, 4, "nf4", LLAVA_SKIP)
    assert abs(estimated - loaded) / loaded < 0.005
    before_loading = estimate_bytes(config.models["llava"].path, "nf4", 4)
    assert abs(before_loading - loaded) / loaded < 0.03


def test_memory_command_prints_json(capsys):
    from chat.bench.__main__ import main

    assert main(["memory", "--json", "--config", str(DEFAULT_CONFIG)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"total_gib", "budget_gib", "co_resident", "models", "fits", "profiles", "speeds"} <= set(data)
    assert data["fits"] is True and data["fits_by_profile"] == {"default": True}
    assert data["all_weights_co_resident"] is True  # 24 GB: every model on the device at once
    assert data["budget_gib"] == 24 - 0.5 - 0.25  # auto on a 24 GB card: less the CUDA context and the margin
    (profile,) = data["profiles"]
    assert profile["profile"] == "default" and profile["fits"] is True and profile["worst"]["from_disk"] == 0
    assert data["speeds"]["disk"] > 0 and "no GPU here" in data["speeds"]["host_source"]


def test_memory_json_fits_means_the_profile_fits_its_card_not_all_weights_at_once(capsys):
    """On an 8 GB card not every model is on the GPU at once (by design), yet every tool's peak plus the CUDA
    context fits the card: the top-level ``fits`` says the latter, ``all_weights_co_resident`` the former."""
    from chat.bench.__main__ import main

    assert main(["memory", "--json", "--config", str(ROOT / "configs" / "gpu-8gb.yaml")]) == 0
    data = json.loads(capsys.readouterr().out)
    (profile,) = data["profiles"]
    assert profile["profile"] == "gpu-8gb" and profile["card_gib"] == 8
    assert profile["peak_with_context_gib"] <= 8 and profile["fits"] is True
    assert data["fits"] is True and data["fits_by_profile"] == {"gpu-8gb": True}
    assert data["all_weights_co_resident"] is False and data["total_gib"] > data["budget_gib"]
    assert data["co_resident"] and len(data["co_resident"]) < len(data["models"])


# -- gpu ---------------------------------------------------------------------------------------
def test_gpu_command_without_cuda_says_so_in_one_line():
    result = _bench("gpu", env={"CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0]


def test_gpu_arguments_and_the_7b_config_on_meta():
    from accelerate import init_empty_weights
    from transformers import LlavaForConditionalGeneration

    from chat.bench.__main__ import build_parser
    from chat.bench.gpu import MODES, llava_7b, mode_settings, parse_modes
    from chat.tiny.text_tokenizers import IMAGE_TOKEN, llama_tokenizer

    args = build_parser().parse_args(["gpu", "--tokens", "64", "--modes", "nf4,nf4-static"])
    assert args.tokens == 64 and parse_modes(args.modes) == ["nf4", "nf4-static"]
    assert parse_modes(",".join(MODES)) == list(MODES)
    with pytest.raises(ValueError, match="unknown mode 'int3'"):
        parse_modes("fp16,int3")
    assert mode_settings("nf4-static") == {"quantize": "nf4", "static": True}
    assert mode_settings("fp16") == {"quantize": "none", "static": False}
    tokenizer = llama_tokenizer()
    config = llava_7b(tokenizer)
    assert config.image_token_index == tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert config.text_config.num_hidden_layers == 32 and config.vision_config.image_size == 336
    with init_empty_weights():
        model = LlavaForConditionalGeneration(config)
    assert 7.0e9 < sum(p.numel() for p in model.parameters()) < 7.1e9


def test_bad_arguments_exit_2_with_one_line():
    for args in (["gpu", "--tokens", "0"], ["cpu", "--only", "nothing"], ["gpu", "--modes", "fp8"],
                 ["memory", "--device", "tpu"]):
        result = _bench(*args)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, args


# -- cpu ---------------------------------------------------------------------------------------
def test_cpu_quick_runs_end_to_end_and_prints_every_figure():
    result = _bench("cpu", "--quick", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert data["mode"] == "quick"
    assert data["scoring"]["speedup"] > 0 and data["scoring"]["with_cache_ms"] > 0
    follow = data["followup"]
    assert {"first_ttft_ms", "followup_ttft_ms", "ttft_ratio", "uncached_ttft_ratio"} <= set(follow)
    assert follow["greedy_identical"] is True and follow["images_encoded_followup"] == 0
    assert follow["reused_tokens_followup"] > 64  # the image tokens were not prefilled again
    assert follow["choice_options"] == 11 and follow["choice_ms"] > 0 and follow["choice_max_diff"] < 1e-3
    assert follow["router_greedy_identical"] is True and follow["router_images_encoded"] == 0  # the app's own path
    assert follow["router_reused_tokens"] > 64
    assert data["markers"]["markers_ms"] > 0 and data["markers"]["som_ms"] > 0 and data["markers"]["som_marks"] >= 1
    assert {"slash_overhead_ms", "chat_overhead_ms"} <= set(data["router"])
    find = data["grounding"]  # a second phrase on the same image encodes only its text
    assert find["candidates"] == 8 and find["images_encoded_first"] == 3 * 8 and find["proposals"] == 1
    assert find["images_encoded_second"] == 0 and find["texts_encoded_second"] == 1 and 0 < find["ratio"] < 1


def test_scoring_bench_new_labels_on_a_seen_image_keep_their_scores_and_run_faster():
    """What ``python -m chat.bench cpu`` reports for scoring: the same scores both ways (bitwise here: the cached
    pass computes the labels' tokens exactly as the whole prompts' pass does) and those of transformers' own
    forward; faster with the cache. The ratio is only asserted loosely (shared CI machines): README has the figure."""
    from chat.bench.scoring import run

    result = run(runs=3, n_labels=5, dims="vit-b32")  # the hard case, and fast; the shipped geometry: below
    assert result["image"] == "640x480" and result["labels"] == 5 and result["runs"] == 3
    assert result["max_score_diff"] == 0.0
    assert result["max_diff_from_model"] < 1e-6
    assert result["speedup"] > 1.5
    spent = result["spent"]
    assert spent["own_tokens_text_ms"] < spent["whole_prompts_text_ms"] + spent["image_ms"]


def test_scoring_bench_measures_the_clip_every_shipped_config_loads():
    """The bench's default geometry is the shipped CLIP's (577 image tokens, not ViT-B/32's 50): the cache's ratio
    depends on it, so it must be the checkpoint a person runs, with that checkpoint's config.json dimensions."""
    from chat.bench.scoring import DIMENSIONS, SHIPPED, SHIPPED_CHECKPOINT

    for name in ("default", "gpu-8gb", "gpu-12gb", "gpu-16gb"):
        assert load_config(ROOT / "configs" / f"{name}.yaml").models["clip"].path == SHIPPED_CHECKPOINT
    text, vision, projection = DIMENSIONS[SHIPPED]
    assert (vision["image_size"], vision["patch_size"], vision["num_hidden_layers"], vision["hidden_size"]) == (
        336, 14, 24, 1024)
    assert (text["num_hidden_layers"], text["hidden_size"], projection) == (12, 768, 768)
    assert (vision["image_size"] // vision["patch_size"]) ** 2 + 1 == 577


# -- registry: LRU offload vs unload -----------------------------------------------------------
def _config(**overrides):
    return load_config(TINY_CONFIG, **overrides)


@pytest.fixture(scope="module")
def sizes(tiny_dir):
    out = {}
    for name in ("clip", "siglip", "blip_vqa"):
        probe = ModelRegistry(_config())
        probe.get(name)
        out[name] = probe.used_bytes()
    return out


class FakeGpuRegistry(ModelRegistry):
    """Models 'run on a GPU': offloading moves them to CPU RAM (recorded here instead of moved)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.moves: list[tuple[str, str]] = []
        self._names: dict[int, str] = {}
        # the device ("cpu") plays the GPU
        self.memory.offload_device = "ram" if self.config.offload.ram_gb > 0 else None
        self.memory.move = self._move
        load = self.loader.load

        def named(name):
            entry = load(name)
            self._names[id(entry.obj)] = name
            return entry

        self.loader.load = named

    def _move(self, obj, device):
        self.moves.append((self._names[id(obj)], "gpu" if device == self.device else device))


def test_lru_model_is_offloaded_to_ram_and_comes_back_without_reloading(sizes):
    budget = sizes["clip"] + sizes["blip_vqa"] + 0.1 * sizes["siglip"]
    ram = max(sizes.values()) * 1.5  # room for one offloaded model
    registry = FakeGpuRegistry(_config(memory_budget_gb=budget / 2**30, offload={"ram_gb": ram / 2**30}))
    registry.get("clip")
    siglip = registry.get("siglip")
    registry.get("clip")
    registry.get("blip_vqa")  # siglip is the least recently used: offloaded, not unloaded
    assert registry.evictions == ["siglip"] and registry.offloads == ["siglip"]
    assert registry.offloaded() == ["siglip"] and sorted(registry.loaded()) == ["blip_vqa", "clip"]
    assert registry.used_bytes() <= registry.budget_bytes
    assert registry.get("siglip") is siglip and registry.load_count["siglip"] == 1  # moved back, not reloaded
    assert registry.moves == [("siglip", "ram"), ("clip", "ram"), ("siglip", "gpu")]
    assert registry.offloaded() == ["clip"]  # clip was the least recently used when siglip came back
    registry.get("blip_vqa")
    registry.get("clip")  # ram holds one model: the older offloaded one is unloaded for the newer
    assert registry.offloaded() == ["siglip"] and registry.load_count["clip"] == 1
    assert registry.unload("siglip") and registry.offloaded() == []


def test_offload_needs_ram_for_the_model(sizes):
    budget = sizes["clip"] + sizes["blip_vqa"] + 0.1 * sizes["siglip"]
    tiny_ram = min(sizes.values()) * 0.5 / 2**30
    registry = FakeGpuRegistry(_config(memory_budget_gb=budget / 2**30, offload={"ram_gb": tiny_ram}))
    for name in ("clip", "siglip", "clip", "blip_vqa"):
        registry.get(name)
    assert registry.evictions == ["siglip"] and registry.offloads == [] and registry.offloaded() == []


def test_on_cpu_offloading_is_unloading(sizes):
    budget = sizes["clip"] + sizes["blip_vqa"] + 0.1 * sizes["siglip"]
    registry = ModelRegistry(_config(memory_budget_gb=budget / 2**30, offload={"ram_gb": 64}))
    assert registry.device == "cpu" and registry.offload_device is None
    for name in ("clip", "siglip", "clip", "blip_vqa"):
        registry.get(name)
    assert registry.evictions == ["siglip"] and registry.offloaded() == [] and registry.offloads == []


def test_diffusers_model_cpu_offload_only_on_gpu_and_where_it_helps():
    gpu = ModelRegistry(_config(device="cuda", memory_budget_gb=2)).loader
    budget = gpu.memory.budget_bytes - gpu.memory.reserved_bytes("inpaint")  # what its weights may take
    assert gpu.model_cpu_offload("Stable Diffusion inpainting pipeline", budget + 1, "inpaint")
    assert not gpu.model_cpu_offload("Stable Diffusion inpainting pipeline", budget // 2, "inpaint")
    assert not gpu.model_cpu_offload("CLIP model", budget * 2, "clip")
    always = ModelRegistry(_config(device="cuda", offload={"diffusers": "always"})).loader
    assert always.model_cpu_offload("instruct-pix2pix pipeline", 1, "pix2pix")
    never = ModelRegistry(_config(device="cuda", memory_budget_gb=1, offload={"diffusers": "never"})).loader
    assert not never.model_cpu_offload("instruct-pix2pix pipeline", 2**40, "pix2pix")
    cpu = ModelRegistry(_config(memory_budget_gb=1, offload={"diffusers": "always"})).loader
    assert not cpu.model_cpu_offload("instruct-pix2pix pipeline", 2**40, "pix2pix")


def test_a_pipeline_chosen_for_model_cpu_offload_gets_diffusers_hooks_at_load_and_before_a_shared_call():
    from chat.registry import Entry

    class Pipeline:
        def __init__(self):
            self.hooks: list[str] = []

        def enable_model_cpu_offload(self, device):
            self.hooks.append(device)

    loader = ModelRegistry(_config(device="cuda", offload={"diffusers": "always"})).loader
    loaded = loader._load_once(lambda path, settings: Pipeline(), "unused", None, True, "inpaint")
    assert loaded.hooks == ["cuda"]
    pipeline = Pipeline()  # sharing the VAE with another offloaded pipeline: its own hooks again before its call
    entry = Entry("inpaint", pipeline, 0, 0.0, 0.0, offloadable=False, part_of={"vae": "shared:vae"})
    loader.before_call(entry)
    loader.before_call(entry)  # already its hooks: nothing again
    assert pipeline.hooks == ["cuda"]


def test_estimate_reads_headers_of_the_files_a_load_reads_at_the_load_dtype(tmp_path):
    import json

    import torch
    from safetensors.torch import save_file

    (tmp_path / "unet").mkdir()
    (tmp_path / "safety_checker").mkdir()
    (tmp_path / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"]}))
    (tmp_path / "unet" / "config.json").write_text("{}")
    save_file({"w": torch.zeros(100, 10)}, str(tmp_path / "unet" / "diffusion_pytorch_model.safetensors"))
    save_file({"w": torch.zeros(100, 10, dtype=torch.float16)},
              str(tmp_path / "unet" / "diffusion_pytorch_model.fp16.safetensors"))
    save_file({"w": torch.zeros(1000, 1000)}, str(tmp_path / "safety_checker" / "model.safetensors"))
    save_file({"w": torch.zeros(1000, 1000)}, str(tmp_path / "v1-5-pruned.safetensors"))  # a single-file copy
    # one unet, counted once (its fp16 variant is an alternative, not more weights); the safety checker and the
    # root single-file checkpoint are never loaded
    assert estimate_bytes(str(tmp_path), "none") == 1000 * 4
    assert estimate_bytes(str(tmp_path), "none", itemsize=2) == 1000 * 2  # floats at the load dtype
    assert estimate_bytes(str(tmp_path / "missing"), "none") == 0
    assert estimate_bytes("someone/not-cached-model", "nf4") == 0
