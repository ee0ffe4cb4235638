"""What ``find`` takes and gives back: the input schema (validated once, here), regions and the result.

A :class:`FindInput` validation error reads as one sentence with ``tools.errors.explain(exc, names=PHRASE)``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.errors import UserError
from tools.text import clean_text

MAX_PHRASE_CHARS = 200
MAX_TOP_K = 32
Method = Literal["circle", "blur", "grey", "ensemble", "llava", "auto"]
METHODS: tuple[str, ...] = Method.__args__  # type: ignore[attr-defined]
# The visual prompts CLIP sees for one candidate: a red ellipse fitted to its mask, or everything outside the
# mask blurred, or greyed (the red-circle paper's and FGVP's best prompts); "ensemble" averages the three.
PROMPTS: tuple[str, ...] = ("circle", "blur", "grey")
PHRASE = {"phrase": ""}  # explain(): the phrase's own messages name it ("The phrase is empty; ...")
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels; x1 and y1 exclusive


class GroundingError(UserError):
    """Something a person can fix (a bad phrase, a box the chat model got wrong); the message is one sentence."""


class FindInput(BaseModel):
    """Find the region(s) of the image a phrase refers to ("the red cup on the left")."""

    model_config = ConfigDict(extra="forbid")

    phrase: str = Field(description="what to find, in words, e.g. 'the small red cup on the left' "
                                    f"(1 to {MAX_PHRASE_CHARS} characters)")
    method: Method = Field(
        "auto",
        description="how candidates are shown to CLIP: 'circle' (a red ellipse around the region), 'blur' or "
                    "'grey' (everything outside the region blurred or greyed), 'ensemble' (all three averaged); "
                    "'llava' also asks the chat model for the box; 'auto' is llava when the chat model can give "
                    "boxes, else ensemble",
    )
    top_k: int = Field(3, ge=1, le=MAX_TOP_K, description="how many regions to return, best first")
    margin: float = Field(
        1.0, ge=0.0, le=100.0,
        description="the match is ambiguous when the best other place scores within this many logits of the best",
    )

    @field_validator("phrase", mode="before")
    @classmethod
    def _phrase(cls, value: Any) -> str:
        return clean_text(value, "phrase", "'the red cup'", MAX_PHRASE_CHARS, ask="say what to find")


class Region(BaseModel):
    """One found region: its box and score (and, not serialised, its mask at the image's size)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: int = Field(ge=1, description="its rank, 1 for the best: the number drawn on the overlay")
    bbox: Box
    score: float = Field(description="logit of the phrase minus the neutral prior's (higher is better)")
    method: str = Field(description="how it was scored: circle, blur, grey, ensemble or llava+ensemble")
    source: Literal["sam", "som", "llava"] = Field(description="where the candidate came from")
    prompts: dict[str, float] = Field(default_factory=dict, description="the score under each visual prompt")
    area: int = Field(0, ge=0, description="pixels in the mask")
    mask: Any = Field(None, exclude=True, repr=False)


class FindResult(BaseModel):
    """Regions best first; ``ambiguous`` when another place scores within the margin of the best."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    phrase: str
    method: str = Field(description="the method used (auto resolved to llava or ensemble)")
    model: str
    regions: list[Region]
    ambiguous: bool
    candidates: int = Field(description="how many candidate regions were scored")
    notes: list[str] = Field(default_factory=list)

    @property
    def best(self) -> Region | None:
        return self.regions[0] if self.regions else None

    def to_json(self) -> dict[str, Any]:
        return {
            "phrase": self.phrase,
            "regions": [r.model_dump(exclude={"mask"}) | {"bbox": list(r.bbox)} for r in self.regions],
            "method": self.method,
            "model": self.model,
            "ambiguous": self.ambiguous,
            "candidates": self.candidates,
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """One line per region, e.g. ``[4] 12,30,88,140  score 3.21 (sam)``, plus the ambiguity note; the notes
        follow after a blank line, unindented (in the chat's Markdown an indented note reads as part of the last
        region's item)."""
        if not self.regions:
            return f"Nothing found for '{self.phrase}'."
        lines = [f"'{self.phrase}' ({self.method}, {self.candidates} candidates"
                 + (", ambiguous: another place scores almost as well)" if self.ambiguous else ")")]
        for rank, r in enumerate(self.regions, 1):
            lines.append(f"  {rank}. [{r.id}] box {r.bbox[0]},{r.bbox[1]},{r.bbox[2]},{r.bbox[3]}  "
                         f"score {r.score:.2f}  ({r.source}, {r.method})")
        if self.notes:
            lines += [""] + [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


__all__ = [
    "Box", "FindInput", "FindResult", "GroundingError", "MAX_PHRASE_CHARS", "MAX_TOP_K", "METHODS", "Method", "PHRASE",
    "PROMPTS", "Region",
]
