"""``mmchat edit IMAGE INSTRUCTION``: instruct-pix2pix on the whole image, or inpainting / object removal
inside the region given by ``--point``s (circles, or a SAM object) or by a ``--mask`` file."""

from __future__ import annotations

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
    from chat.commands.common import run_tool, stderr_progress, step_printer, tool_session, with_tools
    from chat.errors import UserError
    from chat.toolbox import ToolContext
    from tools.markers import Marker

    config = load(args)
    if args.mask and (args.point or args.negative):
        raise UserError("Give the region either as --point X,Y or as --mask MASK.png, not both.")
    if args.remove and not (args.point or args.mask):
        raise UserError("--remove needs at least one --point X,Y (or a --mask) on the object to remove.")
    image = open_image(args.image, config)
    assistant = Assistant(config, progress=stderr_progress)
    markers, masks = [], None
    if args.mask:  # the white region, as a contour marker whose mask it is
        mask = mask_file(args.mask, image, config)
        ys, xs = mask.nonzero()
        markers, masks = [Marker(x=int(xs[0]), y=int(ys[0]), shape="contour")], {0: mask}
    elif args.point or args.negative:
        shape = "contour" if config.tools.click_region == "sam" else "circle"  # a SAM object is repainted by its mask
        placed = place(args, config, image, shape, registry=assistant.registry)
        markers, masks = placed.markers, placed.contour_masks
    mode = "remove" if args.remove else "inpaint" if markers else "pix2pix"
    names = {"instruction": "", "target": "", "steps": "--steps", "seed": "--seed", "guidance_scale": "--guidance"}
    if args.remove:  # remove takes the configured guidance
        config = with_tools(config, names, guidance_scale=args.guidance)
    ctx = ToolContext(assistant, tool_session(image, markers), step_printer(mode), config=config, masks=masks)
    if args.remove:
        out = run_tool("remove", {"target": args.instruction, "steps": args.steps, "seed": args.seed}, ctx, names)
    else:
        out = run_tool("edit", {"instruction": args.instruction, "steps": args.steps, "seed": args.seed,
                                "guidance_scale": args.guidance}, ctx, names)
    result = ctx.session.pixels(out.new_versions[0])
    guidance = out.arguments.get("guidance_scale", config.tools.guidance_scale)
    seed = out.arguments["seed"]
    path = save_image(result, args.output)
    emit(args, {"image": path, "seed": seed, "mode": mode, "size": list(result.size), "guidance": guidance},
         f"{path} ({mode}, seed {seed}, guidance {guidance:g})")
    return 0
