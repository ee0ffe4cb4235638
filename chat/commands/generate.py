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
                   help="output size, each side 64..1024 (default: the model's native size, 512x512 for SD 1.5)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the image")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import stderr_progress
    from chat.commands.editing import step_printer, validated
    from tools.generate import GenerateInput, SketchInput, check_size, generate_image, sketch_to_image

    config = load(args)
    if args.size:
        check_size(args.size)
    schema = SketchInput if args.sketch else GenerateInput
    request = validated(schema, prompt=args.prompt, steps=args.steps, seed=args.seed)
    steps = request.steps or config.tools.edit_steps
    sketch = open_image(args.sketch, config) if args.sketch else None
    registry = Assistant(config, progress=stderr_progress).registry
    if sketch is not None:
        mode = "sketch"
        result = sketch_to_image(registry, sketch, request.prompt, steps=steps, seed=request.seed,
                                 size=args.size, guidance_scale=config.tools.guidance_scale,
                                 progress=step_printer("sketch"))
    else:
        mode = "txt2img"
        result = generate_image(registry, request.prompt, steps=steps, seed=request.seed, size=args.size,
                                guidance_scale=config.tools.guidance_scale, progress=step_printer("txt2img"))
    out = save_image(result.image, args.output)
    emit(args, {"image": out, "seed": result.seed, "mode": mode, "size": list(result.image.size)},
         f"{out} ({mode}, seed {result.seed})")
    return 0
