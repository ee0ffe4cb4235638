"""A person's session: images with versions, markers per image, the conversation and the tool trace.

Images are referred to by id only: ``img1`` is an image (its current version), ``img1.v2`` a version.
Every edit adds a version whose parent is the version it was made from; reverting makes an older version
current again without deleting anything. Pixels live in memory here; :mod:`chat.store` persists them.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Callable, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from chat.errors import UserError
from tools.markers import Marker

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
    markers: list[Marker] = []  # a user message: the markers its image had when it was sent (the page shows them)


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
    _pixels: dict[str, Image.Image] = PrivateAttr(default_factory=dict)
    _originals: dict[str, bytes] = PrivateAttr(default_factory=dict)  # original file -> bytes not yet stored
    _loader: Callable[[str], Image.Image] | None = PrivateAttr(default=None)

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

    def set_loader(self, loader: Callable[[str], Image.Image]) -> None:
        """Where pixels not in memory come from (the store reads them from disk on first use)."""
        self._loader = loader

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

    # -- markers --------------------------------------------------------------------------
    def add_marker(self, marker: Marker, ref: str | None = None) -> ImageRecord:
        record = self.record(ref)
        w, h = self.pixels(record.id).size
        if not (0 <= marker.x < w and 0 <= marker.y < h):
            raise UserError(f"Point ({marker.x}, {marker.y}) is outside the image ({w}x{h}).")
        record.markers.append(marker)
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
