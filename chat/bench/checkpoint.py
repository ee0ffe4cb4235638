"""A benchmark checkpoint folder that is either complete or rebuilt: never half-written and taken as done.

The folder is built under a temporary sibling name, renamed into place in one step, and only then is the marker
file ``COMPLETE.json`` written (itself atomically), listing every file with its size. A folder counts as complete
only when the marker exists and every listed file still has its size; a run cut while saving leaves either a
temporary sibling or a folder without a marker, and both are removed and rebuilt by the next run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

MARKER = "COMPLETE.json"
PARTIAL = ".partial-"


def _files(directory: Path) -> dict[str, int]:
    """Every file of the checkpoint (the marker and its temporary copy aside) with its size."""
    return {str(p.relative_to(directory)): p.stat().st_size for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name not in (MARKER, f".{MARKER}.tmp")}


def is_complete(directory: str | Path) -> bool:
    """True when the marker exists and every file it lists is there with its recorded size."""
    directory = Path(directory)
    try:
        listed = json.loads((directory / MARKER).read_text())["files"]
        return bool(listed) and all((directory / name).stat().st_size == size for name, size in listed.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _write_marker(directory: Path, info: dict) -> None:
    tmp = directory / f".{MARKER}.tmp"
    with open(tmp, "w") as fh:
        json.dump({**info, "files": _files(directory)}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / MARKER)


def ensure(directory: str | Path, build: Callable[[Path], None]) -> dict:
    """The complete checkpoint at ``directory``, built by ``build(folder)`` unless already complete.

    Returns ``{"reused": bool, "build_s": seconds, "bytes": total size}``. Leftovers of an earlier cut run (a
    folder without its marker, temporary siblings) are removed first."""
    directory = Path(directory)
    if is_complete(directory):
        return {"reused": True, "build_s": 0.0, "bytes": sum(_files(directory).values())}
    directory.parent.mkdir(parents=True, exist_ok=True)
    for stale in directory.parent.glob(f"{directory.name}{PARTIAL}*"):
        shutil.rmtree(stale, ignore_errors=True)
    if directory.exists():
        shutil.rmtree(directory)
    partial = directory.parent / f"{directory.name}{PARTIAL}{os.getpid()}"
    start = time.perf_counter()
    try:
        build(partial)
        os.replace(partial, directory)  # one step: the folder appears whole under its name
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    build_s = time.perf_counter() - start
    _write_marker(directory, {"built_s": round(build_s, 1)})  # last: only now is the folder complete
    return {"reused": False, "build_s": build_s, "bytes": sum(_files(directory).values())}
