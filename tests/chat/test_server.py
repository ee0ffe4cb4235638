"""The app as `mmchat serve` launches it (chat.server.prepare + launch_kwargs): the monitoring page is off, and
a full queue refuses further requests with "Queue is full" instead of holding them forever."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.fakes import CHAT, ScriptedRouter, free_port, text

WORDS = len(["You", "asked:", "x.", "This", "is", "a", "scripted", "answer", "with", "several", "words"])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Queue of 1, one turn at a time, and a router that takes about 3 s per answer."""
    from chat.app import create_app
    from chat.assistant import Assistant
    from chat.config import load_config
    from chat.server import launch_kwargs, prepare
    from tests.conftest import TINY_CONFIG

    config = load_config(TINY_CONFIG, data_dir=str(tmp_path_factory.mktemp("server-data")))
    config = config.model_copy(update={"server": config.server.model_copy(update={"queue_size": 1, "concurrency": 1})})
    router = ScriptedRouter(delay=3.0 / WORDS)
    app = prepare(create_app(Assistant(config), router=router), config)
    options = launch_kwargs(config, host="127.0.0.1", port=free_port())
    options["auth"] = None
    app.launch(prevent_thread_lock=True, quiet=True, **options)
    yield f"http://127.0.0.1:{options['server_port']}/", app, router
    app.close()


def test_monitoring_is_off(served):
    url, app, _ = served
    assert app.enable_monitoring is False
    for path in ["monitoring", "monitoring/summary", "monitoring/" + "0" * 32]:
        response = httpx.get(url + path, timeout=30, follow_redirects=False)
        assert response.status_code == 403, (path, response.status_code)
        assert response.json() == {"detail": "Monitoring is not enabled."}


def ask(url: str, question: str) -> httpx.Response:
    """POST an /ask the way a browser's API call does (the session State is sent as null)."""
    return httpx.post(url + "gradio_api/call/ask", content=json.dumps({"data": [None, question]}),
                      headers={"content-type": "application/json"}, timeout=30)


def answer_of(url: str, event_id: str) -> str:
    with httpx.stream("GET", url + f"gradio_api/call/ask/{event_id}", timeout=120) as stream:
        events = "".join(stream.iter_text())
    assert "event: complete" in events, events[-500:]
    final = json.loads(events.split("event: complete")[1].split("data:", 1)[1].strip().splitlines()[0])
    chat = next(v for v in final if isinstance(v, list) and v and isinstance(v[0], dict) and "role" in v[0])
    return text(chat[-1])  # (raw outputs include the session State, so the chat is found by its shape)


def test_a_full_queue_refuses_instead_of_waiting_forever(served):
    from gradio_client import Client
    from gradio_client.utils import QueueError

    url, app, router = served
    assert app._queue.max_size == 1
    first = ask(url, "first")
    assert first.status_code == 200
    deadline = time.time() + 30
    while not any(call[0] == "first" for call in router.calls) and time.time() < deadline:
        time.sleep(0.05)  # the first answer is running (not waiting)
    second = ask(url, "second")
    assert second.status_code == 200  # waits: the one place in the queue
    third = ask(url, "third")
    assert third.status_code == 503
    assert third.json()["detail"].startswith("Queue is full. Max size is 1")
    client = Client(url, verbose=False, download_files=False)
    with pytest.raises(QueueError, match="Queue is full! Please try again."):
        client.predict("fourth", api_name="/ask")
    results: dict[str, str] = {}
    readers = [threading.Thread(target=lambda k=k, r=r: results.update({k: answer_of(url, r.json()["event_id"])}))
               for k, r in (("first", first), ("second", second))]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=120)
    assert results["first"].startswith("You asked: first.") and results["second"].startswith("You asked: second.")
    assert not any(call[0] in ("third", "fourth") for call in router.calls)  # refused ones never ran
    out = client.predict("fifth", api_name="/ask")  # room again
    assert text(out[CHAT][-1]).startswith("You asked: fifth.")
