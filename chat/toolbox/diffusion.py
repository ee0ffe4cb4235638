"""The tools that make images with Stable Diffusion: edit (instruct-pix2pix, or inpainting in the marked region),
remove (the marked object), generate (text to image) and sketch (ControlNet scribble).

An edit or a removal adds a version to the image it was made from; a generated picture is a new image. The
steps default to ``tools.edit_steps``, the seed is reported, and progress goes to ``ctx.progress``.
"""

from __future__ import annotations

from PIL import Image

from chat.errors import UserError
from chat.toolbox.spec import ToolContext, ToolOutput, ToolSpec
from tools.edit import EditInput, RemoveInput
from tools.generate import GenerateInput, SketchInput

DIFFUSION = {"steps": "steps", "seed": "seed"}  # the slash options every diffusion tool takes
SKETCH_HELP = ("Id of the sketch image, e.g. 'img2' (dark lines on a light background or light lines on a dark "
               "one); leave empty for the active image.")


def _steps(ctx: ToolContext, a) -> dict:
    return {"steps": a.steps or ctx.config.tools.edit_steps, "seed": a.seed, "progress": ctx.progress}


def edit(ctx: ToolContext, a) -> ToolOutput:
    from tools.edit import edit_image, inpaint, mask_from_markers

    tools = ctx.config.tools
    record, vid, image = ctx.image(a.image)
    common = _steps(ctx, a)
    guidance = a.guidance_scale if a.guidance_scale is not None else tools.guidance_scale
    if a.target is not None:  # "replace the cat with a tiger": the cat is found, only it is repainted
        from chat.toolbox.grounding import target_region

        region, asked = target_region(ctx, image, a.target, a.choice, "edit", _asked(a, vid))
        if region is None:
            return asked
        mode = "inpaint"
        result = inpaint(ctx.models, image, region.mask, a.instruction, guidance_scale=guidance,
                         dilate=tools.mask_dilate, feather=tools.mask_feather, **common)
    elif a.region and record.markers:
        mode = "inpaint"
        mask = mask_from_markers(record.markers, image.size, ctx.masks)
        result = inpaint(ctx.models, image, mask, a.instruction, guidance_scale=guidance,
                         dilate=tools.mask_dilate, feather=tools.mask_feather, **common)
    else:
        mode = "pix2pix"
        result = edit_image(ctx.models, image, a.instruction, guidance_scale=guidance,
                            image_guidance_scale=tools.image_guidance_scale, **common)
    version = ctx.session.add_version(record.id, result.image, note=f"edit: {a.instruction}", parent=vid)
    used = {"image": vid, "instruction": a.instruction, "mode": mode, "steps": common["steps"],
            "seed": result.seed, "guidance_scale": guidance}
    where = ""
    if a.target is not None:
        used |= {"target": a.target, "bbox": list(region.bbox)}
        where = f" in {a.target} (region {region.id}, box {', '.join(map(str, region.bbox))})"
    text = f"Edited {vid}{where} ({mode}, seed {result.seed}): the new version is {version.id}."
    return ToolOutput("edit", text, f"{version.id} ({mode}, seed {result.seed})", used, [version.id])


def remove(ctx: ToolContext, a) -> ToolOutput:
    from tools.edit import mask_from_markers, remove_object

    tools = ctx.config.tools
    record, vid, image = ctx.image(a.image)
    region = None
    if record.markers:
        mask = mask_from_markers(record.markers, image.size, ctx.masks)
    elif a.target == "the object":
        raise UserError(f"Say what to remove (e.g. 'remove the dog'), or click on it in {record.id} first.")
    else:  # "remove the dog" without a click: the dog is found, only its region is repainted
        from chat.toolbox.grounding import target_region

        region, asked = target_region(ctx, image, a.target, a.choice, "remove", _asked(a, vid))
        if region is None:
            return asked
        mask = region.mask
    common = _steps(ctx, a)
    result = remove_object(ctx.models, image, mask, target=a.target, guidance_scale=tools.guidance_scale,
                           dilate=tools.mask_dilate, feather=tools.mask_feather, **common)
    version = ctx.session.add_version(record.id, result.image, note=f"remove: {a.target}", parent=vid)
    used = {"image": vid, "target": a.target, "steps": common["steps"], "seed": result.seed}
    where = ""
    if region is not None:
        used["bbox"] = list(region.bbox)
        where = f" (found: region {region.id}, box {', '.join(map(str, region.bbox))})"
    text = f"Removed {a.target}{where} from {vid} (seed {result.seed}): the new version is {version.id}."
    return ToolOutput("remove", text, f"{version.id} (seed {result.seed})", used, [version.id])


def _asked(a, vid: str) -> dict:
    """The request as it stands, for the numbered answer to complete (its seed kept, so it is the same edit)."""
    return {k: v for k, v in a.model_dump().items() if v is not None and k != "choice"} | {"image": vid}


def _new_image(ctx: ToolContext, tool: str, image: Image.Image, name: str, used: dict, seed: int) -> ToolOutput:
    record = ctx.session.add_image(image, name=name, limit=ctx.config.limits.max_images_per_session)
    text = f"Made {record.id} ({image.width}x{image.height}, seed {seed})."
    return ToolOutput(tool, text, f"{record.current_id} (seed {seed})", used | {"seed": seed}, [record.current_id])


def generate(ctx: ToolContext, a) -> ToolOutput:
    from tools.generate import generate_image

    common = _steps(ctx, a)
    result = generate_image(ctx.models, a.prompt, size=(a.width, a.height),
                            guidance_scale=ctx.config.tools.guidance_scale, **common)
    used = {"prompt": a.prompt, "steps": common["steps"], "width": a.width, "height": a.height}
    return _new_image(ctx, "generate", result.image, f"generated: {a.prompt}", used, result.seed)


def sketch(ctx: ToolContext, a) -> ToolOutput:
    from tools.generate import sketch_to_image

    _, vid, image = ctx.image(a.image)
    common = _steps(ctx, a)
    result = sketch_to_image(ctx.models, image, a.prompt, size=a.size, guidance_scale=ctx.config.tools.guidance_scale,
                             **common)
    used = {"prompt": a.prompt, "image": vid, "steps": common["steps"]}
    return _new_image(ctx, "sketch", result.image, f"sketch: {a.prompt} (from {vid})", used, result.seed)


TOOLS = [
    ToolSpec("edit", EditInput, edit, "edit the image (only the marked region when it has markers, or the "
             "region --target names)", "/edit INSTRUCTION [--target PHRASE] [--steps N] [--seed S] [--guidance G]",
             text="instruction",
             options=DIFFUSION | {"guidance": "guidance_scale", "target": "target", "choice": "choice"},
             final=True),
    ToolSpec("remove", RemoveInput, remove, "remove the marked object, or the one named, and fill in background",
             "/remove [target] [--steps N] [--seed S]", text="target", options=DIFFUSION | {"choice": "choice"},
             final=True),
    ToolSpec("generate", GenerateInput, generate, "a new image from a text description",
             "/generate PROMPT [--size WxH] [--steps N] [--seed S]", text="prompt",
             options=DIFFUSION | {"size": "size"}, final=True, image_help=None),
    ToolSpec("sketch", SketchInput, sketch, "a picture from the active image used as a sketch",
             "/sketch PROMPT [--size WxH] [--steps N] [--seed S]", text="prompt",
             options=DIFFUSION | {"size": "size"}, final=True, image_help=SKETCH_HELP),
]
