"""``mmchat ask IMAGE QUESTION``: one question about an image, with optional visual prompts."""

from __future__ import annotations

import sys
from typing import Iterator

from chat.commands.common import add_common, add_negative, emit, load, open_image, place, point
from tools.markers import PROMPT_COLORS, SHAPES


def register(sub) -> None:
    p = sub.add_parser("ask", help="ask the local multimodal model about an image",
                       description="Ask one question about an image. Each --point X,Y is drawn as a visual prompt "
                                   "(a red circle by default) before the model sees the image; with "
                                   "tools.click_region: sam the points (and --negative ones) select one object and "
                                   "the marker is fitted around it. The answer streams to stdout.")
    p.add_argument("image", help="image file")
    p.add_argument("question", help="the question, e.g. 'What is in the red circle?'")
    p.add_argument("--point", type=point, action="append", default=[], metavar="X,Y", help="mark this pixel")
    add_negative(p)
    p.add_argument("--shape", default="circle", choices=SHAPES, help="marker shape (default circle)")
    p.add_argument("--color", default="red", choices=PROMPT_COLORS, help="marker colour (default red)")
    p.add_argument("--max-new-tokens", type=int, help="answer length limit")
    p.add_argument("--temperature", type=float, help="0 = greedy (default)")
    p.add_argument("--seed", type=int, help="sampling seed")
    p.add_argument("--grounded", metavar="OUT",
                   help="ground the answer: the things it mentions (listed by the chat model) are found in the image "
                        "and drawn in OUT, each in the colour of its number; the phrases and boxes are printed after "
                        "the answer (with --json: under 'grounded')")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pydantic import ValidationError

    from chat.assistant import Assistant
    from chat.commands.common import stderr_progress
    from chat.errors import UserError, explain
    from chat.mllm import GenerationOptions, Turn

    config = load(args)
    image = open_image(args.image, config)
    if not args.question.strip():
        raise UserError("The question is empty; type what you want to know about the image.")
    assistant = Assistant(config, progress=stderr_progress)
    if args.point or args.negative:
        from tools.markers import draw_markers

        placed = place(args, config, image, args.shape, args.color, registry=assistant.registry)
        image = draw_markers(image, placed.markers, masks=placed.contour_masks)
    try:
        options = assistant.generation_options(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed
        )
    except ValidationError as exc:
        flags = {name: "--" + name.replace("_", "-") for name in GenerationOptions.model_fields}
        raise UserError(explain(exc, names=flags, schema=GenerationOptions)) from None
    original = image
    turns = [Turn("user", args.question, [image])]
    pieces: list[str] = []
    stream = _recorded(assistant.mllm.stream(turns, options), pieces)
    if args.json:
        for _ in stream:
            pass
        payload = {"answer": "".join(pieces).strip()}
        if args.grounded:
            payload["grounded"] = _grounded(assistant, original, payload["answer"], args.grounded).to_json()
        emit(args, payload)
    else:
        for text in _trimmed(stream):
            sys.stdout.write(text)
            sys.stdout.flush()
        sys.stdout.write("\n")
        if args.grounded:
            grounded = _grounded(assistant, original, "".join(pieces).strip(), args.grounded)
            for number, item in enumerate(grounded.phrases, 1):
                where = f"box {','.join(map(str, item.region.bbox))}" if item.region else "not shown"
                print(f"[{number}] {item.phrase}: {where}")
            for note in grounded.notes:
                print(f"note: {note}")
    return 0


def _grounded(assistant, image, answer: str, out: str):
    """The answer grounded on the unmarked image, drawn into ``out``."""
    from chat.commands.common import save_image
    from chat.grounding_model import ground
    from tools.grounding.grounded import draw_grounded

    grounded = ground(assistant, image, answer)
    save_image(draw_grounded(image, grounded), out)
    return grounded


def _recorded(stream: Iterator[str], pieces: list[str]) -> Iterator[str]:
    for piece in stream:
        pieces.append(piece)
        yield piece


def _trimmed(stream: Iterator[str]) -> Iterator[str]:
    """The pieces as they come, without leading or trailing whitespace overall: what is streamed is exactly
    the answer that --json prints."""
    held, started = "", False
    for piece in stream:
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        body = piece.rstrip()
        if body:
            yield held + body
            held = piece[len(body):]
        else:
            held += piece
