"""Grounded answers (LLaVA-Grounding style): the things an answer mentions, found and highlighted on the image
in colours matching their words in the answer.

    >>> phrases = chat_model.with_structured_output(Phrases).invoke(extraction_prompt(answer)).phrases
    >>> grounded = ground_answer(answer, phrases, lambda p: find_regions(registry, image, {"phrase": p}))
    >>> draw_grounded(image, grounded), highlight_html(grounded)

The phrases come from the chat model's structured output (:class:`Phrases`, generated under its JSON schema),
never from regular expressions over the answer; a phrase the model made up (not in the answer) is dropped, and
a phrase whose best region scores no better than neutral captions (``min_score``) is left unhighlighted.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Annotated, Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, Field, StringConstraints

from tools.grounding.schemas import FindResult, GroundingError, Region

MAX_PHRASES = 6
PHRASE_CHARS = 80  # a phrase is a few words of the answer
# Distinct colours (Sasha Trubetskoy's list, red first as the markers use it), one per phrase, in answer order.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (0, 130, 200), (60, 180, 75), (245, 130, 48), (145, 30, 180), (70, 240, 240),
)


PALETTE_NAMES = dict(zip(PALETTE, ("red", "blue", "green", "orange", "purple", "cyan")))


class Phrases(BaseModel):
    """The things an answer mentions that can be seen in the image."""

    phrases: list[Annotated[str, StringConstraints(min_length=1, max_length=PHRASE_CHARS)]] = Field(
        default_factory=list, max_length=MAX_PHRASES,
        description="each object, person, animal or part the answer mentions that can be seen in the image, "
                    "copied word for word from the answer (e.g. 'the red cup'); at most "
                    f"{MAX_PHRASES}, none for an answer that names nothing visible",
    )


def extraction_prompt(answer: str) -> str:
    """The request for :class:`Phrases` about ``answer`` (the chat model sees the image too)."""
    return ("List the things in the image that this answer mentions, each copied word for word from the "
            f"answer, as JSON.\n\nAnswer: {answer}")


@dataclass
class GroundedPhrase:
    """One phrase of the answer: where it is in the text, its colour, and its region (None: not found)."""

    phrase: str
    start: int
    end: int
    colour: tuple[int, int, int]
    region: Region | None = None
    score: float | None = None

    def to_json(self) -> dict:
        return {"phrase": self.phrase, "start": self.start, "end": self.end, "colour": "#%02x%02x%02x" % self.colour,
                "bbox": list(self.region.bbox) if self.region else None, "score": self.score}


@dataclass
class GroundedAnswer:
    answer: str
    phrases: list[GroundedPhrase]
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> list[GroundedPhrase]:
        return [p for p in self.phrases if p.region is not None]

    def to_json(self) -> dict:
        return {"answer": self.answer, "phrases": [p.to_json() for p in self.phrases], "notes": list(self.notes)}


def locate_phrases(answer: str, phrases: Sequence[str]) -> list[tuple[str, int, int]]:
    """Each phrase's first place in ``answer`` (case-insensitive, not overlapping an earlier one), in text
    order; phrases that are not in the answer, empty or repeated are dropped."""
    lowered = answer.casefold()
    taken: list[tuple[int, int]] = []
    spans: list[tuple[str, int, int]] = []
    for raw in phrases:
        phrase = " ".join(str(raw).split()).strip(" .,;:!?\"'")
        if not phrase:
            continue
        needle, start = phrase.casefold(), 0
        while (at := lowered.find(needle, start)) >= 0:
            end = at + len(needle)
            if all(end <= a or at >= b for a, b in taken):
                taken.append((at, end))
                spans.append((answer[at:end], at, end))
                break
            start = at + 1
    return sorted(spans, key=lambda s: s[1])[:MAX_PHRASES]


def ground_answer(answer: str, phrases: Sequence[str], find: Callable[[str], FindResult],
                  min_score: float = 0.0) -> GroundedAnswer:
    """Find each of ``phrases`` (as placed in ``answer``) with ``find`` and keep its best region when it scores
    above ``min_score`` (the neutral prior is 0)."""
    grounded = GroundedAnswer(answer=answer, phrases=[])
    dropped = [p for p in phrases if p and str(p).casefold().strip(" .,;:!?\"'") not in answer.casefold()]
    if dropped:
        grounded.notes.append("Not in the answer, so not shown: " + ", ".join(f"'{p}'" for p in dropped) + ".")
    for k, (phrase, start, end) in enumerate(locate_phrases(answer, phrases)):
        item = GroundedPhrase(phrase=phrase, start=start, end=end, colour=PALETTE[k % len(PALETTE)])
        try:
            result = find(phrase)
        except GroundingError as exc:
            grounded.notes.append(f"'{phrase}': {exc}")
        else:
            best = result.best
            if best is not None:
                item.score = best.score
                if best.score > min_score:
                    item.region = best
                else:
                    grounded.notes.append(f"'{phrase}' was not found clearly enough to show "
                                          f"(score {best.score:.2f}).")
        grounded.phrases.append(item)
    return grounded


def draw_grounded(image: Image.Image, grounded: GroundedAnswer) -> Image.Image:
    """A new RGB image: each found phrase's region tinted and outlined in its colour, its number (the phrase's
    place in the answer) on it."""
    from tools.markers import draw_contour, draw_label, stroke_width
    from tools.som import label_point

    out = image.convert("RGB") if image.mode != "RGB" else image.copy()
    s = stroke_width(out.size)
    labels = []
    for number, item in enumerate(grounded.phrases, 1):
        if item.region is None:
            continue
        mask = np.asarray(item.region.mask, dtype=bool)
        if mask.shape != (out.height, out.width):
            raise ValueError(f"the region of '{item.phrase}' does not match the {out.width}x{out.height} image")
        tint = Image.blend(out, Image.new("RGB", out.size, item.colour), 0.3)
        out = Image.composite(tint, out, Image.fromarray(mask.astype(np.uint8) * 255))
        draw_contour(out, mask, item.colour, s, inside=True)
        labels.append((str(number), item.colour, label_point(mask)))
    draw = ImageDraw.Draw(out)
    for text, colour, point in labels:
        draw_label(draw, text, point, out.size, colour, max(11, 4 * s), centered=True)
    return out


def highlight_html(grounded: GroundedAnswer) -> str:
    """The answer as HTML, each found phrase marked in its colour with its number, the rest escaped."""
    parts, at = [], 0
    for number, item in enumerate(grounded.phrases, 1):
        parts.append(html.escape(grounded.answer[at:item.start]))
        words = html.escape(grounded.answer[item.start:item.end])
        if item.region is None:
            parts.append(words)
        else:
            r, g, b = item.colour
            parts.append(f'<mark style="background: rgba({r}, {g}, {b}, 0.35); border-bottom: 2px solid '
                         f'rgb({r}, {g}, {b})">{words}<sup>{number}</sup></mark>')
        at = item.end
    parts.append(html.escape(grounded.answer[at:]))
    return "".join(parts)


__all__ = [
    "GroundedAnswer", "GroundedPhrase", "MAX_PHRASES", "PALETTE", "PALETTE_NAMES", "Phrases", "draw_grounded",
    "extraction_prompt",
    "ground_answer", "highlight_html", "locate_phrases",
]
