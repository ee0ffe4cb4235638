"""``mmchat eval-router [FILE]``: how well the chat model routes requests to tools (:mod:`chat.eval_router`)."""

from __future__ import annotations

import sys

from chat.commands.common import add_common, emit, load


def register(sub) -> None:
    p = sub.add_parser(
        "eval-router", help="routing accuracy: the tool the chat model picks for each request, and its arguments",
        description="FILE is a JSONL of requests, one per line: {\"text\": ..., \"tool\": ... (or \"answer\"), "
                    "\"args\": {key arguments}, \"also\": [other right tools], \"lang\": \"en\", \"kind\": "
                    "\"tool\"|\"plain\"|\"ambiguous\", \"markers\": N}; default: the bundled set (162 requests, "
                    "English and Japanese, every tool). Each request goes through the router on a new session "
                    "holding one photo, and stops at the router's first step (no tool runs). Reports tool "
                    "accuracy (per language and kind), argument accuracy, a confusion table and the time per "
                    "decision. Uses the configured chat model: the local one, or remote_llm's server.",
    )
    p.add_argument("file", metavar="FILE", nargs="?", default=None,
                   help="JSONL of requests (default: the bundled chat/data/router_requests.jsonl)")
    p.add_argument("--limit", type=int, metavar="N", default=None, help="only the first N requests")
    add_common(p)
    p.set_defaults(func=run)


def _progress(done: int, total: int, message: str) -> None:
    print(f"[eval] {done}/{total} {message}", file=sys.stderr, flush=True)


def run(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import stderr_progress
    from chat.errors import UserError
    from chat.eval_router import evaluate, read_requests, router_decide

    config = load(args)
    requests = read_requests(args.file)  # a bad file fails before any model loads
    if args.limit is not None:
        if args.limit < 1:
            raise UserError(f"--limit must be at least 1, not {args.limit}.")
        requests = requests[:args.limit]
    assistant = Assistant(config, progress=stderr_progress)
    router = assistant.router
    model = getattr(router.chat_model, "model_name", None) or type(router.chat_model).__name__
    table = evaluate(router_decide(router), requests, model=str(model), progress=_progress)
    emit(args, table.to_dict(), table.markdown())
    return 0
