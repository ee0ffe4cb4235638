"""The tiny offline checkpoints: every family builds, loads with the real loaders' calls, and runs."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chat import tiny

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")



@pytest.fixture(scope="module")
def built(tiny_dir) -> Path:
    """Every family, as this test session built them with ``tiny.build`` (the build itself is under test)."""
    return tiny_dir


def _image_tokens(config) -> int:
    """One image's tokens in the prompt: one per patch of the vision tower (CLS dropped)."""
    return (config.vision_config.image_size // config.vision_config.patch_size) ** 2


@pytest.fixture
def image():
    return Image.new("RGB", (80, 60), (200, 30, 30))


def _conversation():
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color is the cat?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "It is red."}]},
        {"role": "user", "content": [{"type": "text", "text": "And the dog?"}]},
    ]


def test_every_family_is_built_and_small(built):
    for family in tiny.FAMILIES:
        folder = built / family
        assert tiny.is_built(built, family)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        assert size < 2_000_000, (family, size)
        assert list(folder.rglob("*.safetensors")), family
        assert not list(folder.rglob("*.bin")), family
    assert not tiny.is_built(built / "nowhere", "llava")


def test_unknown_family_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown tiny model family"):
        tiny.build(tmp_path, ["gpt5"])
    with pytest.raises(ValueError):
        tiny.ensure(tmp_path, "gpt5")


def test_import_is_light():
    code = "import sys, chat.tiny; print(any(m in sys.modules for m in ('torch', 'transformers', 'diffusers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "family, model_class, expected",
    [
        ("llava", "LlavaForConditionalGeneration", "USER: <image>\nWhat color is the cat? ASSISTANT: It is red. "
         "USER: And the dog? ASSISTANT:"),
        ("vip_llava", "VipLlavaForConditionalGeneration", "###Human: <image>\nWhat color is the cat?"
         "###Assistant: It is red.###Human: And the dog?###Assistant:"),
    ],
    ids=["llava", "vip_llava"],
)
def test_mllm_chat_template_processor_and_generate(built, image, family, model_class, expected):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(built / family)
    model = AutoModelForImageTextToText.from_pretrained(built / family).eval()
    assert type(model).__name__ == model_class
    prompt = processor.apply_chat_template(_conversation(), add_generation_prompt=True, tokenize=False)
    assert prompt == expected
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    assert inputs["input_ids"][0, 0].item() == processor.tokenizer.bos_token_id
    assert (inputs["input_ids"] == model.config.image_token_id).sum().item() == _image_tokens(model.config)
    assert model.generation_config.eos_token_id == processor.tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    assert 1 <= len(new) <= 4
    assert isinstance(processor.decode(new, skip_special_tokens=True), str)


def test_llava_generation_stops_at_eos(built, image):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(built / "llava")
    model = AutoModelForImageTextToText.from_pretrained(built / "llava").eval()
    inputs = processor(images=image, text="USER: <image>\nhi ASSISTANT:", return_tensors="pt")
    with torch.no_grad():
        first = model.generate(**inputs, max_new_tokens=1, do_sample=False)[0, -1].item()
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False, eos_token_id=first)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 1


def test_llava_loads_in_4bit_on_cpu(built, image):
    bnb = pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
        llm_int8_skip_modules=["model.vision_tower", "model.multi_modal_projector", "lm_head"],
    )
    processor = AutoProcessor.from_pretrained(built / "llava")
    model = AutoModelForImageTextToText.from_pretrained(built / "llava", quantization_config=quant).eval()
    linears = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    language = [m for n, m in linears.items() if n.startswith("model.language_model")]
    kept = [m for n, m in linears.items() if not n.startswith("model.language_model")]
    assert language and all(isinstance(m, bnb.nn.Linear4bit) for m in language)
    assert kept and not any(isinstance(m, bnb.nn.Linear4bit) for m in kept)
    prompt = processor.apply_chat_template(_conversation()[:1], add_generation_prompt=True, tokenize=False)
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_clip_scores(built, image):
    from transformers import AutoModel, AutoProcessor

    processor = AutoProcessor.from_pretrained(built / "clip")
    model = AutoModel.from_pretrained(built / "clip").eval()
    assert type(model).__name__ == "CLIPModel"
    inputs = processor(text=["a red cat", "a blue dog"], images=[image], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**inputs).logits_per_image
        features = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
    assert logits.shape == (1, 2)
    assert features.shape == (1, 64)


def test_siglip_scores_with_max_length_64(built, image):
    from transformers import AutoModel, AutoProcessor

    processor = AutoProcessor.from_pretrained(built / "siglip")
    model = AutoModel.from_pretrained(built / "siglip").eval()
    assert type(model).__name__ == "SiglipModel"
    inputs = processor(
        text=["a red cat", "a blue dog"], images=[image], return_tensors="pt", padding="max_length", max_length=64
    )
    assert inputs["input_ids"].shape == (2, 64)
    with torch.no_grad():
        logits = model(**inputs).logits_per_image
    assert logits.shape == (1, 2)
    assert torch.isfinite(torch.sigmoid(logits)).all()


def test_blip_caption_with_and_without_prefix(built, image):
    from transformers import AutoProcessor, BlipForConditionalGeneration, BlipProcessor

    assert type(AutoProcessor.from_pretrained(built / "blip_caption")).__name__ == "BlipProcessor"
    processor = BlipProcessor.from_pretrained(built / "blip_caption")
    model = BlipForConditionalGeneration.from_pretrained(built / "blip_caption").eval()
    with torch.no_grad():
        plain = model.generate(**processor(images=image, return_tensors="pt"), max_new_tokens=5)
        prefixed = model.generate(**processor(images=image, text="a photo of", return_tensors="pt"), max_new_tokens=5)
    assert isinstance(processor.decode(plain[0], skip_special_tokens=True), str)
    assert processor.decode(prefixed[0], skip_special_tokens=True).startswith("a photo of")


def test_blip_vqa_answers(built, image):
    from transformers import BlipForQuestionAnswering, BlipProcessor

    processor = BlipProcessor.from_pretrained(built / "blip_vqa")
    model = BlipForQuestionAnswering.from_pretrained(built / "blip_vqa").eval()
    inputs = processor(images=image, text="what color is the cat?", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"], max_new_tokens=4)
    assert out.shape[0] == 1
    assert isinstance(processor.decode(out[0], skip_special_tokens=True), str)


def test_sam_point_prompt_gives_masks(built, image):
    from transformers import SamModel, SamProcessor

    processor = SamProcessor.from_pretrained(built / "sam")
    model = SamModel.from_pretrained(built / "sam").eval()
    inputs = processor(images=image, input_points=[[[40, 30]]], return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    masks = processor.image_processor.post_process_masks(
        out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
    )
    assert masks[0].shape == (1, 3, 60, 80)
    assert masks[0].dtype == torch.bool
    assert out.iou_scores.shape == (1, 1, 3)


def _quiet(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_txt2img_two_steps(built):
    from diffusers import StableDiffusionPipeline

    pipe = _quiet(StableDiffusionPipeline.from_pretrained(built / "txt2img"))
    assert pipe.vae_scale_factor == 8
    out = pipe("a red cat", num_inference_steps=2, height=64, width=64, generator=torch.Generator().manual_seed(0))
    assert out.images[0].size == (64, 64)


def test_pix2pix_two_steps(built, image):
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = _quiet(StableDiffusionInstructPix2PixPipeline.from_pretrained(
        built / "pix2pix", safety_checker=None, requires_safety_checker=False
    ))
    assert pipe.unet.config.in_channels == 8
    result = pipe("make it blue", image=image.resize((64, 64)), num_inference_steps=2,
                  generator=torch.Generator().manual_seed(0)).images[0]
    assert result.size == (64, 64)


def test_inpaint_two_steps(built, image):
    from diffusers import StableDiffusionInpaintPipeline

    pipe = _quiet(StableDiffusionInpaintPipeline.from_pretrained(
        built / "inpaint", safety_checker=None, requires_safety_checker=False
    ))
    assert pipe.unet.config.in_channels == 9
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    result = pipe("a dog", image=image.resize((64, 64)), mask_image=mask, num_inference_steps=2,
                  height=64, width=64, generator=torch.Generator().manual_seed(0)).images[0]
    assert result.size == (64, 64)


def test_controlnet_from_pipe_follows_the_condition(built):
    import numpy as np
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionPipeline

    base = StableDiffusionPipeline.from_pretrained(built / "txt2img")
    controlnet = ControlNetModel.from_pretrained(built / "controlnet")
    pipe = _quiet(StableDiffusionControlNetPipeline.from_pipe(base, controlnet=controlnet))
    results = []
    for colour in ("black", "white"):
        sketch = Image.new("RGB", (128, 128), colour)
        out = pipe("a house", image=sketch, num_inference_steps=2, height=128, width=128,
                   generator=torch.Generator().manual_seed(0))
        results.append(np.asarray(out.images[0], dtype=float))
    assert results[0].shape == (128, 128, 3)
    assert np.abs(results[0] - results[1]).mean() > 0.0


def test_ensure_builds_only_when_missing(tmp_path):
    assert not tiny.is_built(tmp_path, "sam")
    path = tiny.ensure(tmp_path, "sam")
    assert path == tmp_path / "sam" and tiny.is_built(tmp_path, "sam")
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert tiny.ensure(tmp_path, "sam") == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sam.lock", "sam"]  # no staging left behind


def test_concurrent_ensure_builds_once(tmp_path, monkeypatch):
    from chat.tiny import vision

    calls = []
    real = vision.build_sam

    def slow_build(directory):
        calls.append(directory)
        threading.Event().wait(0.2)
        real(directory)

    monkeypatch.setattr(vision, "build_sam", slow_build)
    results = []
    threads = [threading.Thread(target=lambda: results.append(tiny.ensure(tmp_path, "sam"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == [tmp_path / "sam"] * 3


def test_builds_are_deterministic(built, tmp_path):
    families = ["llava", "siglip", "txt2img"]
    assert tiny.build(tmp_path, families) == families
    for family in families:
        for original in (built / family).rglob("*"):
            if original.is_file():
                copy = tmp_path / family / original.relative_to(built / family)
                assert copy.read_bytes() == original.read_bytes(), original


def test_rebuild_replaces_atomically(tmp_path):
    tiny.build(tmp_path, ["controlnet"])
    (tmp_path / "controlnet" / "stale.txt").write_text("old")
    tiny.build(tmp_path, ["controlnet"])
    assert not (tmp_path / "controlnet" / "stale.txt").exists()
    assert tiny.is_built(tmp_path, "controlnet")
    tiny.build(tmp_path, ["controlnet"], force=False)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["controlnet"]
