"""The Gradio app, built by a factory that takes the assistant (launching is the CLI's job).

The app lives in :mod:`chat.ui`; this module keeps the stable entry points::

    app = create_app(assistant)
    app.queue(...).launch(**launch_options(config), server_port=7860)
"""

from __future__ import annotations

from chat.ui import create_app
from chat.ui import launch_options as _page_options


def launch_options(config=None) -> dict:
    """Keyword arguments for ``app.launch``: the page's (i18n, CSS) and, given the :class:`chat.config.Config`,
    which files Gradio may serve: ``<data_dir>/ui-cache`` only (see :func:`chat.ui.files.served_paths`)."""
    options = _page_options()
    if config is not None:
        from chat.ui.files import served_paths

        options.update(served_paths(config.data_path))
    return options


__all__ = ["create_app", "launch_options"]
