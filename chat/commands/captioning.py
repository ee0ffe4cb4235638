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
    from chat.commands.common import stderr_progress
    from chat.commands.editing import validated
    from tools.caption import CaptionInput, VqaInput, answer_question, caption

    from chat.errors import UserError

    config = load(args)
    if args.question is not None and args.prefix is not None:
        raise UserError("--prefix applies to captions only; drop it when asking a --question.")
    if not 1 <= args.max_new_tokens <= 512:
        raise UserError(f"--max-new-tokens must be between 1 and 512, not {args.max_new_tokens}.")
    if args.question is not None:
        request = validated(VqaInput, question=args.question)
    else:
        request = validated(CaptionInput, prefix=args.prefix)
    image = open_image(args.image, config)
    registry = Assistant(config, progress=stderr_progress).registry
    if args.question is not None:
        answer = answer_question(registry, image, request.question)
        emit(args, {"answer": answer}, answer)
    else:
        text = caption(registry, image, prefix=request.prefix, max_new_tokens=args.max_new_tokens,
                       prompt=config.tools.caption_prompt)
        emit(args, {"caption": text}, text)
    return 0
