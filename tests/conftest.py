"""Shared fixtures: tiny checkpoints are built once per test session into a temporary directory."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "tiny.yaml"


def pytest_configure(config):
    # Point every tiny-profile load (also in subprocesses) at this session's checkpoints and data dir.
    base = Path(os.environ.get("MMCHAT_TEST_DIR") or tempfile.mkdtemp(prefix="mmchat-test-"))
    os.environ.setdefault("MMCHAT_TINY_DIR", str(base / "tiny"))
    os.environ.setdefault("MMCHAT_TEST_DATA", str(base / "data"))
    os.environ.pop("MMCHAT_CONFIG", None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # One intra-op thread (here and in subprocesses): the tiny models' ops are too small for a second thread to
    # help, and on a shared CPU the threads of one op mostly wait for each other (measured under load: a 2-step
    # 128 px ControlNet run took 0.2 s on one thread and 8-10 s on two).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "torch" in sys.modules:  # imported before this hook (by a plugin): the variable came too late for it
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    from chat import tiny

    directory = Path(os.environ["MMCHAT_TINY_DIR"])
    missing = [f for f in tiny.FAMILIES if not tiny.is_built(directory, f)]
    if missing:
        tiny.build(directory, missing)
    return directory


@pytest.fixture(scope="session")
def tiny_config(tiny_dir):
    from chat.config import load_config

    return load_config(TINY_CONFIG, data_dir=os.environ["MMCHAT_TEST_DATA"])


@pytest.fixture(scope="session")
def assistant(tiny_config):
    from chat.assistant import Assistant

    return Assistant(tiny_config)


@pytest.fixture
def tiny_env(tiny_dir, monkeypatch):
    """The tiny checkpoints built and named by MMCHAT_TINY_DIR for this test (the CLI's tiny profile reads it)."""
    monkeypatch.setenv("MMCHAT_TINY_DIR", str(tiny_dir))


@pytest.fixture
def fresh_data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)
