"""``mmchat doctor``: every configured model checked (where from, cached, size, loads, self-checks, one inference
with its time, memory); exit 0 when all pass, 1 with one line per problem otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import yaml

from chat.cli import main

from tests.conftest import ROOT, TINY_CONFIG


def test_doctor_passes_on_the_tiny_profile_as_a_user_runs_it(tiny_dir):
    run = subprocess.run([sys.executable, "-m", "chat", "doctor", "--config", "configs/tiny.yaml", "--json"],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "mmchat:" not in run.stderr  # no problem lines
    report = json.loads(run.stdout)
    assert report["ok"] is True and report["problems"] == [] and report["device"] == "cpu"
    rows = {row["name"]: row for row in report["models"]}
    assert sorted(rows) == sorted(yaml.safe_load(TINY_CONFIG.read_text())["models"])
    for name, row in rows.items():
        assert row["ok"] and row["loads"] and row["cached"], name
        assert row["source"] == "local folder" and row["location"] == str(tiny_dir / name)
        assert row["size_bytes"] > 100_000 and row["weights_bytes"] > 100_000, name
        assert row["load_s"] > 0 and row["inference_s"] > 0 and row["result"], name
        assert row["rss_bytes"] is not None and row["cuda_peak_bytes"] is None, name
    vision = json.loads((tiny_dir / "llava" / "config.json").read_text())["vision_config"]
    patches = (vision["image_size"] // vision["patch_size"]) ** 2  # 576: 336 px, patch 14, as llava-1.5-7b-hf
    assert rows["llava"]["self_check"].startswith(f"one image = {patches} image tokens")
    assert rows["clip"]["result"].startswith(("a cat ", "a dog ")) and "," in rows["clip"]["result"]
    unet = json.loads((tiny_dir / "txt2img" / "unet" / "config.json").read_text())
    vae = json.loads((tiny_dir / "txt2img" / "vae" / "config.json").read_text())
    native = unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1)  # 512, as SD 1.5
    assert rows["txt2img"]["result"] == f"{native // 4}x{native // 4} image"  # one step at a quarter of its side
    assert rows["sam"]["result"].startswith("a mask of ")


def _broken_config(tmp_path, tiny_dir, **models) -> str:
    data = yaml.safe_load(TINY_CONFIG.read_text())
    data["models"].update(models)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_doctor_on_a_broken_config_exits_1_with_one_line_per_problem(tiny_dir, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    bin_copy = tmp_path / "clip-bin"
    shutil.copytree(tiny_dir / "clip", bin_copy)
    torch.save(load_file(str(bin_copy / "model.safetensors")), bin_copy / "pytorch_model.bin")
    (bin_copy / "model.safetensors").unlink()
    missing = tmp_path / "gone" / "clip"
    config = _broken_config(tmp_path, tiny_dir, clip={"path": str(missing)}, clip_bin={"path": str(bin_copy)},
                            clip_hub={"path": "someone/not-downloaded"})

    code = main(["doctor", "--config", config, "--model", "clip", "--model", "clip_bin", "--model", "clip_hub"])
    out, err = capsys.readouterr()
    assert code == 1
    problems = [line for line in err.splitlines() if line.startswith("mmchat: ")]
    assert problems == [
        f"mmchat: Checkpoint folder '{missing}' for model 'clip' does not exist; run 'mmchat build-tiny' or fix "
        "'models.clip.path' in the config.",
        "mmchat: Model 'clip_hub' (someone/not-downloaded) is not downloaded yet; run 'mmchat pull' (or point "
        "'models.clip_hub.path' at a local folder).",
    ]
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith(("ok", "FAIL"))}
    assert lines["clip"].startswith("FAIL") and lines["clip_hub"].startswith("FAIL")
    assert "not cached" in lines["clip_hub"]
    assert lines["clip_bin"].startswith("ok") and "note: no safetensors here: read pytorch_model.bin" in \
        lines["clip_bin"]
    assert out.splitlines()[-1] == "1 of 3 models passed"


def test_doctor_json_names_each_problem_in_its_row(tiny_dir, tmp_path, capsys):
    config = _broken_config(tmp_path, tiny_dir, clip={"path": str(tmp_path / "nowhere")})
    assert main(["doctor", "--config", config, "--model", "clip", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    (row,) = report["models"]
    assert report["ok"] is False and row["loads"] is False and len(row["problems"]) == 1
    assert report["problems"] == row["problems"] and "for model 'clip' does not exist" in row["problems"][0]


def test_doctor_refuses_an_unknown_model_name(capsys):
    assert main(["doctor", "--config", str(TINY_CONFIG), "--model", "nope"]) == 2
    assert capsys.readouterr().err.startswith("mmchat: No model named nope in the config")
