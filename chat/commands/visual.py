"""``mmchat mark`` (draw visual prompts) and ``mmchat som`` (Set-of-Mark: numbered regions).

Both are pure drawing (``som --method sam`` aside) and need no config; with ``--config`` (or
$MMCHAT_CONFIG) the defaults come from its ``tools`` section.
"""

from __future__ import annotations

from chat.commands.common import (
    add_common, add_negative, checked, emit, load, open_image, optional_config, place, point, save_image,
)
from tools.markers import COLORS, SHAPES, Outside

OUTSIDE = list(Outside.__args__)



def register(sub) -> None:
    m = sub.add_parser(
        "mark", help="draw visual prompts (red circle, arrow, box, ...) at points of an image",
        description="Draw a visual prompt at each --point X,Y: a ring (circle), an ellipse or box around the "
                    "point, an arrow pointing at it, a cross or a dot. With several points each marker is "
                    "numbered. --outside blur/grey blurs or greys everything outside the marked regions "
                    "(the red-circle recipe of Shtedritski et al. 2023). With tools.click_region: sam in the "
                    "--config, the points (and --negative ones) select one object segmented by SAM and the "
                    "marker is fitted around it (contour: traces its outline).",
    )
    m.add_argument("image", help="image file")
    m.add_argument("--point", type=point, action="append", default=[], metavar="X,Y",
                   help="where to draw a marker, in pixels (repeat for several)")
    add_negative(m)
    m.add_argument("--shape", default="circle", choices=SHAPES, help="marker shape (default circle)")
    m.add_argument("--color", default="red", choices=list(COLORS), help="marker colour (default red)")
    m.add_argument("--radius", type=int, metavar="R",
                   help="size of the marked region in pixels (default tools.click_radius, scaled up on images over "
                        "1000 px, with --config; "
                        "else 8%% of the shorter side)")
    m.add_argument("--outside", default="none", choices=OUTSIDE,
                   help="what to do outside the marked regions (default none)")
    m.add_argument("--no-numbers", action="store_true", help="do not number the markers")
    m.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the marked image")
    add_common(m)
    m.set_defaults(func=run_mark)

    s = sub.add_parser(
        "som", help="Set-of-Mark: split the image into regions and number them",
        description="Propose regions (SLIC superpixels merged by colour, or SAM prompted on a grid with "
                    "--method sam) and draw a number on each, so that a model or a person can refer to "
                    "'[3]' or 'mark 5'. Prints each mark's id and box.",
    )
    s.add_argument("image", help="image file")
    s.add_argument("--max-regions", type=int, metavar="N",
                   help="at most N regions, 1..200 (default tools.som_max_regions, 24)")
    s.add_argument("--method", choices=["slic", "sam"], help="region proposals (default tools.som_method, slic)")
    s.add_argument("--fill", action="store_true", help="tint each region with a translucent colour")
    s.add_argument("--no-boundaries", action="store_true", help="do not draw the region boundaries")
    s.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the marked image")
    add_common(s)
    s.set_defaults(func=run_som)


def run_mark(args) -> int:
    from chat.errors import UserError
    from tools.markers import draw_markers

    if not args.point:
        raise UserError("Give at least one --point X,Y where the marker should go.")
    if args.radius is not None and args.radius < 1:
        raise UserError(f"--radius must be at least 1 pixel, not {args.radius}.")
    config = optional_config(args)
    image = open_image(args.image, config)
    placed = place(args, config, image, args.shape, args.color, args.radius)
    markers = placed.markers
    marked = draw_markers(image, markers, masks=placed.contour_masks, outside=args.outside,
                          number=not args.no_numbers)
    out = save_image(marked, args.output)
    sam = any(m.clicks for m in markers)
    payload = {"image": out, "points": [list(p) for p in args.point], "shape": args.shape, "color": args.color,
               "region": "sam" if sam else "circle",
               "markers": [m.model_dump(include={"x", "y", "shape", "radius", "bbox"}) for m in markers]}
    what = f"{args.shape} fitted around the object SAM found" if sam else \
        f"{args.shape}{'s' if len(markers) > 1 else ''}"
    emit(args, payload, f"{out} ({len(markers)} {args.color} {what})")
    return 0


def run_som(args) -> int:
    from tools.som import set_of_mark

    config = optional_config(args)
    request = checked("som", {"max_regions": args.max_regions, "method": args.method}, None,
                      {"max_regions": "--max-regions", "method": "--method"})
    tools = config.tools if config else None
    max_regions = request.max_regions or (tools.som_max_regions if tools else 24)
    method = request.method or (tools.som_method if tools else "slic")
    image = open_image(args.image, config)
    sam = None
    if method == "sam":
        from chat.commands.common import stderr_progress
        from chat.registry import ModelRegistry

        sam = ModelRegistry(config if config else load(args), progress=stderr_progress).get("sam")
    marked, marks, _ = set_of_mark(image, max_regions=max_regions, method=method, sam_bundle=sam,
                                   fill=args.fill, boundaries=not args.no_boundaries)
    out = save_image(marked, args.output)
    payload = {
        "image": out,
        "method": method,
        "marks": [{"id": m.id, "bbox": list(m.bbox), "center": list(m.center), "area": m.area} for m in marks],
    }
    lines = [f"{out} ({len(marks)} marks, {method})"]
    lines += [f"  [{m.id}] box {m.bbox[0]},{m.bbox[1]},{m.bbox[2]},{m.bbox[3]}  area {m.area}" for m in marks]
    emit(args, payload, "\n".join(lines))
    return 0
