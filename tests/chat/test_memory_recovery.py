"""Out of memory is recovered from: other models are freed and the work is tried once more; a second failure
is one clear sentence and every model stays usable."""

import pytest
import torch

from chat.registry import loading as loading_module
from chat.config import load_config
from chat.errors import ModelLoadError, OutOfMemory
from chat.registry import ModelRegistry

from tests.conftest import TINY_CONFIG


def _oom():
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def _failing_loader(monkeypatch, failures: int):
    """Make loading 'siglip' run out of memory ``failures`` times."""
    real = loading_module.loader_for
    calls = {"n": 0}

    def loader_for(name):
        loader, what, accepted = real(name)
        if name != "siglip":
            return loader, what, accepted

        def flaky(path, settings):
            calls["n"] += 1
            if calls["n"] <= failures:
                raise _oom()
            return loader(path, settings)

        return flaky, what, accepted

    monkeypatch.setattr(loading_module, "loader_for", loader_for)
    return calls


def test_a_load_that_runs_out_of_memory_frees_the_others_and_succeeds(tiny_dir, monkeypatch):
    registry = ModelRegistry(load_config(TINY_CONFIG))
    registry.get("clip")
    registry.get("blip_caption")
    calls = _failing_loader(monkeypatch, failures=1)
    messages = []
    registry.progress = lambda name, fraction, message: messages.append(message)
    assert registry.get("siglip") is not None
    assert calls["n"] == 2 and registry.loaded() == ["siglip"]
    assert any("unloading clip" in m for m in messages)
    assert registry.get("clip") is not None  # the freed model loads again when asked


def test_a_load_that_never_fits_says_so_in_one_sentence(tiny_dir, monkeypatch):
    registry = ModelRegistry(load_config(TINY_CONFIG))
    registry.get("clip")
    _failing_loader(monkeypatch, failures=5)
    with pytest.raises(ModelLoadError) as info:
        registry.get("siglip")
    message = str(info.value)
    assert message.startswith("Not enough memory to load model 'siglip'") and "\n" not in message
    assert registry.get("clip") is not None


def test_a_tool_that_runs_out_of_memory_is_retried_after_freeing_other_models(assistant, monkeypatch):
    from PIL import Image

    from chat.lc_tools import make_tools, run_tool
    from tools import caption as caption_module

    session = assistant.sessions.create()
    session.add_image(Image.new("RGB", (64, 48), (10, 200, 30)), "green.png")
    assistant.registry.get("clip")  # something else on the device that can be freed
    real = caption_module.caption
    calls = {"n": 0}

    def flaky(models, image, prefix="", **options):
        calls["n"] += 1
        models.get("blip_caption")
        if calls["n"] == 1:
            raise _oom()
        return real(models, image, prefix, **options)

    monkeypatch.setattr(caption_module, "caption", flaky)
    tools = {t.name: t for t in make_tools(assistant, session)}
    out = run_tool(tools["caption"], {})
    assert out.ok and calls["n"] == 2 and not assistant.registry.is_loaded("clip")

    monkeypatch.setattr(caption_module, "caption", lambda *a, **k: (_ for _ in ()).throw(_oom()))
    out = run_tool(tools["caption"], {})
    assert out.error.startswith("The device ran out of memory for the caption tool")
    assert len(session.images) == 1 and len(session.record().versions) == 1  # the session is intact


def test_an_answer_that_runs_out_of_memory_is_retried(assistant, monkeypatch):
    from PIL import Image

    from chat.mllm import GenerationOptions, Turn

    mllm = assistant.mllm
    model = mllm.bundle.model
    real = model.generate
    calls = {"n": 0}

    def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise _oom()
        return real(**kwargs)

    monkeypatch.setattr(model, "generate", flaky)
    turns = [Turn("user", "What is this?", [Image.new("RGB", (32, 32), "red")])]
    answer = mllm.generate(turns, GenerationOptions(max_new_tokens=4))
    assert calls["n"] == 2 and answer

    monkeypatch.setattr(model, "generate", lambda **kwargs: (_ for _ in ()).throw(_oom()))
    with pytest.raises(OutOfMemory, match="ran out of memory for the answer"):
        mllm.generate(turns, GenerationOptions(max_new_tokens=4))


@pytest.mark.parametrize("profile", ["gpu-8gb", "gpu-12gb", "gpu-16gb", "default"])
def test_each_gpu_profile_recovers_a_call_that_runs_out_of_memory(tiny_dir, profile):
    """The profile's placement on a (simulated) GPU: the other models leave the device, resident ones included,
    to CPU RAM, except those the profile keeps on disk, which are unloaded; the chat model's caches go with it;
    the call is retried once and the recovery is told in one sentence; the models come back without reloading."""
    from chat.config import load_config as load
    from tests.conftest import ROOT

    shipped = load(ROOT / "configs" / f"{profile}.yaml")
    config = load(TINY_CONFIG, profile=profile, offload=shipped.offload.model_dump(),
                  cache=shipped.cache.model_dump())
    registry = ModelRegistry(config)
    registry.memory.offload_device = "ram"  # the CPU plays the GPU: offloading moves nothing here
    registry.memory.move = lambda obj, device: None
    caches_dropped: list[str] = []
    registry.on_unload("llava", caches_dropped.append)
    before = ["llava", "clip", "siglip"]
    for name in before:
        registry.get(name)
    told: list[str] = []
    registry.add_progress_listener(lambda name, fraction, message: told.append(message))
    calls = {"n": 0}

    def caption():
        calls["n"] += 1
        model = registry.get("blip_caption")
        if calls["n"] == 1:
            raise _oom()
        return model

    assert registry.retry_on_oom(caption, "the caption tool") is not None and calls["n"] == 2
    (sentence,) = [m for m in told if "ran out of memory" in m]
    assert sentence.startswith("The device ran out of memory for the caption tool; it worked on the second try")
    assert sentence.count(". ") == 0 and sentence.endswith(".") and "\n" not in sentence
    assert registry.loaded() == ["blip_caption"] and caches_dropped == ["llava"]
    waiting = [n for n in before if n not in shipped.offload.disk]
    assert registry.offloaded() == waiting  # in CPU RAM; the profile's disk models were unloaded
    assert ("siglip" in waiting) == (profile != "gpu-8gb")
    for name in before:
        registry.get(name)
    assert all(registry.load_count[n] == (2 if n in shipped.offload.disk else 1) for n in before)

    def never_fits():
        registry.get("blip_caption")
        raise _oom()

    with pytest.raises(OutOfMemory) as info:
        registry.retry_on_oom(never_fits, "the caption tool")
    assert str(info.value).startswith("The device ran out of memory for the caption tool even after")
    assert "\n" not in str(info.value) and registry.get("llava") is not None
