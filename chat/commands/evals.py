"""``mmchat eval-markers DIR`` and ``mmchat eval-classify DIR``: the evaluation harnesses."""

from __future__ import annotations

import sys

from chat.commands.common import add_common, emit, load


def register(sub) -> None:
    m = sub.add_parser(
        "eval-markers", help="marker ablation: zero-shot accuracy per marker shape x colour",
        description="DIR/data.jsonl holds one example per line: "
                    "{\"image\": \"rel/path.png\", \"box\": [x0, y0, x1, y1], \"labels\": [...], \"answer\": \"...\"}. "
                    "For each shape x colour a marker is drawn around the box and the answer must score highest; "
                    "variants: no marker, crop, red ellipse with the outside blurred or greyed.",
    )
    m.add_argument("dir", metavar="DIR", help="dataset folder with data.jsonl")
    m.add_argument("--model", default="clip", choices=["clip", "siglip"], help="scoring model (default clip)")
    add_common(m)
    m.set_defaults(func=run_markers)

    c = sub.add_parser(
        "eval-classify", help="classification accuracy: CLIP zero-shot vs LLM<->CLIP",
        description="DIR/<label>/*.png: images labelled by their subfolder. Compares CLIP zero-shot over all folder "
                    "labels with the LLM<->CLIP coarse-to-fine loop (correct when its label equals the folder name).",
    )
    c.add_argument("dir", metavar="DIR", help="dataset folder with one subfolder of images per label")
    c.add_argument("--rounds", type=int, metavar="N", help="propose-and-score rounds, 1..10 (default from the config)")
    add_common(c)
    c.set_defaults(func=run_classify)


def _progress(done: int, total: int, message: str) -> None:
    print(f"[eval] {done}/{total} {message}", file=sys.stderr, flush=True)


def run_markers(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import stderr_progress
    from tools.evaluation import eval_markers, read_marker_examples

    config = load(args)
    read_marker_examples(args.dir)  # bad datasets fail before any model loads
    assistant = Assistant(config, progress=stderr_progress)
    table = eval_markers(
        assistant.registry, args.dir, model=args.model, cache=assistant.embedding_cache,
        templates=config.tools.prompt_templates, progress=_progress,
    )
    emit(args, table.to_dict(), table.markdown())
    return 0


def run_classify(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import checked, stderr_progress
    from chat.toolbox.chat_model import ToolChat
    from tools.evaluation import eval_classify, read_classify_folders

    config = load(args)
    rounds = checked("classify", {"rounds": args.rounds}, config, {"rounds": "--rounds"}).rounds
    read_classify_folders(args.dir)
    assistant = Assistant(config, progress=stderr_progress)
    table = eval_classify(
        assistant.registry, ToolChat(assistant.chat_model), args.dir, rounds=rounds,
        cache=assistant.embedding_cache, templates=config.tools.prompt_templates,
        progress=_progress,
    )
    emit(args, table.to_dict(), table.markdown())
    return 0
