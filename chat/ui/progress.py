"""Model-loading progress for the page: the registry reports ``(name, fraction, message)``; the page shows it
in the status line of whatever is waiting (an answer, a click that loads SAM).

The registry takes listeners (``registry.add_progress_listener(callback) -> remove``). A registry without
that method (older ones) gets a :class:`ProgressRelay` in its ``progress`` attribute instead, which calls the
callback it replaced and then every listener.
"""

from __future__ import annotations

import threading
from typing import Callable

Listener = Callable[[str, float, str], None]


class ProgressRelay:
    """What ``registry.progress`` becomes on a registry without listeners: it calls the callback it replaced,
    then every listener. Installed once per registry."""

    def __init__(self, previous: Listener | None):
        self.previous = previous
        self._listeners: list[Listener] = []
        self._guard = threading.Lock()

    @classmethod
    def install(cls, registry) -> "ProgressRelay":
        relay = registry.progress
        if not isinstance(relay, cls):
            relay = registry.progress = cls(relay)
        return relay

    def add(self, listener: Listener) -> Callable[[], None]:
        with self._guard:
            self._listeners.append(listener)

        def remove() -> None:
            with self._guard:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def __call__(self, name: str, fraction: float, message: str) -> None:
        if self.previous is not None:
            self.previous(name, fraction, message)
        with self._guard:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(name, fraction, message)


def listen(registry, listener: Listener) -> Callable[[], None]:
    """Call ``listener(name, fraction, message)`` on every model-loading report of ``registry``; returns the
    function that stops it."""
    add = getattr(registry, "add_progress_listener", None)
    if callable(add):
        return add(listener)
    return ProgressRelay.install(registry).add(listener)


def progress_line(name: str, fraction: float, message: str) -> tuple[str, float | None]:
    """The status text of a report and its bar's fraction (None: no bar, at the start and the end)."""
    try:
        bar = float(fraction) if 0 < float(fraction) < 1 else None  # NaN fails too
    except (TypeError, ValueError):
        bar = None
    message = str(message or f"loading {name}")
    return message[:1].upper() + message[1:], bar
