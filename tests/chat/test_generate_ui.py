"""Generate and sketch from the page, through gradio_client and the real router over the tiny checkpoints.

A generated image becomes a new image of the session (with versions like any other); a drawing on the
sketch pad is kept as an image of its own and conditions the picture; the seed is in the trace and
reproduces the image; progress is shown per diffusion step; bad inputs are one sentence.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.fakes import CHAT, STATUS, THUMBS, TRACE, launch, text

pytest.importorskip("tools.generate")


@pytest.fixture(scope="module")
def served(assistant):
    from chat.app import create_app

    app = create_app(assistant)  # the real router: /generate and /sketch run the tiny SD pipelines
    url = launch(app)
    yield url, app
    app.close()


def last_tool(out) -> tuple[str, dict]:
    rows = out[TRACE]["data"]
    return rows[-1][1], json.loads(rows[-1][2])


def active_pixels(app, client_out) -> np.ndarray:
    """The pixels of the image the status line names as active (read from the session store)."""
    store = app.mmchat_handlers.store
    version = client_out[STATUS].split("Active image ")[1].split(" ")[0]
    for entry in store.list():
        session = store.get(entry["id"])
        if any(version.split(".")[0] == r for r in session.images):
            try:
                return np.asarray(session.pixels(version))
            except Exception:  # noqa: BLE001 - another session with the same image id
                continue
    raise AssertionError(f"{version} not found")


def sketch_file(path, drawn: bool):
    image = Image.new("RGB", (128, 128), "white")
    if drawn:
        ImageDraw.Draw(image).ellipse((24, 24, 104, 104), outline="black", width=6)
    image.save(path)
    return path


def test_generate_same_seed_same_image_and_size(served, client):
    url, app = served
    out = client.predict("a red apple on a table", None, 7, "128x96", api_name="/generate")
    assert "Active image img1.v1 (128x96)" in out[STATUS], out[STATUS]
    assert len(out[THUMBS]) == 1
    tool, arguments = last_tool(out)
    assert tool == "generate" and arguments["seed"] == 7 and (arguments["width"], arguments["height"]) == (128, 96)
    assert "seed 7" in text(out[CHAT][-1])
    first = active_pixels(app, out)

    again = client.predict("a red apple on a table", None, 7, "128x96", api_name="/generate")
    assert "img2.v1" in again[STATUS]
    assert np.array_equal(active_pixels(app, again), first)
    other = client.predict("a red apple on a table", None, 8, "128x96", api_name="/generate")
    assert not np.array_equal(active_pixels(app, other), first)

    # No seed: a random one is recorded in the trace, and it reproduces the picture.
    out = client.predict("a red apple on a table", None, None, "128x96", api_name="/generate")
    seed = last_tool(out)[1]["seed"]
    assert isinstance(seed, int) and 0 <= seed <= 2**32 - 1
    random_pixels = active_pixels(app, out)
    out = client.predict("a red apple on a table", None, seed, "128x96", api_name="/generate")
    assert np.array_equal(active_pixels(app, out), random_pixels)

    # Regenerate repeats the command shown in the chat, seed included: the same picture again.
    out = client.predict(api_name="/regenerate")
    assert np.array_equal(active_pixels(app, out), random_pixels)


def test_sketch_is_kept_and_conditions_the_picture(served, client, tmp_path):
    from gradio_client import handle_file

    url, app = served
    drawn = {"background": None, "layers": [], "composite": handle_file(str(sketch_file(tmp_path / "d.png", True)))}
    blank = {"background": None, "layers": [], "composite": handle_file(str(sketch_file(tmp_path / "b.png", False)))}
    out = client.predict("a cat on a sofa", drawn, 5, "512x512", api_name="/generate")
    assert len(out[THUMBS]) == 2, "the sketch and the picture made from it"
    tool, arguments = last_tool(out)
    assert tool == "sketch" and arguments["image"] == "img1.v1" and arguments["seed"] == 5
    assert "Active image img2.v1 (128x128)" in out[STATUS], "the picture keeps the sketch's size"
    from_drawing = active_pixels(app, out)

    out = client.predict("a cat on a sofa", blank, 5, "128x128", api_name="/generate")
    assert len(out[THUMBS]) == 3, "a blank sketch pad is no sketch: only the generated picture is added"
    assert last_tool(out)[0] == "generate"
    assert not np.array_equal(active_pixels(app, out), from_drawing)


@pytest.mark.parametrize("prompt, size, seed, expected", [
    ("", "512x512", None, "Describe the picture"),
    ("   ", "512x512", None, "Describe the picture"),
    ("a cat", "big", None, "WIDTHxHEIGHT"),
    ("a cat", "4000x4000", None, "each side must be 64 to 1024 pixels; 4000x4000 is not"),
    ("a cat", "512x512", 2**40, "seed"),
    ("a cat", "512x512", -5, "The seed must be a whole number from 0 to 4294967295, not -5."),
    ("a cat", "512x512", "2.5", "The seed must be a whole number from 0 to 4294967295"),
])
def test_bad_generate_input_is_one_sentence(served, client, prompt, size, seed, expected):
    before = len(served[1].mmchat_handlers.store.list())
    out = client.predict(prompt, None, seed, size, api_name="/generate")
    chat = out[CHAT] if isinstance(out[CHAT], list) else []  # unchanged (skipped) when refused up front
    status = out[STATUS] + " " + " ".join(text(m) for m in chat[-1:])
    assert expected.lower() in status.lower(), status
    assert out[STATUS].startswith("⚠"), "the status line says what went wrong, not 'Ready'"
    assert "Traceback" not in status
    assert len(served[1].mmchat_handlers.store.list()) <= before + 1
    ok = client.predict("a pear", None, 1, "64x64", api_name="/generate")  # the app still works
    assert "(64x64)" in ok[STATUS]


def test_progress_is_shown_per_step(assistant):
    from chat.ui.handlers import Handlers

    handlers = Handlers(assistant)
    statuses = [view.status for view in handlers.generate(None, "a boat", None, 3, "64x64") if view.status]
    steps = [s for s in statuses if "step " in s]
    assert len(steps) >= 2 and "%" in steps[-1], statuses
    assert statuses[-1].startswith("Ready. Active image")
