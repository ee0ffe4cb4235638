"""Timing helpers shared by the benchmarks: medians of N runs and ratios measured in one process.

Ratios are always taken between medians measured in the same run (same machine state, same threads),
never against figures from another run.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def synchronize() -> None:
    """Wait for queued GPU work, so a timer read afterwards covers it (no-op without CUDA)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    synchronize()
    start = time.perf_counter()
    result = fn()
    synchronize()
    return time.perf_counter() - start, result


def median_time(fn: Callable[[], Any], runs: int = 5, warmup: int = 1) -> float:
    """Median seconds of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn)[0] for _ in range(max(1, runs)))


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def ratio(numerator: float, denominator: float, digits: int = 3) -> float:
    """numerator / denominator, rounded; NaN when the denominator is zero."""
    if not denominator:
        return float("nan")
    return round(numerator / denominator, digits)


def ms(seconds: float, digits: int = 1) -> float:
    return round(seconds * 1000, digits)


class Stopwatch:
    """Marks taken during one call: ``mark(name)`` once, the first time only; ``since_start(name)``."""

    def __init__(self):
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}

    def reset(self) -> None:
        self.start = time.perf_counter()
        self.marks.clear()

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.perf_counter())

    def since_start(self, name: str) -> float:
        return self.marks[name] - self.start
