"""Small synthetic datasets of coloured shapes on plain backgrounds, for tests and smoke runs of the
evaluation harnesses (:mod:`tools.evaluation`).

    >>> make_synthetic_dataset("/tmp/markers", "markers", n=6)    # images/NNNN.png + data.jsonl
    >>> make_synthetic_dataset("/tmp/classify", "classify", n=6)  # <label>/NNNN.png
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

_PALETTE = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "orange": (240, 150, 30),
            "black": (20, 20, 20)}
_OBJECTS = ("square", "triangle", "disk")


def _draw_object(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    if kind == "square":
        draw.rectangle(box, fill=fill)
    elif kind == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)
    else:
        draw.ellipse(box, fill=fill)


def make_synthetic_dataset(directory: str | Path, kind: str = "markers", n: int = 6, *, size: int = 96,
                           seed: int = 0) -> Path:
    """Write a small dataset of coloured shapes on plain backgrounds; return the folder.

    ``kind="markers"``: ``images/NNNN.png`` with two or three objects, ``data.jsonl`` boxes one of them and
    names it (labels: square, triangle, disk). ``kind="classify"``: ``<label>/NNNN.png`` with one object
    each, ``n`` images spread over the three labels.
    """
    if kind not in ("markers", "classify"):
        raise ValueError(f"kind must be 'markers' or 'classify', not {kind!r}")
    if n < 1:
        raise ValueError("n must be at least 1")
    rng = random.Random(seed)
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    colors = list(_PALETTE.values())

    def background():
        shade = rng.randint(170, 250)
        return Image.new("RGB", (size, size), (shade, rng.randint(170, 250), shade))

    if kind == "classify":
        for i in range(n):
            label = _OBJECTS[i % len(_OBJECTS)]
            image = background()
            s = rng.randint(size // 3, size // 2)
            x0, y0 = rng.randint(4, size - s - 4), rng.randint(4, size - s - 4)
            _draw_object(ImageDraw.Draw(image), label, (x0, y0, x0 + s, y0 + s), rng.choice(colors))
            (root / label).mkdir(exist_ok=True)
            image.save(root / label / f"{i:04d}.png")
        return root

    (root / "images").mkdir(exist_ok=True)
    lines = []
    cell = size // 2
    for i in range(n):
        image = background()
        draw = ImageDraw.Draw(image)
        cells = rng.sample([(0, 0), (1, 0), (0, 1), (1, 1)], k=rng.choice((2, 3)))
        placed = []
        for cx, cy in cells:
            obj = rng.choice(_OBJECTS)
            s = rng.randint(cell // 2, cell - 8)
            x0 = cx * cell + rng.randint(4, cell - s - 4)
            y0 = cy * cell + rng.randint(4, cell - s - 4)
            box = (x0, y0, x0 + s, y0 + s)
            _draw_object(draw, obj, box, rng.choice(colors))
            placed.append((obj, box))
        answer, box = rng.choice(placed)
        name = f"images/{i:04d}.png"
        image.save(root / name)
        lines.append(json.dumps({"image": name, "box": list(box), "labels": list(_OBJECTS), "answer": answer}))
    (root / "data.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
