"""The tools that look at an image: caption, vqa (BLIP), score (CLIP/SigLIP), classify (LLM<->CLIP), mark and som.

Each ``run`` takes the tool context and the validated arguments; the entries at the end say how the chat calls
them (see :class:`chat.toolbox.spec.ToolSpec`).
"""

from __future__ import annotations

import re

import numpy as np

from chat.errors import UserError
from chat.toolbox.spec import ToolContext, ToolOutput, ToolSpec
from tools.caption import CaptionInput, VqaInput
from tools.classify import ClassifyInput
from tools.markers import MarkInput
from tools.scoring import ScoreInput, parse_labels
from tools.som import SomInput


def caption(ctx: ToolContext, a) -> ToolOutput:
    from tools.caption import caption as blip_caption

    _, vid, image = ctx.image(a.image)
    text = blip_caption(ctx.models, image, a.prefix, prompt=ctx.config.tools.caption_prompt,
                        max_new_tokens=ctx.settings.get("max_new_tokens", 30))
    return ToolOutput("caption", f"Caption of {vid}: {text}", text, {"image": vid, "prefix": a.prefix},
                      data={"caption": text})


def vqa(ctx: ToolContext, a) -> ToolOutput:
    from tools.caption import answer_question

    _, vid, image = ctx.image(a.image)
    answer = answer_question(ctx.models, image, a.question)
    return ToolOutput("vqa", f"Answer to '{a.question}' about {vid} (BLIP): {answer}", answer,
                      {"image": vid, "question": a.question}, data={"answer": answer})


def score(ctx: ToolContext, a) -> ToolOutput:
    from tools.scoring import score_chart, score_labels

    record, vid, image = ctx.image(a.image)
    markers = list(record.markers) if a.region else []
    result = score_labels(ctx.models, image, a.labels, model=a.model, markers=markers, masks=ctx.masks,
                          templates=ctx.config.tools.prompt_templates, cache=ctx.assistant.embedding_cache)
    where = f"the marked region of {vid}" if result.region else vid
    text = f"{a.model.upper()} scores for {where} ({result.mode}): {result.summary()}"
    return ToolOutput("score", text, result.summary(), {"image": vid, "labels": a.labels, "model": a.model,
                      "region": result.region}, plot=score_chart(result),
                      data={"table": result.table(), "result": result})


def classify(ctx: ToolContext, a) -> ToolOutput:
    from tools.classify import classify as llm_clip

    _, vid, image = ctx.image(a.image)
    result = llm_clip(ctx.models, image, ctx.chat(), rounds=a.rounds, cache=ctx.assistant.embedding_cache,
                      templates=ctx.config.tools.prompt_templates)
    return ToolOutput("classify", f"Classification of {vid}: {result.label}, {result.outline()}.",
                      result.summary(), {"image": vid, "rounds": a.rounds}, data={"result": result})


def mark(ctx: ToolContext, a) -> ToolOutput:
    from tools.markers import draw_markers

    record, vid, image = ctx.image(a.image)
    if not record.markers:
        raise UserError(f"Image {record.id} has no markers; click on the image to place one first.")
    overlay = draw_markers(image, record.markers, masks=ctx.masks, outside=a.outside,
                           number=ctx.settings.get("number", True))
    n = len(record.markers)
    text = f"Drew {n} marker{'s' if n > 1 else ''} on {vid}."
    return ToolOutput("mark", text, text, {"image": vid, "outside": a.outside, "markers": n}, overlay=overlay)


def som(ctx: ToolContext, a) -> ToolOutput:
    """Numbers the version's regions and keeps them with the session: the model and the page see the version
    through them from now on, and an answer citing [n] highlights region n."""
    from tools.som import set_of_mark

    _, vid, image = ctx.image(a.image)
    method = a.method or ctx.config.tools.som_method
    regions = a.max_regions or ctx.config.tools.som_max_regions
    sam = ctx.models.get("sam") if method == "sam" else None
    marked, marks, masks = set_of_mark(image, regions, method, sam, fill=a.fill, boundaries=a.boundaries)
    labels = np.zeros((image.height, image.width), dtype=np.uint8)
    for number, mask in enumerate(masks, 1):
        labels[mask] = number
    ctx.session.set_overlay(vid, marked, labels)
    n = len(marks)
    text = (f"Numbered {n} regions of {vid} (Set-of-Mark); refer to them as [1] to [{n}]." if n != 1 else
            f"Numbered 1 region of {vid} (Set-of-Mark); refer to it as [1].")
    return ToolOutput("som", text, f"{n} region{'s' if n != 1 else ''}", {"image": vid, "method": method,
                      "max_regions": regions}, overlay=marked, data={"version": vid, "marks": marks, "masks": masks})


# -- slash text ------------------------------------------------------------------------------------------------
_SCORE_MODEL = re.compile(r"(?:^|\s)(?:--(clip|siglip)\b|(clip|siglip):)", re.IGNORECASE)
_IMAGE_ID = re.compile(r"^img\d+(?:\.v\d+)?\b")


def read_score(text: str) -> dict:
    """``siglip: cat | dog`` (or ``cat, dog --siglip``): the model, then the labels (:func:`parse_labels`)."""
    args: dict = {}
    model = _SCORE_MODEL.search(text)
    if model:
        args["model"] = (model.group(1) or model.group(2)).lower()
        text = (text[:model.start()] + " " + text[model.end():]).strip()
    args["labels"] = parse_labels(text)
    if not args["labels"]:  # in the page's syntax, not the tool schema's (["cat", "dog"])
        raise UserError("Give the labels to score after /score, e.g. '/score cat | dog'.")
    return args


def write_score(args: dict) -> str:
    """``cat | dog``; the model is named when it is not CLIP, or when the labels alone would read otherwise (one
    naming a model, the first looking like an image id); one label with a comma ends with '|'."""
    labels, model = list(args.get("labels") or []), args.get("model")
    line = " | ".join(labels) + (" |" if len(labels) == 1 and "," in labels[0] else "")
    if model not in (None, "clip") or (_SCORE_MODEL.search(line) or _IMAGE_ID.match(line)):
        line = f"{model or 'clip'}: {line}"
    return line


TOOLS = [
    ToolSpec("caption", CaptionInput, caption, "describe the image in one sentence (BLIP)", "/caption [prefix]",
             text="prefix"),
    ToolSpec("vqa", VqaInput, vqa, "a short factual answer about the image (BLIP VQA)", "/ask QUESTION",
             slash="ask", text="question"),
    ToolSpec("score", ScoreInput, score, "zero-shot scores of labels (CLIP; 'siglip:' for SigLIP)",
             "/score cat | dog [--siglip]", text="labels", read=read_score, write=write_score),
    ToolSpec("classify", ClassifyInput, classify, "name the main object (the chat model proposes, CLIP checks)",
             "/classify [rounds]", text="rounds",
             defaults=lambda config: {"rounds": config.tools.classify_rounds}),
    ToolSpec("mark", MarkInput, mark, "draw the markers you placed on the image", "/mark [blur|grey]",
             text="outside", read=lambda text: {"outside": text.lower()} if text else {}, final=True),
    ToolSpec("som", SomInput, som, "number the image's regions (Set-of-Mark); then ask about [n]",
             "/som [max regions]", text="max_regions", options={"method": "method"}, final=True),
]
