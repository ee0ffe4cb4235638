"""The real server in a subprocess: killed (SIGKILL, even mid-edit) and restarted, a session resumes with every
image version, message, marker and trace row; login is off by default and on with MMCHAT_AUTH/--auth."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.chat.test_app_api import CHAT, STATUS, TRACE, VERSIONS, free_port, sample_image, text
from tests.conftest import ROOT, TINY_CONFIG

pytestmark = pytest.mark.timeout(300)


def _config(tmp_path: Path) -> Path:
    data = yaml.safe_load(TINY_CONFIG.read_text())
    data["data_dir"] = str(tmp_path / "data")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start(config: Path, port: int, log: Path, auth: str | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("MMCHAT_AUTH", None)
    if auth:
        env["MMCHAT_AUTH"] = auth
    proc = subprocess.Popen([sys.executable, "-m", "chat", "serve", "--config", str(config), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
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


def test_kill_and_restart_resumes_the_session(tiny_dir, tmp_path):
    from gradio_client import handle_file

    from chat.store import SessionStore

    config, data = _config(tmp_path), tmp_path / "data"
    picture = sample_image(tmp_path / "picture.png")
    port = free_port()
    server = _start(config, port, tmp_path / "first.log")
    try:
        client = _client(port)  # login is off by default
        client.predict([handle_file(str(picture))], api_name="/upload")  # the session State is not an API value
        (sid,) = _session_ids(data)
        client.predict(120, 90, "circle", "red", api_name="/add_point")
        client.predict("What is in the red circle?", api_name="/ask")
        client.predict("make it blue", api_name="/edit")
        before = SessionStore(data).get(sid)
        assert len(before.record().versions) == 2 and len(before.messages) == 4
        job = client.submit("make it red", api_name="/edit")  # killed while it runs (or right after)
        time.sleep(1.0)
    finally:
        _kill(server)
    del job

    port = free_port()
    server = _start(config, port, tmp_path / "second.log", auth="alice:s3cret")
    try:
        from gradio_client import Client

        with pytest.raises(Exception):
            Client(f"http://127.0.0.1:{port}/", verbose=False)  # login is on: no credentials, no access
        with pytest.raises(Exception):
            _client(port, auth=("alice", "wrong"))
        client = _client(port, auth=("alice", "s3cret"))
        view = client.predict(sid, api_name="/resume")
        after = SessionStore(data).get(sid)
        versions = len(after.record().versions)
        assert versions in (2, 3)  # the killed edit either finished (v3) or left nothing behind
        assert len(view[VERSIONS]) == versions
        assert [m.content for m in after.messages[:4]] == [m.content for m in before.messages]
        assert after.record().markers == before.record().markers and len(after.record().markers) == 1
        assert len(view[CHAT]) >= 4 and "red circle" in text(view[CHAT][0])
        assert len(view[TRACE]["data"]) >= len(before.trace)
        for version in after.record().versions:  # every stored image opens
            assert after.pixels(version.id).size == (320, 240)
        view = client.predict("And now?", api_name="/ask")  # the session goes on
        assert len(SessionStore(data).get(sid).messages) == len(after.messages) + 2
        view = client.predict("0" * 32, api_name="/resume")  # an unknown id: one sentence, nothing lost
        assert "There is no saved session" in view[STATUS]
        assert len(SessionStore(data).get(sid).messages) == len(after.messages) + 2
    finally:
        _kill(server)


def test_export_then_import_gives_the_same_session_under_a_new_id(assistant, tmp_path):
    from PIL import Image, ImageOps

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
    assert copy.id != session.id and "2 version(s)" in view.status
    assert [v.id for v in copy.record().versions] == ["img1.v1", "img1.v2"]
    assert copy.pixels("img1.v2").tobytes() == session.pixels("img1.v2").tobytes()
    assert store.get(session.id).messages == session.messages  # the original is untouched
    with pytest.raises(Exception, match="zip"):
        h.import_session(session.id, str(sample_image(tmp_path / "not-a-zip.png")))
