"""Tiny, randomly initialised offline checkpoints of every model family the assistant uses.

Each family is a folder ``<directory>/<family>/`` written with ``save_pretrained`` (safetensors) and
loaded by exactly the ``from_pretrained`` calls that load the real checkpoints. Each is shaped like the
real checkpoint of ``configs/default.yaml`` (``fixtures.REPOS``): its config, image size, patch size,
processor settings, chat template, special tokens and scheduler come from that checkpoint's files in
``chat/tiny/hub``; only depth and width are small. Tokenizers are trained locally; nothing is downloaded.
Builds are deterministic (fixed seeds) and take about a second per family once torch/transformers/diffusers
are imported.

    >>> from chat import tiny
    >>> tiny.build("/tmp/tiny")                 # every family
    >>> path = tiny.ensure("/tmp/tiny", "llava")  # build only when missing; safe across processes

Nothing heavy happens at import time: builders are imported on first use.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["FAMILIES", "build", "ensure", "is_built", "available"]

FAMILIES: tuple[str, ...] = (
    "llava", "vip_llava", "llava_next", "clip", "siglip", "blip_caption", "blip_vqa", "sam",
    "pix2pix", "inpaint", "txt2img", "controlnet",
)

# family -> (module inside chat.tiny, builder function taking the target folder)
_BUILDERS: dict[str, tuple[str, str]] = {
    "llava": ("llava", "build_llava"),
    "vip_llava": ("llava", "build_vip_llava"),
    "llava_next": ("llava_next", "build_llava_next"),
    "clip": ("vision", "build_clip"),
    "siglip": ("vision", "build_siglip"),
    "blip_caption": ("blip", "build_blip_caption"),
    "blip_vqa": ("blip", "build_blip_vqa"),
    "sam": ("vision", "build_sam"),
    "pix2pix": ("diffusion", "build_pix2pix"),
    "inpaint": ("diffusion", "build_inpaint"),
    "txt2img": ("diffusion", "build_txt2img"),
    "controlnet": ("diffusion", "build_controlnet"),
}

# Bump when a builder changes what it writes: folders of an older version count as not built.
FORMAT_VERSION = 2  # 2: hub-shaped (real geometry, processors, templates; chat/tiny/hub)
MARKER = "tiny.json"


def available() -> list[str]:
    """The family names, in build order."""
    return list(FAMILIES)


def is_built(directory: str | os.PathLike, family: str) -> bool:
    """True when ``directory/family`` holds a complete build of the current format."""
    _check(family)
    marker = Path(directory) / family / MARKER
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return info.get("family") == family and info.get("version") == FORMAT_VERSION


def ensure(directory: str | os.PathLike, family: str) -> Path:
    """Return ``directory/family``, building it first if missing (one builder at a time, atomically)."""
    _check(family)
    root = Path(directory)
    target = root / family
    if is_built(root, family):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root, family):
        if not is_built(root, family):  # another process may have built it while we waited
            _build_one(root, family)
    return target


def build(
    directory: str | os.PathLike,
    families: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    force: bool = True,
) -> list[str]:
    """Build the named families (all by default) into ``directory/<family>/``; return their names.

    Existing folders are rebuilt (atomically replaced) unless ``force=False``, in which case complete
    builds are kept. ``progress(message)`` is called before each family.
    """
    names = list(FAMILIES if families is None else families)
    for name in names:
        _check(name)
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names, 1):
        if progress is not None:
            progress(f"building tiny {name} ({i}/{len(names)})")
        with _locked(root, name):
            if force or not is_built(root, name):
                _build_one(root, name)
    return names


def _check(family: str) -> None:
    if family not in _BUILDERS:
        raise ValueError(f"unknown tiny model family {family!r}; known: {', '.join(FAMILIES)}")


@contextlib.contextmanager
def _locked(root: Path, family: str):
    """An exclusive ``flock`` on ``root/.family.lock`` (works across processes and threads)."""
    import fcntl

    with open(root / f".{family}.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _build_one(root: Path, family: str) -> None:
    """Build into a temporary folder next to the target, then swap it in with renames."""
    module_name, function_name = _BUILDERS[family]
    builder = getattr(importlib.import_module(f"{__name__}.{module_name}"), function_name)
    target = root / family
    staging = Path(tempfile.mkdtemp(prefix=f".{family}.building.", dir=root))
    try:
        with _quiet():
            builder(staging)
        (staging / MARKER).write_text(
            json.dumps({"family": family, "version": FORMAT_VERSION}) + "\n", encoding="utf-8"
        )
        _make_readable(staging)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{family}.old.", dir=root))
            os.replace(target, old / family)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _make_readable(folder: Path) -> None:
    """mkdtemp and safetensors create private files; make the build readable like any checkpoint."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


@contextlib.contextmanager
def _quiet():
    """No progress bars or config warnings from transformers/diffusers while building."""
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
