"""One VAE, one text encoder and one tokenizer for the Stable Diffusion pipelines whose parts are the same.

instruct-pix2pix, SD 1.5 inpainting and SD 1.5 were trained from the same SD 1.5 and kept its VAE, CLIP text
encoder and tokenizer. Each checkpoint ships its own copy; loaded as they are, three pipelines hold three copies
(0.77 GiB of a GPU in float16). :class:`SharedParts` hands a pipeline the part an earlier pipeline loaded when
the two are the same part:

- the same **architecture**: the class the pipeline names and the part's ``config.json``, without the fields
  that describe the file rather than the model (``_name_or_path``, library versions, the stored dtype);
- the same **weights**: a SHA-256 of the tensors of each weight file the load reads (the fp16 variant at
  float16), as the load gets them: floats cast to the load's dtype, so an fp32 file and an fp16 copy of the same
  weights agree. Each file is read once (about a second per GB); for files over 64 MiB the digest is kept in
  ``~/.cache/mmchat/part-digests.json`` (``$XDG_CACHE_HOME``), keyed by the Hugging Face blob name (the file's
  own SHA-256) or the path, size and modification time, so later starts read nothing;
- loaded the same way: the same placement (a pipeline under model CPU offload never shares with one on the
  device).

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
_PERSIST = 64 * 2**20  # digests of files larger than this are kept on disk between runs


def _normalised_json(path: Path) -> Any:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in _FILE_FIELDS}
    return data


class TensorDigests:
    """SHA-256 of a weight file's tensors as a load gets them: each tensor by name, cast to the load's float dtype
    (so an fp32 file and its fp16 variant agree at float16). Computed once per file and dtype: kept in this process,
    and for files over 64 MiB in ``cache_file`` too, keyed by the Hugging Face blob name (itself the file's SHA-256)
    or by path, size and modification time."""

    def __init__(self, cache_file: Path | None = None):
        self.cache_file = cache_file
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()
        self.hashed_bytes = 0  # bytes read to hash (not served from a cache)
        self._loaded = False

    def _key(self, real: Path, dtype: str) -> str:
        if _BLOB.fullmatch(real.name) and real.parent.name == "blobs":
            return f"blob:{real.name}:{dtype}"
        stat = real.stat()
        return f"file:{real}:{stat.st_size}:{stat.st_mtime_ns}:{dtype}"

    def _load_cache(self) -> None:
        if self._loaded or self.cache_file is None:
            return
        self._loaded = True
        try:
            self._known.update(json.loads(self.cache_file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass

    def _save_cache(self) -> None:
        if self.cache_file is None:
            return
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._known, indent=0), encoding="utf-8")
            tmp.replace(self.cache_file)
        except OSError:
            pass  # a cache that cannot be written is recomputed next time

    def digest(self, path: Path, dtype: str) -> str:
        real = path.resolve()
        key = self._key(real, dtype)
        with self._lock:
            self._load_cache()
            known = self._known.get(key)
        if known is not None:
            return known
        value = _tensor_digest(real, dtype)
        size = real.stat().st_size
        with self._lock:
            self._known[key] = value
            self.hashed_bytes += size
            if size > _PERSIST:
                self._save_cache()
        return value


def _tensor_digest(path: Path, dtype: str) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of every tensor, floats cast to ``dtype``; a pickle (``.bin``)
    is hashed as a file."""
    import torch

    h = hashlib.sha256()
    if path.suffix != ".safetensors":
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                h.update(chunk)
        return h.hexdigest()
    from safetensors import safe_open

    cast = getattr(torch, dtype, None)
    with safe_open(str(path), framework="pt") as handle:
        for name in sorted(handle.keys()):
            tensor = handle.get_tensor(name)
            if cast is not None and tensor.is_floating_point():
                tensor = tensor.to(cast)
            h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}:".encode())
            h.update(tensor.contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def part_identity(folder: Path, component: str, class_name: str, fp16: bool, dtype: str, placement: str,
                  digests: TensorDigests) -> str | None:
    """What makes a pipeline's part the same as another's (architecture, weights at the load's ``dtype``,
    placement), as one hex string; None when its files are not all on this machine."""
    from chat.checkpoint_files import folder_choice

    where = folder / component
    if not where.is_dir():
        return None
    try:
        if component == "tokenizer":  # no weights: every file of the folder, contents and all
            files = sorted(p for p in where.iterdir() if p.is_file())
            described: list[Any] = [[p.name, digests.digest(p, "")] for p in files]
        else:
            choice = folder_choice(where, fp16, variants=True)
            config = where / "config.json"
            if choice is None or not config.is_file():
                return None
            weights = [where / name for name in choice.files if not name.endswith(".json")]
            described = [_normalised_json(config), [digests.digest(p, dtype) for p in weights]]
    except (OSError, ValueError):
        return None  # a dangling link (not downloaded) or an unreadable config: not compared
    text = json.dumps([component, class_name, dtype, placement, described], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class SharedParts:
    """Parts of loaded pipelines by identity, held weakly: a part lives as long as a pipeline holds it."""

    def __init__(self, cache_file: Path | None = None):
        self.digests = TensorDigests(cache_file)
        self._parts: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self._owners: dict[str, str] = {}  # identity -> the config key that loaded it first
        self._lock = threading.Lock()

    def identity(self, path: str, revision: str | None, component: str, class_name: str, fp16: bool, dtype: str,
                 placement: str) -> str | None:
        from chat.registry.sizes import local_folder

        if component not in SHAREABLE:
            return None
        folder = local_folder(path, revision)
        if folder is None:
            return None
        return part_identity(Path(folder), component, class_name, fp16, dtype, placement, self.digests)

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
