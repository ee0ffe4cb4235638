"""``mmchat generate PROMPT``: text-to-image, or sketch-to-image with ``--sketch`` (ControlNet scribble)."""

from __future__ import annotations

from chat.commands.common import add_common, emit, load, open_image, save_image, size


def register(sub) -> None:
    p = sub.add_parser(
        "generate", help="make a new image from a text prompt, or from a sketch and a prompt",
        description="Generate an image showing PROMPT (Stable Diffusion). With --sketch IMG, the drawing fixes "
                    "the layout (ControlNet scribble; dark lines on light paper or light on dark both work) and "
                    "the output has the sketch's size unless --size is given. The seed is printed so a result "
                    "can be reproduced.",
    )
    p.add_argument("prompt", help="what the image shows, e.g. 'a lighthouse at dusk, oil painting'")
    p.add_argument("--sketch", metavar="IMG", help="a sketch whose lines the image follows")
    p.add_argument("--steps", type=int, metavar="N", help="denoising steps, 1..150 (default tools.edit_steps)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed to reproduce a result (default: random)")
    p.add_argument("--size", type=size, metavar="WxH",
                   help="output size, each side 64..1024, rounded to multiples of 8 (default 512x512, SD 1.5's native "
                        "size; with --sketch, the sketch's)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the image")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import run_tool, stderr_progress, step_printer, tool_session
    from chat.toolbox import ToolContext
    from tools.generate import check_size

    config = load(args)
    if args.size:  # before any model loads: 'The size 32x32 is out of range; each side must be 64 to 1024 pixels.'
        check_size(args.size)
    sketch = open_image(args.sketch, config) if args.sketch else None
    mode = "sketch" if sketch is not None else "txt2img"
    assistant = Assistant(config, progress=stderr_progress)
    ctx = ToolContext(assistant, tool_session(sketch), step_printer(mode))
    width, height = args.size or (None, None)
    request = {"prompt": args.prompt, "steps": args.steps, "seed": args.seed, "width": width, "height": height}
    names = {"prompt": "", "steps": "--steps", "seed": "--seed", "width": "--size", "height": "--size"}
    out = run_tool("sketch" if sketch is not None else "generate", request, ctx, names)
    result = ctx.session.pixels(out.new_versions[0])
    path = save_image(result, args.output)
    seed = out.arguments["seed"]
    emit(args, {"image": path, "seed": seed, "mode": mode, "size": list(result.size)}, f"{path} ({mode}, seed {seed})")
    return 0
