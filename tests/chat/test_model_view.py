"""The image panel shows what the model sees: after Set-of-Mark the numbered regions stay on the panel
through later questions and markers (the real router on the tiny checkpoints keeps the overlay; markers
are drawn on top of it). A router without ``view`` (the scripted ones) gets the plain drawing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.fakes import ScriptedRouter, sample_image


def shown(view) -> np.ndarray:
    return np.asarray(Image.open(view.image).convert("RGB")).astype(int)


def differs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@pytest.fixture(scope="module")
def router(assistant):
    router_module = pytest.importorskip("chat.router")
    return router_module.Router(assistant)


def test_set_of_mark_numbers_stay_on_the_panel(assistant, router, tmp_path):
    from chat.ui import views
    from chat.ui.handlers import Handlers

    h = Handlers(assistant, router=router)
    sid = h.upload(None, [str(sample_image(tmp_path / "scene.png", size=(400, 300)))]).session_id
    plain = np.asarray(views.display_image(assistant.sessions.get(sid))).astype(int)
    som = shown(list(h.som(sid))[-1])
    assert differs(som, plain) > 1, "Set-of-Mark draws numbered regions"

    # A question about the regions: the panel keeps the numbers (or highlights a cited region on them).
    after = shown(list(h.ask(sid, "What is in region 2?"))[-1])
    assert differs(after, plain) > 1
    assert np.array_equal(after, som) or "highlight" in [e.tool for e in assistant.sessions.get(sid).trace]
    assert np.array_equal(shown(h.load(sid)), som)  # a reload too

    # A marker: drawn on top of the numbered regions (what the model is shown), with lines sized for the screen.
    view = h.add_point(sid, 200, 150)
    marked = shown(view)
    session = assistant.sessions.get(sid)
    overlay = h.page.som_overlay(session, session.record().current_id)
    assert overlay is not None, "the Set-of-Mark overlay the model sees is kept"
    assert np.array_equal(marked, np.asarray(views.display_image(session, overlay)).astype(int))
    plain_marked = np.asarray(views.display_image(session)).astype(int)  # the marker without the numbers
    assert differs(marked, plain_marked) > 1 and differs(marked, som) > 0.1
    red = (marked[..., 0] > 200) & (marked[..., 1] < 70) & (marked[..., 2] < 70)
    assert red.sum() > 50, "the marker's red ring is drawn"
    # Undo: back to the numbered regions without the marker.
    assert np.array_equal(shown(h.undo_marker(sid)), som)


def test_router_without_a_view_gets_the_plain_drawing(assistant, tmp_path):
    from chat.ui import views
    from chat.ui.handlers import Handlers

    h = Handlers(assistant, router=ScriptedRouter(delay=0))
    sid = h.upload(None, [str(sample_image(tmp_path / "plain.png"))]).session_id
    view = h.add_point(sid, 100, 100)
    assert np.array_equal(shown(view), np.asarray(views.display_image(assistant.sessions.get(sid))))
