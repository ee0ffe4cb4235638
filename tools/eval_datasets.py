"""Small synthetic datasets of coloured shapes on plain backgrounds, for tests and smoke runs of the
evaluation harnesses (:mod:`tools.evaluation`).

    >>> make_synthetic_dataset("/tmp/markers", "markers", n=6)    # images/NNNN.png + data.jsonl
    >>> make_synthetic_dataset("/tmp/classify", "classify", n=6)  # <label>/NNNN.png
    >>> make_grounding_dataset("/tmp/refs", n=50)                  # images/NNNN.png + refs.jsonl
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


# --------------------------------------------------------------------------------------------
# Referring expressions (tools.eval_grounding)
# --------------------------------------------------------------------------------------------
_SHAPE_COLOURS = {"red": (215, 35, 35), "green": (35, 165, 55), "blue": (40, 70, 215), "yellow": (235, 205, 30)}
_SHAPES = ("circle", "square", "triangle")
_PLACES = ("on the left", "in the middle", "on the right")


def _shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int], fill) -> None:
    """``kind`` filling exactly ``box`` (x1, y1 exclusive)."""
    x0, y0, x1, y1 = box
    if kind == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif kind == "triangle":
        draw.polygon([((x0 + x1 - 1) / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=fill)
    else:
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)


def make_grounding_dataset(directory: str | Path, n: int = 50, *, size: tuple[int, int] = (240, 160),
                           seed: int = 0) -> Path:
    """Write ``n`` referring expressions over coloured shapes: ``images/NNNN.png`` + ``refs.jsonl``.

    Each image has two or three shapes (circle, square, triangle; red, green, blue, yellow; small or big), one
    per third of the width, on a light noisy background. The expression names one shape by its size, colour,
    kind and place ("the small red circle on the left"); its box is the shape's exact box (x1, y1 exclusive).
    The place alone makes it unique; the other words agree with it.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    width, height = size
    if width < 96 or height < 64:
        raise ValueError("size must be at least 96 x 64")
    rng = random.Random(seed)
    root = Path(directory)
    (root / "images").mkdir(parents=True, exist_ok=True)
    column = width // 3
    lines = []
    for i in range(n):
        shade = rng.randint(200, 245)
        image = Image.new("RGB", size, (shade, rng.randint(200, 245), shade))
        noise = Image.effect_noise(size, 8).convert("RGB")
        image = Image.blend(image, noise, 0.08)
        draw = ImageDraw.Draw(image)
        placed = []
        for col in sorted(rng.sample(range(3), k=rng.choice((2, 3)))):
            big = rng.random() < 0.5
            side = int(min(column, height) * (rng.uniform(0.6, 0.8) if big else rng.uniform(0.25, 0.35)))
            x0 = col * column + rng.randint(2, column - side - 2)
            y0 = rng.randint(2, height - side - 2)
            kind, colour = rng.choice(_SHAPES), rng.choice(list(_SHAPE_COLOURS))
            box = (x0, y0, x0 + side, y0 + side)
            _shape(draw, kind, box, _SHAPE_COLOURS[colour])
            placed.append((box, f"the {'big' if big else 'small'} {colour} {kind} {_PLACES[col]}"))
        box, expression = rng.choice(placed)
        name = f"images/{i:04d}.png"
        image.save(root / name)
        lines.append(json.dumps({"image": name, "expression": expression, "bbox": list(box)}))
    (root / "refs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
