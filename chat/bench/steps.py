"""One process per benchmark step, one after another, under one overall deadline.

Each step is a command that writes its own JSON file (atomically, possibly several times as it gets further:
``{"stage": ..., ...figures so far}``) and exits 0, or writes ``{"error": ...}`` and exits non-zero. A step
still running at the deadline is killed with everything it started (its process group); whatever its file
holds by then is kept, with the error saying where it was cut. A step that would start with less than
``min_start_s`` left is not started. Each finished step is handed to ``on_done`` at once, so a caller can write
the results so far after every step: a run cut from outside still leaves every finished step on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass
class Step:
    name: str
    argv: list[str]
    out: Path  # the JSON file the command writes
    log: Path  # its stdout and stderr
    env: dict[str, str] = field(default_factory=dict)  # added to the parent's environment


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def last_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a log (its end only is read), shortened to ``limit`` characters."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 8192))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


def _own_group() -> dict:
    """Popen arguments that start the step in a process group of its own (killed whole at the deadline) but in
    this session, so whatever ends this session's processes from outside ends the step too."""
    if sys.version_info >= (3, 11):
        return {"process_group": 0}
    return {"preexec_fn": os.setpgrp}


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_step(step: Step, timeout: float) -> dict:
    """Run one step for at most ``timeout`` seconds; its row: the JSON it wrote, plus ``wall_s`` and, when it
    failed, was cut or wrote nothing, ``error``."""
    step.out.parent.mkdir(parents=True, exist_ok=True)
    step.log.parent.mkdir(parents=True, exist_ok=True)
    step.out.unlink(missing_ok=True)  # never read an earlier run's figures as this run's
    start = time.monotonic()
    cut = False
    with open(step.log, "wb") as log:
        proc = subprocess.Popen(step.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **step.env}, **_own_group())
        try:
            code = proc.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            cut, code = True, None
        finally:
            if proc.poll() is None or cut:
                _kill_group(proc)  # also the compile workers it started
    wall = time.monotonic() - start
    row = {"step": step.name, **read_json(step.out), "wall_s": round(wall, 1)}
    if cut:
        where = f" ({row['stage']})" if row.get("stage") else ""
        row["error"] = f"cut at the deadline after {wall:.0f} s{where}"
    elif code != 0 and "error" not in row:
        row["error"] = f"exited with code {code}: {last_line(step.log) or 'no output'}"
    elif code == 0 and not row.keys() - {"step", "wall_s"}:
        row["error"] = f"wrote no results ({step.out.name})"
    return row


def run_steps(steps: list[Step], deadline: float, *, min_start_s: float = 20.0,
              on_done: Callable[[dict], None] | None = None,
              stop_if: Callable[[dict], str | None] | None = None) -> list[dict]:
    """Run ``steps`` in order until ``deadline`` (a ``time.monotonic()`` value); one row per step.

    ``stop_if(row)`` may return a reason after a step: the remaining steps are then not started."""
    rows: list[dict] = []
    stopped: str | None = None
    for step in steps:
        left = deadline - time.monotonic()
        if stopped:
            row = {"step": step.name, "error": f"not started: {stopped}"}
        elif left < min_start_s:
            row = {"step": step.name, "error": f"not started: {max(left, 0):.0f} s left before the deadline"}
        else:
            row = run_step(step, left)
            stopped = stop_if(row) if stop_if else None
        rows.append(row)
        if on_done:
            on_done(row)
    return rows
