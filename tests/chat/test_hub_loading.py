"""Loading from a hub, online: against a local fake hub (``HF_ENDPOINT``), in a fresh process whose Hugging Face
cache is empty. A missing repository, a gated one and one without weights each get their own sentence; an SD
pipeline at float16 downloads and reads only its fp16 variant files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.chat.fake_hub import FakeHub, hub_env, with_decoys, with_fp16_variants
from tests.conftest import ROOT, TINY_CONFIG

SCRIPT = r"""
import json, sys
from chat.config import load_config
from chat.errors import ModelLoadError
from chat.registry import ModelRegistry

config = load_config(sys.argv[1])
registry = ModelRegistry(config)
for name in sys.argv[2:]:
    try:
        obj = registry.get(name)
        print(json.dumps({"name": name, "kind": "loaded", "notes": registry.entry(name).notes}))
    except ModelLoadError as exc:
        print(json.dumps({"name": name, "kind": exc.kind, "message": str(exc)}))
"""


def write_config(path, models: dict[str, dict], **extra) -> str:
    import yaml

    data = yaml.safe_load(TINY_CONFIG.read_text())
    data["models"] = models
    data["chat_model"] = "llava" if "llava" in models else next(iter(models))
    data.update(extra)
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture(scope="module")
def repos(tiny_dir):
    clip = FakeHub.files_of(tiny_dir / "clip")
    return {
        "tiny/clip-no-weights": {k: v for k, v in clip.items() if not k.endswith(".safetensors")},
        "tiny/clip-gated": clip,
        "tiny/sd": with_decoys(with_fp16_variants(FakeHub.files_of(tiny_dir / "txt2img")), pipeline=True),
    }


def test_online_load_failures_and_fp16_downloads(repos, tmp_path):
    with FakeHub(repos, gated=("tiny/clip-gated",)) as hub:
        config = write_config(tmp_path / "hub.yaml", {
            "clip": {"path": "nobody/no-such-model"},
            "clip_gated": {"path": "tiny/clip-gated"},
            "clip_no_weights": {"path": "tiny/clip-no-weights"},
            "txt2img": {"path": "tiny/sd", "dtype": "float16"},
        })
        run = subprocess.run([sys.executable, "-c", SCRIPT, config, "clip", "clip_gated", "clip_no_weights",
                              "txt2img"], env=hub_env(hub, tmp_path / "hf"), capture_output=True, text=True,
                             timeout=300, cwd=ROOT)
        assert run.returncode == 0, run.stderr[-3000:]
        rows = {r["name"]: r for r in map(json.loads, run.stdout.splitlines())}
        downloads = hub.downloads()

    assert rows["clip"]["kind"] == "no_repo"
    assert rows["clip"]["message"] == (
        "Model 'clip': there is no repository 'nobody/no-such-model' on the Hugging Face Hub (or it is private and "
        "your token cannot see it); check 'models.clip.path'.")
    assert rows["clip_gated"]["kind"] == "gated"
    assert rows["clip_gated"]["message"] == (
        "Model 'clip_gated': 'tiny/clip-gated' is a gated repository; accept its licence at "
        "https://huggingface.co/tiny/clip-gated and log in with 'hf auth login' (or set HF_TOKEN).")
    assert rows["clip_no_weights"]["kind"] == "no_weights"
    assert rows["clip_no_weights"]["message"].startswith(
        "Checkpoint 'tiny/clip-no-weights' for model 'clip_no_weights' has no weights file")

    assert rows["txt2img"] == {"name": "txt2img", "kind": "loaded",
                               "notes": ["fp16 variant weights for text_encoder, unet, vae"]}
    sd = sorted(d.split("/resolve/")[1].split("/", 1)[1] for d in downloads if d.startswith("/tiny/sd/"))
    weights = [f for f in sd if f.endswith((".safetensors", ".bin", ".ckpt"))]
    assert weights == ["text_encoder/model.fp16.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
                       "vae/diffusion_pytorch_model.fp16.safetensors"]  # never the fp32 files, nor the decoys
    assert not any(f.startswith("safety_checker/") or f in ("README.md", "flax_model.msgpack") for f in sd)
