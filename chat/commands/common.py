"""Helpers shared by the CLI verbs: common flags, argument types, image loading, output."""

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


def size(text: str) -> tuple[int, int]:
    """argparse type for ``WxH``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size; write it as WIDTHxHEIGHT, e.g. 512x512") from None
    if not (8 <= w <= 4096 and 8 <= h <= 4096):
        raise argparse.ArgumentTypeError(f"size {w}x{h} is out of range; each side must be 8..4096")
    return w, h


def open_image(path: str, config=None):
    """Open an image file for a verb; any problem becomes a UserError with one clear sentence."""
    from chat.imageio import load_image_file

    return load_image_file(path, config.limits if config is not None else None)


def load(args):
    """The validated config named by --config / $MMCHAT_CONFIG."""
    from chat.config import load_config

    return load_config(getattr(args, "config", None))


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
    print(f"[{name}] {message}", file=sys.stderr, flush=True)
