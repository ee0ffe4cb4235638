"""``mmchat edit IMAGE INSTRUCTION``: instruct-pix2pix on the whole image, or inpainting / object removal
inside the region given by ``--point``s (circles, or a SAM object) or by a ``--mask`` file."""

from __future__ import annotations

import sys

from chat.commands.common import add_common, add_negative, emit, load, open_image, place, point, save_image


def register(sub) -> None:
    p = sub.add_parser(
        "edit", help="edit an image by instruction (pix2pix), or repaint/remove what is at the clicked points",
        description="Without --point or --mask, change the whole image as instructed (instruct-pix2pix, e.g. "
                    "'make it winter'). With --point X,Y, repaint only the circles around the points (radius "
                    "tools.click_radius; with tools.click_region: sam, the object under the points) with "
                    "INSTRUCTION as the prompt; --mask MASK.png gives the region as an image instead (white = "
                    "edit). With --remove as well, erase what is there and fill in background (INSTRUCTION names "
                    "the object, e.g. 'the dog'). The output keeps the input's size; the seed is printed so a "
                    "result can be reproduced.",
    )
    p.add_argument("image", help="image file")
    p.add_argument("instruction", help="what to change, e.g. 'make it winter' (or what to paint/remove at the points)")
    p.add_argument("--point", type=point, action="append", default=[], metavar="X,Y",
                   help="repaint the region around this pixel (repeat for several)")
    add_negative(p)
    p.add_argument("--mask", metavar="MASK.png",
                   help="repaint where this image (the size of IMAGE) is white; black is kept")
    p.add_argument("--remove", action="store_true", help="remove the object at the points instead of repainting")
    p.add_argument("--steps", type=int, metavar="N", help="denoising steps, 1..150 (default tools.edit_steps)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed to reproduce a result (default: random)")
    p.add_argument("--guidance", type=float, metavar="G",
                   help="how strongly to follow the instruction, 0..50 (default tools.guidance_scale, 7.5)")
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


def mask_file(path: str, image, config):
    """The region a mask image marks (white = edit) as a bool array, checked against the image."""
    import numpy as np

    from chat.errors import UserError

    mask_image = open_image(path, config)
    if mask_image.size != image.size:
        raise UserError(f"--mask {path} is {mask_image.width}x{mask_image.height} but the image is "
                        f"{image.width}x{image.height}; they must match.")
    mask = np.asarray(mask_image.convert("L")) > 127
    if not mask.any():
        raise UserError(f"--mask {path} has no white pixels; paint the region to edit white.")
    return mask


def run(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import stderr_progress
    from chat.errors import UserError
    from tools.edit import EditInput, RemoveInput, edit_image, inpaint, mask_from_markers, remove_object

    config = load(args)
    tools = config.tools
    if args.mask and (args.point or args.negative):
        raise UserError("Give the region either as --point X,Y or as --mask MASK.png, not both.")
    if args.remove:
        if not (args.point or args.mask):
            raise UserError("--remove needs at least one --point X,Y (or a --mask) on the object to remove.")
        request = validated(RemoveInput, target=args.instruction, steps=args.steps, seed=args.seed)
    else:
        request = validated(EditInput, instruction=args.instruction, steps=args.steps, seed=args.seed)
    guidance = tools.guidance_scale if args.guidance is None else args.guidance
    if not 0.0 <= guidance <= 50.0:  # NaN fails too
        raise UserError(f"--guidance must be between 0 and 50, not {args.guidance}.")
    steps = request.steps or tools.edit_steps
    image = open_image(args.image, config)
    registry = Assistant(config, progress=stderr_progress).registry
    mask = None
    if args.mask:
        mask = mask_file(args.mask, image, config)
    elif args.point or args.negative:
        shape = "contour" if tools.click_region == "sam" else "circle"  # a SAM object is repainted by its mask
        placed = place(args, config, image, shape, registry=registry)
        mask = mask_from_markers(placed.markers, image.size, placed.contour_masks)
    diffusion = {"steps": steps, "seed": request.seed, "guidance_scale": guidance}
    if args.remove:
        mode = "remove"
        result = remove_object(registry, image, mask, target=request.target, dilate=tools.mask_dilate,
                               feather=tools.mask_feather, progress=step_printer("remove"), **diffusion)
    elif mask is not None:
        mode = "inpaint"
        result = inpaint(registry, image, mask, request.instruction, dilate=tools.mask_dilate,
                         feather=tools.mask_feather, progress=step_printer("inpaint"), **diffusion)
    else:
        mode = "pix2pix"
        result = edit_image(registry, image, request.instruction, image_guidance_scale=tools.image_guidance_scale,
                            progress=step_printer("pix2pix"), **diffusion)
    out = save_image(result.image, args.output)
    emit(args, {"image": out, "seed": result.seed, "mode": mode, "size": list(result.image.size),
                "guidance": guidance}, f"{out} ({mode}, seed {result.seed}, guidance {guidance:g})")
    return 0
