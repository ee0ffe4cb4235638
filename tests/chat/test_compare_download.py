"""Compare two versions and download one, through gradio_client (the scripted router's edit inverts the image).

After an edit the compare view shows the parent (left) and the new version (right); /compare picks any two
versions by id; the download is the version itself: full resolution, no markers, named like img1.v2.png.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fakes import STATUS, ScriptedRouter, launch, sample_image

COMPARE_LEFT, COMPARE_RIGHT, COMPARE, DOWNLOAD = range(10, 14)  # after the ten outputs of test_app_api


@pytest.fixture(scope="module")
def served(assistant):
    from chat.app import create_app

    app = create_app(assistant, router=ScriptedRouter(delay=0))
    url = launch(app)
    yield url, app
    app.close()


def picked(out) -> tuple[str, str]:
    """The versions the two pickers show (the client sees the pickers' updates: choices and value)."""
    return tuple(o["value"] if isinstance(o, dict) else o for o in (out[COMPARE_LEFT], out[COMPARE_RIGHT]))


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def session_with(app, version_id: str):
    """The newest session that has ``version_id``."""
    store = app.mmchat_handlers.store
    for entry in store.list():
        session = store.get(entry["id"])
        record = session.images.get(version_id.split(".")[0])
        if record is not None and any(v.id == version_id for v in record.versions):
            return session
    raise AssertionError(f"no session has {version_id}")


def test_compare_after_an_edit(served, client, tmp_path):
    from gradio_client import handle_file

    _, app = served
    assert "/compare" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    out = client.predict([handle_file(str(sample_image(tmp_path / "a.png")))], api_name="/upload")
    assert picked(out) == ("img1.v1", "img1.v1")  # one version so far
    out = client.predict("make it snowy", api_name="/edit")
    assert picked(out) == ("img1.v1", "img1.v2")  # parent vs current
    session = session_with(app, "img1.v2")
    left, right = (pixels(p) for p in out[COMPARE])
    assert np.array_equal(left, np.asarray(session.pixels("img1.v1")))
    assert np.array_equal(right, np.asarray(session.pixels("img1.v2")))
    assert np.abs(left.astype(int) - right.astype(int)).mean() > 50  # the edit inverted the picture

    # Any two versions by id, in either order.
    out = client.predict("img1.v2", "img1.v1", api_name="/compare")
    assert "Comparing img1.v2 (left) with img1.v1 (right)" in out[STATUS]
    assert np.array_equal(pixels(out[COMPARE][0]), right) and np.array_equal(pixels(out[COMPARE][1]), left)

    # Unknown or missing ids: one sentence, the view stays as it was.
    for a, b, expected in [("img1.v9", "img1.v1", "Image img1 has no version 9"),
                           ("img7.v1", "img1.v2", "There is no image 'img7.v1'"),
                           ("", "img1.v2", "Pick two versions to compare")]:
        out = client.predict(a, b, api_name="/compare")
        assert expected in out[STATUS], out[STATUS]
        assert out[STATUS].startswith("⚠ ") and "\n" not in out[STATUS] and "Traceback" not in out[STATUS]


def test_download_is_the_version_not_the_display_copy(served, client, tmp_path):
    from gradio_client import handle_file

    _, app = served
    client.predict([handle_file(str(sample_image(tmp_path / "b.png", size=(1600, 1200))))], api_name="/upload")
    out = client.predict("make it snowy", api_name="/edit")
    assert Path(out[DOWNLOAD]).name == "img1.v2.png"  # the button follows the current version
    out = client.predict(800, 600, "circle", "red", api_name="/add_point")
    shown = pixels(out[0])
    assert shown.shape == (768, 1024, 3)  # the panel shows a downscaled copy with the marker

    out = client.predict("", api_name="/download_version")
    path = Path(out[DOWNLOAD])
    assert path.name == "img1.v2.png", path
    assert "img1.v2.png" in out[STATUS] and "1600x1200" in out[STATUS]
    session = session_with(app, "img1.v2")
    assert session.images["img1"].markers, "the marker is still placed"
    downloaded = pixels(path)
    assert downloaded.shape == (1200, 1600, 3)
    assert np.array_equal(downloaded, np.asarray(session.pixels("img1.v2")))  # no ring drawn, full size

    out = client.predict("img1.v1", api_name="/download_version")  # an older version by id
    assert Path(out[DOWNLOAD]).name == "img1.v1.png"
    assert np.array_equal(pixels(out[DOWNLOAD]), np.asarray(session.pixels("img1.v1")))
    out = client.predict("img1.v5", api_name="/download_version")
    assert "no version 5" in out[STATUS]


@pytest.fixture(scope="module")
def served_small(tiny_config, tmp_path_factory):
    """An app whose uploads above 100,000 pixels get a working copy (their original bytes are kept)."""
    from chat.app import create_app
    from chat.assistant import Assistant

    limits = tiny_config.limits.model_copy(update={"max_pixels": 100_000})
    config = tiny_config.model_copy(update={"limits": limits, "data_dir": str(tmp_path_factory.mktemp("small"))})
    app = create_app(Assistant(config), router=ScriptedRouter(delay=0))
    url = launch(app)
    yield url
    app.close()


def test_download_button_holds_what_a_download_gives(served_small, tmp_path):
    """The button's file is the one /download_version gives, also for v1 of a downscaled upload (the file
    as uploaded, not the working copy): the first click downloads the right file."""
    from gradio_client import Client, handle_file

    client = Client(served_small, verbose=False, download_files=True)
    photo = tmp_path / "photo.jpg"
    Image.open(sample_image(tmp_path / "photo.png", size=(640, 480))).save(photo, quality=90)
    out = client.predict([handle_file(str(photo))], api_name="/upload")
    assert "scaled from 640x480" in out[STATUS]
    button = Path(out[DOWNLOAD])
    assert button.name == "img1.jpg" and button.read_bytes() == photo.read_bytes()
    asked = Path(client.predict("", api_name="/download_version")[DOWNLOAD])
    assert asked.name == button.name and asked.read_bytes() == button.read_bytes()

    out = client.predict("make it snowy", api_name="/edit")
    assert Path(out[DOWNLOAD]).name == "img1.v2.png"
    out = client.predict("img1.v1", api_name="/revert")  # v1 current again: the original once more
    assert Path(out[DOWNLOAD]).name == "img1.jpg" and Path(out[DOWNLOAD]).read_bytes() == photo.read_bytes()
