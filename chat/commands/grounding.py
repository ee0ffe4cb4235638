"""``mmchat find IMAGE PHRASE`` (a phrase to regions) and ``mmchat eval-grounding DIR`` (its evaluation)."""

from __future__ import annotations

import sys

from chat.commands.common import add_common, emit, load, open_image, save_image

FIND_METHODS = ["circle", "blur", "grey", "ensemble", "llava", "auto"]
EVAL_METHODS = ["circle", "blur", "grey", "ensemble"]


def register(sub) -> None:
    f = sub.add_parser(
        "find", help="find the region(s) of an image that a phrase refers to",
        description="Candidate regions (SAM prompted on a grid of points, when the config has 'sam', and the "
                    "Set-of-Mark regions) are each shown to CLIP with a visual prompt (a red ellipse around it, "
                    "or everything outside it blurred or greyed; 'ensemble' averages the three) and scored "
                    "against the phrase, minus the score of neutral captions. Prints the best regions' boxes "
                    "and scores, and whether the match is ambiguous (another place scores within --margin of "
                    "the best). -o writes the image with the regions numbered by rank, the best tinted red.",
    )
    f.add_argument("image", help="image file")
    f.add_argument("phrase", help="what to find, e.g. 'the small red cup on the left'")
    f.add_argument("--method", default="auto", choices=FIND_METHODS,
                   help="visual prompt (default auto: llava when the chat model is LLaVA-1.5, which is asked "
                        "for the box as it was trained on RefCOCO and votes with CLIP; else ensemble)")
    f.add_argument("--top", type=int, default=3, metavar="K", help="regions to return, 1..32 (default 3)")
    f.add_argument("--margin", type=float, default=1.0, metavar="M",
                   help="ambiguous when another place scores within M logits of the best (default 1.0)")
    f.add_argument("--model", default="clip", choices=["clip", "siglip"], help="scoring model (default clip)")
    f.add_argument("--no-sam", action="store_true", help="candidates from Set-of-Mark only (faster, no SAM)")
    f.add_argument("-o", "--output", metavar="OUT", help="also write the image with the regions drawn")
    add_common(f)
    f.set_defaults(func=run_find)

    e = sub.add_parser(
        "eval-grounding", help="referring-expression accuracy of find, per method and visual prompt",
        description="DIR/refs.jsonl holds one expression per line: {\"image\": \"images/0001.png\", "
                    "\"expression\": \"the small red circle on the left\", \"bbox\": [x0, y0, x1, y1]} (pixels, "
                    "x1 and y1 exclusive). For each method the best-scoring candidate counts as correct when its "
                    "box has IoU >= 0.5 with the annotated one (the red-circle paper's protocol); reported with "
                    "and without the neutral prior, with the mean IoU and the candidates' recall. "
                    "--make-synthetic DIR writes a synthetic set of coloured shapes instead; --from-refcoco "
                    "REFS INSTANCES IMAGES converts RefCOCO into DIR.",
    )
    e.add_argument("dir", nargs="?", metavar="DIR", help="dataset folder with refs.jsonl")
    e.add_argument("--methods", nargs="+", choices=EVAL_METHODS, default=EVAL_METHODS, metavar="M",
                   help=f"methods to evaluate, among {', '.join(EVAL_METHODS)} (default: all)")
    e.add_argument("--model", default="clip", choices=["clip", "siglip"], help="scoring model (default clip)")
    e.add_argument("--prior", default="neutral", choices=["neutral", "dataset"],
                   help="captions whose mean score is subtracted: neutral ones (as find does), or 100 of the "
                        "dataset's expressions (the papers' protocol); default neutral")
    e.add_argument("--no-sam", action="store_true", help="candidates from Set-of-Mark only")
    e.add_argument("--make-synthetic", metavar="DIR", help="write a synthetic dataset of coloured shapes to DIR")
    e.add_argument("--n", type=int, default=50, metavar="N", help="expressions in the synthetic set (default 50)")
    e.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the synthetic set (default 0)")
    e.add_argument("--from-refcoco", nargs=3, metavar=("REFS", "INSTANCES", "IMAGES"),
                   help="convert RefCOCO into DIR: refs(unc).p, instances.json and COCO's train2014 folder")
    e.add_argument("--split", default="val", help="RefCOCO split to convert (default val)")
    add_common(e)
    e.set_defaults(func=run_eval)


def _sam(assistant, no_sam: bool) -> bool:
    """Whether SAM proposes candidates: the config has it and --no-sam is not given (a note on stderr when it has
    none)."""
    if no_sam:
        return False
    if "sam" not in assistant.registry.available():
        print("mmchat: note: the config has no 'sam' model; candidates come from Set-of-Mark only.",
              file=sys.stderr, flush=True)
        return False
    return True


def run_find(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import checked, stderr_progress, tool_session
    from chat.toolbox import TOOLS, ToolContext
    from tools.grounding import PHRASE

    request = checked("find", {"phrase": args.phrase, "method": args.method, "top_k": args.top,
                               "margin": args.margin}, None, PHRASE)
    config = load(args)
    image = open_image(args.image, config)
    assistant = Assistant(config, progress=stderr_progress)
    settings = {"model": args.model, "sam": _sam(assistant, args.no_sam), "place_marker": False}
    ctx = ToolContext(assistant, tool_session(image), settings=settings)
    out = TOOLS["find"].run(ctx, request)
    result = out.data["result"]
    payload = result.to_json()
    text = result.summary()
    if args.output:
        payload["image"] = save_image(out.overlay if out.overlay is not None else image, args.output)
        text += f"\n{args.output}: the regions numbered by rank, the best tinted red"
    emit(args, payload, text)
    return 0


def _progress(done: int, total: int, message: str) -> None:
    print(f"[eval] {done}/{total} {message}", file=sys.stderr, flush=True)


def run_eval(args) -> int:
    from chat.errors import UserError

    if args.make_synthetic and args.from_refcoco:
        raise UserError("Give either --make-synthetic DIR or --from-refcoco, not both.")
    if args.make_synthetic:
        from tools.eval_datasets import make_grounding_dataset

        if not 1 <= args.n <= 100000:
            raise UserError(f"--n must be between 1 and 100000, not {args.n}.")
        root = make_grounding_dataset(args.make_synthetic, n=args.n, seed=args.seed)
        emit(args, {"dir": str(root), "examples": args.n}, f"{root}: {args.n} expressions (refs.jsonl)")
        return 0
    if not args.dir:
        raise UserError("Give the dataset folder DIR (with refs.jsonl), or --make-synthetic DIR to write one.")
    if args.from_refcoco:
        from tools.eval_grounding import convert_refcoco

        refs, instances, images = args.from_refcoco
        try:
            count = convert_refcoco(refs, instances, images, args.dir, split=args.split)
        except (OSError, KeyError, ValueError, EOFError) as exc:
            raise UserError(f"Cannot convert RefCOCO ({type(exc).__name__}: {exc}).") from None
        emit(args, {"dir": args.dir, "examples": count}, f"{args.dir}: {count} expressions ({args.split})")
        return 0
    return _evaluate(args)


def _evaluate(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import stderr_progress
    from tools.eval_grounding import eval_grounding, read_ref_examples
    from tools.grounding import CandidateOptions

    config = load(args)
    read_ref_examples(args.dir)  # a bad dataset fails before any model loads
    assistant = Assistant(config, progress=stderr_progress)
    sam = assistant.registry.get("sam") if _sam(assistant, args.no_sam) else None
    table = eval_grounding(assistant.registry, args.dir, methods=args.methods, model=args.model, sam=sam,
                           options=CandidateOptions(sam_points=8 if sam is not None else 0), prior=args.prior,
                           progress=_progress)
    emit(args, table.to_dict(), table.markdown())
    return 0
