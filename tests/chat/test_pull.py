"""``mmchat pull`` against a local fake hub (``HF_ENDPOINT``) serving the tiny profile's checkpoints as hub
repositories, with the files real repositories carry beside them (docs, other frameworks' weights, ``.bin``
copies, a safety checker, single-file checkpoints, fp16 variants). Only the files the loaders read arrive; they are
enough to load offline; a pull that does not fit the disk is refused before downloading; an interrupted pull
resumes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.chat.fake_hub import FakeHub, hub_env, with_decoys, with_fp16_variants
from tests.conftest import ROOT, TINY_CONFIG

DIFFUSERS = ("pix2pix", "inpaint", "txt2img", "controlnet")
PIPELINES = ("pix2pix", "inpaint", "txt2img")


@pytest.fixture(scope="module")
def originals(tiny_dir):
    from chat import tiny

    return {family: FakeHub.files_of(tiny_dir / family) for family in tiny.FAMILIES}


@pytest.fixture(scope="module")
def repos(originals):
    return {f"tiny/{family}": with_decoys(with_fp16_variants(files) if family in DIFFUSERS else files,
                                          pipeline=family in PIPELINES)
            for family, files in originals.items()}


def hub_config(tmp_path, names=None, **dtypes) -> str:
    data = yaml.safe_load(TINY_CONFIG.read_text())
    data["models"] = {name: dict(spec, path=f"tiny/{name}") for name, spec in data["models"].items()
                      if names is None or name in names}
    for name, dtype in dtypes.items():
        data["models"][name]["dtype"] = dtype
    if data["chat_model"] not in data["models"]:
        data["chat_model"] = next(iter(data["models"]))
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def mmchat(args, env, **kwargs):
    return subprocess.run([sys.executable, "-m", "chat", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, **kwargs)


def snapshot_files(home: Path, repo: str) -> set[str]:
    (snapshot,) = (home / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots").iterdir()
    return {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}


def test_pull_fetches_only_what_the_loaders_read_and_it_loads_offline(repos, originals, tmp_path):
    home = tmp_path / "hf"
    config = hub_config(tmp_path, txt2img="float16")
    with FakeHub(repos) as hub:
        env = hub_env(hub, home)
        run = mmchat(["pull", "--config", config], env)
        assert run.returncode == 0, run.stderr[-3000:]
        first = len(hub.downloads())
        again = mmchat(["pull", "--config", config, "--json"], env)
        second = len(hub.downloads())

    lines = run.stdout.splitlines()
    assert lines[0] == f"mmchat pull: 11 models from {config} into {home / 'hub'}"
    assert any(line.split()[:2] == ["txt2img", "tiny/txt2img"] and line.endswith("fp16 variants") for line in lines)
    assert " to download, " in lines[-2] and lines[-2].endswith(" free") and lines[-1] == "11 of 11 models ready"
    assert "[clip] pulling tiny/clip: 5 files" in run.stderr and "[clip] pulled tiny/clip: 5 files" in run.stderr

    configured = yaml.safe_load(Path(config).read_text())["models"]  # each a tiny family of the same name
    assert len(configured) == 11
    for family in set(originals) - set(configured):  # a tiny family no model of the config uses (llava_next)
        assert not (home / "hub" / f"models--tiny--{family}").exists(), family
    for family in configured:
        expected = set(originals[family])  # what the tiny builder wrote: exactly what a load reads
        if family == "txt2img":  # float16: the fp16 variant of each weighted component instead of its plain file
            expected = {f.replace(".safetensors", ".fp16.safetensors") if f.endswith(".safetensors") else f
                        for f in expected}
        assert snapshot_files(home, f"tiny/{family}") == expected, family

    report = json.loads(again.stdout)  # a second pull finds everything cached and fetches nothing
    assert again.returncode == 0 and report["download_bytes"] == 0 and second == first
    assert {m["status"] for m in report["models"]} == {"cached"}

    offline = dict(env, HF_HUB_OFFLINE="1")  # the pulled files are enough: every loader works without the hub
    doctor = mmchat(["doctor", "--config", config, "--model", "llava", "--model", "siglip", "--model", "blip_vqa",
                     "--model", "txt2img", "--model", "controlnet"], offline)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr[-2000:]
    rows = [line for line in doctor.stdout.splitlines() if line.startswith("ok")]
    assert len(rows) == 5 and all(" hf cache " in row for row in rows)
    assert "note: fp16 variant weights for text_encoder, unet, vae" in next(r for r in rows if " txt2img " in r)


SHRINK = r"""
import sys
import chat.pull
chat.pull.free_bytes = lambda folder: 4096  # a nearly full disk
from chat.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_not_enough_disk_space_is_refused_in_one_sentence_before_downloading(repos, tmp_path):
    home = tmp_path / "hf"
    config = hub_config(tmp_path, names=("clip", "txt2img"))
    with FakeHub(repos) as hub:
        run = subprocess.run([sys.executable, "-c", SHRINK, "pull", "--config", config], cwd=ROOT,
                             env=hub_env(hub, home), capture_output=True, text=True, timeout=300)
        fetched = hub.downloads()
    assert run.returncode == 1
    problems = [line for line in run.stderr.splitlines() if line.startswith("mmchat: ")]
    assert len(problems) == 1 and problems[0].startswith("mmchat: Not enough disk space: the models need ")
    assert f"more in {home / 'hub'} and 0.0 MiB is free; free some space or point HF_HOME" in problems[0]
    assert [p.split("/resolve/")[0] + "/" + p.rsplit("/", 1)[1] for p in fetched] == \
        ["/tiny/txt2img/model_index.json"]  # read to plan the pipeline; nothing else
    assert not (home / "hub" / "models--tiny--clip").exists()


def test_a_dropped_connection_resumes_inside_the_file(originals, tmp_path):
    big = os.urandom(12 * 2**20)  # over huggingface_hub's 10 MiB write chunk: the resume point is 10 MiB
    repos = {"tiny/clip": {**originals["clip"], "model.safetensors": big}}
    home = tmp_path / "hf"
    with FakeHub(repos) as hub:
        hub.cut["tiny/clip/model.safetensors"] = 11 * 2**20
        run = mmchat(["pull", "--config", hub_config(tmp_path, names=("clip",))], hub_env(hub, home))
        ranges = [r for method, path, r in hub.requests if method == "GET" and path.endswith("model.safetensors")]
    assert run.returncode == 0, run.stderr[-2000:]
    assert ranges == [None, f"bytes={10 * 2**20}-"]  # the second request continues where the file stopped
    (snapshot,) = (home / "hub" / "models--tiny--clip" / "snapshots").iterdir()
    assert hashlib.sha256((snapshot / "model.safetensors").read_bytes()).digest() == hashlib.sha256(big).digest()


def test_a_killed_pull_resumes_without_fetching_finished_files_again(repos, tmp_path):
    home = tmp_path / "hf"
    config = hub_config(tmp_path, names=("clip", "txt2img"))
    unet = "tiny/txt2img/unet/diffusion_pytorch_model.safetensors"
    with FakeHub(repos) as hub:
        env = hub_env(hub, home)
        hub.stall[unet] = 1000
        first = subprocess.Popen([sys.executable, "-m", "chat", "pull", "--config", config], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            assert hub.stalled.wait(300), "the pull never reached the stalled file"
            time.sleep(1.0)  # let the other files of the pipeline finish
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # the machine went away mid-file
            first.wait(60)
        hub.release.set()
        done_before = set(hub.downloads())
        assert any(path.startswith("/tiny/clip/") for path in done_before)
        second = mmchat(["pull", "--config", config], env)
        fetched_again = [p for p in hub.downloads()[len(done_before):] if p in done_before]
    assert second.returncode == 0, second.stderr[-2000:]
    unet_path = "/tiny/txt2img/resolve/" + FakeHub.commit("tiny/txt2img") + "/unet/diffusion_pytorch_model.safetensors"
    assert fetched_again == [unet_path]  # only the file that was cut off starts over
    assert "unet/diffusion_pytorch_model.safetensors" in snapshot_files(home, "tiny/txt2img")
    assert not list((home / "hub" / "models--tiny--txt2img" / "blobs").glob("*.incomplete"))  # no leftovers
