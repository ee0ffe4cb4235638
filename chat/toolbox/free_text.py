"""What a free-text message says for a tool: labels in a question, what to remove, what to draw, what to find.

    >>> labels_in_question("is it a cat or a dog?")     # ['cat', 'dog']
    >>> removal_target("please remove the dog from the photo")   # 'the dog'
    >>> drawing_prompt("draw me an image of a red fox")           # 'a red fox'

Pure functions over strings; each tool's ``fill`` (:mod:`chat.toolbox.vision`, ...) uses them when the router's
model chooses that tool for a message.
"""

from __future__ import annotations

import re

_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|'([^']+)'")
_LEAD = re.compile(r"^.*\b(?:is|are|it|this|that|these|there|a|an|the|of|like|between|show|shows|either)\s+|^.*:\s*",
                   re.IGNORECASE)
_TAIL = re.compile(r"\s+\b(?:in|on|inside|within|at|from)\s+(?:the|this|that|my)\b.*$", re.IGNORECASE)
_FIND = re.compile(r"\b(?:where(?:'s| is| are)|find|locate|show me|point (?:to|at))\s+(.+?)[.!?]*$", re.IGNORECASE)


def labels_in_question(text: str) -> list[str]:
    """Labels in free text: quoted phrases if any; else the items of "X or Y" / "X, Y, Z" with the question
    around them dropped ("is it a cat or a dog?" -> ["cat", "dog"]). Fewer than two items: none."""
    quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]
    if quoted:
        return [" ".join(q.split()) for q in quoted if q.strip()]
    pieces = [p for p in re.split(r",|;|\||/|\bor\b", text.strip().rstrip("?.!"), flags=re.IGNORECASE)]
    pieces = [p.strip() for p in pieces if p.strip()]
    if len(pieces) < 2:
        return []
    pieces[0] = _LEAD.sub("", pieces[0])
    pieces[-1] = _TAIL.sub("", pieces[-1])
    labels = [re.sub(r"^(?:and\s+)?(?:a|an|the|some)\s+", "", p, flags=re.IGNORECASE).strip() for p in pieces]
    labels = [" ".join(label.split()[-4:]) for label in labels if label]
    return labels if len(labels) >= 2 else []


def removal_target(text: str) -> str:
    """What "remove X (from ...)" names; 'the object' when it names nothing."""
    match = re.search(r"\b(?:remove|erase|delete|get rid of)\s+(.+?)(?:\s+from\b.*)?[.!?]*$", text, re.IGNORECASE)
    return match.group(1).strip() if match else "the object"


def drawing_prompt(text: str) -> str:
    """The text without "(please) draw/generate (me) an image of"; the text itself when that leaves nothing."""
    prompt = re.sub(r"^\s*(?:please\s+)?(?:generate|create|draw|make|paint)\s+(?:me\s+)?(?:an?\s+)?"
                    r"(?:(?:new\s+)?(?:image|picture|photo|painting)\s+(?:of\s+)?)?", "", text, flags=re.IGNORECASE)
    return prompt or text


def phrase_to_find(text: str) -> str | None:
    """What "where is X?" / "find X" / "locate X" / "point to X" asks for; None when it asks no such thing."""
    match = _FIND.search(text.strip())
    phrase = match.group(1).strip() if match else ""
    return phrase or None


__all__ = ["drawing_prompt", "labels_in_question", "phrase_to_find", "removal_target"]
