"""The Gradio front end, split by concern.

- :mod:`chat.ui.layout`   the page: components (DESIGN.md elem_ids) and event wiring with api_names
- :mod:`chat.ui.handlers` what each action does, as plain functions over (session id, inputs)
- :mod:`chat.ui.turns`    streamed answers (chat, regenerate, tool buttons): router events -> Views, Stop
- :mod:`chat.ui.views`    what the page shows, computed from a Session (display copy, galleries, chat)
- :mod:`chat.ui.files`    images handed to Gradio as files written once
- :mod:`chat.ui.i18n`     interface text in English and Japanese
"""

from __future__ import annotations


def create_app(assistant, router=None):
    """The Gradio Blocks for ``assistant`` (``router`` defaults to ``assistant.router``); not launched."""
    from chat.ui.layout import build

    return build(assistant, router=router)


def launch_options() -> dict:
    """Page options Gradio 6 takes in ``launch()``: the i18n tables and the CSS."""
    from chat.ui.layout import launch_options as options

    return options()


__all__ = ["create_app", "launch_options"]
