"""Fixtures shared by the API and browser tests: each module serves its own app as ``served`` (the URL first)."""

import pytest


@pytest.fixture
def client(served):
    """A gradio_client Client of the module's served app (a new browser session each test)."""
    from gradio_client import Client

    return Client(served[0], verbose=False, download_files=True)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (never ``playwright install``), one per module."""
    from tests.fakes import ARGS, CHROMIUM

    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests skipped")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()
