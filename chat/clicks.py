"""Regions from clicks, as the config says (``tools.click_region``): a circle around each click, or with
``sam`` the object under the clicks, segmented by SAM, with the marker fitted around its mask.

    >>> placed = place_points(config, registry, image, [(40, 40)], negative=[(90, 10)], shape="box")
    >>> placed.markers, placed.masks, placed.note   # note: why SAM was not used, when it was not

The clicks of one SAM object are kept in its marker (``Marker.clicks``), so that later clicks (include or
exclude) refine that object (:func:`click_marker`). If SAM cannot be used (no ``sam`` model in the config,
or it fails to load), clicks become circles and the note says why in one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from PIL import Image

from chat.errors import UserError, describe
from tools.markers import Color, Marker, Shape, default_radius, validate_point
from tools.regions import circle_region, marker_for_mask, sam_region

Click = tuple[int, int, bool]  # (x, y, positive)
MAX_CLICKS = 32  # of each kind per object (SamRegionInput's limit)
RADIUS_SIDE = 1000  # images with a longer side above this get a proportionally larger click radius


def click_radius(radius: int, size: tuple[int, int]) -> int:
    """``tools.click_radius`` for an image of ``size``: as configured up to a longer side of 1000 px, scaled
    with the image above (a 4000x3000 photo: 4x), so a marker keeps its size on the screen and in the
    model's view (both downscale big images)."""
    return round(radius * max(1.0, max(size) / RADIUS_SIDE))


@dataclass
class Placed:
    """Markers for some clicks, each with its region mask when it has one (SAM objects, contours)."""

    markers: list[Marker]
    masks: list[np.ndarray | None] = field(default_factory=list)
    note: str | None = None

    @property
    def contour_masks(self) -> dict[int, np.ndarray]:
        """Marker index -> mask, for ``draw_markers(masks=...)`` and ``score_labels(masks=...)``."""
        return {i: m for i, m in enumerate(self.masks) if m is not None}


def sam_bundle(config, registry) -> tuple[Any | None, str | None]:
    """The SAM bundle when ``tools.click_region`` is ``sam`` (else None), and a note when it cannot be used."""
    if config.tools.click_region != "sam":
        return None, None
    try:
        return registry.get("sam"), None
    except Exception as exc:  # noqa: BLE001 - any failure falls back to circles, said in one sentence
        reason = describe(exc).rstrip(".")
        return None, f"SAM could not be used, so the clicks are marked with circles instead ({reason})."


def sam_marker(sam: Any, image: Image.Image, clicks: Sequence[Click], shape: Shape = "ellipse",
               color: Color = "red") -> tuple[Marker, np.ndarray]:
    """The object under the positive clicks and not under the negative ones, and a marker fitted around it."""
    positive = [(x, y) for x, y, keep in clicks if keep]
    negative = [(x, y) for x, y, keep in clicks if not keep]
    if not positive:
        raise UserError("Exclude clicks only cut from an object; click on the object itself first.")
    if len(positive) > MAX_CLICKS or len(negative) > MAX_CLICKS:
        raise UserError(f"One object takes at most {MAX_CLICKS} include and {MAX_CLICKS} exclude clicks; "
                        "start a new object.")
    mask = sam_region(sam, image, positive, negative)
    marker = marker_for_mask(mask, shape, color).model_copy(update={"clicks": [tuple(c) for c in clicks]})
    return marker, mask


def place_points(config, registry, image: Image.Image, points: Sequence[tuple[int, int]],
                 negative: Sequence[tuple[int, int]] = (), shape: Shape = "circle", color: Color = "red",
                 radius: int | None = None) -> Placed:
    """Markers for points given at once (the CLI): a circle (or ``shape``) per point, or with SAM one object
    selected by all the points (``negative`` ones excluded) with one marker fitted around its mask.
    ``radius`` None: ``tools.click_radius`` scaled to the image (:func:`click_radius`); ``config`` None too:
    8% of the shorter side."""
    for x, y in [*points, *negative]:
        validate_point(x, y, image.size)
    if negative and not points:
        raise UserError("--negative points only cut from an object; give at least one --point X,Y on it.")
    sam, note = sam_bundle(config, registry) if config is not None else (None, None)
    if sam is not None:
        clicks = [(x, y, True) for x, y in points] + [(x, y, False) for x, y in negative]
        marker, mask = sam_marker(sam, image, clicks, shape, color)
        return Placed([marker], [mask])
    if negative:
        ignored = "the --negative points were ignored"
        note = (note[:-1] + f"; {ignored}." if note else
                f"--negative needs SAM regions (tools.click_region: sam in the config), so {ignored}.")
    if radius is None and config is not None:
        radius = click_radius(config.tools.click_radius, image.size)
    markers = [Marker(x=x, y=y, shape=shape, color=color, radius=radius) for x, y in points]
    disc = radius if radius is not None else default_radius(image.size)
    masks = [circle_region(x, y, image.size, disc) if shape == "contour" else None for x, y in points]
    return Placed(markers, masks, note)


@dataclass
class Clicked:
    """What one click on an image makes: its marker, whether it replaces the image's last marker (a SAM object
    refined), a note (why SAM was not used), and the SAM mask of the object (None in circle mode)."""

    marker: Marker
    refined: bool = False
    note: str | None = None
    mask: np.ndarray | None = None


def click_object(config, registry, markers: Sequence[Marker], image: Image.Image, click: Marker, *,
                 negative: bool = False, new_object: bool = True) -> Clicked:
    """:func:`click_marker` with the object's mask (the page draws it)."""
    latest = markers[-1] if markers and markers[-1].clicks else None
    if config.tools.click_region != "sam":
        if negative:
            raise UserError("Exclude clicks need SAM regions; set tools.click_region: sam in the config to use them.")
        return Clicked(click)
    if negative and latest is None:
        raise UserError("There is no object to exclude from yet; click on the object with 'New object' first.")
    sam, note = sam_bundle(config, registry)
    if sam is None:
        if negative:
            raise UserError(note or "SAM could not be used.")
        return Clicked(click, note=note)
    refine = latest is not None and (negative or not new_object)
    clicks = (list(latest.clicks) if refine else []) + [(click.x, click.y, not negative)]
    marker, mask = sam_marker(sam, image, clicks, click.shape, click.color)
    return Clicked(marker, refine, None, mask)


def click_marker(config, registry, markers: Sequence[Marker], image: Image.Image, click: Marker, *,
                 negative: bool = False, new_object: bool = True) -> tuple[Marker, bool, str | None]:
    """The marker one click on an image makes: ``(marker, replaces the image's last marker, note)``.

    ``click`` is the plain marker at the click (its shape and colour as chosen). Circle mode: that marker.
    SAM mode: a new object (``new_object``), or the last SAM object refined by the click, included or
    ``negative`` (excluded); the marker is fitted around the new mask in the chosen shape.
    """
    done = click_object(config, registry, markers, image, click, negative=negative, new_object=new_object)
    return done.marker, done.refined, done.note


def describe_click(marker: Marker, refined: bool = False) -> str:
    """'(ellipse, red) fitted around the object SAM found under 2 clicks, 1 excluded' or '(circle, red) at (4, 5)'."""
    where = f"({marker.shape}, {marker.color})"
    if not marker.clicks:
        return f"{where} at ({marker.x}, {marker.y})"
    cut = sum(1 for *_, keep in marker.clicks if not keep)
    kept = len(marker.clicks) - cut
    text = f"{where} {'refined' if refined else 'fitted'} around the object SAM found under {kept} click"
    return text + ("s" if kept != 1 else "") + (f", {cut} excluded" if cut else "")


__all__ = ["Clicked", "Placed", "click_marker", "click_object", "click_radius", "describe_click", "place_points", "sam_bundle", "sam_marker"]
