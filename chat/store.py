"""Sessions on disk: a SQLite index plus one folder per session, written atomically.

Layout under the data directory::

    index.sqlite                       sessions(id, title, created, updated)
    sessions/<id>/session.json         the Session (images, versions, markers, messages, trace)
    sessions/<id>/images/<img>.v<n>.png  pixels of every version (written once, never rewritten)
    sessions/<id>/originals/<img>.<ext>  the uploaded file, when v1 is a downscaled working copy of it
    sessions/<id>/overlays/<img>.v<n>.png and .labels.png  a version's Set-of-Mark overlay and region map
    exports/<id>-<time>.zip            conversation exports

Every file is written to a temporary name and renamed into place, so killing the server mid-write leaves
either the old file or the new one, never a torn one (a killed write may leave its ``.*.tmp`` staging file,
which nothing reads). Images are written before the session.json that lists them; an image file a killed save
left unlisted is overwritten, never reused, when a version with its id is saved later. Pixels and overlays are
read back lazily on first use. Exports carry the versions, not the overlays (a /som on the import makes them
again).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sqlite3
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from chat.config import LimitsConfig
from chat.errors import UserError
from chat.session import Session
from tools.imageio import EXTENSIONS

_ID = re.compile(r"^[0-9a-f]{32}$")
_VERSION_FILE = re.compile(r"^img\d+\.v\d+\.png$")
_ORIGINAL_FILE = re.compile(rf"^img\d+\.(?:{'|'.join(sorted(set(EXTENSIONS.values())))})$")


def atomic_write(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to a temporary name beside ``path`` and rename it into place: readers see the old file or
    the whole new one. ``fsync=False`` for files that need not survive a power cut (the page's display copies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


class SessionStore:
    """Creates, loads and saves sessions; keeps recently used ones in memory."""

    def __init__(self, root: str | os.PathLike, cache_size: int = 64, limits=None):
        self.root = Path(root)
        self.cache_size = cache_size
        self.limits = limits
        self._cache: OrderedDict[str, Session] = OrderedDict()
        # Version files known to hold their version's pixels (written by this store, or listed in the
        # session.json it loaded). A file that merely exists may be an orphan of a save that was killed
        # before its session.json was written: the next version with that id must overwrite it.
        self._written: dict[str, set[str]] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    # -- paths and index ------------------------------------------------------------------
    def _dir(self, session_id: str) -> Path:
        if not _ID.match(session_id or ""):
            raise UserError("That session id is not valid.")
        return self.root / "sessions" / session_id

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.root.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.root / "index.sqlite", timeout=30)
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, title TEXT, created REAL, updated REAL)"
            )
            with conn:
                yield conn
        finally:
            conn.close()

    # -- public API -----------------------------------------------------------------------
    def lock(self, session_id: str) -> threading.RLock:
        """One request at a time per session: ``with store.lock(sid): ...``."""
        with self._guard:
            return self._locks.setdefault(session_id, threading.RLock())

    def create(self) -> Session:
        session = Session()
        self._remember(session)
        self.save(session)
        return session

    def get(self, session_id: str) -> Session:
        with self._guard:
            if session_id in self._cache:
                self._cache.move_to_end(session_id)
                return self._cache[session_id]
        path = self._dir(session_id) / "session.json"
        if not path.is_file():
            raise UserError("This session no longer exists; a new one was started.")
        try:
            session = Session.model_validate_json(path.read_bytes())
        except ValueError as exc:
            raise UserError(f"Session {session_id} could not be read ({str(exc).splitlines()[0]}).") from None
        self._attach(session)
        with self._guard:
            self._written[session.id] = {v.id for r in session.images.values() for v in r.versions}
        self._remember(session)
        return session

    def exists(self, session_id: str) -> bool:
        try:
            return session_id in self._cache or (self._dir(session_id) / "session.json").is_file()
        except UserError:
            return False

    def save(self, session: Session) -> None:
        folder = self._dir(session.id)
        with self._guard:
            written = self._written.setdefault(session.id, set())
        for record in session.images.values():
            for version in record.versions:
                if version.id not in written and session.has_pixels(version.id):
                    atomic_write(folder / "images" / f"{version.id}.png", png_bytes(session.pixels(version.id)))
                    written.add(version.id)
        originals = session.unsaved_originals()
        for name in list(originals):
            atomic_write(folder / "originals" / name, originals.pop(name))
        overlays = session.unsaved_overlays()
        for version_id, (image, labels) in overlays.items():
            atomic_write(folder / "overlays" / f"{version_id}.png", png_bytes(image))
            atomic_write(folder / "overlays" / f"{version_id}.labels.png", png_bytes(Image.fromarray(labels, "L")))
        session.saved_overlays(overlays)
        atomic_write(folder / "session.json", session.model_dump_json().encode("utf-8"))
        title = session.title or next((m.content[:60] for m in session.messages if m.role == "user"), "")
        with self._db() as conn:
            conn.execute(
                "INSERT INTO sessions (id, title, created, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET title = excluded.title, updated = excluded.updated",
                (session.id, title, session.created, time.time()),
            )
        self._remember(session)

    def original(self, session: Session, image_id: str) -> bytes | None:
        """The bytes of the file an image was uploaded as, when it was kept (see ImageRecord.original)."""
        record = session.record(image_id)
        if not record.original:
            return None
        unsaved = session.unsaved_originals().get(record.original)
        if unsaved is not None:
            return unsaved
        try:
            return (self._dir(session.id) / "originals" / record.original).read_bytes()
        except OSError:
            raise UserError(f"The original file of {record.id} is missing.") from None

    def list(self) -> list[dict]:
        if not (self.root / "index.sqlite").exists():
            return []
        with self._db() as conn:
            rows = conn.execute("SELECT id, title, created, updated FROM sessions ORDER BY updated DESC").fetchall()
        return [dict(zip(("id", "title", "created", "updated"), row)) for row in rows]

    def forget(self, session_id: str) -> None:
        """Drop a session from memory (it stays on disk); used by tests and to bound memory."""
        with self._guard:
            self._cache.pop(session_id, None)
            self._written.pop(session_id, None)

    def delete(self, session_id: str) -> None:
        """Remove a session for good: its folder (images, originals), its exports and its index row."""
        import shutil

        folder = self._dir(session_id)
        self.forget(session_id)
        shutil.rmtree(folder, ignore_errors=True)
        for export in (self.root / "exports").glob(f"{session_id}-*.zip"):
            export.unlink(missing_ok=True)
        with self._db() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # -- export / import ------------------------------------------------------------------
    def export_zip(self, session: Session) -> Path:
        """A zip with session.json, conversation.md, trace.json and every image version."""
        self.save(session)
        out = self.root / "exports" / f"{session.id}-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("session.json", session.model_dump_json(indent=2))
            zf.writestr("conversation.md", conversation_markdown(session))
            zf.writestr("trace.json", json.dumps([t.model_dump() for t in session.trace], indent=2))
            for record in session.images.values():
                for version in record.versions:
                    zf.writestr(f"images/{version.id}.png", png_bytes(session.pixels(version.id)))
                if record.original:
                    zf.writestr(f"originals/{record.original}", self.original(session, record.id))
        atomic_write(out, buf.getvalue())
        return out

    def import_zip(self, path: str | os.PathLike) -> Session:
        """A new session (new id) from an export. Refused before anything is decompressed when the zip is
        too big or has too many files (a zip bomb); the session must keep the limits a live one keeps (images
        per session, length of what the person typed), and every image is re-validated like an upload."""
        from tools.imageio import load_image_bytes

        limits = self.limits or LimitsConfig()
        try:
            with zipfile.ZipFile(path) as zf:
                _check_zip_size(zf, limits)
                session = Session.model_validate_json(zf.read("session.json"))
                _check_session_limits(session, limits)
                pixels, originals = {}, {}
                for name in zf.namelist():
                    base = name.removeprefix("images/")
                    if name.startswith("images/") and _VERSION_FILE.match(base):
                        pixels[base[:-4]] = load_image_bytes(zf.read(name), name, self.limits)
                    elif name.startswith("originals/") and _ORIGINAL_FILE.match(name.removeprefix("originals/")):
                        load_image_bytes(data := zf.read(name), name, self.limits)  # refused like an upload
                        originals[name.removeprefix("originals/")] = data
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
            raise UserError(f"That file is not an mmchat export ({str(exc).splitlines()[0]}).") from None
        for record in session.images.values():
            for version in record.versions:
                if version.id not in pixels:
                    raise UserError(f"The export is missing the image {version.id}.")
                session.set_pixels(version.id, pixels[version.id])
            if record.original is not None:
                if record.original not in originals or not record.original.startswith(f"{record.id}."):
                    raise UserError(f"The export is missing the original file of {record.id}.")
                session.unsaved_originals()[record.original] = originals[record.original]
        session.id = Session().id
        session.overlays = {}  # not exported
        self.save(session)
        return session

    # -- internals ------------------------------------------------------------------------
    def _attach(self, session: Session) -> None:
        folder = self._dir(session.id)

        def load(version_id: str) -> Image.Image:
            with Image.open(folder / "images" / f"{version_id}.png") as im:
                return im.convert("RGB")

        def overlay(version_id: str) -> tuple[Image.Image, np.ndarray]:
            with Image.open(folder / "overlays" / f"{version_id}.png") as im, \
                    Image.open(folder / "overlays" / f"{version_id}.labels.png") as labels:
                return im.convert("RGB"), np.asarray(labels.convert("L"))

        session.set_loader(load, overlay)

    def _remember(self, session: Session) -> None:
        with self._guard:
            self._cache[session.id] = session
            self._cache.move_to_end(session.id)
            while len(self._cache) > self.cache_size:
                gone, _ = self._cache.popitem(last=False)
                self._written.pop(gone, None)


def _check_zip_size(zf: zipfile.ZipFile, limits: LimitsConfig) -> None:
    """From the zip's directory, before decompressing anything (zipfile never yields more than the declared
    size of a member, so the declared sizes bound what reading can produce)."""
    members = zf.infolist()
    if len(members) > limits.max_import_files:
        raise UserError(f"That export has {len(members)} files; the limit is {limits.max_import_files}.")
    total = sum(info.file_size for info in members)
    if total > limits.max_import_bytes:
        raise UserError(f"That export is {_size(total)} uncompressed; the limit is {_size(limits.max_import_bytes)}.")


def _check_session_limits(session: Session, limits: LimitsConfig) -> None:
    if len(session.images) > limits.max_images_per_session:
        raise UserError(f"That export has {len(session.images)} images; a session holds at most "
                        f"{limits.max_images_per_session}.")
    for number, message in enumerate(session.messages, 1):
        if message.role == "user" and len(message.content) > limits.max_message_chars:
            raise UserError(f"Message {number} of that export is {len(message.content)} characters long; "
                            f"the limit is {limits.max_message_chars}.")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def conversation_markdown(session: Session) -> str:
    lines = [f"# mmchat conversation {session.id}", ""]
    for record in session.images.values():
        chain = ", ".join(f"{v.id} ({v.note})" for v in record.versions)
        lines.append(f"- **{record.id}** {record.name}: {chain}; current {record.current_id}")
    lines.append("")
    for message in session.messages:
        refs = f" _(images: {', '.join(message.images)})_" if message.images else ""
        lines += [f"**{message.role}**{refs}:", "", message.content, ""]
    for version_id in (v.id for r in session.images.values() for v in r.versions):
        lines.append(f"![{version_id}](images/{version_id}.png)")
    return "\n".join(lines) + "\n"
