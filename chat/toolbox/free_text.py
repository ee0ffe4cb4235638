"""What a free-text message says that the router reads itself: a numbered answer to "which one?", and the thing a
question about one thing's look names (found and marked before the model answers).

    >>> numbered_answer("the second one")              # 2
    >>> region_question("what colour is the cup?")     # 'the cup'

Pure functions over strings. Which tool a message asks for, and its arguments, is the chat model's tool call.
"""

from __future__ import annotations

import re

_NUMBERED = re.compile(r"^\s*(?:(?:it'?s|the|number|no\.?|#|region)\s*)*(\d{1,2})(?:st|nd|rd|th)?\s*(?:one|番目?|つ目)?"
                       r"\s*(?:please)?\s*[.!。]?\s*$", re.IGNORECASE)
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "one": 1, "two": 2, "three": 3,
             "four": 4, "five": 5}
_WORDED = re.compile(r"^\s*(?:(?:it'?s|the|number)\s+)*(" + "|".join(_ORDINALS) + r")(?:\s+one)?\s*[.!]?\s*$",
                     re.IGNORECASE)


def numbered_answer(text: str) -> int | None:
    """The number a reply to "which one, 1, 2 or 3?" gives ("2", "#2", "the second one", "2番"); None otherwise."""
    match = _NUMBERED.match(text)
    if match:
        return int(match.group(1))
    match = _WORDED.match(text)
    return _ORDINALS[match.group(1).lower()] if match else None


_ABOUT = re.compile(r"^\s*(?:what|which)\s+(?:colou?r|material|shape|pattern|brand|size)\s+(?:is|are)\s+"
                    r"(the\s+.+?)\s*[?.!]*\s*$", re.IGNORECASE)
_ABOUT_JA = re.compile(r"^\s*(.+?)\s*は\s*(?:何色|なに色|どんな色|何でできて|どんな形)")


def region_question(text: str) -> str | None:
    """The thing a question about one thing's look names: "what colour is the cup?" -> 'the cup' (and
    「カップは何色ですか」 -> 'カップ'); None for other questions."""
    match = _ABOUT.match(text) or _ABOUT_JA.match(text)
    return match.group(1).strip() if match else None


__all__ = ["numbered_answer", "region_question"]
