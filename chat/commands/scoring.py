"""``mmchat score`` (zero-shot CLIP/SigLIP scores) and ``mmchat classify`` (LLM<->CLIP)."""

from __future__ import annotations

from chat.commands.common import add_common, add_negative, emit, load, open_image, place, point, save_image


def register(sub) -> None:
    p = sub.add_parser(
        "score", help="zero-shot scores of labels for an image (CLIP or SigLIP)",
        description="Score how well each --label describes the image. CLIP compares the labels with each other "
                    "(softmax, scores sum to 1); SigLIP scores each label on its own (sigmoid). With --point X,Y "
                    "the clicked region is scored: a red ellipse is drawn around it (the red-circle recipe); with "
                    "tools.click_region: sam the points (and --negative ones) select one object, segmented by SAM, "
                    "and the ellipse is fitted around it.",
    )
    p.add_argument("image", help="image file")
    p.add_argument("--label", action="append", default=[], metavar="L", help="a candidate label (repeat for more)")
    p.add_argument("--model", default="clip", choices=["clip", "siglip"], help="scoring model (default clip)")
    p.add_argument("--point", type=point, action="append", default=[], metavar="X,Y",
                   help="score the region around this pixel (repeat for several regions)")
    add_negative(p)
    p.add_argument("--template", action="append", default=[], metavar="T",
                   help="prompt template with {} for the label (repeat to ensemble; default from the config)")
    p.add_argument("--chart", metavar="OUT", help="also save a bar chart of the scores to this image file")
    add_common(p)
    p.set_defaults(func=run_score)

    c = sub.add_parser(
        "classify", help="name the main object: the chat model proposes names, CLIP checks them",
        description="Coarse-to-fine classification: each round the multimodal model proposes names for the main "
                    "object and CLIP scores them; later rounds ask for more specific names. At the end the model "
                    "is shown the CLIP scores of every name and picks one (a constrained choice): that is the "
                    "label. The rounds and the final choice are printed.",
    )
    c.add_argument("image", help="image file")
    c.add_argument("--rounds", type=int, metavar="N", help="propose-and-score rounds, 1..10 (default from the config)")
    add_common(c)
    c.set_defaults(func=run_classify)


def run_score(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import run_tool, stderr_progress, tool_session, with_tools
    from chat.errors import UserError
    from chat.toolbox import ToolContext

    if not args.label:
        raise UserError("--label: no labels given; pass at least one --label, e.g. --label cat --label dog.")
    config = with_tools(load(args), {"prompt_templates": "--template"}, prompt_templates=args.template)
    image = open_image(args.image, config)
    assistant = Assistant(config, progress=stderr_progress)
    markers, masks = [], None
    if args.point or args.negative:  # SAM objects are scored by their mask (contour), circles by their disc
        shape = "contour" if config.tools.click_region == "sam" else "circle"
        placed = place(args, config, image, shape, registry=assistant.registry)
        markers, masks = placed.markers, placed.contour_masks
    ctx = ToolContext(assistant, tool_session(image, markers), config=config, masks=masks)
    out = run_tool("score", {"labels": args.label, "model": args.model}, ctx, {"labels": "--label"})
    result = out.data["result"]
    payload = {"labels": result.labels, "scores": result.scores, "mode": result.mode, "model": result.model,
               "region": result.region}
    if args.chart:
        payload["chart"] = save_image(out.plot, args.chart)
    emit(args, payload, result.table())
    return 0


def run_classify(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import run_tool, stderr_progress, tool_session
    from chat.toolbox import ToolContext

    config = load(args)
    image = open_image(args.image, config)
    ctx = ToolContext(Assistant(config, progress=stderr_progress), tool_session(image))
    out = run_tool("classify", {"rounds": args.rounds}, ctx, {"rounds": "--rounds"})
    result = out.data["result"]
    payload = {"label": result.label, "rounds": [r.model_dump() for r in result.rounds],
               "decision": result.decision.model_dump()}
    lines = [result.label]
    for i, r in enumerate(result.rounds, 1):
        lines.append(f"  round {i}: " + ", ".join(f"{c} {s:.2f}" for c, s in zip(r.candidates, r.scores)))
    by = "the chat model chose" if result.decision.by == "model" else "best CLIP score (the chat model cannot choose)"
    lines.append(f"  final: {by} '{result.label}' among " + ", ".join(
        f"{c} {s:.2f}" for c, s in zip(result.decision.options, result.decision.clip_scores)))
    emit(args, payload, "\n".join(lines))
    return 0
