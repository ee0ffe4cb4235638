"""Config loading: both shipped profiles validate; errors name the file and the key."""

import pytest

from chat.config import load_config
from chat.errors import UserError

from tests.conftest import ROOT


def test_default_profile_names_real_checkpoints():
    config = load_config(ROOT / "configs" / "default.yaml")
    assert config.models["llava"].path == "llava-hf/llava-1.5-7b-hf"
    assert config.models["llava"].quantize == "nf4"
    assert config.models["sam"].path == "facebook/sam-vit-base"
    assert config.server.host == "127.0.0.1"


def test_tiny_profile_resolves_tiny_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MMCHAT_TINY_DIR", str(tmp_path))
    config = load_config(ROOT / "configs" / "tiny.yaml")
    assert config.models["clip"].path == str(tmp_path / "clip")


def test_unknown_key_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: {llava: {path: x}}\nmemory_budget_gbb: 3\n")
    with pytest.raises(UserError) as err:
        load_config(bad)
    assert "memory_budget_gbb" in str(err.value) and str(bad) in str(err.value)


def test_nested_bad_value_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: {llava: {path: x, quantize: nf5}}\n")
    with pytest.raises(UserError, match=r"models\.llava\.quantize"):
        load_config(bad)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(broken)


def test_env_selects_config(monkeypatch, tmp_path):
    monkeypatch.setenv("MMCHAT_CONFIG", str(ROOT / "configs" / "tiny.yaml"))
    monkeypatch.setenv("MMCHAT_TINY_DIR", str(tmp_path))
    assert load_config().profile == "tiny"


def test_image_aspect_ratio_is_checked_and_defaults_to_auto(tmp_path):
    config = load_config(ROOT / "configs" / "default.yaml")
    assert {spec.image_aspect_ratio for spec in config.models.values()} == {"auto"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: {llava: {path: x, image_aspect_ratio: crop}}\n")
    with pytest.raises(UserError, match=r"models\.llava\.image_aspect_ratio"):
        load_config(bad)
    bad.write_text("models: {llava: {path: x}}\nremote_llm: {base_url: u, model: m, image_aspect_ratio: square}\n")
    with pytest.raises(UserError, match=r"remote_llm\.image_aspect_ratio"):
        load_config(bad)


def test_without_a_config_a_gpu_gets_the_profile_of_its_size(monkeypatch):
    from chat import config as config_module

    monkeypatch.delenv("MMCHAT_CONFIG", raising=False)
    monkeypatch.chdir(ROOT)
    gib = 2**30
    for total, profile in [(None, "default"), (int(7.6 * gib), "gpu-8gb"), (6 * gib, "gpu-8gb"),
                           (10 * gib, "gpu-8gb"), (int(11.7 * gib), "gpu-12gb"), (int(15.6 * gib), "gpu-16gb"),
                           (20 * gib, "gpu-16gb"), (int(23.6 * gib), "default"), (80 * gib, "default")]:
        monkeypatch.setattr(config_module, "gpu_memory", lambda total=total: total)
        assert load_config().profile == profile, total
    monkeypatch.setenv("MMCHAT_CONFIG", str(ROOT / "configs" / "gpu-16gb.yaml"))  # the environment still wins
    assert load_config().profile == "gpu-16gb"
    assert load_config(ROOT / "configs" / "gpu-12gb.yaml").profile == "gpu-12gb"  # and --config over both


def test_offload_lists_name_models_of_the_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: {llava: {path: x}}\noffload: {resident: [llava, lava]}\n")
    with pytest.raises(UserError, match=r"offload\.resident.*'lava' is not under 'models'"):
        load_config(bad)
    bad.write_text("models: {llava: {path: x}}\nmemory_budget_gb: lots\n")
    with pytest.raises(UserError, match="memory_budget_gb"):
        load_config(bad)
