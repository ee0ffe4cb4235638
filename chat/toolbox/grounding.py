"""The ``find`` tool in the chat: a phrase to the regions of the image it refers to (:mod:`tools.grounding`).

``/find the cat`` shows the regions numbered by rank (the best tinted red) and lists them in the reply. SAM
proposes candidates when the config has it; the chat model's own box (method ``llava``) and placing a marker on
the best region come with the chat integration.
"""

from __future__ import annotations

from chat.toolbox.free_text import phrase_to_find
from chat.toolbox.spec import ToolContext, ToolOutput, ToolSpec
from tools.grounding import FindInput


def find(ctx: ToolContext, a) -> ToolOutput:
    from tools.grounding import CandidateOptions, draw_regions, find_regions

    _, vid, image = ctx.image(a.image)
    sam = ctx.models.get("sam") if ctx.settings.get("sam", True) and "sam" in ctx.models.available() else None
    result = find_regions(ctx.models, image, a, model=ctx.settings.get("model", "clip"), sam=sam,
                          cache=ctx.assistant.embedding_cache, candidate_cache=ctx.assistant.candidate_cache,
                          options=CandidateOptions(sam_points=8 if sam is not None else 0))
    overlay = draw_regions(image, result.regions) if result.regions else None
    best = f"{len(result.regions)} region{'s' if len(result.regions) != 1 else ''}"
    return ToolOutput("find", f"Found in {vid}: {result.summary()}", best + (", ambiguous" if result.ambiguous else ""),
                      {"image": vid, "phrase": a.phrase, "method": result.method, "top_k": a.top_k},
                      overlay=overlay, data={"result": result})


TOOLS = [
    ToolSpec("find", FindInput, find, "find the regions a phrase refers to ('the red cup on the left')",
             "/find PHRASE [--method M] [--top K]", text="phrase", options={"method": "method", "top": "top_k",
                                                                          "margin": "margin"}, final=True,
             fill=lambda text, session, image: {"phrase": phrase} if (phrase := phrase_to_find(text)) else None),
]
