"""The GPU bench's machinery without a GPU: a checkpoint is complete only with its marker; one process per step
under one deadline (a cut run keeps every finished step, a failing step never replaces a finished one, a step cut
at the deadline is killed with its children); the real worker on a tiny LLaVA on the CPU (static cache reused
across runs, answers equal to the dynamic cache's), importing nothing the GPU machine lacks."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from chat.bench.checkpoint import MARKER, ensure, is_complete
from chat.bench.gpu import bench, render

from tests.conftest import ROOT


# -- checkpoint ----------------------------------------------------------------------------------
def _writer(calls):
    def build(folder):
        calls.append(folder)
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"w" * 1000)

    return build


def test_checkpoint_counts_as_complete_only_with_its_marker(tmp_path):
    target, calls = tmp_path / "ckpt", []
    first = ensure(target, _writer(calls))
    assert first["reused"] is False and is_complete(target) and (target / MARKER).is_file()
    assert first["bytes"] == 1002 and not list(tmp_path.glob("ckpt.partial-*"))
    assert ensure(target, _writer(calls))["reused"] is True and len(calls) == 1

    (target / MARKER).unlink()  # what the old bench took as done: config.json and a .safetensors, no marker
    assert not is_complete(target)
    assert ensure(target, _writer(calls))["reused"] is False and len(calls) == 2 and is_complete(target)

    (target / "model.safetensors").write_bytes(b"w" * 10)  # a file cut short after the marker
    assert not is_complete(target)
    ensure(target, _writer(calls))
    assert len(calls) == 3 and (target / "model.safetensors").stat().st_size == 1000


def test_a_build_cut_midway_leaves_nothing_that_counts(tmp_path):
    target = tmp_path / "ckpt"

    def failing(folder):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt  # cut while saving

    with pytest.raises(KeyboardInterrupt):
        ensure(target, failing)
    assert not target.exists() and not list(tmp_path.glob("ckpt.partial-*"))

    # A process killed while saving (no cleanup runs): a partial sibling stays behind, the name is not taken.
    script = (f"import time; from pathlib import Path; from chat.bench.checkpoint import ensure\n"
              f"def slow(folder):\n    folder.mkdir(); (folder / 'config.json').write_text('{{}}')\n"
              f"    (folder / 'model.safetensors').write_bytes(b'half'); time.sleep(60)\n"
              f"ensure(Path({str(target)!r}), slow)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    for _ in range(300):
        if list(tmp_path.glob("ckpt.partial-*/model.safetensors")):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob("ckpt.partial-*")) and not is_complete(target)
    calls = []
    assert ensure(target, _writer(calls))["reused"] is False and calls and is_complete(target)
    assert not list(tmp_path.glob("ckpt.partial-*"))


# -- orchestration with a stand-in worker ---------------------------------------------------------
STAND_IN = r'''
import json, os, subprocess, sys, time
step, out = sys.argv[1], sys.argv[sys.argv.index("--out") + 1]
def write(**row):
    with open(out + ".tmp", "w") as fh:
        json.dump({"step": step, **row}, fh)
    os.replace(out + ".tmp", out)
if step == "build":
    write(stage="done", reused=False, build_s=0.1, checkpoint_gib=13.5)
elif step in ("fp16", "nf4"):
    write(stage="done", ttft_ms=50.0, decode_tokens_per_s=40.0 if step == "fp16" else 60.0, warmup_s=1.0,
          weights_gib=13.0, load_peak_gib=13.0, peak_gib=13.6, compiled=False)
elif step == "nf4-followup":
    write(stage="loaded", load_s=2.0)
    print("torch.OutOfMemoryError: CUDA out of memory", file=sys.stderr, flush=True)
    os._exit(3)  # dies without saying so in its file
elif step == "fp16-static":
    child = subprocess.Popen(["sleep", "120"])  # like inductor's compile workers
    write(stage="warmed up", warmup_s=80.0, grandchild=child.pid)
    time.sleep(120)
'''


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_steps_run_one_process_each_under_one_deadline(tmp_path):
    worker = tmp_path / "stand_in.py"
    worker.write_text(STAND_IN)
    out = tmp_path / "out"
    (out / "steps").mkdir(parents=True)
    (out / "steps" / "nf4-followup.json").write_text(json.dumps({"stage": "done", "followup_ttft_ms": 1.0}))
    seen = []

    def progress(line):  # gpu.json is on disk, with this step, before the next one starts
        seen.append((line, [r["step"] for r in json.loads((out / "gpu.json").read_text())["modes"]]))

    start = time.monotonic()
    result = bench(["fp16", "nf4", "nf4-followup", "fp16-static", "nf4-static"], workdir=tmp_path, out=out,
                   deadline_s=12, worker=[sys.executable, str(worker)], min_start_s=1, progress=progress)
    elapsed = time.monotonic() - start
    assert elapsed < 16  # the hanging step was stopped at the deadline

    rows = {r["step"]: r for r in result["modes"]}
    assert list(rows) == ["fp16", "nf4", "fp16-static", "nf4-static"]
    assert rows["fp16"]["decode_tokens_per_s"] == 40.0 and "error" not in rows["fp16"]
    assert rows["nf4"]["decode_tokens_per_s"] == 60.0 and "error" not in rows["nf4"]  # the follow-up's failure
    follow = result["followup"]                                                         # stays on its own row
    assert follow["error"].startswith("exited with code 3") and "out of memory" in follow["error"]
    assert "followup_ttft_ms" not in follow  # an earlier run's file was not read as this run's
    cut = rows["fp16-static"]
    assert cut["error"].startswith("cut at the deadline") and "warmed up" in cut["error"]
    assert cut["warmup_s"] == 80.0  # what it had written before the deadline is kept
    assert not _alive(cut["grandchild"])  # killed with the step
    assert rows["nf4-static"]["error"].startswith("not started")
    assert result["checkpoint"]["build_s"] == 0.1 and result["finished"] is False

    on_disk = json.loads((out / "gpu.json").read_text())
    assert on_disk["modes"] == result["modes"] and on_disk["followup"] == follow
    assert seen[1] == ("fp16: 40.0 tok/s, TTFT 50.0 ms, peak 13.6 GiB (" + str(rows["fp16"]["wall_s"]) + " s)",
                       ["fp16"])
    assert [s[1] for s in seen][2] == ["fp16", "nf4"]
    text = render(result)
    assert "fp16-static  failed: cut at the deadline" in text and "NF4 follow-up failed: exited with code 3" in text
    assert "nf4-static   failed: not started" in text


def test_no_mode_starts_without_a_checkpoint(tmp_path):
    worker = tmp_path / "stand_in.py"
    worker.write_text("import sys; print('CUDA error: no kernel image', file=sys.stderr); sys.exit(1)")
    result = bench(["fp16", "nf4"], workdir=tmp_path, out=tmp_path / "out", deadline_s=30,
                   worker=[sys.executable, str(worker)], min_start_s=1)
    assert "no kernel image" in result["checkpoint"]["error"]
    assert [r["error"] for r in result["modes"]] == ["not started: the checkpoint was not built"] * 2


# -- the real worker on the CPU, as on the GPU machine ----------------------------------------------
# The project's dependencies that the GPU machine's image lacks (../shared/PLATFORM.md, "A GPU machine"); the
# wheels scripts/gpu-bench.sh brings (bitsandbytes, pydantic and its helpers) are importable there, and diffusers
# (brought for the memory bench) is not needed by these steps.
ABSENT_ON_GPU_MACHINE = ("gradio", "gradio_client", "langchain_core", "langchain_openai", "langsmith", "openai",
                         "fastapi", "starlette", "uvicorn", "diffusers")
BLOCKER = f'''
import sys
from importlib.machinery import PathFinder
ABSENT = {ABSENT_ON_GPU_MACHINE!r}
class WithoutAbsent(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.partition(".")[0] in ABSENT else PathFinder.find_spec(name, path, target)
sys.meta_path[:] = [WithoutAbsent if f is PathFinder else f for f in sys.meta_path]
'''


def test_stand_in_steps_through_the_real_worker_on_cpu(tmp_path, monkeypatch):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "site"), str(ROOT),
                                                      os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "out"
    result = bench(["fp16", "fp16-static"], workdir=tmp_path, out=out, deadline_s=400, tokens=8, runs=2,
                   device="cpu", min_start_s=5)
    assert result["finished"] is True, json.dumps(result, indent=1)[-3000:]
    assert result["checkpoint"]["reused"] is False and is_complete(tmp_path / "llava-tiny-random")
    eager, static = result["modes"]
    assert eager["stage"] == static["stage"] == "done" and eager["new_tokens"] == 8
    assert static["same_answer_every_run"] is True and static["warmups"] >= 1
    assert static["answer_ids"] == eager["answer_ids"]  # one static cache, reset between runs: the same tokens
    assert static["static_cache_same_tensors"] is True and eager["static_cache_same_tensors"] is None
    assert static["timed_compile"] == {"graph_breaks": 0, "graphs_compiled": 0, "cudagraphs_recorded": 0,
                                       "cudagraph_skips": 0}
    assert (out / "steps" / "fp16-static.torch.log").exists() and "torch_log" in static
    assert result["versions"]["transformers"] and result["versions"]["torch"]

    again = bench(["nf4-followup"], workdir=tmp_path, out=out, deadline_s=300, runs=1, device="cpu", min_start_s=5)
    assert again["checkpoint"]["reused"] is True and again["finished"] is True
    assert again["followup"]["greedy_identical"] is True and again["followup"]["images_encoded_followup"] == 0
