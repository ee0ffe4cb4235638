"""A person's session: images with versions, markers per image, overlays, the conversation and the tool trace.

Images are referred to by id only: ``img1`` is an image (its current version), ``img1.v2`` a version.
Every edit adds a version whose parent is the version it was made from; reverting makes an older version
current again without deleting anything. A version may have a Set-of-Mark overlay (its numbered regions):
the model and the page then see the version through it (:meth:`Session.view`). Pixels and overlays live in
memory here; :mod:`chat.store` persists them.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Callable, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from chat.errors import UserError
from tools.markers import Marker, draw_markers, validate_point

_REF = re.compile(r"^img(\d+)(?:\.v(\d+))?$")


def clean_text(value: Any) -> str:
    """Text a person sent, safe to store: None is empty, other values become str, and lone surrogates
    (valid in a JSON string, not in UTF-8, so they would make the session unsavable) become U+FFFD."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Version(BaseModel):
    id: str  # img1.v2
    number: int
    parent: str | None = None
    note: str = "original"
    created: float = Field(default_factory=time.time)


class ImageRecord(BaseModel):
    id: str  # img1
    name: str = ""
    versions: list[Version] = []
    current: int = 1  # version number that is current
    markers: list[Marker] = []
    original: str | None = None  # file of the uploaded bytes (e.g. "img1.jpg") when v1 is a scaled working copy

    @property
    def current_id(self) -> str:
        return f"{self.id}.v{self.current}"


class TraceEntry(BaseModel):
    tool: str
    arguments: dict[str, Any] = {}
    seconds: float = 0.0
    summary: str = ""
    error: str | None = None
    decision: str = ""  # why the router chose this (slash command, button, model choice, fallback)
    started: float = Field(default_factory=time.time)


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    images: list[str] = []  # version ids shown with / referred to by this message
    trace: list[int] = []  # indices into Session.trace
    # A user message: what ran (Regenerate replays it). ``action``: the tool a button or slash command ran (None:
    # free text, routed again); ``arguments``: its arguments, ``image`` pinned to the version it was about.
    action: str | None = None
    arguments: dict[str, Any] = {}
    markers: list[Marker] = []  # a user message: the markers its image had when it was sent (the page shows them)


class Overlay(BaseModel):
    """A version's Set-of-Mark overlay: its regions are numbered 1..regions (the pixels: see Session)."""

    regions: int = Field(ge=0)


class Session(BaseModel):
    model_config = ConfigDict(validate_assignment=False)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    title: str = ""
    created: float = Field(default_factory=time.time)
    images: dict[str, ImageRecord] = {}
    active: str | None = None
    messages: list[Message] = []
    trace: list[TraceEntry] = []
    next_image: int = 1
    overlays: dict[str, Overlay] = {}  # version id -> its Set-of-Mark overlay
    # a question the assistant asked ("which one, 1, 2 or 3?"): the tool and arguments a numbered answer completes
    pending: dict[str, Any] | None = None
    grounded: bool = False  # the page's toggle: each answer's phrases are found and drawn on the image
    _pixels: dict[str, Image.Image] = PrivateAttr(default_factory=dict)
    _originals: dict[str, bytes] = PrivateAttr(default_factory=dict)  # original file -> bytes not yet stored
    _loader: Callable[[str], Image.Image] | None = PrivateAttr(default=None)
    # version id -> (the overlay drawn, its label map: region n where the value is n); unsaved: not on disk yet
    _overlays: dict[str, tuple[Image.Image, np.ndarray]] = PrivateAttr(default_factory=dict)
    _unsaved_overlays: set[str] = PrivateAttr(default_factory=set)
    _overlay_loader: Callable[[str], tuple[Image.Image, np.ndarray]] | None = PrivateAttr(default=None)

    # -- images ---------------------------------------------------------------------------
    def add_image(self, image: Image.Image, name: str = "", limit: int | None = None,
                  original: tuple[bytes, str] | None = None) -> ImageRecord:
        """A new image whose v1 is ``image``; ``original`` = (file bytes, extension) keeps the uploaded
        file too (when ``image`` is a downscaled working copy of it)."""
        if limit is not None and len(self.images) >= limit:
            raise UserError(f"This session already has {len(self.images)} images, the limit; start a new session.")
        image_id = f"img{self.next_image}"
        self.next_image += 1
        record = ImageRecord(id=image_id, name=clean_text(name), versions=[Version(id=f"{image_id}.v1", number=1)])
        if original is not None:
            record.original = f"{image_id}.{original[1]}"
            self._originals[record.original] = original[0]
        self.images[image_id] = record
        self._pixels[record.current_id] = image.convert("RGB")
        self.active = image_id
        return record

    def add_version(self, image_id: str, image: Image.Image, note: str, parent: str | None = None) -> Version:
        record = self.record(image_id)
        parent = parent or record.current_id
        number = max(v.number for v in record.versions) + 1
        version = Version(id=f"{record.id}.v{number}", number=number, parent=parent, note=note)
        record.versions.append(version)
        record.current = number
        self._pixels[version.id] = image.convert("RGB")
        self.active = record.id
        return version

    def record(self, ref: str | None = None) -> ImageRecord:
        """The image record for ``img1`` / ``img1.v2`` / None (the active image)."""
        ref = (ref or self.active or "").strip()
        if not ref:
            raise UserError("There is no image yet; upload one first.")
        match = _REF.match(ref)
        image_id = f"img{match.group(1)}" if match else ref
        if image_id not in self.images:
            known = ", ".join(self.images) or "none"
            raise UserError(f"There is no image '{ref}' in this session (images: {known}).")
        return self.images[image_id]

    def version(self, ref: str | None = None) -> Version:
        record = self.record(ref)
        match = _REF.match((ref or "").strip())
        number = int(match.group(2)) if match and match.group(2) else record.current
        for v in record.versions:
            if v.number == number:
                return v
        raise UserError(f"Image {record.id} has no version {number} (it has {len(record.versions)}).")

    def pixels(self, ref: str | None = None) -> Image.Image:
        """The pixels of an image's current version, or of a given version id."""
        version_id = self.version(ref).id
        if version_id not in self._pixels:
            if self._loader is None:
                raise UserError(f"The pixels of {version_id} are missing.")
            self._pixels[version_id] = self._loader(version_id)
        return self._pixels[version_id]

    def set_pixels(self, version_id: str, image: Image.Image) -> None:
        self._pixels[version_id] = image

    def set_loader(self, loader: Callable[[str], Image.Image],
                   overlays: Callable[[str], tuple[Image.Image, np.ndarray]] | None = None) -> None:
        """Where pixels (and overlays) not in memory come from (the store reads them from disk on first use)."""
        self._loader = loader
        self._overlay_loader = overlays

    def has_pixels(self, version_id: str) -> bool:
        return version_id in self._pixels

    def unsaved_originals(self) -> dict[str, bytes]:
        """Original files (name -> bytes) held in memory until the store writes them (then dropped)."""
        return self._originals

    def select(self, ref: str) -> ImageRecord:
        record = self.record(ref)
        self.active = record.id
        return record

    def revert(self, ref: str) -> Version:
        """Make a version current (its image becomes the active one); nothing is deleted."""
        version = self.version(ref)
        record = self.record(ref)
        record.current = version.number
        self.active = record.id
        return version

    def compare(self, left: str, right: str) -> tuple[Version, Version]:
        """Two versions of this session to show side by side (``img1.v1``; ``img1`` is its current version)."""
        left, right = clean_text(left).strip(), clean_text(right).strip()
        if not left or not right:
            raise UserError("Pick two versions to compare, e.g. img1.v1 and img1.v2.")
        return self.version(left), self.version(right)

    # -- overlays and what the model sees -----------------------------------------------------
    def set_overlay(self, ref: str, image: Image.Image, labels: np.ndarray) -> Overlay:
        """Number a version's regions: ``image`` is the version with the numbers drawn, ``labels`` the region
        map at its size (0: no region, n: region n). Replaces an earlier overlay of that version."""
        version_id = self.version(ref).id
        size = self.pixels(version_id).size
        labels = np.asarray(labels)
        if image.size != size or labels.shape != (size[1], size[0]):
            raise UserError(f"The overlay does not match the {size[0]}x{size[1]} image {version_id}.")
        self._overlays[version_id] = (image.convert("RGB"), labels.astype(np.uint8))
        self._unsaved_overlays.add(version_id)
        self.overlays[version_id] = Overlay(regions=int(labels.max(initial=0)))
        return self.overlays[version_id]

    def _overlay(self, version_id: str) -> tuple[Image.Image, np.ndarray] | None:
        if version_id not in self.overlays:
            return None
        if version_id not in self._overlays:
            if self._overlay_loader is None:
                return None
            try:
                self._overlays[version_id] = self._overlay_loader(version_id)
            except (OSError, ValueError):  # its files are gone: the version is shown without it
                return None
        return self._overlays[version_id]

    def overlay(self, ref: str | None = None) -> Image.Image | None:
        """The Set-of-Mark overlay of a version (its numbered regions drawn), or None."""
        found = self._overlay(self.version(ref).id)
        return found[0] if found else None

    def overlay_masks(self, ref: str | None = None) -> list[np.ndarray]:
        """The overlay's regions as boolean masks, ``masks[n - 1]`` for region n; empty without an overlay."""
        found = self._overlay(self.version(ref).id)
        return [found[1] == n for n in range(1, int(found[1].max(initial=0)) + 1)] if found else []

    def unsaved_overlays(self) -> dict[str, tuple[Image.Image, np.ndarray]]:
        """Overlays (version id -> image, labels) the store has not written yet; call :meth:`saved_overlays`."""
        return {v: self._overlays[v] for v in self._unsaved_overlays if v in self._overlays}

    def saved_overlays(self, version_ids) -> None:
        self._unsaved_overlays.difference_update(version_ids)

    def view(self, ref: str | None = None) -> Image.Image:
        """A version as the model sees it and the page shows it: its overlay if it has one, else its pixels,
        with the image's markers drawn (markers placed on another version that do not fit this one are left out)."""
        version_id = self.version(ref).id
        image = self.overlay(version_id) or self.pixels(version_id)
        markers = self.record(version_id).markers
        try:
            return draw_markers(image, markers) if markers else image
        except UserError:
            return image

    # -- markers --------------------------------------------------------------------------
    def add_marker(self, marker: Marker, ref: str | None = None) -> ImageRecord:
        record = self.record(ref)
        validate_point(marker.x, marker.y, self.pixels(record.id).size)
        record.markers.append(marker)
        return record

    def replace_last_marker(self, marker: Marker, ref: str | None = None) -> ImageRecord:
        """Put ``marker`` in place of the image's last marker (a SAM object refined by another click)."""
        record = self.record(ref)
        if not record.markers:
            return self.add_marker(marker, ref)
        validate_point(marker.x, marker.y, self.pixels(record.id).size)
        record.markers[-1] = marker
        return record

    def undo_marker(self, ref: str | None = None) -> Marker | None:
        record = self.record(ref)
        return record.markers.pop() if record.markers else None

    def clear_markers(self, ref: str | None = None) -> None:
        self.record(ref).markers.clear()

    # -- conversation ---------------------------------------------------------------------
    def add_message(self, role: str, content: str, images: list[str] | None = None) -> Message:
        message = Message(role=role, content=clean_text(content), images=images or [])
        self.messages.append(message)
        return message

    def add_trace(self, entry: TraceEntry) -> int:
        self.trace.append(entry)
        return len(self.trace) - 1
