"""Login: `--auth USER:PASS` (or $MMCHAT_AUTH) parsed into a rate-limited check; the launched app refuses a wrong
password and no credentials, accepts the right one, and pauses a user name after repeated failures."""

from __future__ import annotations

import time

import httpx
import pytest

from chat.errors import UserError
from chat.login import LoginGuard
from chat.server import launch_kwargs, login_guard, parse_auth
from tests.fakes import STATUS, ScriptedRouter, free_port, sample_image


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- LoginGuard -------------------------------------------------------------------------------
def test_right_and_wrong_passwords():
    guard = LoginGuard({"alice": "s3cret"})
    assert guard("alice", "s3cret")
    assert not guard("alice", "s3cret ") and not guard("alice", "") and not guard("alice", "S3CRET")
    assert not guard("bob", "s3cret") and not guard("", "")
    assert not guard("alice", "caf\udce9")  # a lone surrogate is just a wrong password


def test_five_failures_pause_the_name_even_for_the_right_password():
    clock = Clock()
    guard = LoginGuard({"alice": "s3cret"}, max_failures=5, window_s=60, cooldown_s=30, clock=clock)
    for _ in range(4):
        assert not guard("alice", "guess")
    assert guard("alice", "s3cret") and not guard.locked("alice")  # 4 failures: still allowed
    for _ in range(5):
        assert not guard("alice", "guess")
    assert guard.locked("alice")
    assert not guard("alice", "s3cret")  # refused during the cooldown
    clock.now += 29.9
    assert not guard("alice", "s3cret")
    clock.now += 0.2
    assert not guard.locked("alice") and guard("alice", "s3cret")


def test_failures_outside_the_window_do_not_add_up():
    clock = Clock()
    guard = LoginGuard({"alice": "s3cret"}, max_failures=3, window_s=10, cooldown_s=60, clock=clock)
    for _ in range(10):
        assert not guard("alice", "guess")
        clock.now += 6  # at most 2 failures within any 10 s
    assert not guard.locked("alice") and guard("alice", "s3cret")


def test_a_success_resets_the_count_and_names_are_counted_apart():
    clock = Clock()
    guard = LoginGuard({"alice": "a", "bob": "b"}, max_failures=2, window_s=60, cooldown_s=60, clock=clock)
    assert not guard("alice", "x") and guard("alice", "a") and not guard("alice", "x")
    assert not guard.locked("alice")
    assert not guard("bob", "x") and not guard("bob", "y")
    assert guard.locked("bob") and not guard.locked("alice") and guard("alice", "a")


def test_guessed_names_do_not_grow_memory_without_bound(monkeypatch):
    monkeypatch.setattr("chat.login._MAX_TRACKED", 50)
    clock = Clock()
    guard = LoginGuard({"alice": "a"}, max_failures=5, window_s=1, cooldown_s=1, clock=clock)
    for i in range(500):
        guard(f"user{i}", "x")
        clock.now += 0.1
    assert len(guard._failures) + len(guard._locked_until) <= 60


# -- --auth / $MMCHAT_AUTH ----------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("alice:s3cret", ("alice", "s3cret")),
    ("alice:pa:ss", ("alice", "pa:ss")),  # only the first colon separates
    (" alice :s3cret", ("alice", "s3cret")),  # the login form strips the name too
    ("", None),
    (None, None),
])
def test_parse_auth(text, expected):
    assert parse_auth(text) == expected


@pytest.mark.parametrize("text", ["alice", "alice:", ":s3cret", ":", "  :x"])
def test_malformed_auth_is_one_sentence(text):
    with pytest.raises(UserError, match=r"^--auth must be USER:PASS with both parts non-empty\.$"):
        parse_auth(text)


def test_launch_kwargs_auth_flag_env_and_config(tiny_config, monkeypatch):
    monkeypatch.delenv("MMCHAT_AUTH", raising=False)
    options = launch_kwargs(tiny_config)
    assert options["auth"] is None and options["server_name"] == "127.0.0.1" and options["auth_message"] is None
    guard = launch_kwargs(tiny_config, auth="alice:s3cret")["auth"]
    assert isinstance(guard, LoginGuard) and guard("alice", "s3cret") and not guard("alice", "wrong")
    assert "5 wrong passwords" in launch_kwargs(tiny_config, auth="alice:s3cret")["auth_message"]
    monkeypatch.setenv("MMCHAT_AUTH", "bob:env-pass")
    assert login_guard(tiny_config)("bob", "env-pass")
    assert login_guard(tiny_config, "alice:s3cret")("alice", "s3cret")  # the flag wins over the environment
    assert not login_guard(tiny_config, "alice:s3cret")("bob", "env-pass")
    server = tiny_config.server.model_copy(update={"auth": "carol:conf", "login_max_failures": 2})
    monkeypatch.delenv("MMCHAT_AUTH")
    guard = login_guard(tiny_config.model_copy(update={"server": server}))
    assert guard("carol", "conf") and guard.max_failures == 2


@pytest.mark.parametrize("auth", ["nocolon", "alice:", ":s3cret"])
def test_serve_with_a_malformed_auth_exits_2_with_one_line(auth, capsys, monkeypatch):
    from chat.cli import main
    from tests.conftest import TINY_CONFIG

    monkeypatch.setattr("chat.assistant.Assistant.__init__", lambda *a, **k: pytest.fail("no model for a bad --auth"))
    assert main(["serve", "--config", str(TINY_CONFIG), "--auth", auth]) == 2
    err = capsys.readouterr().err
    assert err == "mmchat: --auth must be USER:PASS with both parts non-empty.\n"


def test_serve_rejects_a_malformed_auth_before_touching_a_model(tiny_config, monkeypatch):
    from chat import server

    monkeypatch.setattr("chat.assistant.Assistant.__init__", lambda *a, **k: pytest.fail("no model for a bad --auth"))
    with pytest.raises(UserError, match="USER:PASS"):
        server.serve(tiny_config, port=0, auth="alice")


# -- the launched app -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from chat.app import create_app
    from chat.assistant import Assistant
    from chat.config import load_config
    from chat.server import prepare
    from tests.conftest import TINY_CONFIG

    config = load_config(TINY_CONFIG, data_dir=str(tmp_path_factory.mktemp("login-data")))
    server = config.server.model_copy(update={"login_max_failures": 3, "login_window_s": 60, "login_cooldown_s": 3})
    config = config.model_copy(update={"server": server})
    app = prepare(create_app(Assistant(config), router=ScriptedRouter(delay=0)), config)
    options = launch_kwargs(config, host="127.0.0.1", port=free_port(), auth="alice:s3cret")
    app.launch(prevent_thread_lock=True, quiet=True, **options)
    yield f"http://127.0.0.1:{options['server_port']}/"
    app.close()


def post_login(url: str, user: str, password: str) -> httpx.Response:
    return httpx.post(url + "login", data={"username": user, "password": password}, timeout=30)


def test_login_refuses_no_credentials_and_a_wrong_password(served, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AuthenticationError

    with pytest.raises(AuthenticationError, match="credentials were not provided"):
        Client(served, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(served, verbose=False, auth=("alice", "wrong"))
    response = post_login(served, "alice", "wrong")
    assert response.status_code == 400 and response.json()["detail"] == "Incorrect credentials."
    assert httpx.get(served + "config", timeout=30).status_code == 401  # nothing without the cookie
    assert httpx.get(served + "gradio_api/info", timeout=30).status_code == 401
    client = Client(served, verbose=False, auth=("alice", "s3cret"))
    out = client.predict([handle_file(str(sample_image(tmp_path / "a.png")))], api_name="/upload")
    assert out[STATUS].startswith("Added img1")


def test_repeated_failures_pause_logins_for_that_name(served):
    from gradio_client import Client

    assert post_login(served, "alice", "s3cret").status_code == 200  # a success clears earlier failures
    for _ in range(3):
        assert post_login(served, "alice", "guess").status_code == 400
    started = time.monotonic()
    assert post_login(served, "alice", "s3cret").status_code == 400  # paused: even the right password
    with pytest.raises(ValueError, match="Could not login"):
        Client(served, verbose=False, auth=("alice", "s3cret"))
    time.sleep(max(0.0, 3.2 - (time.monotonic() - started)))
    assert post_login(served, "alice", "s3cret").status_code == 200
    Client(served, verbose=False, auth=("alice", "s3cret"))
