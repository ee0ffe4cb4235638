"""``remote_llm`` end to end against a real OpenAI-compatible server on this CPU: ``transformers serve`` with the
tiny LLaVA checkpoint folder. Images, streaming, usage, the router, ``mmchat ask`` and ``classify``, errors.

transformers serve turns a reply into tool calls only for model families it has a response parser for (LLaVA is
not one), and the tiny model has random weights: tool-bearing requests are checked to reach the server and be
answered in words; the parsing of native tool calls is covered with the scripted server (test_remote_llm.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from langchain_core.messages import HumanMessage
from PIL import Image

from chat.events import Delta, Done, ToolFinished

ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = ROOT / "configs" / "tiny.yaml"
LLAVA_IMAGE_TOKENS = 576  # llava-1.5-7b-hf: 336 px / 14 px patches


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_dir):
    """``transformers serve <tiny llava> --device cpu`` on a free port: (base URL, model id)."""
    port = _free_port()
    model = str(tiny_dir / "llava")
    command = [str(Path(sys.executable).with_name("transformers")), "serve", model, "--device", "cpu",
               "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as reply:
                    if model in reply.read().decode():
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start: {process.stderr.read()[-2000:]}")
            time.sleep(0.5)
        yield url, model
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def write_config(tmp_path, remote: dict) -> Path:
    data = yaml.safe_load(TINY_CONFIG.read_text())
    data.update(remote_llm={"max_retries": 0, "timeout_s": 120, **remote}, data_dir=str(tmp_path / "data"))
    data["generation"] = {"max_new_tokens": 12}
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def assistant(served, tmp_path):
    from chat.assistant import Assistant
    from chat.config import load_config

    url, model = served
    return Assistant(load_config(write_config(tmp_path, {"base_url": url, "model": model})))


def photo(size=(120, 80)):
    return Image.new("RGB", size, (30, 140, 60))


def test_an_image_reaches_the_server_and_the_answer_streams(assistant):
    from chat.lc_model import image_part, make_chat_model

    model = make_chat_model(assistant)
    image = model.prepare_image(photo(), 672)
    message = HumanMessage(content=[image_part(image), {"type": "text", "text": "What is in the picture?"}])
    chunks = list(model.stream([message]))
    assert sum(1 for c in chunks if c.content) >= 2 and "".join(c.content for c in chunks).strip()
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert len(usage) == 1 and usage[0]["output_tokens"] == 12
    text_only = model.invoke("What is in the picture?").usage_metadata["input_tokens"]
    assert usage[0]["input_tokens"] - text_only >= LLAVA_IMAGE_TOKENS - 1  # the server expanded the image


def test_a_router_turn_sends_the_tools_and_streams_the_servers_answer(assistant):
    from chat.router import Router
    from chat.session import Session

    router = Router(assistant)
    assert router.tool_calling and not router.local
    session = Session()
    session.add_image(photo())
    events = list(router.respond(session, "what is in the picture?"))
    assert isinstance(events[-1], Done) and events[-1].error is None
    assert "".join(e.text for e in events if isinstance(e, Delta)).strip()
    assert session.trace[-1].tool == "answer" and "answered directly" in session.trace[-1].decision
    assert not assistant.registry.is_loaded("llava")  # the local chat model never loads


def test_classify_asks_the_server_for_names_and_never_loads_the_local_model(assistant):
    from chat.router import Router
    from chat.session import Session

    session = Session()
    session.add_image(photo())
    events = list(Router(assistant).respond(session, "/classify 1"))
    (finished,) = [e for e in events if isinstance(e, ToolFinished)]
    assert finished.entry.error is None
    result = finished.data["result"]
    assert result.decision.by == "clip"  # a server scores no options: CLIP's best of the names it proposed
    assert result.rounds[0].answer  # the server's own words
    assert assistant.registry.is_loaded("clip") and not assistant.registry.is_loaded("llava")


def test_mmchat_ask_answers_from_the_server(served, tmp_path):
    url, model = served
    config = write_config(tmp_path, {"base_url": url, "model": model})
    picture = tmp_path / "photo.png"
    photo().save(picture)
    done = subprocess.run([sys.executable, "-m", "chat", "ask", str(picture), "What is in the red circle?",
                           "--point", "60,40", "--config", str(config), "--json"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer"].strip()
    assert "[llava] loading" not in done.stderr  # the local chat model never loads


def test_a_model_the_server_does_not_serve_is_one_sentence(served, tmp_path):
    from chat.assistant import Assistant
    from chat.config import load_config
    from chat.errors import UserError
    from chat.lc_model import make_chat_model

    url, _ = served
    model = make_chat_model(Assistant(load_config(write_config(tmp_path, {"base_url": url, "model": "nope"}))))
    with pytest.raises(UserError) as caught:
        model.invoke("hi")
    message = str(caught.value)
    assert message.startswith(f"The remote model server at {url}") and "nope" in message and "\n" not in message
