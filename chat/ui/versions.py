"""Versions side by side and as files: the compare view (two version pickers and a before/after slider)
and the download of a version (full resolution, no markers drawn, named like ``img1.v2.png``).

A mixin of :class:`chat.ui.handlers.Handlers`, which provides ``session()``, ``store``, ``files`` and
``_shown_active`` (with its ``_shown_guard``).
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from chat.errors import UserError
from chat.session import Session, clean_text
from chat.ui import views
from chat.ui.views import View


SHOWN_ACTIVE_ENTRIES = 4096  # sessions whose active image is remembered (see Versions._follow_active)


class Versions:
    def _galleries(self, session: Session, view: View, compare: bool = True) -> View:
        """Set the thumbnails and the versions gallery; with ``compare`` also the compare view (parent vs
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
                view.compare = self._compare_view(session, *pair)
                view.download = self._download_file(session, pair[1])[0]
        return view

    def compare(self, session_id: str | None, left: str, right: str) -> View:
        """Show two versions (ids like img1.v1 and img1.v2) side by side, left and right of a slider."""
        session, note = self.session(session_id)
        a, b = session.compare(left, right)
        same = " (the same version twice)" if a.id == b.id else ""
        view = View(session_id=session.id, compare=self._compare_view(session, a.id, b.id),
                    status=f"Comparing {a.id} (left) with {b.id} (right){same}: drag the slider.")
        if note:
            view.warnings.append(note)
        return view

    def download_version(self, session_id: str | None, version: str = "") -> View:
        """The file of a version (default: the active image's current one) at full resolution, no markers."""
        session, note = self.session(session_id)
        wanted = clean_text(version).strip()
        found = session.version(wanted or session.record().current_id)
        path, original = self._download_file(session, found.id)
        if original:
            status = f"{Path(path).name}: the original upload, as it was sent (v1 is a smaller working copy)."
        else:
            width, height = session.pixels(found.id).size
            status = f"{Path(path).name}: {width}x{height}, full resolution, without markers."
        view = View(session_id=session.id, download=path, status=status)
        if note:
            view.warnings.append(note)
        return view

    def _follow_active(self, session: Session, view: View) -> None:
        """Clear the score chart and table when the active image is not the one last shown for this session."""
        with self._shown_guard:
            shown = self._shown_active  # session id -> the active image id last shown (oldest first)
            if session.id in shown and shown[session.id] == session.active:
                return
            shown.pop(session.id, None)
            shown[session.id] = session.active
            while len(shown) > SHOWN_ACTIVE_ENTRIES:
                shown.pop(next(iter(shown)))
        view.plot, view.scores = "", []

    # -- files --------------------------------------------------------------------------------
    def _full(self, session: Session, version_id: str) -> str:
        """A PNG of the version's pixels (shared with the versions gallery)."""
        return self.files.get((session.id, version_id, "full"), lambda: session.pixels(version_id))

    def _compare_view(self, session: Session, left: str, right: str) -> views.Compare:
        choices = [v.id for v in session.record().versions]
        choices += [vid for vid in dict.fromkeys((left, right)) if vid not in choices]  # another image's
        return views.Compare(choices, left, right, (self._full(session, left), self._full(session, right)))

    def _download_file(self, session: Session, version_id: str) -> tuple[str, bool]:
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
        source = Path(self._full(session, version_id))
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
