"""How fast weights move: from disk (measured here) and from CPU RAM to the GPU (measured with a GPU, else a
documented PCIe figure), for the memory bench's tool-switch times.

Disk: a file of ``size`` bytes is written beside the Hugging Face cache (where checkpoints are read from), flushed,
dropped from the page cache (``posix_fadvise(DONTNEED)``) and read back in 8 MiB blocks, three times (the median): a
cold read, as a model's first load after a reboot. Where the page cache cannot be dropped, the figure says so (it
is then the cache's speed).

Host to device without a GPU: PCIe 3.0 x16, the slowest link an 8 to 24 GB card of the last generations sits on
(15.75 GB/s raw): 12 GB/s from page-locked (pinned) memory, about what NVIDIA's ``bandwidthTest`` reports on such a
link, and 6 GB/s from ordinary (pageable) memory, which the driver copies through a pinned buffer first.
PCIe 4.0 x16 doubles both.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

PCIE3_PINNED = 12e9  # bytes/s, host (pinned) -> device
PCIE3_PAGEABLE = 6e9  # bytes/s, host (pageable) -> device
_BLOCK = 8 * 2**20


def _disk_folder() -> Path:
    hub = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    for folder in (hub, Path.home() / ".cache", Path(tempfile.gettempdir())):
        if folder.is_dir() and os.access(folder, os.W_OK):
            return folder
    return Path(tempfile.gettempdir())


def disk_read(size: int = 256 * 2**20, folder: Path | None = None, runs: int = 3) -> dict:
    """``{"bytes_per_s", "bytes", "folder", "cold", "runs"}``: the median of ``runs`` cold reads of a ``size``-byte
    file where checkpoints live."""
    import statistics

    folder = folder or _disk_folder()
    block = os.urandom(_BLOCK)
    fd, name = tempfile.mkstemp(prefix="mmchat-disk-", dir=folder)
    cold = hasattr(os, "posix_fadvise")
    speeds = []
    try:
        with os.fdopen(fd, "wb") as handle:
            for _ in range(max(size // _BLOCK, 1)):
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        for _ in range(runs):
            with open(name, "rb") as handle:
                if cold:
                    os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                start = time.perf_counter()
                read = 0
                while chunk := handle.read(_BLOCK):
                    read += len(chunk)
                speeds.append(read / max(time.perf_counter() - start, 1e-9))
    finally:
        os.unlink(name)
    return {"bytes_per_s": statistics.median(speeds), "bytes": read, "folder": str(folder), "cold": cold,
            "runs": [round(s / 1e9, 3) for s in speeds]}


def host_to_device(size: int = 256 * 2**20) -> dict:
    """``{"pinned", "pageable"}`` bytes/s from CPU RAM to the GPU, and ``source``: measured, or the PCIe figure."""
    import torch

    if not torch.cuda.is_available():
        return {"pinned": PCIE3_PINNED, "pageable": PCIE3_PAGEABLE,
                "source": "no GPU here: PCIe 3.0 x16 figures (12 GB/s pinned, 6 GB/s pageable)"}
    out = {}
    for kind, pinned in (("pinned", True), ("pageable", False)):
        host = torch.empty(size, dtype=torch.uint8, pin_memory=pinned)
        device = torch.empty(size, dtype=torch.uint8, device="cuda")
        device.copy_(host)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(3):
            device.copy_(host, non_blocking=pinned)
        torch.cuda.synchronize()
        out[kind] = 3 * size / (time.perf_counter() - start)
    out["source"] = f"measured on {torch.cuda.get_device_name()}"
    return out


def measure(disk_bytes: int = 256 * 2**20) -> dict:
    """What the memory bench's switch times use: ``pinned`` and ``pageable`` host-to-device and ``disk`` read
    speeds in bytes/s, and where each figure comes from."""
    host = host_to_device()
    disk = disk_read(disk_bytes)
    how = "cold read (page cache dropped)" if disk["cold"] else "page cache not dropped: the cache's speed"
    return {"pinned": host["pinned"], "pageable": host["pageable"], "disk": disk["bytes_per_s"],
            "host_source": host["source"], "disk_runs_gb_s": disk["runs"],
            "disk_source": f"measured here: median of {len(disk['runs'])} reads of {disk['bytes'] / 2**20:.0f} MiB "
                           f"from {disk['folder']}, {how}"}


def cuda_context_gib() -> float | None:
    """GiB the CUDA context, the cuBLAS workspace and any other process hold on the GPU before mmchat loads
    anything (:func:`chat.registry.budget.measure_gpu`); None without a GPU."""
    from chat.registry.budget import measure_gpu

    measured = measure_gpu()
    return None if measured is None else measured["context"] / 2**30
