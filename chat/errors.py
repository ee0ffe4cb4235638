"""Errors whose message is meant for a person: one clear sentence, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix (bad argument, bad image, bad config). The message is shown as is."""


class ModelLoadError(UserError):
    """A checkpoint could not be loaded; the message names it and says how to fix it."""


class OutOfMemory(UserError):
    """The device ran out of memory; the session is intact and the request can be retried smaller."""


def describe(exc: BaseException) -> str:
    """One sentence for any exception, suitable for the chat or stderr."""
    if isinstance(exc, UserError):
        return str(exc)
    name = type(exc).__name__
    if "OutOfMemory" in name or "out of memory" in str(exc).lower():
        return "The device ran out of memory; try a smaller image, fewer steps, or free a model."
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    return f"Something went wrong ({name}): {text[:300]}"
