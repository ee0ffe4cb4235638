"""What the page's controls do: plain functions over (session id, inputs) that use the Session API and return
Views. No Gradio here, so every handler is testable directly.

:class:`Handlers` is composed of the parts of the page (no inheritance): a :class:`chat.ui.context.Page`
(the shared store, files, router and views), a :class:`chat.ui.turns.TurnRunner` (answers, in order), a
:class:`chat.ui.sessions.SessionList` and the page's :class:`chat.ui.versions.VersionFiles`. It adds the
image and marker handlers and the forms of the tool tabs. A handler raises :class:`UserError` for anything a
person can fix; the layout shows it as one sentence.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Iterator

from pydantic import ValidationError

from chat.errors import UserError, describe
from chat.session import Session, clean_text
from chat.ui import forms, views
from chat.ui.context import BUSY_SECONDS, Page  # noqa: F401 - BUSY_SECONDS: part of this module's API
from chat.ui.forms import SCORE_MODELS, parse_labels  # noqa: F401
from chat.ui.progress import ProgressRelay, listen, progress_line  # noqa: F401
from chat.ui.sessions import SessionList, file_path
from chat.ui.turns import Pending, TurnRunner
from chat.ui.views import View
from tools.markers import CLICK_SHAPES, PROMPT_COLORS

SHAPES = CLICK_SHAPES  # what a click can place (tools.markers)
COLORS = PROMPT_COLORS
CLICK_MODES = ("new", "add", "exclude")  # SAM regions: a new object, add to the last one, cut from it


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


class Handlers:
    """Every action of the page."""

    def __init__(self, assistant, router=None):
        self.assistant = assistant
        self.page = Page(assistant, router)
        self.turns = TurnRunner(self.page)
        self.sessions = SessionList(self.page)
        self.versions = self.page.versions
        self.files = self.page.files

    @property
    def store(self):
        return self.page.store

    @property
    def router(self):
        return self.page.router

    @property
    def sam_mode(self) -> bool:
        return self.assistant.config.tools.click_region == "sam"

    # -- sessions (see chat.ui.sessions) --------------------------------------------------------
    def load(self, session_id: str | None) -> View:
        return self.sessions.load(session_id)

    def resume(self, session_id: str | None, wanted: str) -> View:
        return self.sessions.resume(session_id, wanted)

    def new_session(self, session_id: str | None = None) -> View:
        return self.sessions.new_session(session_id)

    def set_grounded(self, session_id: str | None, on: bool) -> View:
        """The grounded-answers toggle: from now on each answer's phrases are found and drawn on the image."""
        session, note = self.page.session(session_id)
        with self.page.locked(session.id):
            session.grounded = bool(on)
            self.store.save(session)
        status = ("Grounded answers: the things each answer mentions are found and drawn on the image."
                  if session.grounded else "Grounded answers are off.")
        view = View(session_id=session.id, status=status, grounded=session.grounded)
        if note:
            view.warnings.append(note)
        return view

    def rename_session(self, session_id: str | None, title: str) -> View:
        return self.sessions.rename(session_id, title)

    def delete_session(self, session_id: str | None, target: str = "") -> View:
        return self.sessions.delete(session_id, target)

    def ask_confirm(self, session_id: str | None, what: str) -> View:
        return self.sessions.ask(session_id, what)

    def confirm(self, session_id: str | None, what: str) -> View:
        return self.sessions.confirm(session_id, what)

    def import_session(self, session_id: str | None, file) -> View:
        return self.sessions.import_session(session_id, file)

    def export(self, session_id: str | None) -> View:
        return self.sessions.export(session_id)

    def clear_chat(self, session_id: str | None) -> View:
        return self.sessions.clear_chat(session_id)

    def sync(self, session_id: str | None, shown: str | None) -> View:
        return self.sessions.sync(session_id, shown)

    # -- images -------------------------------------------------------------------------------
    def upload(self, session_id: str | None, files) -> View:
        session, note = self.page.session(session_id)
        if not files:
            raise UserError("Choose one or more image files to upload.")
        with self.page.locked(session.id):
            ids, notes = add_files(self.page, session, files)
            self.store.save(session)
        status = f"Added {', '.join(ids)}." + (f" ({'; '.join(notes)})" if notes else "") + " Click the image to mark a spot."
        view = self.page.view(session, note, status=status)
        view.sessions = self.sessions.rows()
        return view

    def select_image(self, session_id: str | None, ref: str) -> View:
        session, note = self.page.session(session_id)
        ref = clean_text(ref).strip()
        if not ref:
            raise UserError("Give the id of an image, e.g. img1.")
        with self.page.locked(session.id):
            session.select(ref)
            self.store.save(session)
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
            self.store.save(session)
        return self.page.view(session, note, status=f"{version.id} is now the current version. " + views.ready_text(session))

    def revert_index(self, session_id: str | None, index: int) -> View:
        session, _ = self.page.session(session_id)
        versions = session.record().versions
        if not isinstance(index, int) or not 0 <= index < len(versions):
            raise UserError("That version is no longer there; pick another.")
        return self.revert(session.id, versions[index].id)

    # -- versions (see chat.ui.versions) --------------------------------------------------------
    def compare(self, session_id: str | None, left: str, right: str) -> View:
        session, note = self.page.session(session_id)
        view = self.versions.compare(session, left, right)
        view.warnings += [note] if note else []
        return view

    def compare_parent(self, session_id: str | None, version_id: str = "") -> View:
        """Compare a version (default: the current one) with the version it was made from."""
        session, note = self.page.session(session_id)
        view = self.versions.compare_with_parent(session, version_id)
        view.warnings += [note] if note else []
        return view

    def download_version(self, session_id: str | None, version: str = "") -> View:
        session, note = self.page.session(session_id)
        view = self.versions.download(session, version)
        view.warnings += [note] if note else []
        return view

    def chat_action(self, session_id: str | None, action: str) -> View:
        """A link in the chat: 'current-img1.v2' makes the version current, 'compare-img1.v2' compares it
        with its parent."""
        kind, _, version = clean_text(action).strip().partition("-")
        if kind == "current":
            return self.revert(session_id, version)
        if kind == "compare":
            return self.compare_parent(session_id, version)
        raise UserError("That action is not known; use the buttons under the picture.")

    # -- markers ------------------------------------------------------------------------------
    def _marker(self, x: float, y: float, shape: str, color: str, size: tuple[int, int]):
        """A marker at (x, y) of an image of ``size``, its radius the click radius scaled to the image."""
        from chat.clicks import click_radius
        from tools.markers import Marker

        if shape not in SHAPES:
            raise UserError(f"Unknown marker shape '{shape}'; choose one of {', '.join(SHAPES)}.")
        if color not in COLORS:
            raise UserError(f"Unknown marker colour '{color}'; choose one of {', '.join(COLORS)}.")
        try:
            radius = click_radius(self.assistant.config.tools.click_radius, size)
            return Marker(x=int(x), y=int(y), shape=shape, color=color, radius=radius)
        except (ValidationError, TypeError, ValueError, OverflowError):
            raise UserError(f"({x}, {y}) is not a pixel position; give whole numbers.") from None

    def add_point(self, session_id: str | None, x: float | None, y: float | None, shape: str = "circle",
                  color: str = "red", negative: bool = False, new_object: bool = True) -> View:
        """A marker at pixel (x, y) of the active image's current version (original pixels). With SAM regions
        (tools.click_region: sam) the marker fits the object under the click; ``new_object`` False adds the
        click to the last object, ``negative`` cuts the clicked part out of it."""
        from chat.clicks import click_object, describe_click

        session, note = self.page.session(session_id)
        if x is None or y is None:
            raise UserError("Give both x and y of the point.")
        with self.page.locked(session.id):
            record = session.record()  # "upload one first" when there is no image
            pixels = session.pixels(record.id)
            marker = self._marker(x, y, shape, color, pixels.size)
            placed = click_object(self.assistant.config, self.assistant.registry, record.markers, pixels, marker,
                                  negative=bool(negative), new_object=new_object is None or bool(new_object))
            if placed.mask is not None:
                self.page.remember_mask(session, record.id, placed.marker.clicks or [], placed.mask)
            if placed.refined:
                _replace_last(session, record, placed.marker)
            else:
                record = session.add_marker(placed.marker)
            self.store.save(session)
        n = len(record.markers)
        status = (f"Marker {n} {describe_click(placed.marker, placed.refined)} on {record.current_id}. "
                  "Ask about it, score it or edit it.")
        view = self.page.view(session, note or placed.note, images=False, status=status)
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

        remove = listen(self.assistant.registry, lambda n, f, m: events.put(views.status_text(*progress_line(n, f, m))))
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
            self.store.save(session)
        status = "Removed the last marker." if removed else "There is no marker to remove."
        return self.page.view(session, note, images=False, status=status)

    def clear_markers(self, session_id: str | None) -> View:
        session, note = self.page.session(session_id)
        with self.page.locked(session.id):
            session.clear_markers()
            self.store.save(session)
        return self.page.view(session, note, images=False, status="Markers cleared.")

    # -- answers (see chat.ui.turns) ------------------------------------------------------------
    def stop(self, session_id: str | None) -> View:
        return self.turns.stop(session_id)

    def turn(self, session_id: str | None, text: str, *, action: str | None = None, arguments: dict | None = None,
             files=()) -> Iterator[View]:
        """One answer now (no queue): for tests and callers that manage order themselves."""
        yield from self.turns.turn(session_id, text, action=action, arguments=arguments, files=files)

    def send(self, session_id: str | None, message: dict | str | None) -> View:
        """The chat box on the page: queue the message (images dropped in are added first, alone: at once).
        The page then calls :meth:`run_queue`."""
        session, note = self.page.session(session_id)
        text, files = _message(message)
        if not text.strip() and files:
            view = self.upload(session.id, files)
            view.clear_input = True
            return view
        if not text.strip():
            return View(session_id=session.id)  # an empty box: nothing to send
        view = self.turns.submit(session.id, Pending(text, files=list(files)))
        view.warnings += [note] if note else []
        return view

    def run_queue(self, session_id: str | None) -> Iterator[View]:
        if not session_id:
            yield View()
            return
        yield from self.turns.run(session_id)

    def chat(self, session_id: str | None, message: dict | str | None) -> Iterator[View]:
        """The chat box in one call (the API): images dropped in are added first, then the text is answered."""
        text, files = _message(message)
        if not text.strip() and files:
            view = self.upload(session_id, files)
            view.clear_input = True
            yield view
            return
        yield from self.turns.send(session_id, Pending(text, files=list(files)))

    def ask(self, session_id: str | None, question: str) -> Iterator[View]:
        yield from self.turns.send(session_id, Pending(clean_text(question)))

    def regenerate(self, session_id: str | None) -> Iterator[View]:
        session, _ = self.page.session(session_id)
        if not any(m.role == "user" for m in session.messages) and not self.page.running.waiting(session.id):
            raise UserError("There is nothing to regenerate yet; ask something first.")
        yield from self.turns.send(session.id, Pending("", regenerate=True))

    # -- the tool tabs ------------------------------------------------------------------------
    def _tool(self, session_id, tool: str, args: dict, tab: str, note: str | None = None) -> Iterator[View]:
        args = {k: v for k, v in args.items() if v is not None}
        yield from self.turns.send(session_id, Pending(forms.echo(tool, args), action=tool, arguments=args, tab=tab,
                                                       note=note))

    def score(self, session_id: str | None, labels: str, model: str = "clip") -> Iterator[View]:
        if model not in SCORE_MODELS:
            raise UserError(f"Unknown scoring model '{model}'; choose clip or siglip.")
        parsed = parse_labels(labels)
        if len(parsed) > self.page.limits.max_labels:
            raise UserError(f"{len(parsed)} labels given; at most {self.page.limits.max_labels} can be scored at once.")
        note = None
        if len(parsed) == 1 and model == "clip":
            note = ("With one label CLIP always gives 1.00: its scores are shares among the labels given. "
                    "Add other labels to compare, or use SigLIP, which scores each label on its own.")
        yield from self._tool(session_id, "score", {"labels": parsed, "model": model}, "score", note)

    def som(self, session_id: str | None) -> Iterator[View]:
        yield from self._tool(session_id, "som", {}, "edit")

    def _diffusion_options(self, steps, seed, guidance=None) -> dict:
        from chat.config import MAX_STEPS

        options = {"steps": forms.parse_steps(steps, MAX_STEPS), "seed": forms.parse_seed(seed)}
        if guidance is not None:
            options["guidance_scale"] = forms.parse_guidance(guidance)
        return options

    def edit(self, session_id: str | None, instruction: str, steps=None, seed=None, guidance=None) -> Iterator[View]:
        instruction = forms.words(instruction)
        if not instruction:
            raise UserError("Type an edit instruction, e.g. 'make it snowy'.")
        args = {"instruction": instruction, **self._diffusion_options(steps, seed, guidance)}
        yield from self._tool(session_id, "edit", args, "edit")

    def remove(self, session_id: str | None, target: str = "", steps=None, seed=None) -> Iterator[View]:
        """Remove the marked object; ``target`` says what it is (e.g. 'the dog'), which steers the fill."""
        target = forms.words(target)
        args = {"target": target or None, **self._diffusion_options(steps, seed)}
        yield from self._tool(session_id, "remove", args, "edit")

    def generate(self, session_id: str | None, prompt: str, sketch=None, seed=None, size: str = "512x512",
                 steps=None) -> Iterator[View]:
        """Generate: a new image from the prompt; with a drawing on the sketch pad the drawing is kept as an
        image of its own and conditions the picture (ControlNet scribble). The chat line is the equivalent
        slash command, so Regenerate repeats it: the same picture when a seed is given, another take (a new
        random seed) when the seed box is empty; the trace shows every seed used."""
        from chat.ui.sketch import sketch_drawing

        prompt = forms.words(prompt)
        if not prompt:
            raise UserError("Describe the picture to make, e.g. 'a cat on a sofa'.")
        options = self._diffusion_options(steps, seed)
        drawing = sketch_drawing(sketch)
        if drawing is None:
            (width, height), note = forms.parse_size(size)
            yield from self._tool(session_id, "generate", {"prompt": prompt, "width": width, "height": height,
                                                            **options}, "generate", note)
            return
        session, note = self.page.session(session_id)
        with self.page.locked(session.id):
            record = session.add_image(drawing, name="sketch", limit=self.page.limits.max_images_per_session)
            self.store.save(session)
        yield from self._tool(session.id, "sketch", {"prompt": prompt, "image": record.id, **options}, "generate")


def _message(message) -> tuple[str, list]:
    if isinstance(message, dict):
        return clean_text(message.get("text")), list(message.get("files") or [])
    return clean_text(message), []


def _replace_last(session: Session, record, marker) -> None:
    """The image's last marker becomes ``marker`` (a SAM object refined by another click)."""
    replace = getattr(session, "replace_marker", None)
    if callable(replace):
        replace(marker, record.id)
    else:  # a session without the method
        record.markers[-1] = marker
