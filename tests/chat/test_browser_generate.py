"""Generate, then click, then edit, in a real browser with the real router over the tiny checkpoints.

A person draws a shape on the sketch pad, describes it and presses Generate: the drawing is kept as an
image and the picture made from it becomes the active image. They click on the picture (a marker), edit
the marked region and then remove the marked object: the versions gallery shows three versions of the
generated picture, and the trace shows the seed of each step. Screenshot: /tmp/mmchat-shots/03-generate-edit.png.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.fakes import ARGS, CHROMIUM, SHOTS, image_src, launch, wait_src_change

pytestmark = pytest.mark.browser
pytest.importorskip("tools.generate")


@pytest.fixture(scope="module")
def served(assistant):
    from chat.app import create_app

    app = create_app(assistant)  # real router, real (tiny) diffusion pipelines
    url = launch(app)
    yield url, app
    app.close()


@pytest.fixture(scope="module")
def page(served):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2400}, locale="en-US")
        page.set_default_timeout(60_000)  # the first generate loads the pipelines
        page.goto(served[0])
        page.wait_for_selector("#tools")
        tab(page, "Generate")
        page.wait_for_selector("#sketch canvas")
        page.wait_for_selector("#sketch button[aria-label='Brush'][data-mm-picked]")  # the page picked it
        yield page
        browser.close()


def tab(page, name: str) -> None:
    page.locator("#tools button[role=tab]", has_text=name).first.click()


def wait_ready(page, text: str) -> None:
    page.wait_for_function("(t) => document.querySelector('#status').innerText.includes(t)", arg=text)


def the_session(app):
    store = app.mmchat_handlers.store
    return max((store.get(s["id"]) for s in store.list()), key=lambda s: len(s.images))


def test_generate_then_click_then_edit_gives_three_versions(served, page):
    url, app = served
    # 1. Draw a closed shape on the sketch pad and generate a picture from it.
    # No tool to pick first: the pad draws at once (the page picks its brush).
    canvas = page.locator("#sketch canvas").first
    box = canvas.bounding_box()
    cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, min(box["width"], box["height"]) / 4
    page.mouse.move(cx - r, cy - r)
    page.mouse.down()
    for x, y in [(cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r), (cx - r, cy - r)]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    page.fill("#generate-prompt textarea, #generate-prompt input", "a red apple on a table")
    page.fill("#generate-seed textarea, #generate-seed input", "11")
    page.click("#generate")
    wait_ready(page, "Ready. Active image img2.v1")
    session = the_session(app)
    assert [r.name for r in session.images.values()] == ["sketch", "sketch: a red apple on a table (from img1.v1)"]
    sketch = session.images["img1"]
    assert sketch.versions and session.pixels("img1.v1").convert("L").getextrema()[0] < 64, "the drawn lines"
    tab(page, "Trace")
    trace = page.locator("#tool-trace").inner_text()
    assert "sketch" in trace and "11" in trace
    page.wait_for_function("() => document.querySelectorAll('#versions img').length === 1")

    # 2. Click on the generated picture: a marker.
    before = image_src(page)
    img = page.locator("#image img").first.bounding_box()
    page.mouse.click(img["x"] + img["width"] * 0.5, img["y"] + img["height"] * 0.5)
    wait_src_change(page, before)
    wait_ready(page, "Marker 1")

    # 3. Edit the marked region, then remove the marked object: two more versions.
    tab(page, "Edit")
    page.fill("#edit-instruction textarea, #edit-instruction input", "make it a green pear")
    page.click("#edit")
    page.wait_for_function("() => document.querySelectorAll('#versions img').length === 2")
    wait_ready(page, "Ready. Active image img2.v2")
    page.fill("#remove-target textarea, #remove-target input", "the apple")  # Remove's own target box
    page.click("#remove")
    page.wait_for_function("() => document.querySelectorAll('#versions img').length === 3")
    wait_ready(page, "Ready. Active image img2.v3")

    record = the_session(app).images["img2"]
    assert [v.id for v in record.versions] == ["img2.v1", "img2.v2", "img2.v3"]
    assert [v.note for v in record.versions[1:]] == ["edit: make it a green pear", "remove: the apple"]
    rows = the_session(app).trace
    assert [e.tool for e in rows] == ["sketch", "edit", "remove"]
    assert rows[0].arguments["seed"] == 11 and all(isinstance(e.arguments.get("seed"), int) for e in rows)
    assert rows[1].arguments["mode"] == "inpaint", "the click made the edit region-aware"
    assert "img2.v3" in page.locator("#versions").inner_text()
    tab(page, "Trace")
    assert json.dumps(rows[2].arguments["seed"]) in page.locator("#tool-trace").inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "03-generate-edit.png"), full_page=True)


def test_an_empty_seed_box_means_a_new_random_seed_each_time(served, page):
    url, app = served
    tab(page, "Generate")
    page.fill("#generate-seed textarea, #generate-seed input", "")
    seeds = []
    for _ in range(2):
        count = len(the_session(app).trace)
        page.fill("#generate-prompt textarea, #generate-prompt input", "a pear")
        page.click("#generate")
        deadline = time.time() + 60
        while len(the_session(app).trace) == count and time.time() < deadline:
            time.sleep(0.1)
        wait_ready(page, "Ready.")
        seeds.append(the_session(app).trace[-1].arguments["seed"])
    assert seeds[0] != seeds[1], seeds  # not the 0 a number box would send
