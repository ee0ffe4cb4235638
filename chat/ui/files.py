"""Files for the page (display PNGs, export downloads), written once under the data directory.

Gradio writes a PIL image output to ``cache/<hash>/image.png`` every time it is output, truncating the
file in place: re-sending the same image (a streaming answer re-sends the panel) races with the browser
fetching it ("Too little data for declared Content-Length"). Files given by path are instead copied into
the cache once, atomically. So the UI saves images here (atomically, named by content or by a key) and
outputs paths. Old files are deleted once more than ``limit`` are kept (Gradio has its own copy by then).

Where they live: ``<data_dir>/ui-cache/run-XXXX/`` (a private 0700 folder per process, removed at exit;
folders a killed process left behind are removed after a day), never ``/tmp``. chat/server.py lets Gradio
serve ``ui-cache`` (``allowed_paths``) and nothing else under the data directory (``blocked_paths``);
Gradio's copies (``delete_cache``) are deleted after ``server.file_cache_s``.

What protects a display URL: only that it cannot be guessed. A display PNG is named by the SHA-256 of its
pixels (128 bits kept) inside a random folder, and Gradio's copy by the SHA-256 of the file; an export
download sits in a folder named by 128 random bits. Anyone who has the URL (or the exact image) can fetch
it; nobody can list these folders or reach a session's files by id or path. With ``--auth`` every file
URL also needs the login cookie.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path

from PIL import Image

from chat.store import atomic_write

UI_CACHE = "ui-cache"
STALE_SECONDS = 24 * 3600  # run folders untouched this long belong to a process that is gone


def ui_cache_dir(data_dir: str | os.PathLike) -> Path:
    """The folder of the page's files under ``data_dir`` (the one Gradio is allowed to serve)."""
    return Path(os.path.expanduser(str(data_dir))).resolve() / UI_CACHE


def served_paths(data_dir: str | os.PathLike) -> dict[str, list[str]]:
    """``allowed_paths``/``blocked_paths`` for ``launch()``: Gradio may serve the page's files and never the
    session store (blocked even should the data directory sit inside a folder Gradio serves)."""
    root = ui_cache_dir(data_dir).parent
    store = [root / "sessions", root / "exports", root / "index.sqlite", root / "index.sqlite-journal"]
    return {"allowed_paths": [str(ui_cache_dir(data_dir))], "blocked_paths": [str(p) for p in store]}


class ImageFiles:
    def __init__(self, data_dir: str | os.PathLike, limit: int = 2048):
        self.root = ui_cache_dir(data_dir)
        self.limit = limit
        self._dir: Path | None = None
        self._files: OrderedDict[Hashable, Path] = OrderedDict()
        self._guard = threading.Lock()

    @property
    def directory(self) -> Path:
        with self._guard:
            if self._dir is None:  # created on first use, not at import or app build
                self.root.mkdir(parents=True, exist_ok=True)
                _remove_stale(self.root)
                self._dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.root))  # mode 0700
                weakref.finalize(self, shutil.rmtree, self._dir, True)
            self._dir.mkdir(mode=0o700, exist_ok=True)
            return self._dir

    def put(self, image: Image.Image) -> str:
        """The path of a PNG of ``image`` (same pixels, same path)."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        data = buffer.getvalue()
        name = hashlib.sha256(data).hexdigest()[:32]
        with self._guard:
            known = self._files.get(name)
            if known is not None and known.exists():
                self._files.move_to_end(name)
                return str(known)
        path = self.directory / f"{name}.png"
        if not path.exists():
            atomic_write(path, data, fsync=False)
        self._remember(name, path)
        return str(path)

    def get(self, key: Hashable, make: Callable[[], Image.Image]) -> str:
        """The path stored under ``key`` (e.g. a version id's thumbnail), made once by ``make()``."""
        with self._guard:
            known = self._files.get(key)
            if known is not None and known.exists():
                self._files.move_to_end(key)
                return str(known)
        path = Path(self.put(make()))
        self._remember(key, path)
        return str(path)

    def named(self, key: Hashable, name: str, read: Callable[[], bytes]) -> str:
        """A file named ``name`` holding ``read()`` (e.g. an original upload to download), in a folder of its
        own (random name); made once per ``key``."""
        with self._guard:
            known = self._files.get(key)
            if known is not None and known.exists():
                self._files.move_to_end(key)
                return str(known)
        data = read()
        folder = self.directory / secrets.token_hex(16)
        folder.mkdir(mode=0o700)
        path = folder / Path(name).name
        atomic_write(path, data, fsync=False)
        self._remember(key, path)
        return str(path)

    def keep(self, source: str | os.PathLike, name: str) -> str:
        """A copy of the file ``source`` named ``name`` for a download, in a folder of its own (random name)."""
        folder = self.directory / secrets.token_hex(16)
        folder.mkdir(mode=0o700)
        path = folder / Path(name).name
        atomic_write(path, Path(source).read_bytes(), fsync=False)
        self._remember(path, path)
        return str(path)

    def _remember(self, key: Hashable, path: Path) -> None:
        with self._guard:
            self._files[key] = path
            self._files.move_to_end(key)
            while len(self._files) > self.limit:
                _, old = self._files.popitem(last=False)
                if old not in self._files.values():
                    old.unlink(missing_ok=True)
                    if self._dir is not None and old.parent != self._dir:
                        shutil.rmtree(old.parent, ignore_errors=True)


def _remove_stale(root: Path) -> None:
    cutoff = time.time() - STALE_SECONDS
    for folder in root.glob("run-*"):
        try:
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
