"""Errors whose message is meant for a person: one clear sentence, no traceback.

    >>> raise UserError("The mask is empty; click on the image first.")
    >>> explain(exc, tool="edit")              # 'Invalid steps for edit: input should be greater than ...'
    >>> explain(exc, names={"steps": "--steps"}, schema=EditInput)   # '--steps must be between 1 and 150, not 0.'

Everything here is plain Python and pydantic: the tools raise :class:`UserError` and the chat (``chat.errors``
re-exports both names) shows it as is.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ValidationError


class UserError(Exception):
    """Something the user can fix (bad argument, bad image, bad config). The message is shown as is."""


def _clause(message: str) -> str:
    """A pydantic message as a clause: no 'Value error, ' prefix, no final period, lower case first."""
    text = message.removeprefix("Value error, ").rstrip(".")
    return text[:1].lower() + text[1:]


def _bounds(schema: type[BaseModel] | None, field: str) -> tuple[float, float] | None:
    """(ge, le) of a field that has both bounds, from its schema."""
    info = schema.model_fields.get(field) if schema is not None else None
    lower = next((m.ge for m in getattr(info, "metadata", ()) if getattr(m, "ge", None) is not None), None)
    upper = next((m.le for m in getattr(info, "metadata", ()) if getattr(m, "le", None) is not None), None)
    return (lower, upper) if lower is not None and upper is not None else None


def explain(exc: ValidationError, *, tool: str | None = None, schema: type[BaseModel] | None = None,
            names: Mapping[str, str] | None = None, default: str = "{}", prefix: str = "") -> str:
    """The first problem of a validation error as one sentence.

    With ``tool`` (a tool's arguments, as the chat says it): ``'colour' is not an argument of score (it takes
    labels, model, ...).``, ``The vqa tool needs 'question'.`` or ``Invalid steps for edit: <the problem>.``

    Otherwise each field is called by its name in ``names`` (a CLI flag, ``{"steps": "--steps"}``), else
    ``default`` formatted with the field (``"key '{}'"``): ``<prefix><name>: <the problem>.``; a field named
    ``""`` is one whose own messages name it (``The instruction is empty; ...``); a number outside the two
    bounds of its field in ``schema`` reads ``--steps must be between 1 and 150, not 0.``
    """
    err = exc.errors()[0]
    field = ".".join(str(x) for x in err["loc"])
    problem = _clause(err["msg"])
    if tool is not None:
        field = field or "arguments"
        if err["type"] == "extra_forbidden":
            known = ", ".join(schema.model_fields) if schema is not None else ""
            return f"'{field}' is not an argument of {tool}" + (f" (it takes {known})." if known else ".")
        if err["type"] == "missing":
            return f"The {tool} tool needs '{field}'."
        return f"Invalid {field} for {tool}: {problem}."
    name = (names or {}).get(field)
    if name is None:
        name = default.format(field or "arguments")
    if not name:
        return prefix + problem[:1].upper() + problem[1:] + "."
    bounds = _bounds(schema, field) if names and field in names else None
    if bounds is not None and err["type"] in ("greater_than_equal", "less_than_equal"):
        return f"{prefix}{name} must be between {bounds[0]:g} and {bounds[1]:g}, not {err['input']}."
    return f"{prefix}{name}: {problem}."


__all__ = ["UserError", "explain"]
