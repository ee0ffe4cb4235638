"""Isolation: state lives in sessions only, and eight concurrent sessions, each with its own image and marker,
get answers about their own images only (which files the app serves: test_server_files.py).

One app is served (with the launch options of ``mmchat serve``) over a fresh data directory; eight
gradio_client Clients, one per thread, upload, mark and ask at the same time. The router answers with
facts it computes from the session it is handed, slowly, so the eight turns overlap.
"""

from __future__ import annotations

import http.client
import io
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from chat.errors import UserError
from chat.events import Delta, Done
from chat.ui.views import display_size  # small images are shown enlarged
from tests.fakes import (
    CHAT,
    IMAGE,
    STATUS,
    ScriptedRouter,
    free_port,
    sample_image,
    text,
)

N = 8
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 220), (230, 210, 20),
           (150, 40, 190), (20, 200, 200), (250, 140, 0), (110, 110, 110)]
SIZES = [(160 + 24 * i, 120 + 12 * i) for i in range(N)]
POINTS = [(20 + 10 * i, 30 + 5 * i) for i in range(N)]


def facts(size, colour, point) -> list[str]:
    """The phrases an answer about one client's image must contain (and no other client's answer may)."""
    return [f"size {size[0]}x{size[1]}", "colour rgb({},{},{})".format(*colour), f"marker x={point[0]} y={point[1]}"]


class FactsRouter(ScriptedRouter):
    """Answers with facts computed from the session it is given, word by word, recording when each turn ran."""

    def __init__(self, delay: float = 0.1):
        super().__init__(delay)
        self.spans: dict[str, tuple[float, float]] = {}  # session id -> (start, end) of its turn
        self._guard = threading.Lock()

    def respond(self, session, text, *, action=None, arguments=None, cancel=None, sink=None):
        started = time.monotonic()
        record = session.record()
        session.add_message("user", text, images=[record.current_id])
        pixels = session.pixels()
        mean = tuple(round(c) for c in np.asarray(pixels, dtype=float).reshape(-1, 3).mean(axis=0))
        size, colour, _ = facts(pixels.size, mean, (0, 0))
        marks = [facts(pixels.size, mean, (m.x, m.y))[2] for m in record.markers]
        words = (f"Session {session.id}: {record.current_id} has {size} and mean {colour}; "
                 f"{len(marks)} marker(s): {', '.join(marks)}.").split(" ")
        for k, word in enumerate(words):
            time.sleep(self.delay)  # slow enough that the eight turns overlap
            yield Delta(word if k == 0 else " " + word)
        with self._guard:
            self.spans[session.id] = (started, time.monotonic())
        yield Done(session.add_message("assistant", " ".join(words), images=[record.current_id]))

    def peak(self) -> int:
        """How many turns ran at the same time, at most."""
        edges = sorted([(s, 1) for s, _ in self.spans.values()] + [(e, -1) for _, e in self.spans.values()])
        running = best = 0
        for _, step in edges:
            running += step
            best = max(best, running)
        return best


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One app over a fresh data dir, launched with the options ``mmchat serve`` uses (chat/server.py)."""
    from chat.app import create_app
    from chat.assistant import Assistant
    from chat.config import load_config
    from chat.server import launch_kwargs, queue_options
    from tests.conftest import TINY_CONFIG

    config = load_config(TINY_CONFIG, data_dir=str(tmp_path_factory.mktemp("isolation-data")))
    router = FactsRouter()
    app = create_app(Assistant(config), router=router)
    options = launch_kwargs(config, host="127.0.0.1", port=free_port())
    options["auth"] = None  # login is not what this module tests
    # The turn events share concurrency_id="turn" (chat/ui/layout.py), whose limit is the queue's default
    # (config.server.concurrency, 1 in the shipped configs: turns would run one after another). Eight here,
    # so that the eight sessions' turns really run in parallel.
    app.queue(**{**queue_options(config), "default_concurrency_limit": N})
    app.launch(prevent_thread_lock=True, quiet=True, **options)
    yield f"http://127.0.0.1:{options['server_port']}/", router, app
    app.close()


def solid(path: Path, size, colour) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def get(url: str, raw_path: str) -> tuple[int, bytes]:
    """GET ``raw_path`` exactly as written (no client-side normalisation of '..' or %-escapes)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", raw_path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def file_url_path(value) -> str:
    """The path (and query) of the URL gradio_client was given for an image output."""
    return urlsplit(value["url"])._replace(scheme="", netloc="").geturl()


def test_eight_concurrent_sessions_get_answers_about_their_own_images(served, tmp_path):
    from gradio_client import Client, handle_file

    url, router, app = served
    barrier = threading.Barrier(N, timeout=120)
    results: list[dict | None] = [None] * N
    errors: list[BaseException] = []
    # Each its own gradio session (State); made one by one (the eight run together below, not their set-up).
    clients = [Client(url, verbose=False, download_files=False) for _ in range(N)]

    def client_run(i: int) -> None:
        try:
            client = clients[i]
            image = solid(tmp_path / f"client{i}.png", SIZES[i], COLOURS[i])
            barrier.wait()  # all eight start together
            upload = client.predict([handle_file(str(image))], api_name="/upload")
            mark = client.predict(*POINTS[i], "circle", "red", api_name="/add_point")
            barrier.wait()  # and ask together
            question = f"Client {i}: what is under my marker?"
            if i % 2:
                answer = client.predict(question, api_name="/ask")
            else:
                answer = client.predict({"text": question, "files": []}, api_name="/chat")
            results[i] = {"upload": upload, "mark": mark, "answer": answer}
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=client_run, args=(i,), daemon=True) for i in range(N)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not errors, errors
    assert all(r is not None for r in results)

    # The turns ran at the same time (the queue let them; each router call was handed its own session).
    assert len(router.spans) == N
    peak = router.peak()
    print(f"\n{N} concurrent turns; at most {peak} ran at the same time")
    assert peak >= 2, f"the turns did not overlap: {router.spans}"

    # Eight distinct server-side sessions, each with exactly one image and one marker (its own).
    store = app.mmchat_handlers.store
    sessions = {sid: store.get(sid) for sid in router.spans}
    assert len(sessions) == N
    owner: dict[str, int] = {}
    for sid, session in sessions.items():
        assert list(session.images) == ["img1"]
        record = session.images["img1"]
        assert len(record.versions) == 1 and len(record.markers) == 1
        i = POINTS.index((record.markers[0].x, record.markers[0].y))
        assert session.pixels().size == SIZES[i]
        assert session.pixels().getpixel((0, 0)) == COLOURS[i]
        owner[sid] = i
    assert sorted(owner.values()) == list(range(N))

    for sid, i in owner.items():
        out = results[i]
        assert "img1" in out["upload"][STATUS]
        assert f"({POINTS[i][0]}, {POINTS[i][1]})" in out["mark"][STATUS]
        chat = out["answer"][CHAT]
        assert [m["role"] for m in chat] == ["user", "assistant"], chat  # its own conversation only
        assert text(chat[0]).startswith(f"Client {i}:")
        answer = text(chat[-1])
        assert f"Session {sid}:" in answer
        for phrase in facts(SIZES[i], COLOURS[i], POINTS[i]):
            assert phrase in answer, (i, answer)
        for j in range(N):
            if j != i:
                assert not any(p in answer for p in facts(SIZES[j], COLOURS[j], POINTS[j])), (i, j, answer)
        assert not any(other in answer for other in owner if other != sid)
        # The image shown to this client is its own (with its marker), and its URL is served.
        status, body = get(url, file_url_path(out["answer"][IMAGE]))
        assert status == 200
        shown = Image.open(io.BytesIO(body)).convert("RGB")
        assert shown.size == display_size(SIZES[i]) and max(shown.getcolors(shown.width * shown.height))[1] == COLOURS[i]


def test_handlers_refuse_ids_of_another_session(served, tmp_path):
    """select_image / revert name ids of the session they are given; another session's ids are unknown."""
    from chat.ui.handlers import Handlers

    app = served[2]
    h = Handlers(app.mmchat_handlers.assistant, router=ScriptedRouter(delay=0))
    secret = [str(sample_image(tmp_path / "alpha-secret.png")), str(sample_image(tmp_path / "beta-secret.png"))]
    a = h.upload(None, secret).session_id
    list(h.edit(a, "make it snowy"))  # a: img1, img2 (v1, v2 current)
    b = h.upload(None, [str(solid(tmp_path / "plain.png", (64, 48), (9, 9, 9)))]).session_id  # b: img1 only
    store = h.store
    before_a, before_b = store.get(a).model_dump_json(), store.get(b).model_dump_json()
    for call, ref in [(h.select_image, "img2"), (h.revert, "img2.v2"), (h.revert, "img2.v1"), (h.revert, "img1.v2")]:
        with pytest.raises(UserError) as caught:
            call(b, ref)
        sentence = str(caught.value)
        assert sentence.endswith(".") and sentence.count(". ") == 0 and "\n" not in sentence, sentence
        assert "secret" not in sentence and a not in sentence, sentence
    assert store.get(a).model_dump_json() == before_a
    assert store.get(b).model_dump_json() == before_b
    assert store.get(b).active == "img1" and store.get(a).active == "img2"
    # Each session's own ids still work, and each shows its own image.
    assert Image.open(h.select_image(b, "img1").image).size == display_size((64, 48))
    assert Image.open(h.select_image(a, "img1").image).size == display_size((320, 240))
