"""Launching the Gradio app: host, port, login, queue limits, which files are served. Only the CLI calls this.

What ``mmchat serve`` turns on or off against Gradio's defaults (PLATFORM.md):

- binds 127.0.0.1 unless ``--host``/``server.host`` says otherwise;
- ``--auth USER:PASS`` (or ``server.auth``, or ``$MMCHAT_AUTH``) turns on login, checked by
  :class:`chat.login.LoginGuard` (constant-time compare, a pause for a user name after repeated failures);
- ``/monitoring`` is off; uploads are capped at ``limits.max_upload_bytes``; the queue holds at most
  ``server.queue_size`` waiting requests (more are refused: "Queue is full");
- only ``<data_dir>/ui-cache`` and Gradio's own cache are served (chat/ui/files.py), and Gradio's copies
  are deleted after ``server.file_cache_s`` (``delete_cache``).
"""

from __future__ import annotations

import os

from chat.config import Config
from chat.errors import UserError
from chat.login import LoginGuard


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user.strip() or not password:
        raise UserError("--auth must be USER:PASS with both parts non-empty.")
    return user.strip(), password  # Gradio strips the user name typed at the login form


def login_guard(config: Config, auth: str | None = None) -> LoginGuard | None:
    """The login check for ``--auth``/``server.auth``/``$MMCHAT_AUTH`` (first one set), or None: no login."""
    credentials = parse_auth(auth or config.server.auth or os.environ.get("MMCHAT_AUTH"))
    if credentials is None:
        return None
    server = config.server
    return LoginGuard(dict([credentials]), max_failures=server.login_max_failures, window_s=server.login_window_s,
                      cooldown_s=server.login_cooldown_s)


def queue_options(config: Config) -> dict:
    """What serve() passes to ``app.queue``."""
    return {"max_size": config.server.queue_size, "default_concurrency_limit": config.server.concurrency}


def launch_kwargs(config: Config, host: str | None = None, port: int | None = None, auth: str | None = None) -> dict:
    """What serve() passes to ``app.launch`` (tests launch with the same options)."""
    from chat.app import launch_options

    guard = login_guard(config, auth)
    server = config.server
    message = (f"After {server.login_max_failures} wrong passwords, logins for that user pause for "
               f"{server.login_cooldown_s:g} s.")
    return {
        "server_name": host or server.host,
        "server_port": port if port is not None else server.port,
        "auth": guard,
        "auth_message": message if guard is not None else None,
        "max_file_size": config.limits.max_upload_bytes,
        "enable_monitoring": False,
        "show_error": False,
        **launch_options(config),
    }


def prepare(app, config: Config):
    """Queue limits and cache cleanup on a built app; returns it, ready for ``launch(**launch_kwargs(...))``."""
    # Gradio takes delete_cache in the Blocks constructor and reads it when the server starts (launch):
    # every file_cache_s, its copies of served files older than file_cache_s are deleted; all at shutdown.
    app.delete_cache = (config.server.file_cache_s, config.server.file_cache_s)
    app.queue(**queue_options(config))
    return app


def serve(config: Config, host: str | None = None, port: int | None = None, auth: str | None = None) -> None:
    from chat.app import create_app
    from chat.assistant import Assistant

    options = launch_kwargs(config, host, port, auth)  # a bad --auth fails before any model is touched
    app = prepare(create_app(Assistant(config)), config)
    app.launch(**options)
