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


def serve(config: Config, host: str | None = None, port: int | None = None, auth: str | None = None) -> None:
    from chat.app import create_app, launch_options
    from chat.assistant import Assistant

    credentials = parse_auth(auth or config.server.auth or os.environ.get("MMCHAT_AUTH"))
    assistant = Assistant(config)
    app = create_app(assistant)
    app.queue(max_size=config.server.queue_size, default_concurrency_limit=config.server.concurrency)
    app.launch(
        server_name=host or config.server.host,
        server_port=port if port is not None else config.server.port,
        auth=credentials,
        max_file_size=config.limits.max_upload_bytes,
        enable_monitoring=False,
        show_error=False,
        **launch_options(),
    )
