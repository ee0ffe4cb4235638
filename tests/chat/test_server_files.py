"""Which files the served app hands out: a display URL, and nothing of anybody's session store.

The app is launched as ``mmchat serve`` launches it (chat.server.prepare + launch_kwargs), with login on,
over a data directory outside the temp folder and the working directory (Gradio would otherwise accept
files there without ``allowed_paths``). Two gradio_client clients, A and B, are two people logged in.

What protects a display URL (chat/ui/files.py): it cannot be guessed (the SHA-256 of the pixels, inside a
random folder; Gradio's copy under the SHA-256 of the file) and, with login on, it needs the login cookie.
Anyone logged in who has the URL can fetch it; nobody reaches a session's files by id or path.
"""

from __future__ import annotations

import http.client
import io
import json
import shutil
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from PIL import Image

from tests.fakes import (
    EXPORT,
    IMAGE,
    STATUS,
    ScriptedRouter,
    free_port,
    sample_image,
)

USER, PASSWORD = "alice", "s3cret-pass"
LEAKS = (b"root:", b"SQLite format", b"\x89PNG", b'"messages"', b"PK\x03\x04")


def outside_tmp_and_cwd() -> Path:
    base = Path.home() / ".cache"
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="mmchat-test-served-", dir=base))
    assert not str(folder).startswith(tempfile.gettempdir()) and not str(folder).startswith(str(Path.cwd()))
    return folder


def serve_app(data_dir: Path, **server):
    from chat.app import create_app
    from chat.assistant import Assistant
    from chat.config import load_config
    from chat.server import launch_kwargs, prepare
    from tests.conftest import TINY_CONFIG

    config = load_config(TINY_CONFIG, data_dir=str(data_dir))
    config = config.model_copy(update={"server": config.server.model_copy(update=server)})
    app = prepare(create_app(Assistant(config), router=ScriptedRouter(delay=0)), config)
    options = launch_kwargs(config, host="127.0.0.1", port=free_port(), auth=f"{USER}:{PASSWORD}")
    app.launch(prevent_thread_lock=True, quiet=True, **options)
    return app, f"http://127.0.0.1:{options['server_port']}/"


@pytest.fixture(scope="module")
def served():
    data = outside_tmp_and_cwd()
    app, url = serve_app(data)
    yield app, url, data
    app.close()
    shutil.rmtree(data, ignore_errors=True)


def login(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, auth=(USER, PASSWORD))


def get(url: str, raw_path: str, cookies: dict | None = None) -> tuple[int, bytes]:
    """GET ``raw_path`` exactly as written (no client-side normalisation of '..' or %-escapes)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())} if cookies else {}
    try:
        conn.request("GET", raw_path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def url_path(value) -> str:
    return urlsplit(value["url"])._replace(scheme="", netloc="").geturl()


def test_session_b_reaches_nothing_of_session_a(served, tmp_path):
    from gradio_client import handle_file

    app, url, data = served
    a, b = login(url), login(url)
    out = a.predict([handle_file(str(sample_image(tmp_path / "private.png")))], api_name="/upload")
    assert out[STATUS].startswith("Added img1")
    store = app.mmchat_handlers.store
    sid = max(store.list(), key=lambda s: s["updated"])["id"]
    b.predict([handle_file(str(sample_image(tmp_path / "other.png", (64, 48))))], api_name="/upload")

    # A's display URL works for a logged-in client, and only with the login cookie.
    own = url_path(out[IMAGE])
    status, body = get(url, own, a.cookies)
    assert status == 200 and Image.open(io.BytesIO(body)).size == (640, 480)  # the display copy (enlarged)
    assert get(url, own, b.cookies)[0] == 200  # the URL is the secret, not the session (see docstring)
    assert get(url, own)[0] in (401, 403)

    # The display files live under the data directory, not /tmp; Gradio serves them from its cache copy.
    ui_files = sorted((data / "ui-cache").glob("run-*/*.png"))
    assert ui_files and app.mmchat_handlers.files.directory.parent == (data / "ui-cache").resolve()
    root = data.resolve()
    session_dir = root / "sessions" / sid
    stored = [root / "index.sqlite", session_dir / "session.json", session_dir / "images" / "img1.v1.png"]
    assert all(p.is_file() for p in stored)
    folders = [root, root / "sessions", session_dir, root / "ui-cache", ui_files[0].parent]
    run = ui_files[0].parent
    cache = urlsplit(own).path.split("file=", 1)[1].rsplit("/", 2)[0]  # Gradio's cache folder
    refused = [f"/gradio_api/file={p}" for p in stored + folders]
    refused += [f"/gradio_api/file={quote(str(p), safe='')}" for p in stored]
    refused += [
        f"/gradio_api/file={run}/../../sessions/{sid}/session.json",  # out of the served folder
        f"/gradio_api/file={run}/..%2F..%2Fsessions%2F{sid}%2Fsession.json",
        f"/gradio_api/file={root}/ui-cache/../index.sqlite",
        f"/gradio_api/file={cache}/{'../' * 8}{str(session_dir / 'session.json').lstrip('/')}",
        f"/gradio_api/file={cache}/../../../../../../etc/passwd",
        "/gradio_api/file=/etc/passwd",
        "/gradio_api/file=../../../../../../etc/passwd",
        "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/gradio_api/file=%2Fetc%2Fpasswd",
        "/file=/etc/passwd",
        f"/file={session_dir}/session.json",
    ]
    for path in refused:
        status, body = get(url, path, b.cookies)
        assert status in (403, 404), (path, status)
        assert not any(leak in body for leak in LEAKS), path

    # Nor can B make the app read A's stored image (or any server path) as an "upload" of its own.
    before = {s["id"]: len(store.get(s["id"]).images) for s in store.list()}
    for target in [stored[2], stored[1], "/etc/passwd"]:
        body = json.dumps({"data": [[{"path": str(target), "meta": {"_type": "gradio.FileData"}}]]}).encode()
        request = urllib.request.Request(url + "gradio_api/call/upload", data=body, headers={
            "Content-Type": "application/json", "Cookie": "; ".join(f"{k}={v}" for k, v in b.cookies.items())})
        with urllib.request.urlopen(request, timeout=30) as response:
            event = json.loads(response.read())["event_id"]
        stream_request = urllib.request.Request(f"{url}gradio_api/call/upload/{event}", headers=request.headers)
        with urllib.request.urlopen(stream_request, timeout=60) as response:
            stream = response.read().decode()
        assert "event: error" in stream and "root:" not in stream, stream
    assert {s["id"]: len(store.get(s["id"]).images) for s in store.list()} == before


def test_an_export_download_is_not_guessable_and_not_in_tmp(served, tmp_path):
    from gradio_client import handle_file

    _, url, data = served
    a, b = login(url), login(url)
    a.predict([handle_file(str(sample_image(tmp_path / "x.png")))], api_name="/upload")
    out = a.predict(api_name="/export")
    status, body = get(url, url_path(out[EXPORT]), a.cookies)
    assert status == 200 and "session.json" in zipfile.ZipFile(io.BytesIO(body)).namelist()
    kept = list((data / "ui-cache").glob("run-*/*/mmchat-*.zip"))
    assert len(kept) == 1 and len(kept[0].parent.name) == 32  # a folder of 128 random bits
    guessed = kept[0].parent.parent / kept[0].name  # the name alone is not enough
    assert get(url, f"/gradio_api/file={guessed}", b.cookies)[0] in (403, 404)
    assert get(url, f"/gradio_api/file={data.resolve() / 'exports'}", b.cookies)[0] in (403, 404)
    for export in (data / "exports").glob("*.zip"):
        status, body = get(url, f"/gradio_api/file={export.resolve()}", b.cookies)
        assert status in (403, 404) and b"PK\x03\x04" not in body


def test_gradios_copies_are_deleted_after_file_cache_s(tmp_path):
    """delete_cache: Gradio's copies of served files do not pile up (here after 1 s instead of an hour)."""
    from gradio_client import handle_file

    data = outside_tmp_and_cwd()
    app, url = serve_app(data, file_cache_s=1)
    try:
        assert app.delete_cache == (1, 1)
        client = login(url)
        out = client.predict([handle_file(str(sample_image(tmp_path / "y.png")))], api_name="/upload")
        copy = Path(out[IMAGE]["path"])
        assert copy.is_file() and get(url, url_path(out[IMAGE]), client.cookies)[0] == 200
        deadline = time.time() + 20
        while copy.exists() and time.time() < deadline:
            time.sleep(0.25)
        assert not copy.exists()
        assert get(url, url_path(out[IMAGE]), client.cookies)[0] in (403, 404)
        out = client.predict("img1", api_name="/select_image")
        assert get(url, url_path(out[IMAGE]), client.cookies)[0] == 200  # shown again: copied again
    finally:
        app.close()
        shutil.rmtree(data, ignore_errors=True)
