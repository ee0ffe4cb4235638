"""What scoring takes and gives back: label checks, the tool's input schema and its result."""

from __future__ import annotations

from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)
MAX_LABELS = 100
MAX_LABEL_CHARS = 200
ScoreMode = Literal["softmax", "sigmoid"]
ModelName = Literal["clip", "siglip"]
Outside = Literal["none", "blur", "grey"]


def clean_labels(labels: Iterable[Any], limit: int = MAX_LABELS) -> list[str]:
    """Strip, check and de-duplicate labels (first occurrence wins); raise ValueError with one sentence."""
    if isinstance(labels, str):
        raise ValueError("labels must be a list of strings, e.g. [\"cat\", \"dog\"], not one string")
    cleaned: list[str] = []
    seen: set[str] = set()
    for i, label in enumerate(labels, 1):
        if not isinstance(label, str):
            raise ValueError(f"label {i} is not text ({type(label).__name__}); give each label as a string")
        text = " ".join(label.split())
        if not text:
            raise ValueError(f"label {i} is empty; every label needs some text, e.g. \"cat\"")
        if len(text) > MAX_LABEL_CHARS:
            raise ValueError(f"label {i} is {len(text)} characters long; the limit is {MAX_LABEL_CHARS}")
        if text.casefold() not in seen:
            seen.add(text.casefold())
            cleaned.append(text)
    if not cleaned:
        raise ValueError("no labels given; pass at least one label to score, e.g. [\"cat\", \"dog\"]")
    if len(cleaned) > limit:
        raise ValueError(f"{len(cleaned)} labels given; at most {limit} can be scored at once")
    return cleaned


class ScoreInput(BaseModel):
    """Score how well each label describes an image (or its marked region)."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str] = Field(
        description="Candidate labels to score against the image, one short phrase each, e.g. "
        "[\"cat\", \"dog\", \"a red car\"]. 1 to 100 labels; duplicates are ignored.",
    )
    model: ModelName = Field(
        "clip",
        description="'clip' compares the labels with each other (softmax: the scores sum to 1, pick the best); "
        "'siglip' scores each label on its own (sigmoid: a probability per label, also meaningful for a "
        "single label, e.g. 'is there a dog?').",
    )
    region: bool = Field(
        True,
        description="When the image has markers (clicked points, boxes), score the marked region only "
        "(a red ellipse is drawn around it). False scores the whole image.",
    )

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value, info: ValidationInfo):
        """Checked once, here; the caller's limit (``context={"max_labels": n}``) applies, else MAX_LABELS."""
        if value is None:
            raise ValueError("no labels given; pass at least one label to score, e.g. [\"cat\", \"dog\"]")
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError("labels must be a list of strings, e.g. [\"cat\", \"dog\"]")
        return clean_labels(value, limit=(info.context or {}).get("max_labels", MAX_LABELS))


def parse_labels(text: str) -> list[str]:
    """Labels as a person types them in one line or box: one per line or separated by '|'; by commas only when
    neither is used ('a red, shiny apple | pear'). Blank ones are dropped and repeats (ignoring case) count
    once; the schema checks the rest."""
    text = str(text or "").strip()
    parts = text.replace("\n", "|").split("|") if "|" in text or "\n" in text else text.split(",")
    labels: list[str] = []
    for label in (" ".join(p.split()) for p in parts):
        if label and label.casefold() not in {seen.casefold() for seen in labels}:
            labels.append(label)
    return labels


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value >= 0.01 or value == 0 else f"{value:.1e}"


class ScoreResult(BaseModel):
    """Labels with their scores, best first."""

    labels: list[str]
    scores: list[float]
    mode: ScoreMode
    model: str
    region: bool = False
    logits: list[float] = Field(
        default_factory=list,
        description="Raw logits (scale * cosine [+ bias]) in the order of labels: comparable across label sets.",
    )
    renderings: list[str] = Field(default_factory=list, description="image renderings averaged")

    @property
    def best(self) -> str:
        return self.labels[0]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.labels, self.scores))

    def table(self) -> str:
        """A markdown table, best label first."""
        head = "probability" if self.mode == "softmax" else "match probability"
        lines = [f"| label | {head} |", "|---|---:|"]
        for label, score in zip(self.labels, self.scores):
            lines.append(f"| {label.replace('|', '/')} | {score:.3f} |")
        return "\n".join(lines)

    def summary(self, top: int = 5) -> str:
        """One line, e.g. ``cat 0.71, dog 0.29``."""
        parts = [f"{label} {_fmt(score)}" for label, score in zip(self.labels[:top], self.scores[:top])]
        more = len(self.labels) - top
        return ", ".join(parts) + (f" (+{more} more)" if more > 0 else "")
