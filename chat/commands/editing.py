"""``mmchat edit IMAGE INSTRUCTION``: instruct-pix2pix on the whole image, or inpainting / object removal
inside circles around ``--point``s."""

from __future__ import annotations

import sys

from chat.commands.common import add_common, emit, load, open_image, point, save_image


def register(sub) -> None:
    p = sub.add_parser(
        "edit", help="edit an image by instruction (pix2pix), or repaint/remove what is at the clicked points",
        description="Without --point, change the whole image as instructed (instruct-pix2pix, e.g. 'make it "
                    "winter'). With --point X,Y, repaint only the circles around the points (radius "
                    "tools.click_radius) with INSTRUCTION as the prompt; with --remove as well, erase what is "
                    "there and fill in background (INSTRUCTION names the object, e.g. 'the dog'). The output "
                    "keeps the input's size; the seed is printed so a result can be reproduced.",
    )
    p.add_argument("image", help="image file")
    p.add_argument("instruction", help="what to change, e.g. 'make it winter' (or what to paint/remove at the points)")
    p.add_argument("--point", type=point, action="append", default=[], metavar="X,Y",
                   help="repaint the region around this pixel (repeat for several)")
    p.add_argument("--remove", action="store_true", help="remove the object at the points instead of repainting")
    p.add_argument("--steps", type=int, metavar="N", help="denoising steps, 1..150 (default tools.edit_steps)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed to reproduce a result (default: random)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the edited image")
    add_common(p)
    p.set_defaults(func=run)


def validated(schema, **values):
    """``schema(**values)`` (None values left out), or a UserError naming the flag and the problem."""
    from pydantic import ValidationError

    from chat.errors import UserError

    try:
        return schema(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "arguments"
        message = err["msg"].removeprefix("Value error, ").rstrip(".")
        if field in ("instruction", "prompt", "question", "target", "prefix"):  # positional or self-naming
            raise UserError(message[0].upper() + message[1:] + ".") from None
        message = message[0].lower() + message[1:]
        raise UserError(f"--{field.replace('_', '-')}: {message}.") from None


def step_printer(label: str):
    """``progress(step, total)`` that prints one line per denoising step on stderr."""
    def progress(step: int, total: int) -> None:
        print(f"[{label}] step {step}/{total}", file=sys.stderr, flush=True)

    return progress


def circle_markers(points, image, radius: int):
    from chat.errors import UserError
    from tools.markers import Marker

    markers = []
    for x, y in points:
        if not (0 <= x < image.width and 0 <= y < image.height):
            raise UserError(f"--point {x},{y} is outside the {image.width}x{image.height} image.")
        markers.append(Marker(x=x, y=y, shape="circle", color="red", radius=radius))
    return markers


def run(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import stderr_progress
    from chat.errors import UserError
    from tools.edit import EditInput, RemoveInput, edit_image, inpaint, mask_from_markers, remove_object

    config = load(args)
    tools = config.tools
    if args.remove:
        if not args.point:
            raise UserError("--remove needs at least one --point X,Y on the object to remove.")
        request = validated(RemoveInput, target=args.instruction, steps=args.steps, seed=args.seed)
    else:
        request = validated(EditInput, instruction=args.instruction, steps=args.steps, seed=args.seed)
    steps = request.steps or tools.edit_steps
    image = open_image(args.image, config)
    mask = None
    if args.point:
        mask = mask_from_markers(circle_markers(args.point, image, tools.click_radius), image.size)
    registry = Assistant(config, progress=stderr_progress).registry
    if args.remove:
        mode = "remove"
        result = remove_object(
            registry, image, mask, target=request.target, steps=steps, seed=request.seed,
            guidance_scale=tools.guidance_scale, dilate=tools.mask_dilate, feather=tools.mask_feather,
            progress=step_printer("remove"),
        )
    elif mask is not None:
        mode = "inpaint"
        result = inpaint(
            registry, image, mask, request.instruction, steps=steps, seed=request.seed,
            guidance_scale=tools.guidance_scale, dilate=tools.mask_dilate, feather=tools.mask_feather,
            progress=step_printer("inpaint"),
        )
    else:
        mode = "pix2pix"
        result = edit_image(
            registry, image, request.instruction, steps=steps, seed=request.seed,
            guidance_scale=tools.guidance_scale, image_guidance_scale=tools.image_guidance_scale,
            progress=step_printer("pix2pix"),
        )
    out = save_image(result.image, args.output)
    emit(args, {"image": out, "seed": result.seed, "mode": mode, "size": list(result.image.size)},
         f"{out} ({mode}, seed {result.seed})")
    return 0
