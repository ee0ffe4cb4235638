"""The remote chat model end to end: a fake OpenAI-compatible server configured from YAML (remote_llm).

The server is a thread running http.server with POST /v1/chat/completions: it records each request and
answers with the next scripted reply, streamed as SSE chunks (text pieces or a native tool call), or with
an HTTP error.
"""

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import yaml
from PIL import Image

from chat.assistant import Assistant
from chat.config import load_config
from chat.errors import UserError
from chat.events import Delta, Status, ToolFinished, ToolStarted
from chat.remote_llm import RemoteChatModel
from chat.session import Session
from tests.conftest import TINY_CONFIG
from tests.fakes import of, run

KEY_ENV = "MMCHAT_TEST_REMOTE_KEY"
GREEN = (40, 160, 60)


class FakeServer:
    """Scripted replies: ("text", [pieces]) | ("tool", name, args) | ("error", status, message)."""

    def __init__(self):
        self.requests: list[dict] = []  # {"body": ..., "auth": ...}
        self.replies: list[tuple] = []
        self.refuse_tools = False
        self.delay = 0.0  # seconds between chunks
        self.unsent = 0  # chunks not sent because the client went away
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if server.refuse_tools and body.get("tools"):
                    reply = ("error", 400, "registry.ollama.ai/library/llava:latest does not support tools")
                else:
                    reply = server.replies.pop(0) if server.replies else ("text", ["(no reply scripted)"])
                if reply[0] == "error":
                    return self._json(reply[1], {"error": {"message": reply[2], "type": "api_error"}})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunks = list(_deltas(reply))
                for i, (delta, finish) in enumerate(chunks):
                    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                             "model": body["model"], "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                    try:
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        server.unsent = len(chunks) - i
                        return
                    time.sleep(server.delay)
                self.wfile.write(b"data: [DONE]\n\n")

            def _json(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _deltas(reply):
    """(delta, finish_reason) of each SSE chunk of a scripted reply."""
    if reply[0] == "text":
        yield {"role": "assistant", "content": ""}, None
        for piece in reply[1]:
            yield {"content": piece}, None
        yield {}, "stop"
        return
    _, name, args = reply
    arguments = json.dumps(args)
    half = len(arguments) // 2
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments[:half]}}
    yield {"role": "assistant", "content": None, "tool_calls": [call]}, None
    yield {"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]}, None
    yield {}, "tool_calls"


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


def write_config(tmp_path, remote: dict):
    data = yaml.safe_load(TINY_CONFIG.read_text())
    data.update(remote_llm=remote, data_dir=str(tmp_path / "data"))
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def assistant(tiny_dir, server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "secret-from-env")
    path = write_config(tmp_path, {"base_url": server.url, "model": "llava-remote", "api_key_env": KEY_ENV,
                                   "max_retries": 0, "timeout_s": 20})
    return Assistant(load_config(path))


@pytest.fixture
def session():
    s = Session()
    s.add_image(Image.new("RGB", (80, 60), GREEN))
    return s


def said(events):
    return "".join(d.text for d in of(events, Delta))


def images_sent(request) -> list[Image.Image]:
    """The images in the last user message of a request, decoded from their data URLs."""
    user = [m for m in request["body"]["messages"] if m["role"] == "user"][-1]
    urls = [p["image_url"]["url"] for p in user["content"] if isinstance(p, dict) and p.get("type") == "image_url"]
    assert all(u.startswith("data:image/png;base64,") for u in urls)
    return [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).convert("RGB") for u in urls]


def test_a_free_text_answer_streams_from_the_server_with_the_image(assistant, server, session):
    server.replies.append(("text", ["A green ", "rectangle ", "on its ", "own."]))
    router = assistant.router
    assert isinstance(router.chat_model, RemoteChatModel)
    events = run(router, session, "What is in the picture?")
    assert [d.text for d in of(events, Delta)] == ["A green ", "rectangle ", "on its ", "own."]
    assert session.messages[-1].content == "A green rectangle on its own."
    assert session.trace[-1].tool == "answer" and session.trace[-1].error is None
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret-from-env"
    body = request["body"]
    assert body["model"] == "llava-remote" and body["stream"] is True
    assert body["max_tokens"] == assistant.config.generation.max_new_tokens
    assert "score" in [t["function"]["name"] for t in body["tools"]]
    (image,) = images_sent(request)  # the whole image, padded to square with CLIP's mean colour (LLaVA's pad)
    sent = np.asarray(image)
    assert image.size == (80, 80) and np.array_equal(sent[10:70], np.asarray(session.pixels("img1.v1")))
    assert (sent[:10] == (122, 116, 104)).all() and (sent[70:] == (122, 116, 104)).all()


def test_original_sends_the_image_as_it_is(server, session, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "secret-from-env")
    path = write_config(tmp_path, {"base_url": server.url, "model": "qwen2-vl", "api_key_env": KEY_ENV,
                                   "max_retries": 0, "image_aspect_ratio": "original"})
    server.replies.append(("text", ["Green."]))
    run(Assistant(load_config(path)).router, session, "What is in the picture?")
    (image,) = images_sent(server.requests[0])
    assert image.size == (80, 60) and np.array_equal(np.asarray(image), np.asarray(session.pixels("img1.v1")))


def test_a_native_tool_call_from_the_server_runs_the_tool(assistant, server, session):
    server.replies += [("tool", "score", {"labels": ["grass", "snow"]}), ("text", ["Grass, ", "by the scores."])]
    events = run(assistant.router, session, "Is it grass or snow?")
    (started,) = of(events, ToolStarted)
    assert started.tool == "score" and started.decision == "model tool call (step 1)"
    assert started.arguments == {"labels": ["grass", "snow"], "image": "img1.v1"}
    (finished,) = of(events, ToolFinished)
    assert finished.entry.error is None and finished.plot is not None
    score = session.trace[finished.trace_index]
    assert score.tool == "score" and "grass" in score.summary and "snow" in score.summary
    assert said(events) == "Grass, by the scores."
    first, second = server.requests
    assert first["body"].get("tools") and second["body"].get("tools")  # the model may call another tool
    *_, call, result = second["body"]["messages"]  # OpenAI's protocol: the call, then the tool's result
    assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == "score"
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
    assert result["content"].startswith("CLIP scores for img1.v1")  # the tool's result reached the model
    assert len(images_sent(second)) == 1


def test_a_server_error_is_one_sentence_and_the_session_goes_on(assistant, server, session):
    server.replies += [("error", 500, "CUDA error: device-side assert triggered"), ("text", ["Fine ", "now."])]
    router = assistant.router
    failed = run(router, session, "What is this?")
    text = said(failed)
    assert text.startswith(f"Error: The remote model server at {server.url} failed (HTTP 500: CUDA error")
    assert text.count("\n") == 0 and "Traceback" not in text and text.endswith(".")
    assert session.trace[-1].error is not None
    assert said(run(router, session, "And now?")) == "Fine now."
    assert len(server.requests) == 2  # max_retries: 0 in the YAML


def test_a_server_that_refuses_tools_says_so_once_then_answers_without_them(assistant, server, session):
    server.refuse_tools = True
    server.replies.append(("text", ["A ", "green ", "field."]))
    router = assistant.router
    server.replies.append(("text", ["Still ", "green."]))
    router = assistant.router
    events = run(router, session, "What is this?")
    notice = [e.message for e in of(events, Status)]
    assert any(m.startswith(f"The remote model server at {server.url} does not accept tools "
                            "(registry.ollama.ai/library/llava:latest does not support tools)") for m in notice), notice
    assert said(events) == "A green field."  # this message is answered anyway, without tools
    assert session.trace[-1].decision == "answer directly (the server refuses tools)"
    assert said(run(router, session, "And now?")) == "Still green."
    assert [bool(r["body"].get("tools")) for r in server.requests] == [True, False, False]
    assert session.messages[-1].content == "Still green."
    slash = run(router, session, "/score grass | snow")  # tools still run from slash commands
    assert of(slash, ToolFinished)[0].entry.error is None and len(server.requests) == 3


def test_a_call_to_a_tool_that_does_not_exist_is_answered_in_words(assistant, server, session):
    server.replies += [("tool", "frobnicate", {"level": 11}), ("text", ["Just ", "a field."])]
    events = run(assistant.router, session, "Frobnicate it.")
    assert said(events) == "Just a field." and not of(events, ToolFinished)
    assert "frobnicate" in session.trace[-2].error and session.trace[-1].decision.startswith("answer directly")
    assert [r["body"].get("tool_choice") for r in server.requests] == ["auto", "none"]  # then it must answer


def test_stop_ends_a_slow_remote_answer_promptly(assistant, server, session):
    server.delay = 0.2
    server.replies.append(("text", [f"word{i} " for i in range(40)]))  # 8 s if it ran to the end
    cancel = threading.Event()
    start, got = time.perf_counter(), []
    for event in assistant.router.respond(session, "Tell me a long story.", cancel=cancel):
        got.append(event)
        if isinstance(event, Delta):
            cancel.set()
    assert time.perf_counter() - start < 3
    assert got[-1].cancelled and said(got) == "word0 "
    deadline = time.perf_counter() + 3
    while not server.unsent and time.perf_counter() < deadline:  # the server notices the closed connection
        time.sleep(0.05)
    assert server.unsent > 30


def test_an_unreachable_server_is_one_sentence(tiny_dir, tmp_path, session):
    path = write_config(tmp_path, {"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0})
    text = said(run(Assistant(load_config(path)).router, session, "hello?"))
    assert text == ("Error: The remote model server at http://127.0.0.1:9/v1 cannot be reached; check "
                    "remote_llm.base_url and that the server is running.")


def test_the_api_key_comes_from_the_named_environment_variable(tiny_dir, tmp_path, monkeypatch):
    path = write_config(tmp_path, {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": KEY_ENV})
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(UserError) as unset:
        load_config(path)
    assert str(unset.value) == (f"Config file {path}: key 'remote_llm.api_key_env': the environment variable "
                                f"{KEY_ENV} (the API key) is not set; export it before starting mmchat.")
    monkeypatch.setenv(KEY_ENV, "k2")
    config = load_config(path)
    assert config.remote_llm.key() == "k2" and "k2" not in path.read_text()
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(UserError, match=f"{KEY_ENV} .remote_llm.api_key_env. is not set"):
        Assistant(config).router  # noqa: B018 - building the router builds the chat model
    both = write_config(tmp_path, {"base_url": "http://x/v1", "model": "m", "api_key": "a", "api_key_env": KEY_ENV})
    monkeypatch.setenv(KEY_ENV, "k2")
    with pytest.raises(UserError, match="set either api_key or api_key_env, not both"):
        load_config(both)
