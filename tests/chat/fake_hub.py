"""A small Hugging Face Hub on 127.0.0.1 for tests: the routes huggingface_hub 2.4's ``snapshot_download`` /
``hf_hub_download`` / ``HfApi.list_repo_tree`` / ``model_info`` use (read in its installed source), with the headers
they need (``X-Repo-Commit``, ``ETag``, ``Content-Length``, ``X-Error-Code``) and byte ranges.

    GET  /api/models/{repo}/revision/{rev}        model info with siblings
    GET  /api/models/{repo}/tree/{rev}?recursive   the file listing (path, size, oid)
    HEAD /{repo}/resolve/{rev}/{path}             metadata headers
    GET  /{repo}/resolve/{rev}/{path}             the bytes (206 for ``Range: bytes=N-``)

Unknown repos answer 404 ``RepoNotFound``, ``gated`` ones 403 ``GatedRepo``, missing files 404 ``EntryNotFound``.
``cut["repo/path"] = n`` makes the first GET of that file send ``n`` bytes of it and close the connection (a dropped
download); ``stall["repo/path"] = n`` sends ``n`` bytes and hangs (``stalled`` is set) until ``release``. Every request is recorded in ``requests`` as ``(method, path, range header)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[2]


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]], gated: tuple[str, ...] = ()):
        self.repos = repos
        self.gated = set(gated)
        self.cut: dict[str, int] = {}
        self.stall: dict[str, int] = {}  # send this many bytes of the file, then hang until ``release``
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.requests: list[tuple[str, str, str | None]] = []
        self._server: ThreadingHTTPServer | None = None

    @staticmethod
    def files_of(folder: Path, skip: tuple[str, ...] = ("tiny.json",)) -> dict[str, bytes]:
        """Every file under ``folder`` as repository paths -> bytes."""
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
                if p.is_file() and p.name not in skip}

    @staticmethod
    def commit(repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def downloads(self) -> list[str]:
        """``repo/path`` of every file GET (not HEAD, not API)."""
        return [path for method, path, _ in self.requests if method == "GET" and "/resolve/" in path]

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._serve(self, head=True)

            def do_GET(self):
                hub._serve(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- routes ---------------------------------------------------------------------------------------------
    def _serve(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        url = urlparse(h.path)
        path = unquote(url.path)
        self.requests.append(("HEAD" if head else "GET", path, h.headers.get("Range")))
        if path.startswith("/api/models/"):
            return self._api(h, path[len("/api/models/"):])
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(h, "/".join(parts[:2]), "/".join(parts[4:]), head)
        self._send(h, 404, b"not found", {"X-Error-Code": "RepoNotFound"})

    def _refuse(self, h, repo: str) -> bool:
        if repo not in self.repos:
            self._send(h, 404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound",
                                                                     "X-Error-Message": "Repository not found"})
            return True
        if repo in self.gated:
            self._send(h, 403, b'{"error":"gated"}', {"X-Error-Code": "GatedRepo",
                                                      "X-Error-Message": "Access to model is restricted."})
            return True
        return False

    def _api(self, h, rest: str) -> None:
        parts = rest.split("/")
        repo = "/".join(parts[:2])
        if self._refuse(h, repo):
            return
        files = self.repos[repo]
        if parts[2:3] == ["revision"]:
            body = {"id": repo, "modelId": repo, "sha": self.commit(repo), "private": False, "gated": False,
                    "siblings": [{"rfilename": name} for name in sorted(files)]}
        elif parts[2:3] == ["tree"]:
            body = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    for name, data in sorted(files.items())]
        else:
            return self._send(h, 404, b"{}", {})
        self._send(h, 200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _resolve(self, h, repo: str, name: str, head: bool) -> None:
        if self._refuse(h, repo):
            return
        data = self.repos[repo].get(name)
        headers = {"X-Repo-Commit": self.commit(repo)}
        if data is None:
            return self._send(h, 404, b"Entry not found", {**headers, "X-Error-Code": "EntryNotFound"})
        headers.update({"ETag": f'"{hashlib.sha256(data).hexdigest()}"', "Accept-Ranges": "bytes"})
        start = 0
        wanted = h.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and not head:
            start = int(wanted[len("bytes="):].split("-")[0])
        body = data[start:]
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        key = f"{repo}/{name}"
        if head:
            return self._send(h, 200, b"", {**headers, "Content-Length": str(len(data))}, body_length=len(data))
        if key in self.cut or key in self.stall:
            stalls = key in self.stall
            sent = self.stall.pop(key) if stalls else self.cut.pop(key)
            h.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body[:sent])
            h.wfile.flush()
            if stalls:
                self.stalled.set()
                self.release.wait(120)
            h.close_connection = True
            return
        self._send(h, status, body, headers)

    @staticmethod
    def _send(h, status: int, body: bytes, headers: dict, body_length: int | None = None) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        if "Content-Length" not in headers:
            h.send_header("Content-Length", str(len(body) if body_length is None else body_length))
        h.end_headers()
        if body and h.command != "HEAD":
            h.wfile.write(body)


def with_fp16_variants(files: dict[str, bytes]) -> dict[str, bytes]:
    """A diffusers repository's files plus an ``fp16`` variant of each component's safetensors weights (the
    weights cast to float16 and halved, so a test can tell which file a load read), as SD repositories ship."""
    import torch
    from safetensors.torch import load, save

    out = dict(files)
    for name, data in files.items():
        folder, _, base = name.rpartition("/")
        if base in ("diffusion_pytorch_model.safetensors", "model.safetensors"):
            state = {k: (v * 0.5).to(torch.float16) if v.is_floating_point() else v for k, v in load(data).items()}
            stem = f"{folder}/{base[:-len('.safetensors')]}" if folder else base[:-len(".safetensors")]
            out[f"{stem}.fp16.safetensors"] = save(state, metadata={"format": "pt"})
    return out


def with_decoys(files: dict[str, bytes], pipeline: bool) -> dict[str, bytes]:
    """Files real repositories carry that no load reads: docs, other frameworks' weights, ``.bin`` copies beside
    safetensors, a safety checker, root single-file checkpoints, non-EMA weights."""
    out = dict(files, **{"README.md": b"# model card\n", ".gitattributes": b"*.bin filter=lfs\n",
                         "flax_model.msgpack": b"\0" * 64, "tf_model.h5": b"\0" * 64})
    if pipeline:
        out.update({"safety_checker/config.json": b"{}", "safety_checker/model.safetensors": b"\0" * 64,
                    "v1-5-pruned.safetensors": b"\0" * 64, "v1-5-pruned.ckpt": b"\0" * 64,
                    "unet/diffusion_pytorch_model.non_ema.safetensors": b"\0" * 64,
                    "unet/diffusion_pytorch_model.bin": b"\0" * 64})
    else:
        out["pytorch_model.bin"] = b"\0" * 64
    return out


def hub_env(hub: FakeHub, home) -> dict:
    """The environment of a fresh process that downloads from ``hub`` into an empty cache under ``home``."""
    return dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"),
                HF_HUB_OFFLINE="0", TRANSFORMERS_OFFLINE="0", HF_HUB_DISABLE_PROGRESS_BARS="1",
                PYTHONPATH=str(ROOT), DISABLE_SAFETENSORS_CONVERSION="1")
