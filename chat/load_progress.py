"""Progress of one model load, as fractions strictly between 0 and 1 (the registry reports 0 and 1 around it).

A load is a sequence of phases, each a span of [0, 1]: reading the config, the processor, the weights, moving
to the device. Within the weights phase the steps come from the libraries themselves:

- transformers models: every weight group of "Loading weights", through transformers' public tqdm hook
  (``transformers.utils.logging.set_tqdm_hook``), installed only for the loading thread and only while it loads;
  transformers then prints no bar of its own.
- diffusers pipelines: every component (``unet``, ``vae``, ``text_encoder``, ...), loaded one by one by
  :mod:`chat.loaders` and handed to the pipeline's ``from_pretrained`` (the documented way to pass components).

    >>> progress = LoadProgress(lambda fraction, message: print(f"{fraction:.2f} {message}"), "loading clip")
    >>> progress.phase(0.1, 0.9, "weights")
    0.10 loading clip: weights
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

Report = Callable[[float, str], None]  # report(fraction, message)

LAST = 0.99  # the highest fraction a load reports before the registry's 1.0


class LoadProgress:
    """Strictly increasing fractions in (0, 1) for one load; reports closer than ``min_step`` are dropped."""

    def __init__(self, report: Report | None = None, what: str = "loading", min_step: float = 0.01):
        self._report = report
        self._what = what
        self._min_step = min_step
        self._span = (0.0, 1.0)
        self._message = what
        self._last = 0.0
        self._lock = threading.Lock()

    @property
    def last(self) -> float:
        """The last fraction reported (0.0 before the first)."""
        return self._last

    def phase(self, start: float, end: float, message: str) -> None:
        """Start a phase covering ``[start, end]`` of the load; reported at once (nudged past the last report)."""
        with self._lock:
            self._span = (start, end)
            self._message = f"{self._what}: {message}"
            self._emit(max(start, self._last + 0.001), force=True)

    def advance(self, fraction: float) -> None:
        """Progress within the current phase: ``fraction`` of it is done."""
        with self._lock:
            lo, hi = self._span
            self._emit(lo + (hi - lo) * min(max(fraction, 0.0), 1.0), force=False)

    def _emit(self, value: float, force: bool) -> None:
        value = round(min(value, LAST), 4)
        if value <= self._last or (not force and value < self._last + self._min_step and value < self._span[1]):
            return
        self._last = value
        if self._report is not None:
            self._report(value, self._message)


class _Bar:
    """What transformers gets instead of a tqdm bar: it counts steps into a :class:`LoadProgress`, prints nothing."""

    def __init__(self, progress: LoadProgress, iterable: Any = None, *args: Any, total: int | None = None,
                 **kwargs: Any):
        self._progress = progress
        self._iterable = iterable
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total = total
        self.n = 0

    def __iter__(self) -> Iterator[Any]:
        for item in self._iterable:
            yield item
            self.update(1)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total:
            self._progress.advance(self.n / self.total)

    def close(self) -> None:
        return None

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None  # set_description, set_postfix, refresh, ...


@contextmanager
def transformers_bars(progress: LoadProgress) -> Iterator[None]:
    """While inside, transformers' progress bars created by this thread ("Loading weights") advance ``progress``
    instead of printing; other threads keep theirs. Without the hook (older transformers) nothing changes."""
    try:
        from transformers.utils import logging as hf_logging

        set_hook = hf_logging.set_tqdm_hook
    except (ImportError, AttributeError):
        yield
        return
    owner = threading.get_ident()
    active = threading.Event()
    active.set()

    def hook(factory, args, kwargs):
        if active.is_set() and threading.get_ident() == owner:
            return _Bar(progress, *args, **kwargs)
        if previous is not None:
            return previous(factory, args, kwargs)
        return factory(*args, **kwargs)

    previous = set_hook(hook)
    try:
        yield
    finally:
        active.clear()  # from now on the hook only passes through, should another one have been set on top of it
        current = set_hook(previous)
        if current is not hook:
            set_hook(current)


@contextmanager
def quiet_diffusers_bars() -> Iterator[None]:
    """Diffusers' own loading bars ("Loading pipeline components...") off while inside: the load reports its
    progress itself (diffusers' public switch; pipelines' denoising bars are configured per pipeline)."""
    from diffusers.utils import logging as diffusers_logging

    was_on = diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            diffusers_logging.enable_progress_bar()
