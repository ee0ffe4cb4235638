"""The ``mmchat`` command line: one subcommand per verb, each in ``chat/commands/``.

Every user problem (bad argument, unreadable image, missing checkpoint) ends with exit code 2 and one
clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from chat.errors import UserError, describe

# Modules in chat/commands/ that each provide register(subparsers).
COMMAND_MODULES = ["serve", "build_tiny", "doctor", "pull", "ask", "visual", "scoring", "captioning", "editing", "evals",
                   "generate", "grounding", "mcp", "eval_router"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's own convention too)
        self.exit(2, f"mmchat: error: {message} (see 'mmchat --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mmchat",
        description="A local, private multimodal chat assistant: visual prompts, local LLaVA, vision tools.",
        epilog="Every verb takes --config PATH (or $MMCHAT_CONFIG); 'mmchat VERB --help' explains each verb.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"chat.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"chat.commands.{name}":
                continue  # verb not installed in this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.verb is None else 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"mmchat: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmchat: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - no bare tracebacks for users
        print(f"mmchat: {describe(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
