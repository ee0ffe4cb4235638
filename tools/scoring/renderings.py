"""Region renderings for region-aware scoring (the red-circle recipe of "What does CLIP know about a red
circle?", Shtedritski et al., 2023): a red ellipse fitted around each marked region, optionally with everything
outside blurred or greyed."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from PIL import Image

from tools.errors import UserError
from tools.scoring.cache import EmbeddingCache

# The renderings averaged for region-aware scoring: name -> what is done outside the marked regions.
RENDERINGS: dict[str, str] = {"ellipse": "none", "ellipse+blur": "blur", "ellipse+grey": "grey"}


def fitted_ellipse(
    marker, size: tuple[int, int], masks=None, index: int | None = None
) -> tuple[int, int, int, int] | None:
    """The bounding box of the smallest axis-aligned ellipse with the region's aspect that encloses it.

    A circle's region gives the circle back; a box's region gives the ellipse through its corners.
    ``masks``/``index`` are passed to :func:`tools.markers.region_mask` (contour markers).
    """
    import numpy as np

    from tools.markers import region_mask

    region = np.asarray(region_mask(marker, size, masks, index=index), dtype=bool)
    ys, xs = np.nonzero(region)
    if xs.size == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a, b = max((x1 - x0) / 2, 1.0), max((y1 - y0) / 2, 1.0)
    if xs.size > 20000:  # the extremes of a large region are well represented by a subsample
        step = xs.size // 20000 + 1
        xs, ys = xs[::step], ys[::step]
    reach = float(np.sqrt((((xs + 0.5 - cx) / a) ** 2 + ((ys + 0.5 - cy) / b) ** 2).max()))
    s = max(1.0, reach)
    a, b = a * s, b * s
    return (int(math.floor(cx - a)), int(math.floor(cy - b)), int(math.ceil(cx + a)), int(math.ceil(cy + b)))


def ellipse_markers(markers: Sequence[Any], size: tuple[int, int], masks=None) -> list[Any]:
    """A red ellipse fitted around each marker's region (markers with an empty region are skipped)."""
    from tools.markers import Marker

    out = []
    for index, marker in enumerate(markers):
        box = fitted_ellipse(marker, size, masks, index)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        out.append(Marker(x=(x0 + x1) // 2, y=(y0 + y1) // 2, shape="ellipse", color="red", bbox=box))
    return out


def render_region(image: Image.Image, ellipses: Sequence[Any], outside: str = "none") -> Image.Image:
    from tools.markers import draw_markers

    return draw_markers(image, list(ellipses), outside=outside, number=False)


def region_renderings(image: Image.Image, markers: Sequence[Any], masks=None, *, outside: str = "none",
                      ensemble: bool = True) -> list[tuple[tuple, Callable[[], Image.Image]]]:
    """``(variant key, render)`` pairs for scoring ``image`` with its markers (lazy: render on a miss)."""
    if outside not in ("none", "blur", "grey"):
        raise UserError(f"outside must be 'none', 'blur' or 'grey', not '{outside}'.")
    digest = EmbeddingCache.image_digest(image)
    if not markers:
        return [((digest, "full"), lambda: image)]
    ellipses = ellipse_markers(markers, image.size, masks)
    if not ellipses:
        raise UserError("The markers cover no pixels of the image; place them inside the image.")
    boxes = ";".join(",".join(str(v) for v in e.bbox) for e in ellipses)
    if ensemble:
        chosen = list(RENDERINGS.items())
    else:
        chosen = [(name, mode) for name, mode in RENDERINGS.items() if mode == outside]
    return [((digest, f"{name}@{boxes}"), (lambda mode=mode: render_region(image, ellipses, mode)))
            for name, mode in chosen]
