"""Fixtures shared by the API tests: each module serves its own app as ``served`` (the URL first)."""

import pytest


@pytest.fixture
def client(served):
    """A gradio_client Client of the module's served app (a new browser session each test)."""
    from gradio_client import Client

    return Client(served[0], verbose=False, download_files=True)
