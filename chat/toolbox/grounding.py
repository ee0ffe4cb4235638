"""The ``find`` tool in the chat, and finding what an edit names instead of a click (:mod:`tools.grounding`).

``/find the cat`` (or "where is the cat?") shows the regions numbered by rank and places a marker on the best one
(an ellipse around it, refined like a SAM click: add to it or exclude from it with clicks, or undo it). "Remove the
dog" and "replace the cat with a tiger" find their target the same way. When another place matches almost as
well, nothing is guessed: the places are shown numbered and the reply asks which one; answering with its number
(``2``) completes the request (:attr:`chat.session.Session.pending`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chat.toolbox.spec import ToolContext, ToolOutput, ToolSpec
from tools.grounding import FindInput

OPTIONS = {"method": "method", "top": "top_k", "margin": "margin"}


def find_result(ctx: ToolContext, image, request: dict[str, Any] | FindInput):
    """``find_regions`` with the session's caches, SAM when the config has it, and the chat model's box when it
    was trained to give one (LLaVA-1.5)."""
    from chat.grounding_model import box_asker
    from tools.grounding import CandidateOptions, find_regions

    sam = ctx.models.get("sam") if ctx.settings.get("sam", True) and "sam" in ctx.models.available() else None
    args = request if isinstance(request, FindInput) else FindInput.model_validate(request)
    args = FindInput.model_validate(args.model_dump(include=set(FindInput.model_fields)))
    asker = box_asker(ctx.assistant.mllm, ctx.assistant.candidate_cache) if args.method in ("llava", "auto") and ctx.settings.get("llava", True) \
        else None
    return find_regions(ctx.models, image, args, model=ctx.settings.get("model", "clip"), sam=sam,
                        box_from_model=asker, cache=ctx.assistant.embedding_cache,
                        candidate_cache=ctx.assistant.candidate_cache,
                        options=CandidateOptions(sam_points=8 if sam is not None else 0))


def found_marker(region):
    """A marker on a found region: an ellipse fitted around it, with one include click inside it, so clicks
    refine it as they refine a SAM object."""
    from tools.regions import marker_for_mask
    from tools.som import label_point

    x, y = label_point(region.mask)
    return marker_for_mask(region.mask, "ellipse", "red").model_copy(update={"clicks": [(int(x), int(y), True)]})


def target_region(ctx: ToolContext, image, phrase: str, choice: int | None, tool: str, arguments: dict,
                  top_k: int = 3, method: str = "auto"):
    """(region, the find result) for the place ``phrase`` names, or (None, a ToolOutput asking which one or saying
    it was not found). An ambiguous match leaves the request pending for a numbered answer."""
    from tools.grounding import draw_regions
    from tools.grounding.target import AmbiguousTarget, TargetNotFound, choose_target

    result = find_result(ctx, image, {"phrase": phrase, "margin": ctx.config.tools.find_margin, "top_k": top_k,
                                      "method": method})
    try:
        return choose_target(result, choice), result
    except AmbiguousTarget as exc:
        ctx.session.pending = {"tool": tool, "arguments": dict(arguments)}
        return None, ToolOutput(tool, str(exc), f"'{phrase}': {len(result.regions)} places, asked which",
                                dict(arguments), overlay=draw_regions(image, result.regions),
                                data={"result": result, "asked": True})
    except TargetNotFound as exc:
        return None, ToolOutput(tool, str(exc), str(exc), dict(arguments), error=str(exc))


class FindRequest(FindInput):
    """Find the region(s) of the image a phrase refers to ("the red cup on the left") and mark the best one."""

    choice: int | None = Field(
        None, ge=1, le=32,
        description="After an ambiguous find showed the places numbered: the number of the place to mark.")


def find(ctx: ToolContext, a) -> ToolOutput:
    from tools.grounding import draw_regions
    from tools.grounding.target import numbers

    record, vid, image = ctx.image(a.image)
    used = {"image": vid, "phrase": a.phrase, "method": a.method, "top_k": a.top_k}
    if a.choice is not None:  # the answer to "which one?": mark the chosen place
        region, asked = target_region(ctx, image, a.phrase, a.choice, "find", used | {"margin": a.margin},
                                      top_k=a.top_k, method=a.method)
        if region is None:
            return asked
        ctx.session.add_marker(found_marker(region), record.id)
        return ToolOutput("find", f"Marked region {region.id} for '{a.phrase}' on {record.id}: add to it or cut "
                          "from it with clicks, or undo it.", f"marked region {region.id}", used | {"choice": a.choice})
    result = find_result(ctx, image, a)
    overlay = draw_regions(image, result.regions) if result.regions else None
    used["method"] = result.method
    count = f"{len(result.regions)} region{'s' if len(result.regions) != 1 else ''}"
    text = f"Found in {vid}: {result.summary()}"
    if result.ambiguous:
        ctx.session.pending = {"tool": "find", "arguments": used | {"method": a.method, "margin": a.margin}}
        text += (f"\n\nMore than one place could be '{a.phrase}': which one, "
                 f"{numbers([r.id for r in result.regions])}? Say the number (or click on it and ask again).")
        return ToolOutput("find", text, count + ", ambiguous: asked which", used, overlay=overlay,
                          data={"result": result, "asked": True})
    if result.best is not None and ctx.settings.get("place_marker", True):
        ctx.session.add_marker(found_marker(result.best), record.id)
        text += f"\n\nA marker is on region 1 of {record.id}: add to it or cut from it with clicks, or undo it."
    return ToolOutput("find", text, count, used, overlay=overlay, data={"result": result})


TOOLS = [
    ToolSpec("find", FindRequest, find, "find the regions a phrase refers to ('the red cup on the left') and mark "
             "the best", "/find PHRASE [--method M] [--top K]", text="phrase",
             options=OPTIONS | {"choice": "choice"}, final=True),
]
