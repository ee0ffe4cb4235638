"""Errors whose message is meant for a person: one clear sentence, no traceback.

:class:`UserError` and :func:`explain` (a validation error as one sentence) live in :mod:`tools.errors`, the
ground floor, so the tools raise the same class without importing the chat; they are re-exported here.
"""

from __future__ import annotations

from tools.errors import UserError, explain


class ModelLoadError(UserError):
    """A checkpoint could not be loaded; the message names it and says how to fix it. ``kind`` says which cause
    (see :mod:`chat.registry.load_errors`: not_cached, no_repo, gated, no_weights, self_check, ...)."""

    def __init__(self, message: str, kind: str = "other"):
        super().__init__(message)
        self.kind = kind


class OutOfMemory(UserError):
    """The device ran out of memory; the session is intact and the request can be retried smaller."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception means the device (or host) ran out of memory."""
    if isinstance(exc, (OutOfMemory, MemoryError)):
        return True
    return "OutOfMemory" in type(exc).__name__ or "out of memory" in str(exc).lower()


def out_of_memory_message(what: str, freed: list[str]) -> str:
    """The sentence for a request that ran out of memory even after the other models were freed."""
    after = f" even after unloading {', '.join(freed)}" if freed else ""
    return (f"The device ran out of memory for {what}{after}; try a smaller image, fewer steps or a shorter "
            "answer, or lower memory_budget_gb.")


def describe(exc: BaseException) -> str:
    """One sentence for any exception, suitable for the chat or stderr."""
    if isinstance(exc, UserError):
        return str(exc)
    name = type(exc).__name__
    if is_out_of_memory(exc):
        return "The device ran out of memory; try a smaller image, fewer steps, or free a model."
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    return f"Something went wrong ({name}): {text[:300]}"


__all__ = ["ModelLoadError", "OutOfMemory", "UserError", "describe", "explain", "is_out_of_memory",
           "out_of_memory_message"]
