"""The region an edit or a question acts on when the person names it instead of clicking ("remove the dog").

    >>> result = find_regions(registry, image, {"phrase": "the dog"}, sam=registry.get("sam"))
    >>> region = choose_target(result)             # the best region, or AmbiguousTarget / TargetNotFound
    >>> remove_object(registry, image, region.mask, target="the dog")
    >>> choose_target(result, choice=2)            # after "which one?": the person's numbered choice

A close second in another place (``result.ambiguous``) is never guessed: :class:`AmbiguousTarget` carries the
result, whose overlay (:func:`tools.grounding.draw_regions`) numbers the candidates, and its sentence asks which.
"""

from __future__ import annotations

from typing import Sequence

from tools.grounding.schemas import FindResult, GroundingError, Region


class TargetNotFound(GroundingError):
    """Nothing in the image matched the phrase."""


class AmbiguousTarget(GroundingError):
    """More than one place matches the phrase almost equally well; ``result`` holds the numbered candidates."""

    def __init__(self, message: str, result: FindResult):
        super().__init__(message)
        self.result = result


def numbers(ids: Sequence[int]) -> str:
    """``1, 2 or 3`` for the ids of the candidates."""
    words = [str(i) for i in ids]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def choose_target(result: FindResult, choice: int | None = None) -> Region:
    """The region ``result.phrase`` names: the person's numbered ``choice``, else the best unless ambiguous."""
    if not result.regions:
        raise TargetNotFound(f"I could not find '{result.phrase}' in the image; click on it, or describe it "
                             "differently.")
    if choice is not None:
        for region in result.regions:
            if region.id == choice:
                return region
        raise GroundingError(f"There is no region {choice} for '{result.phrase}'; choose "
                             f"{numbers([r.id for r in result.regions])}.")
    if result.ambiguous:
        raise AmbiguousTarget(
            f"More than one place could be '{result.phrase}' (numbered on the image): which one do you mean, "
            f"{numbers([r.id for r in result.regions])}? Say the number (or click on it and ask again).", result)
    return result.regions[0]


__all__ = ["AmbiguousTarget", "TargetNotFound", "choose_target", "numbers"]
