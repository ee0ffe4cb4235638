"""Which files of a checkpoint a load reads: pure functions over a listing of its files, and the listing itself.

Used by the loaders (safetensors or ``.bin``, the fp16 variant of an SD component), by ``mmchat pull`` (only these
files are downloaded) and by ``mmchat doctor`` and the size estimate (only these files count).

The rules, the same everywhere:

- Weights: safetensors first (``model.safetensors``, ``diffusion_pytorch_model.safetensors``, their shards and
  index), ``.bin`` (``pytorch_model.bin``, ``diffusion_pytorch_model.bin``) only when a folder has no safetensors.
  Other single-file checkpoints beside them (``v1-5-pruned.safetensors``, ``*.ckpt``, flax, TF, ONNX) are never read.
- Diffusers weights (pipeline components and ControlNet) at float16: the ``fp16`` variant where the folder has one,
  else the plain files; at another dtype the plain files, the fp16 variant only where nothing else is there.
  Transformers checkpoints never use variants.
- A transformers checkpoint is its root folder; a diffusers pipeline is ``model_index.json`` plus the folder of each
  component it names (the safety checker is never loaded); a diffusers model (ControlNet) is its root folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

Kind = Literal["transformers", "pipeline", "diffusers_model"]

WEIGHT_BASES = ("model", "pytorch_model", "diffusion_pytorch_model")
_BASE = "|".join(WEIGHT_BASES)
# model.safetensors, model-00001-of-00002.safetensors, diffusion_pytorch_model.fp16.safetensors,
# model.fp16-00001-of-00002.safetensors, pytorch_model.bin, ...
_WEIGHTS = re.compile(rf"^(?:{_BASE})(?:\.(?P<v1>\w+))?(?:-\d+-of-\d+)?(?:\.(?P<v2>\w+))?\.(?P<fmt>safetensors|bin)$")
# model.safetensors.index.json, diffusion_pytorch_model.safetensors.index.fp16.json, pytorch_model.bin.index.json
_INDEX = re.compile(rf"^(?:{_BASE})\.(?P<fmt>safetensors|bin)\.index(?:\.(?P<v1>\w+))?\.json$")
# Files besides the weights that a load reads: configs, tokenizers, processors, chat templates.
_SIDE_FILES = (".json", ".txt", ".model", ".jinja")
NOT_LOADED = ("safety_checker",)  # pipeline folders the loaders skip (safety_checker=None)
VARIANT = "fp16"


class NoWeightsError(FileNotFoundError):
    """A checkpoint folder has no weights file a load reads."""

    def __init__(self, folder: str):
        super().__init__(f"no weights file (*.safetensors or *.bin) in {folder}")
        self.folder = folder


@dataclass(frozen=True)
class WeightChoice:
    """The weight files of one folder that a load reads."""

    files: tuple[str, ...]  # names in the folder
    safetensors: bool
    variant: str | None  # "fp16" or None

    @property
    def note(self) -> str:
        """One line for the user when the choice is not the plain safetensors files ("" otherwise)."""
        if not self.safetensors:
            name = next((f for f in self.files if not f.endswith(".json")), self.files[0])
            return f"no safetensors here: read {name} (a pickle file; safetensors is preferred when present)"
        return ""


def weight_format(name: str) -> tuple[str, str | None] | None:
    """``(format, variant)`` of a weights or index file name (``("safetensors", "fp16")``); None for other files."""
    match = _WEIGHTS.match(name) or _INDEX.match(name)
    if match is None:
        return None
    groups = match.groupdict()
    return groups["fmt"], groups.get("v1") or groups.get("v2")


def choose_weights(names: Iterable[str], fp16: bool = False, variants: bool = False) -> WeightChoice | None:
    """The weights a load reads among the file ``names`` of one folder; None when it has none.

    ``variants``: diffusers weights, where the ``fp16`` variant is chosen at float16 (``fp16``) when present.
    """
    groups: dict[tuple[str, str | None], list[str]] = {}
    for name in names:
        kind = weight_format(name)
        if kind is not None:
            groups.setdefault(kind, []).append(name)
    if variants:
        order = [("safetensors", VARIANT), ("safetensors", None), ("bin", VARIANT), ("bin", None)] if fp16 else \
            [("safetensors", None), ("safetensors", VARIANT), ("bin", None), ("bin", VARIANT)]
    else:
        order = [("safetensors", None), ("bin", None)]
    for fmt, variant in order:
        files = groups.get((fmt, variant))
        if files and any(not f.endswith(".json") for f in files):
            return WeightChoice(tuple(sorted(files)), fmt == "safetensors", variant)
    return None


def _by_folder(files: Iterable[str]) -> dict[str, list[str]]:
    folders: dict[str, list[str]] = {}
    for path in files:
        folder, _, name = path.rpartition("/")
        folders.setdefault(folder, []).append(name)
    return folders


def _side_files(names: Iterable[str]) -> list[str]:
    return [n for n in names if n.endswith(_SIDE_FILES) and weight_format(n) is None]


def components(model_index: dict) -> list[str]:
    """The component folders of a pipeline's ``model_index.json`` that the loaders read."""
    return [name for name, value in model_index.items()
            if name not in NOT_LOADED and isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, str) for v in value)]


def wanted_files(files: Iterable[str], kind: Kind, fp16: bool = False, model_index: dict | None = None) -> list[str]:
    """The repository paths (``unet/config.json``) a load of this kind reads, among ``files`` (every path in it).

    A pipeline needs its ``model_index.json`` (``model_index``) to know its components; without it, only
    ``model_index.json`` itself is wanted (read it, then ask again)."""
    folders = _by_folder(files)
    if kind == "pipeline":
        if model_index is None:
            return ["model_index.json"] if "model_index.json" in folders.get("", []) else []
        wanted = ["model_index.json"]
        for folder in components(model_index):
            wanted += _folder_files(folders.get(folder, []), folder, fp16, variants=True)
        return sorted(wanted)
    return _folder_files(folders.get("", []), "", fp16, variants=kind == "diffusers_model")


def _folder_files(names: list[str], folder: str, fp16: bool, variants: bool) -> list[str]:
    chosen = list(_side_files(names))
    weights = choose_weights(names, fp16, variants)
    if weights is not None:
        chosen += weights.files
    prefix = f"{folder}/" if folder else ""
    return sorted(prefix + n for n in chosen)


# -- listings of what is on this machine --------------------------------------------------------------------
def cached_snapshot(repo_id: str, revision: str | None = None, cache_dir: str | Path | None = None) -> Path | None:
    """The folder of a hub repository's snapshot in the local Hugging Face cache (never downloads); None when
    nothing of it is cached."""
    if repo_id.startswith(("/", ".", "~")) or repo_id.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        for name in ("config.json", "model_index.json"):
            found = try_to_load_from_cache(repo_id, name, revision=revision, cache_dir=cache_dir)
            if isinstance(found, str):
                return Path(found).parent
    except Exception:  # noqa: BLE001 - not a valid repo id, no hub library: not cached
        return None
    return None


def local_listing(folder: Path) -> list[str]:
    """Every file under ``folder`` as repository paths (``unet/config.json``); symlinks (the HF cache) count."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def folder_choice(folder: Path, fp16: bool = False, variants: bool = False) -> WeightChoice | None:
    """:func:`choose_weights` over the files directly in ``folder``."""
    if not folder.is_dir():
        return None
    return choose_weights([p.name for p in folder.iterdir() if p.is_file()], fp16, variants)


def missing_files(local: Iterable[str], reference: Iterable[str] | None, kind: Kind, fp16: bool = False,
                  model_index: dict | None = None) -> list[str]:
    """What a load needs that ``local`` (the files on this machine) lacks, judged against ``reference`` (the
    repository's full listing when known, else ``local`` itself): side files by name, and for every folder
    holding a model (a ``config.json``) weights of any usable format (``"unet/weights"``)."""
    have = _by_folder(local)
    ref = _by_folder(reference) if reference is not None else have
    if kind == "pipeline":
        if model_index is None:
            return ["model_index.json"]
        folders = components(model_index)
    else:
        folders = [""]
    missing = []
    for folder in folders:
        prefix = f"{folder}/" if folder else ""
        names = have.get(folder, [])
        expected = ref.get(folder, names)
        missing += [prefix + n for n in _side_files(expected) if n not in names]
        if "config.json" in expected and choose_weights(names, fp16, variants=kind != "transformers") is None:
            missing.append(prefix + "weights")
    return missing


@dataclass(frozen=True)
class LocalCopy:
    """What of a checkpoint is on this machine."""

    source: Literal["local folder", "hf cache", "not cached"]
    folder: Path | None
    files: tuple[str, ...]  # the files a load reads that are here
    missing: tuple[str, ...]  # what a load needs that is not here (see missing_files)
    nbytes: int  # size on disk of ``files``

    @property
    def complete(self) -> bool:
        return self.folder is not None and not self.missing


def read_model_index(folder: Path) -> dict | None:
    import json

    try:
        return json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def local_copy(path: str, kind: Kind, fp16: bool = False, revision: str | None = None) -> LocalCopy:
    """Where a checkpoint would load from and whether everything a load reads is there (never downloads)."""
    folder = Path(path).expanduser()
    source = "local folder"
    if not folder.is_dir():
        folder, source = cached_snapshot(path, revision), "hf cache"
    if folder is None:
        return LocalCopy("not cached", None, (), ("everything",), 0)
    listing = local_listing(folder)
    reference = None
    if source == "hf cache":
        try:
            from huggingface_hub import get_cached_repo_tree

            reference = [f.path for f in get_cached_repo_tree(path, revision=revision)]
        except Exception:  # noqa: BLE001 - no cached tree listing (files fetched one by one): judge from the files
            reference = None
    model_index = read_model_index(folder) if kind == "pipeline" else None
    files = wanted_files(listing, kind, fp16, model_index)
    nbytes = sum((folder / f).stat().st_size for f in files)
    missing = missing_files(listing, reference, kind, fp16, model_index)
    return LocalCopy(source, folder, tuple(files), tuple(missing), nbytes)  # type: ignore[arg-type]
