"""``mmchat pull``: download every configured checkpoint up front, only the files the loaders read.

For each model that is a hub id: the repository's file listing with sizes (``HfApi.list_repo_tree``; a pipeline's
``model_index.json`` is read first, to know its components), the files a load reads
(:func:`chat.checkpoint_files.wanted_files`: safetensors first, ``.bin`` only without them, the fp16 variant of SD
components when the model runs at float16), and what of them is already cached. Nothing is downloaded until every
plan is made and the total fits the free space of the Hugging Face cache. Then ``snapshot_download`` with exactly
those files, one progress bar per model (the bytes arriving in the repository's cache folder).

Interrupted? Run it again: files already complete are kept in the cache and not fetched again (their commit is
known); huggingface_hub resumes a dropped connection within a file from the last 10 MiB it wrote, and starts a file
cut off by a killed process over (its partial file cannot be reused: pull deletes such leftovers first).
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from chat.checkpoint_files import cached_snapshot, read_model_index, wanted_files, weight_format
from chat.loaders import files_kind, loader_for
from chat.registry.load_errors import explain

# progress(model name, fraction in [0, 1], message): 0.0 when a model starts, 1.0 when it ends
Progress = Callable[[str, float, str], None]


@dataclass
class Plan:
    """What pulling one configured model means."""

    name: str
    path: str
    revision: str | None = None
    source: str = "hub"  # hub | local folder | tiny
    fp16: bool = False
    files: dict[str, int] = field(default_factory=dict)  # repository path -> bytes, the files a load reads
    cached: set[str] = field(default_factory=set)  # of those, already in the cache
    status: str = "planned"  # planned | cached | pulled | local folder | built | failed
    problem: str | None = None
    seconds: float | None = None

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    @property
    def download_bytes(self) -> int:
        return sum(size for name, size in self.files.items() if name not in self.cached)

    def as_dict(self) -> dict:
        return {"name": self.name, "path": self.path, "source": self.source, "fp16": self.fp16,
                "files": sorted(self.files), "bytes": self.total_bytes,
                "cached_bytes": self.total_bytes - self.download_bytes, "status": self.status,
                "problem": self.problem, "seconds": self.seconds}


def hub_cache(cache_dir: str | Path | None = None) -> Path:
    from huggingface_hub import constants

    return Path(cache_dir or constants.HF_HUB_CACHE).expanduser()


def free_bytes(folder: Path) -> int:
    """Free space of the disk that holds ``folder`` (or its nearest existing parent)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def gib(n: int) -> str:
    """Bytes for people: GiB from 1 GiB on, else MiB."""
    return f"{n / 2**30:.2f} GiB" if abs(n) >= 2**30 else f"{n / 2**20:.1f} MiB"


def disk_problem(needed: int, free: int, cache: Path) -> str | None:
    """The sentence refusing a pull that does not fit the free space (None when it fits)."""
    if needed <= free:
        return None
    return (f"Not enough disk space: the models need {gib(needed)} more in {cache} and {gib(free)} is free; free "
            "some space or point HF_HOME (or HF_HUB_CACHE) at a larger disk, then run 'mmchat pull' again.")


class Puller:
    """Plans and downloads the configured checkpoints into one Hugging Face cache."""

    def __init__(self, config, dtype=None, cache_dir: str | Path | None = None, endpoint: str | None = None):
        from huggingface_hub import HfApi

        from chat.registry import ModelRegistry

        self.config = config
        self.cache = hub_cache(cache_dir)
        self.endpoint = endpoint
        self.api = HfApi(endpoint=endpoint)
        self._memory = ModelRegistry(config)  # only for the dtype each model will run at (nothing is loaded)
        self.dtype = dtype

    def _fp16(self, name: str) -> bool:
        import torch

        dtype = self.dtype if self.dtype is not None else self._memory.dtype_for(self.config.model(name))
        return dtype == torch.float16

    # -- planning ---------------------------------------------------------------------------------------------
    def plan(self, name: str) -> Plan:
        spec = self.config.model(name)
        plan = Plan(name, spec.path, spec.revision, fp16=self._fp16(name))
        tiny = self.config.tiny_path
        if tiny is not None and Path(spec.path).parent == tiny:
            plan.source, plan.status = "tiny", "local folder"
            return plan
        if spec.path.startswith(("/", ".", "~")) or Path(spec.path).expanduser().exists():
            plan.source, plan.status = "local folder", "local folder"
            if not Path(spec.path).expanduser().is_dir():
                plan.status, plan.problem = "failed", (
                    f"Checkpoint folder '{spec.path}' for model '{name}' does not exist; fix 'models.{name}.path'.")
            return plan
        try:
            self._plan_hub(plan)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
            _, what, _ = loader_for(name)
            plan.status, plan.problem = "failed", explain(name, spec.path, what, exc, spec.revision)[1]
        return plan

    def _plan_hub(self, plan: Plan) -> None:
        from huggingface_hub import RepoFile, hf_hub_download

        kind = files_kind(plan.name)
        sizes = {f.path: f.size for f in self.api.list_repo_tree(plan.path, recursive=True, revision=plan.revision)
                 if isinstance(f, RepoFile)}
        model_index = None
        if kind == "pipeline" and "model_index.json" in sizes:
            index = hf_hub_download(plan.path, "model_index.json", revision=plan.revision, cache_dir=self.cache,
                                    endpoint=self.endpoint)
            model_index = read_model_index(Path(index).parent)
        wanted = wanted_files(sizes, kind, plan.fp16, model_index)
        if not any(weight_format(w.rpartition("/")[2]) for w in wanted):
            _, what, _ = loader_for(plan.name)
            plan.status, plan.problem = "failed", (
                f"Checkpoint '{plan.path}' for model '{plan.name}' has no weights file (neither safetensors nor "
                f".bin) on the hub; it is not a {what} this app can load; fix 'models.{plan.name}.path'.")
            return
        plan.files = {name: sizes[name] for name in wanted}
        snapshot = cached_snapshot(plan.path, plan.revision, self.cache)
        if snapshot is not None:
            plan.cached = {name for name in wanted if (snapshot / name).is_file()}
        plan.status = "cached" if not plan.download_bytes else "planned"

    # -- downloading ------------------------------------------------------------------------------------------
    def _build_tiny(self, plan: Plan, report: Progress) -> None:
        """A tiny offline checkpoint is built, not downloaded (as the registry would on first use)."""
        from chat import tiny

        folder = Path(plan.path)
        if folder.is_dir() or folder.name not in tiny.FAMILIES:
            return
        report(plan.name, 0.0, f"building the tiny offline checkpoint '{folder.name}'")
        tiny.ensure(folder.parent, folder.name)
        plan.status = "built"
        report(plan.name, 1.0, f"built {folder}")

    def _repo_folder(self, plan: Plan) -> Path:
        return self.cache / ("models--" + plan.path.replace("/", "--"))

    def clear_stale_partials(self, plan: Plan) -> int:
        """Delete the partial files a killed download left in the repository's cache folder (huggingface_hub
        writes each file to ``blobs/<etag>.<random>.incomplete`` and cannot reuse one); a file some other process
        is downloading right now holds its lock and is left alone. The bytes freed."""
        from filelock import FileLock, Timeout

        blobs, freed = self._repo_folder(plan) / "blobs", 0
        locks = self.cache / ".locks" / self._repo_folder(plan).name
        for partial in sorted(blobs.glob("*.incomplete")) if blobs.is_dir() else []:
            lock = FileLock(str(locks / f"{partial.name.split('.')[0]}.lock"), timeout=0)
            try:
                with lock:
                    size = partial.stat().st_size
                    partial.unlink()
                    freed += size
            except (Timeout, OSError):
                continue
        return freed

    def _bytes_here(self, plan: Plan) -> int:
        blobs = self._repo_folder(plan) / "blobs"
        return sum(f.stat().st_size for f in blobs.iterdir() if f.is_file()) if blobs.is_dir() else 0

    def download(self, plan: Plan, progress: Progress | None = None) -> None:
        """Fetch the planned files (``snapshot_download`` with exactly them), reporting the bytes as they arrive."""
        from huggingface_hub import snapshot_download

        report = progress or (lambda *args: None)
        if plan.source == "tiny":
            self._build_tiny(plan, report)
        if plan.status != "planned":
            return
        self.clear_stale_partials(plan)
        todo, done_before, start_bytes = plan.download_bytes, plan.total_bytes - plan.download_bytes, \
            self._bytes_here(plan)
        report(plan.name, 0.0, f"pulling {plan.path}: {len(plan.files)} files, {gib(todo)} to download")
        stop = threading.Event()

        def watch():
            while not stop.wait(0.5):
                arrived = max(0, self._bytes_here(plan) - start_bytes)
                fraction = min(0.99, (done_before + arrived) / max(plan.total_bytes, 1))
                report(plan.name, max(fraction, 0.001), f"{gib(done_before + arrived)} of {gib(plan.total_bytes)}")

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.perf_counter()
        try:
            folder = Path(snapshot_download(plan.path, revision=plan.revision, cache_dir=self.cache,
                                            allow_patterns=sorted(plan.files), endpoint=self.endpoint))
        except Exception as exc:  # noqa: BLE001 - one sentence, the other models go on
            _, what, _ = loader_for(plan.name)
            plan.status, plan.problem = "failed", explain(plan.name, plan.path, what, exc, plan.revision)[1]
            report(plan.name, 1.0, f"failed: {plan.problem}")
            return
        finally:
            stop.set()
            watcher.join()
        plan.seconds = round(time.perf_counter() - start, 2)
        missing = [name for name in plan.files if not (folder / name).is_file()]
        if missing:
            plan.status, plan.problem = "failed", (
                f"Model '{plan.name}' ({plan.path}): {len(missing)} files did not arrive ({', '.join(missing[:3])}); "
                "run 'mmchat pull' again.")
            report(plan.name, 1.0, f"failed: {plan.problem}")
            return
        plan.status, plan.cached = "pulled", set(plan.files)
        report(plan.name, 1.0, f"pulled {plan.path}: {len(plan.files)} files, {gib(plan.total_bytes)} in "
                               f"{plan.seconds:.1f} s")
