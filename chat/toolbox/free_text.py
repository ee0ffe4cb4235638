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
    """What "remove X (from ...)" names; 'the object' when it names nothing ("remove it": the marked one)."""
    match = re.search(r"\b(?:remove|erase|delete|get rid of)\s+(.+?)(?:\s+from\b.*)?[.!?]*$", text, re.IGNORECASE)
    target = match.group(1).strip() if match else ""
    return "the object" if target.lower() in ("", "it", "this", "that", "them", "these", "those", "everything") \
        else target


_REPLACE = re.compile(r"^\s*(?:please\s+)?(?:replace|swap)\s+(.+?)\s+(?:with|by|for)\s+(.+?)[.!?]*$", re.IGNORECASE)
_INTO = re.compile(r"^\s*(?:please\s+)?(?:turn|change|make)\s+(?P<what>the\s+.+?)\s+(?:into|to)\s+(?P<how>.+?)"
                   r"[.!?]*$", re.IGNORECASE)
_CHANGE = re.compile(r"^\s*(?:please\s+)?(?:turn|make|paint|colou?r)\s+(?P<what>the\s+.+)\s+(?P<how>[^\s.!?]+)"
                     r"[.!?]*$", re.IGNORECASE)
_WHOLE = ("image", "picture", "photo", "whole", "sky", "background", "scene")  # pix2pix's job, not a region


def edit_target(text: str) -> tuple[str | None, str]:
    """(the region an edit names, what to paint there): "replace the cat with a tiger" -> ('the cat', 'a tiger'),
    "turn the dog into a wolf" -> ('the dog', 'a wolf'), "make the car red" -> ('the car', 'red car');
    (None, text) when it names no region (the whole image, the sky: instruct-pix2pix edits those)."""
    match = _REPLACE.match(text)
    if match:
        return match.group(1).strip(), match.group(2).strip()
    for pattern in (_INTO, _CHANGE):
        match = pattern.match(text)
        if match and match.group("what").split()[-1].lower() not in _WHOLE:
            what, how = match.group("what").strip(), match.group("how").strip()
            return what, how if pattern is _INTO else f"{how} {what.split(None, 1)[1]}"
    return None, text


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


__all__ = ["drawing_prompt", "edit_target", "numbered_answer", "region_question", "labels_in_question", "phrase_to_find", "removal_target"]
