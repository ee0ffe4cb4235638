"""What a GPU benchmark process observes besides time: versions, VRAM per phase, compilation and CUDA graphs.

- :func:`versions`: torch (and the CUDA it was built with), transformers, bitsandbytes, accelerate, pydantic,
  Python, the GPU and its driver (``nvidia-smi``), read without creating a CUDA context.
- :class:`Vram`: the card's memory in one process: what was in use before loading (CUDA context and anyone
  else), the weights, the peak while loading and the peak while generating (peaks reset between phases).
- :class:`CompileWatch`: torch.compile's graph breaks (with reasons), graphs compiled, CUDA graphs recorded
  and CUDA graphs skipped, read between phases, so a timed run that compiles or records again shows it.
- :func:`torch_log_counts`: the same events counted in a ``TORCH_LOGS=graph_breaks,recompiles,cudagraphs`` file.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess

GIB = 2**30
PACKAGES = ("torch", "transformers", "bitsandbytes", "accelerate", "pydantic")


def gib(n: float) -> float:
    return round(n / GIB, 2)


def _gpus() -> list[dict]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [[part.strip() for part in line.split(",")] for line in out.splitlines() if line.count(",") == 2]
    return [{"name": n, "driver": d, "memory": m} for n, d, m in rows]


def versions() -> dict:
    """Versions of everything the figures depend on (``None`` for a package that is not installed)."""
    found: dict = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    import torch

    found["cuda"] = torch.version.cuda
    gpus = _gpus()
    found["gpu"] = gpus[0]["name"] if gpus else None
    found["driver"] = gpus[0]["driver"] if gpus else None
    found["gpu_memory"] = gpus[0]["memory"] if gpus else None
    return found


class Vram:
    """VRAM figures of this process in GiB; every method is a no-op off CUDA (figures stay absent)."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.figures: dict = {}
        if cuda:
            import torch

            torch.cuda.init()
            free, total = torch.cuda.mem_get_info()
            self.figures.update(card_gib=gib(total), in_use_before_load_gib=gib(total - free),
                                allocated_before_load_gib=gib(torch.cuda.memory_allocated()))
            self._base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()

    def loaded(self) -> dict:
        """After loading: weights (allocated minus the baseline) and the peak while loading; resets the peak."""
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.figures.update(weights_gib=gib(torch.cuda.memory_allocated() - self._base),
                                load_peak_gib=gib(torch.cuda.max_memory_allocated() - self._base))
            torch.cuda.reset_peak_memory_stats()
        return self.figures

    def generated(self) -> dict:
        """After generating: the peak allocated and reserved since :meth:`loaded`, and the part above the weights."""
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - self._base
            self.figures.update(peak_gib=gib(peak), peak_reserved_gib=gib(torch.cuda.max_memory_reserved()),
                                above_weights_gib=round(gib(peak) - self.figures.get("weights_gib", 0.0), 2))
        return self.figures


class CompileWatch:
    """torch.compile and CUDA-graph events in this process (dynamo's counters plus a count of recordings)."""

    def __init__(self):
        from torch._dynamo.utils import counters

        self._counters = counters
        self.recordings = 0
        self._restore = None
        try:  # inductor's CUDA-graph trees record each graph through this method (torch 2.x)
            from torch._inductor.cudagraph_trees import CUDAGraphTreeManager
        except ImportError:
            return
        original = getattr(CUDAGraphTreeManager, "record_function", None)
        if original is None:
            return
        watch = self

        def record_function(manager, *args, **kwargs):
            watch.recordings += 1
            return original(manager, *args, **kwargs)

        CUDAGraphTreeManager.record_function = record_function
        self._restore = lambda: setattr(CUDAGraphTreeManager, "record_function", original)

    def snapshot(self) -> dict:
        c = self._counters
        return {"graph_breaks": sum(c["graph_break"].values()), "graphs_compiled": c["stats"]["unique_graphs"],
                "cudagraphs_recorded": self.recordings, "cudagraph_skips": c["inductor"]["cudagraph_skips"]}

    @staticmethod
    def since(before: dict, after: dict) -> dict:
        return {k: after[k] - before[k] for k in after}

    def break_reasons(self, limit: int = 5) -> list[str]:
        return [f"{n}x {reason.strip()[:200]}" for reason, n in self._counters["graph_break"].most_common(limit)]

    def close(self) -> None:
        if self._restore:
            self._restore()


LOG_EVENTS = {"graph_break_lines": "Graph break", "recompile_lines": "Recompiling function",
              "cudagraph_skip_lines": "skipping cudagraphs", "cudagraph_record_lines": "Recording function"}


def torch_log_counts(path) -> dict:
    """Lines of each event in a TORCH_LOGS file (absent file: empty dict)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return {}
    return {"lines": text.count("\n"), **{key: text.count(needle) for key, needle in LOG_EVENTS.items()}}
