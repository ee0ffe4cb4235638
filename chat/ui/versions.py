"""Versions as files and side by side: the strips under the image, the compare view (two version pickers and
a before/after slider) and the download of a version (full resolution, no markers drawn, named like
``img1.v2.png``; v1 of a downscaled upload downloads as the file that was uploaded).
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from pathlib import Path

from chat.errors import UserError
from chat.session import Session, clean_text
from chat.ui import views
from chat.ui.views import View

SHOWN_ACTIVE_ENTRIES = 4096  # sessions whose active image is remembered (see VersionFiles._follow_active)


class VersionFiles:
    def __init__(self, files, store):
        self.files = files  # chat.ui.files.ImageFiles
        self.store = store
        self._shown_active: dict[str, str | None] = {}  # session id -> active image shown (oldest first)
        self._shown_guard = threading.Lock()

    def galleries(self, session: Session, view: View, compare: bool = True) -> View:
        """Set the thumbnails and the versions strip; with ``compare`` also the compare view (parent vs
        current) and the download button (the current version). Another active image than the page showed
        last clears the score chart and table (they were about the other image)."""
        self._follow_active(session, view)
        view.thumbs = views.thumbnails(session, self.files)
        view.versions = views.version_items(session, self.files)
        if compare:
            pair = views.compare_pair(session)
            if pair is None:
                view.compare, view.download = views.Compare(choices=[]), ""
            else:
                view.compare = self.compare_view(session, *pair)
                view.download = self.download_file(session, pair[1])[0]
        return view

    def compare(self, session: Session, left: str, right: str) -> View:
        """Two versions (ids like img1.v1 and img1.v2) side by side, left and right of a slider."""
        a, b = session.compare(left, right)
        same = " (the same version twice)" if a.id == b.id else ""
        return View(session_id=session.id, compare=self.compare_view(session, a.id, b.id), show_tab="compare",
                    status=f"Comparing {a.id} (left) with {b.id} (right){same}: drag the slider.",
                    tabs={"compare": f"{a.id} (left) and {b.id} (right){same}."})

    def compare_with_parent(self, session: Session, version_id: str) -> View:
        version = session.version(clean_text(version_id).strip() or None)
        if not version.parent:
            raise UserError(f"{version.id} is an original: it was not made from another version.")
        return self.compare(session, version.parent, version.id)

    def download(self, session: Session, version: str = "") -> View:
        """The file of a version (default: the active image's current one) at full resolution, no markers."""
        wanted = clean_text(version).strip()
        found = session.version(wanted or session.record().current_id)
        path, original = self.download_file(session, found.id)
        if original:
            status = f"{Path(path).name}: the original upload, as it was sent (v1 is a smaller working copy)."
        else:
            width, height = session.pixels(found.id).size
            status = f"{Path(path).name}: {width}x{height}, full resolution, without markers."
        return View(session_id=session.id, download=path, status=status)

    def _follow_active(self, session: Session, view: View) -> None:
        """Clear the score chart and table when the active image is not the one last shown for this session."""
        with self._shown_guard:
            shown = self._shown_active
            if session.id in shown and shown[session.id] == session.active:
                return
            shown.pop(session.id, None)
            shown[session.id] = session.active
            while len(shown) > SHOWN_ACTIVE_ENTRIES:
                shown.pop(next(iter(shown)))
        view.plot, view.scores = "", []

    # -- files --------------------------------------------------------------------------------
    def full(self, session: Session, version_id: str) -> str:
        """A PNG of the version's pixels."""
        return self.files.get((session.id, version_id, "full"), lambda: session.pixels(version_id))

    def compare_view(self, session: Session, left: str, right: str) -> views.Compare:
        choices = [v.id for v in session.record().versions]
        choices += [vid for vid in dict.fromkeys((left, right)) if vid not in choices]  # another image's
        return views.Compare(choices, left, right, (self.full(session, left), self.full(session, right)))

    def download_link(self, session: Session, version_id: str) -> tuple[str, str]:
        """(file, name) a Download link in the chat points at."""
        path, _ = self.download_file(session, version_id)
        return path, Path(path).name

    def download_file(self, session: Session, version_id: str) -> tuple[str, bool]:
        """The file a download of the version gives (the button's value and /download_version alike), and
        whether it is the original upload: v1 of a downscaled upload is a smaller working copy, so its
        download is the file as uploaded (``img1.jpg``); any other version is ``img1.v2.png``."""
        version = session.version(version_id)
        record = session.record(version.id)
        if version.number == 1 and record.original:
            name = record.original
            try:
                path = self.files.named((session.id, name, "original"), name,
                                        lambda: self.store.original(session, version.id))
                return path, True
            except UserError:  # the kept file is gone: the working copy is all there is
                pass
        return self._version_file(session, version.id), False

    def _version_file(self, session: Session, version_id: str) -> str:
        """``<version id>.png`` with the version's pixels, in a folder named by the PNG's content hash (as
        unguessable as the gallery's file, and the same file for the same pixels)."""
        source = Path(self.full(session, version_id))
        path = self.files.directory / f"dl-{source.stem}" / f"{version_id}.png"
        if not path.exists():
            path.parent.mkdir(mode=0o700, exist_ok=True)
            staging = path.with_name(f".{secrets.token_hex(8)}.png")
            try:
                os.link(source, staging)  # no copy of the bytes where the file system allows
            except OSError:
                shutil.copyfile(source, staging)
            os.replace(staging, path)
        return str(path)
