"""``mmchat build-tiny [DIR]``: build every tiny offline checkpoint (no network needed)."""

from __future__ import annotations

import time
from pathlib import Path

from chat.commands.common import add_common, emit, optional_config


def register(sub) -> None:
    p = sub.add_parser("build-tiny", help="build the tiny random-weight checkpoints of every model family",
                       description="Build tiny, randomly initialised checkpoints of every model family (with locally "
                                   "trained tokenizers) so the app and tests run offline. DIR defaults to "
                                   "$MMCHAT_TINY_DIR, else the tiny_dir of the --config (or $MMCHAT_CONFIG), "
                                   "else ~/.cache/mmchat/tiny.")
    p.add_argument("dir", nargs="?", help="output directory")
    p.add_argument("--family", action="append", help="build only this family (repeatable)")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from chat import tiny
    from chat.errors import UserError

    directory = Path(args.dir).expanduser() if args.dir else default_dir(args)
    unknown = sorted(set(args.family or []) - set(tiny.FAMILIES))
    if unknown:
        raise UserError(f"Unknown family {', '.join(unknown)}; choose from {', '.join(tiny.FAMILIES)}.")
    start = time.perf_counter()
    built = tiny.build(directory, args.family, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    seconds = time.perf_counter() - start
    emit(args, {"dir": str(directory), "models": built, "seconds": round(seconds, 2)},
         f"Built {len(built)} tiny checkpoints in {directory} ({seconds:.1f} s): {', '.join(built)}")
    return 0


def default_dir(args) -> Path:
    """$MMCHAT_TINY_DIR, else the config's tiny_dir (when a config is named), else ~/.cache/mmchat/tiny."""
    import os

    config = optional_config(args)  # only with --config or $MMCHAT_CONFIG: building needs no config
    tiny = config.tiny_path if config is not None else None  # tiny_path honours $MMCHAT_TINY_DIR first
    return tiny or Path(os.environ.get("MMCHAT_TINY_DIR") or "~/.cache/mmchat/tiny").expanduser()
