"""Launching the Gradio app: host, port, login, queue limits. Only the CLI calls this."""

from __future__ import annotations

import os

from chat.config import Config
from chat.errors import UserError


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise UserError("--auth must be USER:PASS with both parts non-empty.")
    return user, password


def queue_options(config: Config) -> dict:
    """What serve() passes to ``app.queue``."""
    return {"max_size": config.server.queue_size, "default_concurrency_limit": config.server.concurrency}


def launch_kwargs(config: Config, host: str | None = None, port: int | None = None, auth: str | None = None) -> dict:
    """What serve() passes to ``app.launch`` (tests launch with the same options)."""
    from chat.app import launch_options

    return {
        "server_name": host or config.server.host,
        "server_port": port if port is not None else config.server.port,
        "auth": parse_auth(auth or config.server.auth or os.environ.get("MMCHAT_AUTH")),
        "max_file_size": config.limits.max_upload_bytes,
        "enable_monitoring": False,
        "show_error": False,
        **launch_options(),
    }


def serve(config: Config, host: str | None = None, port: int | None = None, auth: str | None = None) -> None:
    from chat.app import create_app
    from chat.assistant import Assistant

    options = launch_kwargs(config, host, port, auth)  # a bad --auth fails before any model is touched
    app = create_app(Assistant(config))
    app.queue(**queue_options(config))
    app.launch(**options)
