"""Text a person typed for a tool (a prompt, an instruction, a question, a phrase), tidied and checked once.

    >>> clean_text("  make it   winter ", "instruction", "'make it winter'")      # 'make it winter'
    >>> clean_text("", "phrase", "'the red cup'", ask="say what to find")         # ValueError: the phrase is empty; ...

The ValueError's text is one clause, for a schema's validator (pydantic and :func:`tools.errors.explain` make it a
sentence).
"""

from __future__ import annotations

from typing import Any

MAX_PROMPT_CHARS = 1000


def clean_text(value: Any, what: str, example: str, limit: int = MAX_PROMPT_CHARS, ask: str = "say what to do") -> str:
    """``value`` with its whitespace tidied; ValueError (one clause) when it is not text, is empty (``ask`` says
    what to write instead) or is longer than ``limit`` characters."""
    if not isinstance(value, str):
        raise ValueError(f"the {what} must be text, e.g. {example}")
    text = " ".join(value.split())
    if not text:
        raise ValueError(f"the {what} is empty; {ask}, e.g. {example}")
    if len(text) > limit:
        raise ValueError(f"the {what} is {len(text)} characters long; the limit is {limit}")
    return text


__all__ = ["MAX_PROMPT_CHARS", "clean_text"]
