"""A View -> the values of the page's outputs, in the page's language; and the wrappers that turn a handler into
a Gradio event function (errors become one sentence, the browser's language is read from the request).

The first fourteen outputs keep their order for API clients (image, thumbnails, versions, chat, status, trace,
scores plot, scores table, export, chat input, compare pickers, compare slider, download); the page's other
controls follow.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Callable

import gradio as gr

from chat.errors import describe
from chat.ui import texts
from chat.ui.views import SCORE_HEADERS, TRACE_HEADERS, View

TOOL_BUTTONS = ("edit", "remove", "som", "score", "generate", "regenerate", "clear_chat", "compare_current")
TAB_STATUS = ("edit", "score", "generate", "compare")


def language(request: gr.Request | None) -> str:
    """'ja' when the browser asks for Japanese first (Accept-Language), else 'en' (API clients too)."""
    try:
        header = (request.headers.get("accept-language") or "") if request is not None else ""
    except AttributeError:
        header = ""
    first = header.split(",")[0].strip().lower()
    return "ja" if first.startswith("ja") else "en"


class Outputs:
    """The components every handler may update, in a fixed order, and View -> their values."""

    def __init__(self, **components):
        self.names = list(components)
        self.components = list(components.values())

    def render(self, view: View, lang: str = "en") -> tuple:
        tr = functools.partial(texts.translate, lang=lang)
        for warning in view.warnings:
            gr.Warning(tr(warning), title=texts.translate("Warning", lang))
        busy = view.busy
        values = {
            "sid": view.session_id if view.session_id else gr.skip(),
            "image": _image(view),
            "drop": gr.skip() if view.image is None and not view.clear_image else gr.update(visible=view.clear_image),
            "thumbs": view.thumbs if view.thumbs is not None else gr.skip(),
            "strips_box": gr.update(visible=bool(view.thumbs)) if view.thumbs is not None else gr.skip(),
            "versions": view.versions if view.versions is not None else gr.skip(),
            "versions_note": tr(view.versions_note) if view.versions_note is not None else gr.skip(),
            "chat": texts.translate_chat(view.chat, lang) if view.chat is not None else gr.skip(),
            "status": tr(view.status) if view.status is not None else gr.skip(),
            "trace": (_table(texts.translate_trace(view.trace, lang), TRACE_HEADERS, lang)
                      if view.trace is not None else gr.skip()),
            "plot": (view.plot or None) if view.plot is not None else gr.skip(),
            "scores": _table(view.scores, SCORE_HEADERS, lang) if view.scores is not None else gr.skip(),
            "export": (view.export or None) if view.export is not None else gr.skip(),
            "compare_left": _picker(view.compare, "left"),
            "compare_right": _picker(view.compare, "right"),
            "compare": (view.compare.images if view.compare.images else None) if view.compare else gr.skip(),
            "download": (view.download or None) if view.download is not None else gr.skip(),
            "chat_input": None if view.clear_input else gr.skip(),
            "rev": view.revision if view.revision is not None else gr.skip(),
            "sessions": (gr.update(choices=view.sessions, value=view.session_id)
                         if view.sessions is not None else gr.skip()),
            "title": tr(view.title) if view.title is not None else gr.skip(),
            "rename": view.rename if view.rename is not None else gr.skip(),
            "grounded": view.grounded if view.grounded is not None else gr.skip(),
            "confirm_group": gr.update(visible=bool(view.confirm[0])) if view.confirm else gr.skip(),
            "confirm_text": tr(view.confirm[1]) if view.confirm else gr.skip(),
            "confirm_kind": view.confirm[0] if view.confirm else gr.skip(),
            "tabs": gr.update(selected=view.show_tab) if view.show_tab else gr.skip(),
            "stop": (gr.update(interactive=busy, variant="stop" if busy else "secondary")
                     if busy is not None else gr.skip()),
        }
        for tab in TAB_STATUS:
            text = view.tabs.get(tab)
            values[f"{tab}_status"] = tr(text) if text is not None else gr.skip()
        for name in TOOL_BUTTONS:
            values[name] = gr.update(interactive=not busy) if busy is not None else gr.skip()
        return tuple(values[name] for name in self.names)

    def error(self, exc: BaseException, lang: str = "en", tab: str | None = None) -> tuple:
        """One sentence in the status line, and in ``tab``'s own status line when a tab's button was refused
        (else that line would still show the previous result)."""
        sentence = describe(exc)
        tabs = {tab: f"⚠ {sentence}"} if tab else {}
        return self.render(View(status=f"⚠ {sentence}", warnings=[sentence], tabs=tabs), lang)


def _image(view: View):
    if view.image is not None:
        return view.image
    return None if view.clear_image else gr.skip()


def _table(rows, headers: list[str], lang: str):
    return {"headers": [texts.translate(h, lang) for h in headers], "data": rows}


def _picker(compare, side: str):
    """A version picker of the compare view: its choices and the picked version (skip: leave as is)."""
    if compare is None:
        return gr.skip()
    return gr.update(choices=compare.choices, value=getattr(compare, side))


def _with_request(fn: Callable, run: Callable) -> Callable:
    """``run`` with the signature of ``fn`` plus a ``request: gr.Request`` (Gradio fills it; API names stay)."""
    functools.update_wrapper(run, fn)
    signature = inspect.signature(fn)
    parameters = list(signature.parameters.values())
    # Gradio fills only positional parameters: the request comes last, after the inputs.
    parameters.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                        annotation=gr.Request))
    run.__signature__ = signature.replace(parameters=parameters)
    # Gradio finds the request by its type hint (typing.get_type_hints reads __annotations__, which
    # update_wrapper copied from fn, without it).
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):
        hints = {}
    run.__annotations__ = {**hints, "request": gr.Request}
    return run


def _split(args: tuple, request) -> tuple[tuple, gr.Request | None]:
    """The inputs and the request Gradio put after them."""
    if request is None and args and isinstance(args[-1], gr.Request):
        return args[:-1], args[-1]
    return args, request


def plain(outputs: Outputs, fn: Callable[..., View], tab: str | None = None) -> Callable:
    def run(*args, request: gr.Request = None):
        args, request = _split(args, request)
        lang = language(request)
        try:
            return outputs.render(fn(*args), lang)
        except Exception as exc:  # noqa: BLE001 - one sentence, nothing lost
            return outputs.error(exc, lang, tab)

    return _with_request(fn, run)


def stream(outputs: Outputs, fn: Callable, tab: str | None = None) -> Callable:
    """``tab``: the tool tab whose button runs ``fn``; a refusal is also said on that tab's status line."""
    def run(*args, request: gr.Request = None):
        args, request = _split(args, request)
        lang = language(request)
        try:
            for view in fn(*args):
                yield outputs.render(view, lang)
        except Exception as exc:  # noqa: BLE001 - one sentence, nothing lost
            yield outputs.error(exc, lang, tab)

    return _with_request(fn, run)
