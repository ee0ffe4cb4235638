"""The page's images: uploads (all or nothing, big ones downscaled with their original kept), picking an image
from the strip, making a version current. Plain functions over (session id, inputs) that return Views."""

from __future__ import annotations

import os
from pathlib import Path

from chat.errors import UserError
from chat.session import Session, clean_text
from chat.ui import views
from chat.ui.context import Page
from chat.ui.sessions import file_path, heading
from chat.ui.views import View


def add_files(page: Page, session: Session, files) -> tuple[list[str], list[str]]:
    """Add uploaded files as images: (new image ids, notes about downscaled ones). All or nothing: every
    file is read and checked first, so a bad one (or one too many) leaves the session as it was.
    A file larger than ``max_pixels`` gets a downscaled working copy; its original bytes are kept."""
    from chat.imageio import extension, load_image_bytes, working_copy

    limits = page.limits
    items = [files] if isinstance(files, (str, dict, os.PathLike)) else list(files or [])
    room = limits.max_images_per_session - len(session.images)
    if len(items) > room:
        raise UserError(f"This session has {len(session.images)} of at most {limits.max_images_per_session} "
                        f"images, so {len(items)} more do not fit; start a new session.")
    loaded, notes = [], []
    for item in items:
        path = file_path(item)
        name = clean_text(os.path.basename(path)) or "image"
        try:
            data = Path(path).read_bytes()
        except (OSError, ValueError):  # missing, a folder, a NUL in the path...
            raise UserError(f"{name} could not be read; upload it again.") from None
        image = load_image_bytes(data, name, limits)
        small = working_copy(image, limits.max_pixels)
        original = None
        if small.size != image.size:
            notes.append(f"{name} was scaled from {image.width}x{image.height} to {small.width}x{small.height}")
            original = (data, extension(data))
        loaded.append((small, name, original))
    added = [session.add_image(small, name=name, original=original).id for small, name, original in loaded]
    return added, notes


class Images:
    def __init__(self, page: Page):
        self.page = page

    def upload(self, session_id: str | None, files) -> View:
        session, note = self.page.session(session_id)
        if not files:
            raise UserError("Choose one or more image files to upload.")
        with self.page.locked(session.id):
            ids, notes = add_files(self.page, session, files)
            self.page.store.save(session)
        status = f"Added {', '.join(ids)}." + (f" ({'; '.join(notes)})" if notes else "") + " Click the image to mark a spot."
        return heading(self.page, session, self.page.view(session, note, status=status))  # it is in the list now

    def refused(self, session_id: str | None, info: str) -> View:
        """A file the browser would not send (over the server's upload limit): ``info`` is 'bytes|limit|name'
        as the page's script saw it. Says so in one sentence; nothing else changes."""
        size, limit, name = (clean_text(info).split("|", 2) + ["", "", ""])[:3]
        try:
            size_mb, limit_mb = int(size) / 2**20, int(limit) / 2**20
        except ValueError:
            raise UserError("That file is too big to upload; make it smaller and upload it again.") from None
        name = os.path.basename(name.strip()) or "That file"
        raise UserError(f"{name} is {size_mb:.1f} MB, more than the {limit_mb:g} MB a file can have here; make it "
                        "smaller (e.g. save it as a JPEG) and upload it again.")

    def select_image(self, session_id: str | None, ref: str) -> View:
        session, note = self.page.session(session_id)
        ref = clean_text(ref).strip()
        if not ref:
            raise UserError("Give the id of an image, e.g. img1.")
        with self.page.locked(session.id):
            session.select(ref)
            self.page.store.save(session)
        return self.page.view(session, note)

    def select_index(self, session_id: str | None, index: int) -> View:
        session, _ = self.page.session(session_id)
        ids = list(session.images)
        if not isinstance(index, int) or not 0 <= index < len(ids):
            raise UserError("That thumbnail is no longer there; pick another image.")
        return self.select_image(session.id, ids[index])

    def revert(self, session_id: str | None, version_id: str) -> View:
        session, note = self.page.session(session_id)
        version_id = clean_text(version_id).strip()
        if not version_id:
            raise UserError("Give the id of a version, e.g. img1.v1.")
        with self.page.locked(session.id):
            version = session.revert(version_id)
            self.page.store.save(session)
        return self.page.view(session, note, status=f"{version.id} is now the current version. " + views.ready_text(session))

    def revert_index(self, session_id: str | None, index: int) -> View:
        session, _ = self.page.session(session_id)
        versions = session.record().versions
        if not isinstance(index, int) or not 0 <= index < len(versions):
            raise UserError("That version is no longer there; pick another.")
        return self.revert(session.id, versions[index].id)
