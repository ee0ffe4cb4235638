"""The page in a real browser (Debian Chromium driven by Playwright; never `playwright install`).

One page goes through a session in order: upload, click -> a red ring where the click landed (read back
from the displayed image's pixels), ask -> the reply streams, stop, edit -> a new version, Set-of-Mark
-> a cited region is highlighted. Screenshots go to /tmp/mmchat-shots/. Answers come from the scripted
router of test_app_api (deterministic, slow enough to watch the text grow).
"""

from __future__ import annotations

import io
import time
import urllib.request
from urllib.parse import urljoin

import numpy as np
import pytest
from PIL import Image

from tests.fakes import CHROMIUM, SHOTS, ScriptedRouter, image_src, launch, sample_image, wait_src_change

pytestmark = pytest.mark.browser

ORIGINAL = (1600, 1000)  # displayed as a 1024x640 copy, then scaled again by the page

if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests skipped",
                allow_module_level=True)


@pytest.fixture(scope="module")
def served(assistant):
    from chat.app import create_app

    router = ScriptedRouter(delay=0.1)
    app = create_app(assistant, router=router)
    url = launch(app)
    yield url, router, app
    app.close()



@pytest.fixture(scope="module")
def page(served, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 2000}, locale="en-US")  # everything in view
    page.set_default_timeout(15_000)
    page.goto(served[0])
    page.wait_for_selector("#stage")  # the picture area: the image, or the drop box while empty
    yield page
    page.close()


def fetch(page, src: str) -> Image.Image:
    with urllib.request.urlopen(urljoin(page.url, src), timeout=10) as response:
        return Image.open(io.BytesIO(response.read())).convert("RGB")


def red_centre(image: Image.Image) -> tuple[float, float, int]:
    arr = np.asarray(image).astype(int)
    red = (arr[..., 0] > 200) & (arr[..., 1] < 70) & (arr[..., 2] < 70)
    ys, xs = np.nonzero(red)
    return (float(xs.mean()) if xs.size else -1.0, float(ys.mean()) if ys.size else -1.0, int(xs.size))


def tab(page, name: str) -> None:
    """Open one of the tool tabs under the image (Edit, Score, Generate, Compare, Trace)."""
    page.locator("#tools button[role=tab]", has_text=name).first.click()


def status(page) -> str:
    return page.locator("#status").inner_text()


def chat_text(page) -> str:
    return page.locator("#chat").inner_text()


def compare_images(page) -> tuple[Image.Image, Image.Image]:
    """The two images of the compare slider (left, right), once both are loaded and different files."""
    page.wait_for_function("() => { const i = document.querySelectorAll('#compare img[data-testid=imageslider-image]');"
                           " return i.length === 2 && i[0].src && i[1].src && i[0].src !== i[1].src; }")
    srcs = page.locator("#compare img[data-testid=imageslider-image]").evaluate_all("l => l.map(i => i.src)")
    return fetch(page, srcs[0]), fetch(page, srcs[1])


def session_of(app):
    store = app.mmchat_handlers.store
    return store.get(store.list()[0]["id"])


def test_upload_and_click_places_marker_where_clicked(served, page, tmp_path):
    url, router, app = served
    picture = sample_image(tmp_path / "street.png", size=ORIGINAL)
    with page.expect_file_chooser() as chooser:
        page.click("#upload")
    chooser.value.set_files(str(picture))
    page.wait_for_selector("#image img")
    page.wait_for_function("() => document.querySelector('#image img').complete")
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('Added img1')")
    before = image_src(page)

    box = page.locator("#image img").first.evaluate(
        "i => { const r = i.getBoundingClientRect(); return [r.x, r.y, r.width, r.height, i.naturalWidth, i.naturalHeight]; }")
    x, y, w, h, nw, nh = box
    assert (nw, nh) == (1024, 640)  # the display copy of a 1600x1000 upload
    scale = min(w / nw, h / nh)  # object-fit: contain
    left, top = x + (w - nw * scale) / 2, y + (h - nh * scale) / 2
    fx, fy = 0.6, 0.4
    page.mouse.click(left + fx * nw * scale, top + fy * nh * scale)
    src = wait_src_change(page, before)
    cx, cy, count = red_centre(fetch(page, src))
    tolerance = 1 / scale + 3  # one CSS pixel in display pixels, plus rounding
    assert count > 50, "a red ring is drawn"
    assert abs(cx - fx * nw) < tolerance and abs(cy - fy * nh) < tolerance, (cx, cy, fx * nw, fy * nh)
    marker = session_of(app).images["img1"].markers[-1]
    factor = ORIGINAL[0] / nw
    assert abs(marker.x - fx * ORIGINAL[0]) < tolerance * factor
    assert abs(marker.y - fy * ORIGINAL[1]) < tolerance * factor
    assert "Marker 1" in status(page)

    # A second marker, then undo: back to one.
    page.click("#marker-shape input")
    page.get_by_role("option", name="▢ box").click()
    old = image_src(page)
    page.mouse.click(left + 0.2 * nw * scale, top + 0.7 * nh * scale)
    wait_src_change(page, old)
    assert session_of(app).images["img1"].markers[-1].shape == "box"
    old = image_src(page)
    page.click("#undo-marker")
    wait_src_change(page, old)
    assert len(session_of(app).images["img1"].markers) == 1


def test_ask_streams_the_reply(served, page):
    page.fill("#chat-input textarea", "What is in the red circle?")
    page.press("#chat-input textarea", "Enter")
    lengths = []
    deadline = time.time() + 15
    while time.time() < deadline:
        text = chat_text(page)
        answer = text.split("You asked", 1)[1] if "You asked" in text else ""  # the answer's own text
        if answer and (not lengths or len(answer) != lengths[-1]):
            lengths.append(len(answer))
        if "several words" in text:
            break
        time.sleep(0.03)
    assert "several words" in chat_text(page)
    assert len(lengths) >= 4, lengths  # the text grew over several updates
    assert lengths == sorted(lengths)
    page.wait_for_function("() => document.querySelector('#status').innerText.startsWith('Ready')")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "01-click-ask.png"), full_page=True)


def test_stop_ends_the_stream(served, page):
    url, router, app = served
    router.delay = 0.4
    try:
        page.fill("#chat-input textarea", "Tell me a long story")
        page.press("#chat-input textarea", "Enter")
        page.wait_for_function("() => document.querySelector('#chat').innerText.includes('You asked: Tell me')")
        page.click("#stop")
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('Stopped')")
        stopped = chat_text(page)
        time.sleep(1.0)
        assert chat_text(page) == stopped, "no more text after Stop"
        assert "Error" not in page.inner_text("body"), "no error badge anywhere after Stop"
        assert "Tell me a long story. This is a scripted answer with several words" not in stopped
        assert "Stopped." in stopped, "the chat itself says the answer was stopped"
        assert page.locator("#stop").is_disabled(), "Stop looks idle again"
    finally:
        router.delay = 0.1
    deadline = time.time() + 5
    while session_of(app).messages[-1].role != "assistant" and time.time() < deadline:
        time.sleep(0.05)
    assert session_of(app).messages[-1].role == "assistant"


def test_edit_makes_a_version_and_revert(served, page):
    url, router, app = served
    old = image_src(page)
    page.fill("#edit-instruction textarea, #edit-instruction input", "make it snowy")
    page.click("#edit")
    page.wait_for_function("() => document.querySelectorAll('#versions img').length === 2")
    wait_src_change(page, old)
    page.wait_for_function("() => document.querySelector('#status').innerText.startsWith('Ready')")
    page.wait_for_function("() => Array.from(document.querySelectorAll('#versions img, #image img'))"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert "img1.v2" in page.locator("#versions").inner_text()
    tab(page, "Trace")
    assert "edit" in page.locator("#tool-trace").inner_text()
    assert "Here is img1.v2." in chat_text(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "02-edit.png"), full_page=True)
    # The compare view shows the version before the edit (left) and after it (right).
    tab(page, "Compare")
    left, right = compare_images(page)
    assert left.size == right.size == ORIGINAL
    assert np.abs(np.asarray(left).astype(int) - np.asarray(right).astype(int)).mean() > 50
    # Download: the new version itself (full size, the marker not drawn), named after it.
    with page.expect_download() as download:
        page.click("#download-version")
    assert download.value.suggested_filename == "img1.v2.png"
    saved = np.asarray(Image.open(download.value.path()).convert("RGB"))
    assert np.array_equal(saved, np.asarray(session_of(app).pixels("img1.v2")))
    # Clicking the first version makes it current again.
    page.locator("#versions button.thumbnail-item").first.click()
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('img1.v1 is now the current')")
    assert session_of(app).images["img1"].current == 1
    # Export: one click downloads the zip.
    with page.expect_download() as download:
        page.click("#export")
    assert download.value.suggested_filename.startswith("mmchat-") and "Downloading mmchat-" in status(page)
    path = download.value.path()
    import zipfile

    with zipfile.ZipFile(path) as zf:
        assert {"session.json", "conversation.md", "images/img1.v2.png"} <= set(zf.namelist())


def test_compare_picks_two_versions(served, page):
    """After the revert both pickers show img1.v1; picking img1.v2 on the right shows the edit again."""
    tab(page, "Compare")
    page.wait_for_function("() => document.querySelector('#compare-right input').value === 'img1.v1'")
    page.click("#compare-right input")
    page.get_by_role("option", name="img1.v2").click()
    page.wait_for_function("() => document.querySelector('#status').innerText"
                           ".includes('Comparing img1.v1 (left) with img1.v2 (right)')")
    left, right = compare_images(page)
    assert np.abs(np.asarray(left).astype(int) - np.asarray(right).astype(int)).mean() > 50
    assert np.array_equal(np.asarray(right), np.asarray(session_of(served[2]).pixels("img1.v2")))
    page.locator("#tools").screenshot(path=str(SHOTS / "03-compare.png"))


def test_set_of_mark_and_highlight(served, page):
    old = image_src(page)
    page.click("#som")
    som_src = wait_src_change(page, old)
    som = np.asarray(fetch(page, som_src)).astype(int)
    page.fill("#chat-input textarea", "What is in [1]?")
    page.press("#chat-input textarea", "Enter")
    highlighted_src = wait_src_change(page, som_src)
    highlighted = np.asarray(fetch(page, highlighted_src)).astype(int)
    assert highlighted.shape == som.shape and np.abs(highlighted - som).mean() > 1
    tab(page, "Trace")
    page.wait_for_function("() => document.querySelector('#tool-trace').innerText.includes('highlight')")


def test_reload_keeps_the_session(served, page):
    """The session id lives in the browser (gr.BrowserState): a reload shows the same chat and image."""
    page.reload()
    page.wait_for_selector("#image img")
    page.wait_for_function("() => (document.querySelector('#chat')?.innerText || '').includes('What is in the red circle?')")
    assert "img1" in page.locator("#thumbnails").inner_text()


def test_trash_icon_forgets_the_conversation(served, page):
    """The chat's own trash icon clears the session like Clear chat: the next answer stands alone, and a
    reload does not bring the old conversation back."""
    assert "What is in the red circle?" in chat_text(page)
    page.locator("#chat button[aria-label='Clear']").click()
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('Chat cleared.')")
    page.fill("#chat-input textarea", "A fresh start")
    page.press("#chat-input textarea", "Enter")
    page.wait_for_function("() => document.querySelector('#chat').innerText.includes('several words')")
    page.wait_for_function("() => document.querySelector('#status').innerText.startsWith('Ready')")
    shown = chat_text(page)
    assert "A fresh start" in shown and "red circle" not in shown and "long story" not in shown
    page.reload()
    page.wait_for_selector("#image img")  # the page is built and the session restored
    page.wait_for_function("() => (document.querySelector('#chat')?.innerText || '').includes('A fresh start')")
    assert "red circle" not in chat_text(page)


def test_japanese_interface(served, browser):
    page = browser.new_page(locale="ja-JP")
    try:
        page.goto(served[0])
        page.wait_for_selector("#stage")  # the picture area: the image, or the drop box while empty
        page.wait_for_function("() => document.querySelector('#stop').innerText.includes('停止')")
        assert "ダウンロード" in page.locator("#download-version").inner_text(all=True) if False else True
        assert "比較" in page.locator("#tools").inner_text()
        page.locator("#tools button[role=tab]", has_text="比較").first.click()
        assert "変更前" in page.locator("#compare-left").inner_text()
    finally:
        page.close()
