"""``mmchat edit IMAGE INSTRUCTION``: instruct-pix2pix on the whole image, or inpainting / object removal
inside the region given by ``--point``s (circles, or a SAM object), by a ``--mask`` file or by words
(``--target 'the cat'``, found in the image); ``mmchat remove IMAGE PHRASE``: remove what the phrase names."""

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
    p.add_argument("--target", metavar="PHRASE",
                   help="repaint only the region this phrase names, found in the image (e.g. 'the cat' with "
                        "INSTRUCTION 'a tiger'); instead of --point or --mask")
    add_choice(p)
    p.add_argument("--remove", action="store_true", help="remove the object at the points instead of repainting")
    p.add_argument("--steps", type=int, metavar="N", help="denoising steps, 1..150 (default tools.edit_steps)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed to reproduce a result (default: random)")
    p.add_argument("--guidance", type=float, metavar="G",
                   help="how strongly to follow the instruction, 0..50 (default tools.guidance_scale, 7.5)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the edited image")
    add_common(p)
    p.set_defaults(func=run)
    register_remove(sub)


def add_choice(parser) -> None:
    parser.add_argument("--choice", type=int, metavar="N",
                        help="when the phrase matches several places (numbered in OUT's .candidates.png), the one "
                             "to use")


def register_remove(sub) -> None:
    p = sub.add_parser(
        "remove", help="remove what a phrase names (found in the image) and fill in background",
        description="Find the region PHRASE names (SAM and Set-of-Mark candidates scored by CLIP with visual "
                    "prompts, as 'mmchat find' does), then erase it and fill in background (inpainting inside "
                    "the found region only; every pixel outside it is kept). When another place matches almost "
                    "as well, nothing is edited: the places are drawn numbered in OUT with '.candidates.png' and "
                    "the command exits 2 asking for --choice N.",
    )
    p.add_argument("image", help="image file")
    p.add_argument("phrase", help="what to remove, e.g. 'the dog' or 'the red car on the left'")
    add_choice(p)
    p.add_argument("--steps", type=int, metavar="N", help="denoising steps, 1..150 (default tools.edit_steps)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed to reproduce a result (default: random)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the edited image")
    add_common(p)
    p.set_defaults(func=run_remove)


def asked(out, output: str):
    """An ambiguous target: the numbered places written beside OUT, and the question as the error (exit 2)."""
    from pathlib import Path

    from chat.errors import UserError

    path = str(Path(output).with_suffix("")) + ".candidates.png"
    save_image(out.overlay, path)
    question = out.text.replace("(numbered on the image)", f"(numbered in {path})")
    raise UserError(question.replace("Say the number (or click on it and ask again).", "Run it again with --choice N."))


def run_remove(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import checked, run_tool, stderr_progress, step_printer, tool_session
    from chat.toolbox import ToolContext

    config = load(args)
    names = {"target": "", "steps": "--steps", "seed": "--seed", "choice": "--choice"}
    request = {"target": args.phrase, "steps": args.steps, "seed": args.seed, "choice": args.choice}
    checked("remove", request, config, names)  # before any model loads
    image = open_image(args.image, config)
    assistant = Assistant(config, progress=stderr_progress)
    ctx = ToolContext(assistant, tool_session(image), step_printer("remove"), config=config)
    out = run_tool("remove", request, ctx, names)
    return finish(args, out, ctx, "remove", config)


def finish(args, out, ctx, mode: str, config) -> int:
    """Write the new version (or, for an ambiguous target, the numbered places and the question)."""
    from chat.errors import UserError

    if out.error:
        raise UserError(out.error)
    if not out.new_versions:
        asked(out, args.output)
    result = ctx.session.pixels(out.new_versions[0])
    guidance = out.arguments.get("guidance_scale", config.tools.guidance_scale)
    seed = out.arguments["seed"]
    path = save_image(result, args.output)
    payload = {"image": path, "seed": seed, "mode": mode, "size": list(result.size), "guidance": guidance}
    where = ""
    if "bbox" in out.arguments:
        payload["bbox"] = out.arguments["bbox"]
        where = f", found at {','.join(map(str, out.arguments['bbox']))}"
    emit(args, payload, f"{path} ({mode}{where}, seed {seed}, guidance {guidance:g})")
    return 0


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
    if args.target is not None and (args.point or args.negative or args.mask or args.remove):
        raise UserError("--target names the region in words: give it instead of --point/--mask (to remove what "
                        "a phrase names, use 'mmchat remove IMAGE PHRASE').")
    if args.choice is not None and args.target is None:
        raise UserError("--choice picks one of the places --target matched; give --target PHRASE too.")
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
    mode = "remove" if args.remove else "inpaint" if markers or args.target is not None else "pix2pix"
    names = {"instruction": "", "target": "" if args.remove else "--target", "steps": "--steps", "seed": "--seed",
             "guidance_scale": "--guidance", "choice": "--choice"}
    if args.remove:  # remove takes the configured guidance
        config = with_tools(config, names, guidance_scale=args.guidance)
    ctx = ToolContext(assistant, tool_session(image, markers), step_printer(mode), config=config, masks=masks)
    if args.remove:
        out = run_tool("remove", {"target": args.instruction, "steps": args.steps, "seed": args.seed}, ctx, names)
    else:
        out = run_tool("edit", {"instruction": args.instruction, "steps": args.steps, "seed": args.seed,
                                "guidance_scale": args.guidance, "target": args.target, "choice": args.choice},
                       ctx, names)
    return finish(args, out, ctx, mode, config)
