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
