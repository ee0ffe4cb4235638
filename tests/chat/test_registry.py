"""The model registry: lazy loading, 4-bit on CPU, memory budget with LRU eviction, clear load errors."""

import pytest

from chat.config import load_config
from chat.errors import ModelLoadError
from chat.registry import ModelRegistry

from tests.conftest import ROOT, TINY_CONFIG


def _config(**overrides):
    return load_config(TINY_CONFIG, **overrides)


def test_nothing_loads_until_asked(tiny_dir):
    registry = ModelRegistry(_config())
    assert registry.loaded() == [] and registry.used_bytes() == 0
    first = registry.get("clip")
    assert registry.get("clip") is first and registry.load_count["clip"] == 1
    assert registry.loaded() == ["clip"] and registry.used_bytes() > 0


def test_llava_language_model_is_4bit_and_vision_tower_is_not(tiny_dir):
    import bitsandbytes as bnb
    import torch

    model = ModelRegistry(_config()).get("llava").model
    lm_linears = [m for n, m in model.named_modules() if n.startswith("model.language_model") and
                  isinstance(m, torch.nn.Linear)]
    assert lm_linears and all(isinstance(m, bnb.nn.Linear4bit) for m in lm_linears)
    vision = [m for n, m in model.named_modules() if n.startswith("model.vision_tower") and
              isinstance(m, torch.nn.Linear)]
    assert vision and not any(isinstance(m, bnb.nn.Linear4bit) for m in vision)
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)


def test_budget_evicts_least_recently_used(tiny_dir):
    sizes = {}
    for name in ("clip", "siglip", "blip_vqa"):
        probe = ModelRegistry(_config())
        probe.get(name)
        sizes[name] = probe.used_bytes()
    # room for clip + blip_vqa, not for all three
    budget = sizes["clip"] + sizes["blip_vqa"] + 0.1 * sizes["siglip"]
    registry = ModelRegistry(_config(memory_budget_gb=budget / 2**30))
    registry.get("clip")
    registry.get("siglip")
    registry.get("clip")  # clip is now the most recently used
    registry.get("blip_vqa")
    assert registry.evictions == ["siglip"]
    assert sorted(registry.loaded()) == ["blip_vqa", "clip"]
    assert registry.used_bytes() <= registry.budget_bytes


def test_unload_listeners_hear_their_model_leave_however_it_goes(tiny_dir):
    registry = ModelRegistry(_config(memory_budget_gb=1e-6))  # one model at a time
    heard: list[str] = []
    registry.on_unload("clip", heard.append)
    stop = registry.on_unload("siglip", heard.append)
    registry.get("clip")
    registry.get("siglip")  # clip is pushed out by the budget
    assert heard == ["clip"] and registry.loaded() == ["siglip"]
    assert registry.unload("siglip") and heard == ["clip", "siglip"]
    stop()
    registry.get("siglip")
    registry.unload_all()
    assert heard == ["clip", "siglip"]  # a removed listener hears nothing more

    registry.on_unload("clip", lambda name: 1 / 0)  # a failing listener does not stop memory being freed
    registry.get("clip")
    registry.get("siglip")
    assert heard == ["clip", "siglip", "clip"] and registry.loaded() == ["siglip"]


def _fake_gpu(config) -> ModelRegistry:
    """Models 'run on a GPU', so the budget offloads them to CPU RAM (not moved for real here)."""
    registry = ModelRegistry(config)
    registry.memory.offload_device = "ram"
    registry.memory.move = lambda obj, device: None
    return registry


def test_unload_listeners_hear_an_offload_to_cpu_ram(tiny_dir):
    registry = _fake_gpu(_config(memory_budget_gb=1e-6, offload={"ram_gb": 64}))
    heard: list[str] = []
    registry.on_unload("clip", heard.append)
    registry.get("clip")
    registry.get("siglip")
    assert registry.offloaded() == ["clip"] and heard == ["clip"]
    registry.get("clip")  # back on the device: no event; siglip goes to RAM
    assert heard == ["clip"] and registry.offloaded() == ["siglip"]


def test_placement_is_a_read_only_snapshot_of_where_the_models_are(tiny_dir):
    """What the memory bench reports (``chat.bench.profiles``) comes from this public snapshot, not from the
    memory's own tables: changing the snapshot changes nothing, and a later one sees the next move."""
    import dataclasses

    registry = _fake_gpu(_config(memory_budget_gb=1e-6, offload={"ram_gb": 64}))
    registry.get("clip")
    before = registry.placement()
    assert before.on_device == ("clip",) and before.in_ram == () and before.device_parts == {"clip"}
    registry.get("siglip")  # clip waits in CPU RAM now
    after = registry.placement()
    assert after.on_device == ("siglip",) and after.in_ram == ("clip",) and after.waiting_in_ram == ("clip",)
    assert after.host_bytes == registry.entry("clip").nbytes > 0 and after.self_managed == ()
    assert before.on_device == ("clip",)  # the earlier snapshot did not follow
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.on_device = ("clip",)  # type: ignore[misc]
    assert registry.loaded() == ["siglip"] and registry.offloaded() == ["clip"]


def test_the_memory_bench_reads_the_registry_through_its_public_api():
    import ast
    import inspect

    from chat.bench import profiles

    tree = ast.parse(inspect.getsource(profiles))
    private = sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                      and node.attr.startswith("_") and not node.attr.startswith("__")
                      and not (isinstance(node.value, ast.Name) and node.value.id == "self")})
    assert private == []  # e.g. memory._entries, memory._offloaded, loader._model_cpu_offload


def _load_reports(name: str) -> list[tuple[str, float, str]]:
    seen: list[tuple[str, float, str]] = []
    ModelRegistry(_config(), progress=lambda model, f, msg: seen.append((model, f, msg))).get(name)
    return seen


def _in_between(seen) -> list[float]:
    fractions = [f for _, f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions.count(1.0) == 1
    return fractions[1:-1]


def test_a_pipeline_load_reports_increasing_fractions_one_step_per_component(tiny_dir):
    seen = _load_reports("pix2pix")
    between = _in_between(seen)
    assert all(0.0 < f < 1.0 for f in between) and between == sorted(set(between))  # strictly increasing
    steps = [m for _, f, m in seen if 0.0 < f < 1.0]
    for component in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert any(f"pix2pix: {component} (" in m for m in steps), component
    assert {name for name, _, _ in seen} == {"pix2pix"}


def test_a_transformers_load_reports_weight_groups_and_prints_no_bar_of_its_own(tiny_dir, capfd):
    from transformers.utils import logging as hf_logging

    seen = _load_reports("clip")
    between = _in_between(seen)
    assert all(0.0 < f < 1.0 for f in between) and between == sorted(set(between))
    weights = [f for _, f, m in seen if m.endswith("the weights")]
    assert len(weights) >= 10  # one step per weight group (1 % apart at least), not just before and after
    assert "Loading weights" not in capfd.readouterr().err
    previous = hf_logging.set_tqdm_hook(None)  # the registry's hook is gone after the load
    hf_logging.set_tqdm_hook(previous)
    assert previous is None


def test_missing_folder_names_the_checkpoint(tmp_path):
    config = _config()
    config.models["clip"].path = str(tmp_path / "nowhere")
    with pytest.raises(ModelLoadError) as err:
        ModelRegistry(config).get("clip")
    assert str(tmp_path / "nowhere") in str(err.value) and "models.clip.path" in str(err.value)


def test_hub_id_offline_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = _config()
    config.models["clip"].path = "someone/not-cached-model"
    with pytest.raises(ModelLoadError) as err:
        ModelRegistry(config).get("clip")
    assert "someone/not-cached-model" in str(err.value) and "download" in str(err.value)


def test_wrong_architecture_is_named(tiny_dir):
    config = _config()
    config.models["sam"].path = str(tiny_dir / "clip")
    with pytest.raises(ModelLoadError) as err:
        ModelRegistry(config).get("sam")
    assert str(tiny_dir / "clip") in str(err.value) and "sam" in str(err.value).lower()


def test_tiny_profile_builds_missing_checkpoints_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCHAT_TINY_DIR", str(tmp_path))
    registry = ModelRegistry(load_config(ROOT / "configs" / "tiny.yaml"))
    assert registry.get("blip_vqa").model is not None
    assert (tmp_path / "blip_vqa").is_dir() and not (tmp_path / "clip").exists()


def test_progress_listeners_hear_every_load_until_removed_and_the_old_attribute_still_works(tiny_dir):
    registry = ModelRegistry(_config())
    first, second, old = [], [], []
    remove_first = registry.add_progress_listener(lambda name, f, msg: first.append((name, f)))
    registry.add_progress_listener(lambda name, f, msg: 1 / 0)  # a failing listener stops nobody
    registry.add_progress_listener(lambda name, f, msg: second.append((name, f)))
    registry.progress = lambda name, f, msg: old.append((name, f))  # as the page's ProgressRelay sets it today
    registry.get("clip")
    assert first == second == old and ("clip", 1.0) in first and first[0] == ("clip", 0.0)
    remove_first()
    remove_first()  # removing twice is harmless
    registry.get("siglip")
    assert ("siglip", 1.0) in second and ("siglip", 1.0) in old and ("siglip", 1.0) not in first
