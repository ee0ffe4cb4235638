"""Markers on the page's image: a click (display pixels -> original pixels), a point from the API or the
keyboard, undo and clear. With SAM regions (``tools.click_region: sam``) a click fits the object under it and
the first one shows SAM's loading progress in the status line."""

from __future__ import annotations

import queue
import threading
from typing import Iterator

from pydantic import ValidationError

from chat.errors import UserError
from chat.session import clean_text
from chat.ui import views
from chat.ui.context import Page
from chat.ui.progress import listen, progress_line
from chat.ui.views import View
from tools.markers import CLICK_SHAPES, PROMPT_COLORS

SHAPES = CLICK_SHAPES  # what a click can place (tools.markers)
COLORS = PROMPT_COLORS
CLICK_MODES = ("new", "add", "exclude")  # SAM regions: a new object, add to the last one, cut from it


class Markers:
    def __init__(self, page: Page):
        self.page = page

    @property
    def sam_mode(self) -> bool:
        return self.page.config.tools.click_region == "sam"

    def _marker(self, x: float, y: float, shape: str, color: str, size: tuple[int, int]):
        """A marker at (x, y) of an image of ``size``, its radius the click radius scaled to the image."""
        from chat.clicks import click_radius
        from tools.markers import Marker

        if shape not in SHAPES:
            raise UserError(f"Unknown marker shape '{shape}'; choose one of {', '.join(SHAPES)}.")
        if color not in COLORS:
            raise UserError(f"Unknown marker colour '{color}'; choose one of {', '.join(COLORS)}.")
        try:
            radius = click_radius(self.page.config.tools.click_radius, size)
            return Marker(x=int(x), y=int(y), shape=shape, color=color, radius=radius)
        except (ValidationError, TypeError, ValueError, OverflowError):
            raise UserError(f"({x}, {y}) is not a pixel position; give whole numbers.") from None

    def add_point(self, session_id: str | None, x: float | None, y: float | None, shape: str = "circle",
                  color: str = "red", negative: bool = False, new_object: bool = True) -> View:
        """A marker at pixel (x, y) of the active image's current version (original pixels). With SAM regions
        (tools.click_region: sam) the marker fits the object under the click; ``new_object`` False adds the
        click to the last object, ``negative`` cuts the clicked part out of it."""
        from chat.clicks import click_object, describe_click

        page = self.page
        session, note = page.session(session_id)
        if x is None or y is None:
            raise UserError("Give both x and y of the point.")
        with page.locked(session.id):
            record = session.record()  # "upload one first" when there is no image
            pixels = session.pixels(record.id)
            marker = self._marker(x, y, shape, color, pixels.size)
            placed = click_object(page.config, page.assistant.registry, record.markers, pixels, marker,
                                  negative=bool(negative), new_object=new_object is None or bool(new_object))
            if placed.mask is not None:
                page.remember_mask(session, record.id, placed.marker.clicks or [], placed.mask)
            if placed.refined:
                record = session.replace_last_marker(placed.marker, record.id)
            else:
                record = session.add_marker(placed.marker)
            page.store.save(session)
        n = len(record.markers)
        status = (f"Marker {n} {describe_click(placed.marker, placed.refined)} on {record.current_id}. "
                  "Ask about it, score it or edit it.")
        view = page.view(session, note or placed.note, images=False, status=status)
        if note and placed.note:
            view.warnings.append(placed.note)
        return view

    def click(self, session_id: str | None, index, shape: str = "circle", color: str = "red",
              mode: str = "new") -> View:
        """A click on the displayed image: ``index`` = [x, y] in display pixels, mapped to original pixels.
        ``mode`` (SAM regions): 'new' object, 'add' to the last object, or 'exclude' from it."""
        x, y, negative, new_object = self._click_point(session_id, index, mode)
        return self.add_point(session_id, x, y, shape, color, negative=negative, new_object=new_object)

    def _click_point(self, session_id, index, mode):
        if mode not in CLICK_MODES:
            raise UserError(f"Unknown click mode '{mode}'; choose one of {', '.join(CLICK_MODES)}.")
        session, _ = self.page.session(session_id)
        if not session.active:
            raise UserError("There is no image yet; upload one first.")
        if not isinstance(index, (list, tuple)) or len(index) != 2:
            raise UserError("That click did not land on the image; click on the picture itself.")
        try:
            dx, dy = float(index[0]), float(index[1])
        except (TypeError, ValueError):
            raise UserError("That click did not land on the image; click on the picture itself.") from None
        width, height = views.display_size(session.pixels().size)
        if not (0 <= dx < width and 0 <= dy < height):  # NaN and infinity fail too
            raise UserError(f"That click is outside the image ({width}x{height} as shown); click on the picture itself.")
        x, y = views.to_original(dx, dy, session.pixels().size)
        return x, y, mode == "exclude", mode == "new"

    def key_point(self, session_id: str | None, where: str, shape: str = "circle", color: str = "red",
                  mode: str = "new") -> View:
        """A marker placed from the keyboard: ``where`` is 'fx,fy', the keyboard cursor as fractions of the
        picture's width and height (0..1)."""
        session, _ = self.page.session(session_id)
        if clean_text(where).strip() == "outside":  # the page: a mouse click beside the picture
            raise UserError("That click did not land on the image; click on the picture itself.")
        try:
            fx, fy = (float(v) for v in clean_text(where).split(","))
        except ValueError:
            raise UserError("Move the cursor with the arrow keys, then press Enter to place a marker.") from None
        if not (0 <= fx <= 1 and 0 <= fy <= 1):
            raise UserError("The keyboard cursor is outside the picture; move it back with the arrow keys.")
        if not session.active:
            raise UserError("There is no image yet; upload one first.")
        width, height = views.display_size(session.pixels().size)
        return self.click(session.id, [min(width - 1, fx * width), min(height - 1, fy * height)], shape, color, mode)

    def click_with_progress(self, session_id: str | None, index, shape: str = "circle", color: str = "red",
                            mode: str = "new") -> Iterator[View]:
        """:meth:`click`, showing model loading (SAM's first click takes seconds) in the status line."""
        yield from self._with_progress(lambda: self.click(session_id, index, shape, color, mode),
                                       "Selecting the object…" if self.sam_mode else None)

    def key_point_with_progress(self, session_id, where, shape="circle", color="red", mode="new") -> Iterator[View]:
        yield from self._with_progress(lambda: self.key_point(session_id, where, shape, color, mode),
                                       "Selecting the object…" if self.sam_mode else None)

    def _with_progress(self, work, first: str | None) -> Iterator[View]:
        """Run ``work()`` in a thread; while it runs, model-loading reports become status lines."""
        if first is None:
            yield work()
            return
        events: queue.Queue = queue.Queue()
        result: list = []

        def run() -> None:
            try:
                result.append(work())
            except BaseException as exc:  # noqa: BLE001 - raised again below
                result.append(exc)
            finally:
                events.put(None)

        remove = listen(self.page.assistant.registry,
                        lambda n, f, m: events.put(views.status_text(*progress_line(n, f, m))))
        try:
            threading.Thread(target=run, name="mmchat-click", daemon=True).start()
            yield View(status=first)
            while (line := events.get()) is not None:
                yield View(status=line)
        finally:
            remove()
        if isinstance(result[0], BaseException):
            raise result[0]
        yield result[0]

    def undo_marker(self, session_id: str | None) -> View:
        session, note = self.page.session(session_id)
        with self.page.locked(session.id):
            removed = session.undo_marker()
            self.page.store.save(session)
        status = "Removed the last marker." if removed else "There is no marker to remove."
        return self.page.view(session, note, images=False, status=status)

    def clear_markers(self, session_id: str | None) -> View:
        session, note = self.page.session(session_id)
        with self.page.locked(session.id):
            session.clear_markers()
            self.page.store.save(session)
        return self.page.view(session, note, images=False, status="Markers cleared.")
