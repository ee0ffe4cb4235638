"""Helpers shared by the CLI verbs: common flags, argument types, image loading, output, and running a tool of
the table (:data:`chat.toolbox.TOOLS`) the way the chat runs it, on a one-image session."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from chat.errors import UserError


def add_common(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    parser.add_argument("--config", metavar="PATH", help="YAML config (default: $MMCHAT_CONFIG or configs/default.yaml)")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")


def point(text: str) -> tuple[int, int]:
    """argparse type for ``X,Y`` pixel coordinates."""
    try:
        x, y = (int(round(float(v))) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a point; write it as X,Y in pixels, e.g. 40,60") from None
    return x, y


def add_negative(parser: argparse.ArgumentParser) -> None:
    """``--negative X,Y``: a click on what is not the object (SAM regions only)."""
    parser.add_argument("--negative", type=point, action="append", default=[], metavar="X,Y",
                        help="a pixel that is NOT part of the object: with tools.click_region: sam in the config, "
                             "all --point and --negative clicks select one object, segmented by SAM, and the "
                             "marker is fitted around it")


def place(args, config, image, shape: str = "circle", color: str = "red", radius: int | None = None,
          registry=None):
    """The markers for ``args.point`` / ``args.negative`` (circles, or one SAM object when configured);
    a note about a fallback goes to stderr."""
    from chat.clicks import place_points

    if registry is None and config is not None and config.tools.click_region == "sam":
        from chat.registry import ModelRegistry

        registry = ModelRegistry(config, progress=stderr_progress)
    placed = place_points(config, registry, image, args.point, getattr(args, "negative", []), shape, color, radius)
    if placed.note:
        print(f"mmchat: note: {placed.note}", file=sys.stderr, flush=True)
    return placed


def size(text: str) -> tuple[int, int]:
    """argparse type for ``WxH`` (:func:`tools.diffusion.parse_size`; the tool's schema checks the range)."""
    from tools.diffusion import parse_size

    try:
        return parse_size(text)
    except UserError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size; write it as WIDTHxHEIGHT, e.g. 512x512") from None


def tool_session(image=None, markers=()):
    """A one-image session (``img1`` is ``image``) with ``markers`` on it: what a tool of the table works on
    (without an image: an empty one, where generate adds its picture)."""
    from chat.session import Session

    session = Session()
    if image is not None:
        session.add_image(image)
    for marker in markers:
        session.add_marker(marker)
    return session


def with_tools(config, names: dict[str, str], **settings):
    """``config`` with these ``tools`` settings given by flags (None: not given), checked by the config's schema:
    ``with_tools(config, {"guidance_scale": "--guidance"}, guidance_scale=9.0)``."""
    from pydantic import ValidationError

    from chat.errors import explain

    given = {k: v for k, v in settings.items() if v not in (None, [])}
    if not given:
        return config
    try:
        tools = type(config.tools).model_validate(config.tools.model_dump() | given)
    except ValidationError as exc:
        raise UserError(explain(exc, names=names, schema=type(config.tools))) from None
    return config.model_copy(update={"tools": tools})


def checked(name: str, arguments: dict[str, Any], config, names: dict[str, str]):
    """``arguments`` (None values left out) of the table's tool ``name``, checked once by its schema; a problem is
    a UserError naming the flag. ``names``: field -> the flag a person typed for it (``{"steps": "--steps"}``;
    ``""`` for a positional argument, whose own messages name it)."""
    from pydantic import ValidationError

    from chat.errors import explain
    from chat.toolbox import TOOLS

    spec = TOOLS[name]
    try:
        return spec.validate({k: v for k, v in arguments.items() if v is not None}, config)
    except ValidationError as exc:
        raise UserError(explain(exc, names=names, schema=spec.schema)) from None


def run_tool(name: str, arguments: dict[str, Any], ctx, names: dict[str, str]):
    """The table's tool ``name`` run as the chat runs it, on ``ctx`` (:func:`tool_session`): its arguments
    :func:`checked`, then its ``run``; its errors are raised (exit 2)."""
    from chat.toolbox import TOOLS

    return TOOLS[name].run(ctx, checked(name, arguments, ctx.config, names))


def step_printer(label: str):
    """``progress(step, total)`` that prints one line per denoising step on stderr."""
    def progress(step: int, total: int) -> None:
        print(f"[{label}] step {step}/{total}", file=sys.stderr, flush=True)

    return progress


def open_image(path: str, config=None):
    """Open an image file for a verb; any problem becomes a UserError with one clear sentence."""
    from tools.imageio import load_image_file

    return load_image_file(path, config.limits if config is not None else None)


def load(args):
    """The validated config named by --config / $MMCHAT_CONFIG."""
    from chat.config import load_config

    return load_config(getattr(args, "config", None))


def optional_config(args):
    """The config when one is named (--config or $MMCHAT_CONFIG), else None: for verbs that work without one."""
    import os

    if getattr(args, "config", None) or os.environ.get("MMCHAT_CONFIG"):
        return load(args)
    return None


def save_image(image, path: str) -> str:
    try:
        image.save(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"Cannot write {path}: {exc}") from None
    return path


def emit(args, payload: dict[str, Any], text: str | None = None) -> None:
    """Print the result: JSON with --json, else the human text (or the JSON if no text is given)."""
    if getattr(args, "json", False) or text is None:
        print(json.dumps(payload, ensure_ascii=False))
    else:
        print(text)
    sys.stdout.flush()


def stderr_progress(name: str, fraction: float, message: str) -> None:
    """Model loading on stderr. A load reports 0.0, fractions in between, then 1.0: on a terminal the fractions
    redraw one line as a bar, which the final line replaces; elsewhere (a pipe, a log) only the first and last
    lines of each load are printed, like every other event (fraction 0 or 1)."""
    stream = sys.stderr
    terminal = getattr(stream, "isatty", lambda: False)()
    if 0.0 < fraction < 1.0:
        if terminal:
            stream.write("\r" + progress_line(name, fraction, message) + "\x1b[K")
            stream.flush()
        return
    print(("\r\x1b[K" if terminal else "") + f"[{name}] {message}", file=stream, flush=True)


def progress_line(name: str, fraction: float, message: str, width: int | None = None) -> str:
    """``[clip] ########------------  40% loading clip: the weights``, cut to the terminal's width."""
    import shutil

    width = width or shutil.get_terminal_size((80, 24)).columns
    filled = int(round(fraction * 20))
    line = f"[{name}] {'#' * filled}{'-' * (20 - filled)} {fraction * 100:3.0f}% {message}"
    return line[: max(width - 1, 10)]
