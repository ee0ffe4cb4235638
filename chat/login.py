"""Login check for the web app: the ``auth`` callable Gradio's login form calls, with a rate limit.

Gradio's own ``auth=(user, pass)`` accepts any number of guesses. :class:`LoginGuard` is a
``callable(username, password) -> bool`` (what ``launch(auth=...)`` takes) that compares in constant time
(``hmac.compare_digest``) and, after ``max_failures`` wrong passwords for one user name within
``window_s`` seconds, refuses every attempt for that name (the right password too) for ``cooldown_s``
seconds. Gradio answers a refused login with "Incorrect credentials." either way.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

_MAX_TRACKED = 10_000  # user names with recent failures kept in memory (guessed names cannot grow it further)


class LoginGuard:
    def __init__(self, users: dict[str, str], *, max_failures: int = 5, window_s: float = 60.0,
                 cooldown_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        if not users:
            raise ValueError("LoginGuard needs at least one user.")
        self._users = {name: _digest(password) for name, password in users.items()}
        self._nobody = _digest(secrets.token_hex(16))  # compared against for unknown names
        self.max_failures = max_failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._guard = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        now = self._clock()
        with self._guard:
            if self._locked_until.get(username, 0.0) > now:
                return False
            self._locked_until.pop(username, None)
        expected = self._users.get(username)
        # Digests of equal length, compared even for an unknown name: the time taken tells neither the
        # password's length nor which names exist.
        matches = hmac.compare_digest(_digest(password), expected if expected is not None else self._nobody)
        if matches and expected is not None:
            with self._guard:
                self._failures.pop(username, None)
            return True
        self._fail(username, now)
        return False

    def locked(self, username: str) -> bool:
        """Whether logins for ``username`` are refused right now."""
        with self._guard:
            return self._locked_until.get(username, 0.0) > self._clock()

    def _fail(self, username: str, now: float) -> None:
        with self._guard:
            recent = self._failures.setdefault(username, deque())
            recent.append(now)
            while recent and recent[0] <= now - self.window_s:
                recent.popleft()
            if len(recent) >= self.max_failures:
                self._locked_until[username] = now + self.cooldown_s
                recent.clear()
            self._forget_old(now)

    def _forget_old(self, now: float) -> None:
        """Bound memory: drop names whose failures and lock have expired once too many are tracked."""
        if len(self._failures) + len(self._locked_until) <= _MAX_TRACKED:
            return
        for name in [n for n, times in self._failures.items() if not times or times[-1] <= now - self.window_s]:
            del self._failures[name]
        for name in [n for n, until in self._locked_until.items() if until <= now]:
            del self._locked_until[name]


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()
