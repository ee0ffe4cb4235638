"""``mmchat caption IMAGE [--question Q]``: a BLIP caption, or a BLIP VQA answer to a question."""

from __future__ import annotations

from chat.commands.common import add_common, emit, load, open_image


def register(sub) -> None:
    p = sub.add_parser(
        "caption", help="caption an image (BLIP), or answer a short question about it (BLIP VQA)",
        description="Describe an image in one sentence with BLIP. With --question, answer it in a word or two "
                    "instead (BLIP VQA); with --prefix, the caption continues that text.",
    )
    p.add_argument("image", help="image file")
    p.add_argument("--question", metavar="Q", help="answer this question instead of captioning, e.g. 'what color?'")
    p.add_argument("--prefix", metavar="TEXT", help="start of the caption to continue, e.g. 'a painting of'")
    p.add_argument("--max-new-tokens", type=int, default=30, metavar="N", help="caption length limit (default 30)")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import run_tool, stderr_progress, tool_session
    from chat.errors import UserError
    from chat.toolbox import ToolContext

    config = load(args)
    if args.question is not None and args.prefix is not None:
        raise UserError("--prefix applies to captions only; drop it when asking a --question.")
    if not 1 <= args.max_new_tokens <= 512:
        raise UserError(f"--max-new-tokens must be between 1 and 512, not {args.max_new_tokens}.")
    image = open_image(args.image, config)
    ctx = ToolContext(Assistant(config, progress=stderr_progress), tool_session(image),
                      settings={"max_new_tokens": args.max_new_tokens})
    names = {"question": "", "prefix": ""}
    if args.question is not None:
        out = run_tool("vqa", {"question": args.question}, ctx, names)
        emit(args, {"answer": out.summary}, out.summary)
    else:
        out = run_tool("caption", {"prefix": args.prefix}, ctx, names)
        emit(args, {"caption": out.summary}, out.summary)
    return 0
