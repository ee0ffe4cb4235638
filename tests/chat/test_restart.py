"""Killing the server mid-write corrupts nothing, and a restarted server resumes a session with every version.

- The real server (``mmchat serve`` in a subprocess) is SIGKILLed while it writes the image of an edit: a
  hook in that process stops the write half-way and says so, so the kill lands there every time. After a
  restart with ``--auth`` the session resumes exactly as it was before the edit.
- A loop of saves (large images) in a subprocess is SIGKILLed over and over, at random moments and the
  moment a staging file appears; after every kill the store opens, and every session.json, image and the
  SQLite index are whole and agree with each other.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from PIL import Image

from chat.errors import UserError
from tests.fakes import (
    CHAT,
    STATUS,
    TRACE,
    VERSIONS,
    free_port,
    sample_image,
    text,
)
from tests.conftest import ROOT, TINY_CONFIG

pytestmark = pytest.mark.timeout(300)

# Runs `mmchat ...` with chat.store.atomic_write stopping half-way through the file named $MMCHAT_STALL_ON:
# half the bytes in the staging file, then it writes the staging path to $MMCHAT_STALL_FLAG and waits.
STALLING_CLI = r"""
import os, sys, tempfile, time
import chat.store as store

real = store.atomic_write

def stalling(path, data, **options):
    if path.name != os.environ["MMCHAT_STALL_ON"]:
        return real(path, data, **options)
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.write(fd, data[: len(data) // 2])
    os.fsync(fd)
    with open(os.environ["MMCHAT_STALL_FLAG"] + ".part", "w") as flag:
        flag.write(staging)
    os.replace(os.environ["MMCHAT_STALL_FLAG"] + ".part", os.environ["MMCHAT_STALL_FLAG"])  # seen whole or not at all
    time.sleep(3600)

store.atomic_write = stalling
from chat.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _config(tmp_path: Path) -> Path:
    data = yaml.safe_load(TINY_CONFIG.read_text())
    data["data_dir"] = str(tmp_path / "data")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start(argv: list[str], port: int, log: Path, env: dict | None = None) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if k != "MMCHAT_AUTH"}
    environment.update(env or {})
    proc = subprocess.Popen([sys.executable, *argv, "--port", str(port)], cwd=ROOT, env=environment,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except urllib.error.HTTPError:  # 401 and the like: it is up (login on)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("the server did not come up in 120 s")


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _client(port: int, auth=None):
    from gradio_client import Client

    return Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False, auth=auth)


def _session_ids(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "sessions").iterdir() if (p / "session.json").is_file())


def test_kill_mid_write_and_restart_resumes_the_session(tiny_dir, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AuthenticationError

    from chat.store import SessionStore
    from chat.ui.chatview import ChatView
    from chat.ui.files import ImageFiles

    config, data = _config(tmp_path), tmp_path / "data"
    flag = tmp_path / "stalled"
    picture = sample_image(tmp_path / "picture.png")
    port = free_port()
    stall = {"MMCHAT_STALL_ON": "img1.v3.png", "MMCHAT_STALL_FLAG": str(flag)}
    server = _start(["-c", STALLING_CLI, "serve", "--config", str(config)], port, tmp_path / "first.log", stall)
    try:
        client = _client(port)  # login is off by default
        client.predict([handle_file(str(picture))], api_name="/upload")  # the session State is not an API value
        (sid,) = _session_ids(data)
        client.predict(120, 90, "circle", "red", api_name="/add_point")
        client.predict("What is in the red circle?", api_name="/ask")
        client.predict("make it blue", api_name="/edit")
        before = SessionStore(data).get(sid)
        assert len(before.record().versions) == 2 and len(before.messages) == 4
        client.submit("make it red", api_name="/edit")  # its image (img1.v3.png) is where the write stalls
        deadline = time.time() + 120
        while not flag.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert flag.exists(), "the edit never reached the write of img1.v3.png"
    finally:
        _kill(server)

    # The kill landed mid-write: half a PNG in the staging file, nothing under the real name, and the
    # session.json of before the edit (images are written before the session.json that lists them).
    staging = Path(flag.read_text())
    images = data / "sessions" / sid / "images"
    assert staging.parent == images and staging.is_file() and staging.read_bytes().startswith(b"\x89PNG")
    assert not (images / "img1.v3.png").exists()
    with pytest.raises((OSError, SyntaxError)):
        Image.open(staging).load()  # torn, and nothing reads it
    index = sqlite3.connect(data / "index.sqlite")
    assert index.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    index.close()

    port = free_port()
    argv = ["-m", "chat", "serve", "--config", str(config), "--auth", "alice:s3cret"]
    server = _start(argv, port, tmp_path / "second.log")
    try:
        with pytest.raises(AuthenticationError, match="credentials were not provided"):
            _client(port)  # login is on: no credentials, no access
        with pytest.raises(ValueError, match="Could not login"):
            _client(port, auth=("alice", "wrong"))  # Gradio answers 400 "Incorrect credentials."
        client = _client(port, auth=("alice", "s3cret"))
        view = client.predict(sid, api_name="/resume")
        after = SessionStore(data).get(sid)
        # Exactly the session of before the killed edit: it never saved (the kill came mid-write of its image).
        assert after.model_dump() == before.model_dump()
        assert [v.id for v in after.record().versions] == ["img1.v1", "img1.v2"]
        shown = ChatView(ImageFiles(tmp_path / "views")).messages(after)  # the 4 messages (and their tool rows)
        assert len(view[VERSIONS]) == 2 and len(view[CHAT]) == len(shown) and "red circle" in text(view[CHAT][0])
        assert [m["role"] for m in view[CHAT]] == [m["role"] for m in shown]
        assert len(view[TRACE]["data"]) == len(before.trace) >= 1
        for version in after.record().versions:  # every stored image opens, with the pixels it had
            assert after.pixels(version.id).tobytes() == before.pixels(version.id).tobytes()
        client.predict("make it red", api_name="/edit")  # the same edit again: its own img1.v3
        resumed = SessionStore(data).get(sid)
        assert [v.id for v in resumed.record().versions] == ["img1.v1", "img1.v2", "img1.v3"]
        assert resumed.pixels("img1.v3").size == (320, 240)
        view = client.predict("And now?", api_name="/ask")  # the session goes on
        assert len(SessionStore(data).get(sid).messages) == len(resumed.messages) + 2
        view = client.predict("0" * 32, api_name="/resume")  # an unknown id: one sentence, nothing lost
        assert "There is no saved session" in view[STATUS]
        assert len(SessionStore(data).get(sid).messages) == len(resumed.messages) + 2
    finally:
        _kill(server)


# A loop of saves: each adds a version whose first pixel says which run and which version made it.
SAVING_LOOP = r"""
import sys
import numpy as np
from PIL import Image
from chat.store import SessionStore

data, sid, run = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SessionStore(data)
session = store.get(sid)
rng = np.random.default_rng(run)
while True:
    n = len(session.record().versions) + 1
    pixels = rng.integers(0, 256, (700, 700, 3), dtype=np.uint8)  # noise: large, slow PNGs
    pixels[0, 0] = (run, n % 256, 7)
    session.add_version("img1", Image.fromarray(pixels), note=f"run {run}")
    session.add_message("user", f"edit {n}")
    store.save(session)
    print(n, flush=True)
"""


def _check_store(data: Path, sid: str) -> int:
    """Everything on disk is whole and consistent; returns the number of saved versions."""
    from chat.store import SessionStore

    index = sqlite3.connect(data / "index.sqlite")
    assert index.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert [row[0] for row in index.execute("SELECT id FROM sessions")] == [sid]
    index.close()
    session = SessionStore(data).get(sid)  # session.json parses
    versions = session.record().versions
    assert len(session.messages) == len(versions) - 1  # saved together: one message per edit
    for number, version in enumerate(versions, 1):
        image = session.pixels(version.id)  # every listed image opens in full
        assert image.size == (700, 700)
        if number > 1:  # and holds the pixels of the run that listed it
            assert image.getpixel((0, 0)) == (int(version.note.split()[1]), number % 256, 7), version
    for path in (data / "sessions" / sid).rglob("*"):  # besides staging files, only real names
        assert path.is_dir() or path.name.startswith(".") or path.name == "session.json" \
            or path.suffix == ".png", path
    return len(versions)


def test_repeated_kills_during_saves_corrupt_nothing(tmp_path):
    from chat.store import SessionStore

    data = tmp_path / "data"
    store = SessionStore(data)
    session = store.create()
    session.add_image(Image.new("RGB", (700, 700), "blue"), name="blue.png")
    store.save(session)
    rng = random.Random(7)
    counts, torn = [], 0
    for run in range(1, 9):
        log = tmp_path / f"run{run}.log"
        child = subprocess.Popen([sys.executable, "-c", SAVING_LOOP, str(data), session.id, str(run)], cwd=ROOT,
                                 stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            folder = data / "sessions" / session.id
            deadline = time.time() + 60
            while not log.read_text().strip() and time.time() < deadline:  # at least one save per run
                time.sleep(0.02)
            if run % 2:  # at a random moment
                time.sleep(rng.uniform(0.0, 0.8))
            else:  # the moment a staging file appears: mid-write
                staged = set(folder.rglob(".*.tmp"))
                while time.time() < deadline and not set(folder.rglob(".*.tmp")) - staged:
                    time.sleep(0.001)
        finally:
            _kill(child)
        assert child.returncode == -signal.SIGKILL, log.read_text()[-2000:]
        torn = len(list((data / "sessions" / session.id).rglob(".*.tmp")))
        counts.append(_check_store(data, session.id))
    print(f"\n8 kills; versions after each: {counts}; staging files left by kills mid-write: {torn}")
    assert counts == sorted(counts) and counts[-1] > counts[0]  # every run resumed and saved more
    assert torn >= 1  # at least one kill landed mid-write (the on-sight kills aim there)


def test_export_then_import_gives_the_same_session_under_a_new_id(assistant, tmp_path):
    from PIL import ImageOps

    from chat.ui.handlers import Handlers

    h = Handlers(assistant)
    store = h.store
    session = store.create()
    session.add_image(Image.open(sample_image(tmp_path / "a.png")), "a.png")
    session.add_version("img1", ImageOps.invert(session.pixels()), note="edit: invert")
    session.add_message("user", "What is this?", images=["img1.v1"])
    store.save(session)
    exported = h.export(session.id).export
    view = h.import_session(session.id, exported)
    copy = store.get(view.session_id)
    assert copy.id != session.id and "2 versions" in view.status
    assert [v.id for v in copy.record().versions] == ["img1.v1", "img1.v2"]
    for version in ("img1.v1", "img1.v2"):
        assert copy.pixels(version).tobytes() == session.pixels(version).tobytes()
    assert store.get(session.id).messages == session.messages == copy.messages  # the original is untouched
    with pytest.raises(UserError, match=r"^That file is not an mmchat export \(File is not a zip file\)\.$"):
        h.import_session(session.id, str(sample_image(tmp_path / "not-a-zip.png")))
