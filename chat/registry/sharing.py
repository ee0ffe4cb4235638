"""One VAE, one text encoder and one tokenizer for the Stable Diffusion pipelines whose parts are the same.

instruct-pix2pix, SD 1.5 inpainting and SD 1.5 were trained from the same SD 1.5 and kept its VAE, CLIP text
encoder and tokenizer. Each checkpoint ships its own copy; loaded as they are, three pipelines hold three copies
(0.77 GiB of a GPU in float16). :class:`SharedParts` hands a pipeline the part an earlier pipeline loaded when
the two are the same part:

- the same **architecture**: the class the pipeline names and the part's ``config.json``, without the fields
  that describe the file rather than the model (``_name_or_path``, library versions, the stored dtype);
- the same **weights**: the SHA-256 of each weight file the load reads (the fp16 variant at float16). A file in
  the Hugging Face cache is a link to a blob named by its SHA-256, so hub checkpoints cost nothing to compare;
  files of a local folder are hashed once per process (about a second per GB), keyed by path, size and time;
- loaded the same way: the same dtype and placement (a pipeline under model CPU offload never shares with one
  on the device).

Two parts that differ in any of these are both loaded, however alike their names. A part of a checkpoint that
is not on this machine yet (a hub id still to download) is not compared: it is loaded as it is.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import weakref
from pathlib import Path
from typing import Any

SHAREABLE = ("vae", "text_encoder", "tokenizer")
# config fields that describe the saved file or the library that wrote it, not the model
_FILE_FIELDS = {"_name_or_path", "_commit_hash", "_diffusers_version", "transformers_version", "torch_dtype", "dtype",
                "_use_default_values"}
_BLOB = re.compile(r"[0-9a-f]{64}")
_CHUNK = 8 * 2**20


def _normalised_json(path: Path) -> Any:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in _FILE_FIELDS}
    return data


class FileDigests:
    """SHA-256 of files: a Hugging Face blob's own name, else read once per (path, size, mtime)."""

    def __init__(self):
        self._known: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()
        self.hashed_bytes = 0  # bytes read to hash (not counting blobs named by their digest)

    def digest(self, path: Path) -> str:
        real = path.resolve()
        if _BLOB.fullmatch(real.name) and real.parent.name == "blobs":
            return real.name
        stat = real.stat()
        key = (str(real), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return known
        h = hashlib.sha256()
        with open(real, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                h.update(chunk)
        with self._lock:
            self._known[key] = h.hexdigest()
            self.hashed_bytes += stat.st_size
        return h.hexdigest()


def part_identity(folder: Path, component: str, class_name: str, fp16: bool, placement: str,
                  digests: FileDigests) -> str | None:
    """What makes a pipeline's part the same as another's (architecture, weights, dtype, placement), as one hex
    string; None when its files are not all on this machine."""
    from chat.checkpoint_files import folder_choice

    where = folder / component
    if not where.is_dir():
        return None
    try:
        if component == "tokenizer":  # no weights: every file of the folder, contents and all
            files = sorted(p for p in where.iterdir() if p.is_file())
            described: list[Any] = [[p.name, digests.digest(p)] for p in files]
        else:
            choice = folder_choice(where, fp16, variants=True)
            config = where / "config.json"
            if choice is None or not config.is_file():
                return None
            weights = [where / name for name in choice.files if not name.endswith(".json")]
            described = [_normalised_json(config), [digests.digest(p) for p in weights]]
    except (OSError, ValueError):
        return None  # a dangling link (not downloaded) or an unreadable config: not compared
    text = json.dumps([component, class_name, "fp16" if fp16 else "other", placement, described], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class SharedParts:
    """Parts of loaded pipelines by identity, held weakly: a part lives as long as a pipeline holds it."""

    def __init__(self):
        self.digests = FileDigests()
        self._parts: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self._owners: dict[str, str] = {}  # identity -> the config key that loaded it first
        self._lock = threading.Lock()

    def identity(self, path: str, revision: str | None, component: str, class_name: str, fp16: bool,
                 placement: str) -> str | None:
        from chat.registry.sizes import local_folder

        if component not in SHAREABLE:
            return None
        folder = local_folder(path, revision)
        if folder is None:
            return None
        return part_identity(Path(folder), component, class_name, fp16, placement, self.digests)

    def find(self, identity: str | None) -> tuple[Any, str] | None:
        """The live part with this identity and the model that loaded it; None when there is none."""
        if identity is None:
            return None
        with self._lock:
            part = self._parts.get(identity)
            return None if part is None else (part, self._owners.get(identity, "?"))

    def keep(self, identity: str | None, part: Any, owner: str) -> None:
        if identity is None:
            return
        try:
            with self._lock:
                self._parts[identity] = part
                self._owners[identity] = owner
        except TypeError:  # an object that cannot be weakly referenced is simply not shared
            pass

    def live(self) -> int:
        """How many shared parts are alive."""
        with self._lock:
            return len(self._parts)
