"""The Gradio app, built by a factory that takes the assistant (launching is the CLI's job).

The app lives in :mod:`chat.ui`; this module keeps the stable entry points::

    app = create_app(assistant)
    app.queue(...).launch(**launch_options(), server_port=7860)
"""

from __future__ import annotations

from chat.ui import create_app, launch_options

__all__ = ["create_app", "launch_options"]
