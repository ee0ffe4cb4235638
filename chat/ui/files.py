"""PNG files for the page, written once and handed to Gradio by path.

Gradio writes a PIL image output to ``cache/<hash>/image.png`` every time it is output, truncating the
file in place: re-sending the same image (a streaming answer re-sends the panel) races with the browser
fetching it ("Too little data for declared Content-Length"). Files given by path are instead copied into
the cache once, atomically. So the UI saves images here (atomically, named by content or by a key) and
outputs paths. Old files are deleted once more than ``limit`` are kept (Gradio has its own copy by then).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Hashable

from PIL import Image


class ImageFiles:
    def __init__(self, limit: int = 2048):
        self.limit = limit
        self._dir: Path | None = None
        self._files: OrderedDict[Hashable, Path] = OrderedDict()
        self._guard = threading.Lock()

    @property
    def directory(self) -> Path:
        with self._guard:
            if self._dir is None:  # created on first use, not at import or app build
                self._dir = Path(tempfile.mkdtemp(prefix="mmchat-ui-"))
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
            fd, staging = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".png")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(staging, path)
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

    def _remember(self, key: Hashable, path: Path) -> None:
        with self._guard:
            self._files[key] = path
            self._files.move_to_end(key)
            while len(self._files) > self.limit:
                _, old = self._files.popitem(last=False)
                if old not in self._files.values():
                    old.unlink(missing_ok=True)
