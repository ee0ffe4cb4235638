"""``mmchat ask IMAGE QUESTION``: one question about an image, with optional visual prompts."""

from __future__ import annotations

import sys

from chat.commands.common import add_common, emit, load, open_image, point


def register(sub) -> None:
    p = sub.add_parser("ask", help="ask the local multimodal model about an image",
                       description="Ask one question about an image. Each --point X,Y is drawn as a visual prompt "
                                   "(a red circle by default) before the model sees the image. The answer streams "
                                   "to stdout.")
    p.add_argument("image", help="image file")
    p.add_argument("question", help="the question, e.g. 'What is in the red circle?'")
    p.add_argument("--point", type=point, action="append", default=[], metavar="X,Y", help="mark this pixel")
    p.add_argument("--shape", default="circle", choices=["circle", "ellipse", "box", "arrow", "cross", "point"])
    p.add_argument("--color", default="red", choices=["red", "green", "blue", "yellow", "purple"])
    p.add_argument("--max-new-tokens", type=int, help="answer length limit")
    p.add_argument("--temperature", type=float, help="0 = greedy (default)")
    p.add_argument("--seed", type=int, help="sampling seed")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pydantic import ValidationError

    from chat.assistant import Assistant
    from chat.commands.common import stderr_progress
    from chat.errors import UserError
    from chat.mllm import Turn

    config = load(args)
    image = open_image(args.image, config)
    if not args.question.strip():
        raise UserError("The question is empty; type what you want to know about the image.")
    if args.point:
        from tools.markers import Marker, draw_markers

        radius = config.tools.click_radius
        markers = [Marker(x=x, y=y, shape=args.shape, color=args.color, radius=radius) for x, y in args.point]
        image = draw_markers(image, markers)
    assistant = Assistant(config, progress=stderr_progress)
    try:
        options = assistant.generation_options(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}.") from None
    turns = [Turn("user", args.question, [image])]
    pieces = []
    for piece in assistant.mllm.stream(turns, options):
        pieces.append(piece)
        if not args.json:
            sys.stdout.write(piece)
            sys.stdout.flush()
    answer = "".join(pieces).strip()
    if args.json:
        emit(args, {"answer": answer})
    else:
        sys.stdout.write("\n")
    return 0
