"""A message sent with Enter while an answer is still streaming is answered after it, once, even if Enter
is pressed again (Gradio's default trigger mode drops it silently)."""

from __future__ import annotations

import time

import pytest

from tests.fakes import ARGS, CHROMIUM, ScriptedRouter, launch

pytestmark = pytest.mark.browser


def test_enter_while_answering_is_answered_next(assistant):
    from chat.app import create_app

    sync_api = pytest.importorskip("playwright.sync_api")
    app = create_app(assistant, router=ScriptedRouter(delay=0.3))  # ~4 s per answer
    url = launch(app)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1400}, locale="en-US")
            page.set_default_timeout(60_000)
            page.goto(url)
            box = "#chat-input textarea"
            page.wait_for_selector(box)
            page.fill(box, "first question")
            page.press(box, "Enter")
            page.wait_for_function("() => document.querySelector('#chat').innerText.includes('You asked')")
            page.fill(box, "second question")
            for _ in range(3):  # impatient: Enter again while the first answer streams
                page.press(box, "Enter")
                time.sleep(0.2)
            page.wait_for_function(
                "() => document.querySelector('#chat').innerText.includes('You asked: second question')")
            page.wait_for_function("() => document.querySelector('#status').innerText.startsWith('Ready')")
            chat = page.locator("#chat").inner_text()
            assert chat.index("You asked: first question") < chat.index("You asked: second question")
            assert chat.count("You asked: second question") == 1, "answered once"
            assert page.locator(box).input_value() == ""
            browser.close()
    finally:
        app.close()
