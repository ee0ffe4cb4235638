"""The Gradio front end, split by concern.

- :mod:`chat.ui.layout`   the page: components (DESIGN.md elem_ids), its CSS (page.css) and script (page.js)
- :mod:`chat.ui.wiring`   which handler each control runs, under which api_name
- :mod:`chat.ui.render`   View -> output values, in the browser's language; errors as one sentence
- :mod:`chat.ui.handlers` what each action does, as plain functions over (session id, inputs): the parts below
- :mod:`chat.ui.images`   uploads, picking an image, making a version current
- :mod:`chat.ui.markers`  clicks, keyboard points, undo and clear (SAM regions with progress)
- :mod:`chat.ui.tooltabs` the tool tabs' buttons (score, set-of-mark, edit, remove, generate)
- :mod:`chat.ui.context`  what the handlers share (store, files, router, running answers, View building)
- :mod:`chat.ui.turns`    answers, one at a time per session and in order (a queue), Stop, Regenerate
- :mod:`chat.ui.turnstate` what an answer shows while it streams, and the session facts read around it
- :mod:`chat.ui.sessions` the sessions list, new/rename/delete with confirmation, import/export, two-tab sync
- :mod:`chat.ui.versions` version files: strips, compare, download
- :mod:`chat.ui.forms`    the tool tabs' fields -> a tool's arguments and the command that runs them
- :mod:`chat.ui.views`    what the page shows, computed from a Session (display copy, galleries, trace)
- :mod:`chat.ui.chatview` the conversation with its pictures and action links
- :mod:`chat.ui.files`    images handed to Gradio as files written once
- :mod:`chat.ui.i18n`     fixed interface text in English and Japanese (translated in the browser)
- :mod:`chat.ui.texts`    changing text (status lines, replies, tables) in Japanese (translated on the server)
"""

from __future__ import annotations


def create_app(assistant, router=None):
    """The Gradio Blocks for ``assistant`` (``router`` defaults to ``assistant.router``); not launched."""
    from chat.ui.layout import build

    return build(assistant, router=router)


def launch_options() -> dict:
    """Page options Gradio 6 takes in ``launch()``: the i18n tables, the CSS and the page's script."""
    from chat.ui.layout import launch_options as options

    return options()


__all__ = ["create_app", "launch_options"]
