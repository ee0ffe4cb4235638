"""The page: components (with the elem_ids of DESIGN.md) and the wiring of events to the handlers.

Every action has a stable ``api_name`` so gradio_client can drive it; clicks on the image and the
galleries (``.select``, which clients cannot send) have API twins fed by hidden inputs.
"""

from __future__ import annotations

import functools
from typing import Callable

import gradio as gr

from chat.errors import describe
from chat.ui.handlers import CLICK_MODES, COLORS, SHAPES, Handlers
from chat.ui.i18n import I18N, t
from chat.ui.views import SCORE_HEADERS, TRACE_HEADERS, View

CSS = """
#status { min-height: 1.6em; font-family: ui-monospace, monospace; }
#image img { cursor: crosshair; }
#api-inputs { display: none !important; }
"""


def launch_options() -> dict:
    """Keyword arguments for ``app.launch`` that belong to the page (Gradio 6 takes them there)."""
    return {"i18n": I18N, "css": CSS}


class _Outputs:
    """The components every handler may update, in a fixed order, and View -> output values."""

    def __init__(self, **components):
        self.names = list(components)
        self.components = list(components.values())

    def render(self, view: View) -> tuple:
        for warning in view.warnings:
            gr.Warning(warning)
        values = {
            "sid": view.session_id if view.session_id else gr.skip(),
            "image": view.image if view.image is not None else (None if view.clear_image else gr.skip()),
            "thumbs": view.thumbs if view.thumbs is not None else gr.skip(),
            "versions": view.versions if view.versions is not None else gr.skip(),
            "chat": view.chat if view.chat is not None else gr.skip(),
            "status": view.status if view.status is not None else gr.skip(),
            "trace": view.trace if view.trace is not None else gr.skip(),
            "plot": (view.plot or None) if view.plot is not None else gr.skip(),
            "scores": view.scores if view.scores is not None else gr.skip(),
            "export": (view.export or None) if view.export is not None else gr.skip(),
            "compare_left": _picker(view.compare, "left"),
            "compare_right": _picker(view.compare, "right"),
            "compare": (view.compare.images if view.compare.images else None) if view.compare else gr.skip(),
            "download": (view.download or None) if view.download is not None else gr.skip(),
            "chat_input": None if view.clear_input else gr.skip(),
        }
        return tuple(values[name] for name in self.names)

    def error(self, exc: BaseException) -> tuple:
        sentence = describe(exc)
        gr.Warning(sentence)
        return self.render(View(status=f"⚠ {sentence}"))


def _picker(compare, side: str):
    """A version picker of the compare view: its choices and the picked version (skip: leave as is)."""
    if compare is None:
        return gr.skip()
    return gr.update(choices=compare.choices, value=getattr(compare, side))


def _plain(outputs: _Outputs, fn: Callable[..., View]) -> Callable:
    @functools.wraps(fn)  # the handler's parameter names become the API's
    def run(*args):
        try:
            return outputs.render(fn(*args))
        except Exception as exc:  # noqa: BLE001 - one sentence, nothing lost
            return outputs.error(exc)

    return run


def _stream(outputs: _Outputs, fn: Callable) -> Callable:
    @functools.wraps(fn)
    def run(*args):
        try:
            for view in fn(*args):
                yield outputs.render(view)
        except Exception as exc:  # noqa: BLE001 - one sentence, nothing lost
            yield outputs.error(exc)

    return run


def build(assistant, router=None) -> gr.Blocks:
    h = Handlers(assistant, router=router)
    with gr.Blocks(title="mmchat") as app:
        sid = gr.State(None)
        browser_sid = gr.BrowserState(None, storage_key="mmchat-session", secret="mmchat-session-id")
        gr.Markdown(t("title"))
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                image = gr.Image(label=t("image"), type="pil", format="png", interactive=False, elem_id="image",
                                 height=520, buttons=["download", "fullscreen"])
                with gr.Row():
                    shape = gr.Radio([(t(f"shape_{s}"), s) for s in SHAPES], value="circle",
                                     label=t("marker_shape"), elem_id="marker-shape")
                    color = gr.Radio([(t(f"color_{c}"), c) for c in COLORS], value="red",
                                     label=t("marker_color"), elem_id="marker-color")
                click_mode = gr.Radio([(t(f"click_{m}"), m) for m in CLICK_MODES], value="new", label=t("click_mode"),
                                      info=t("click_mode_info"), elem_id="click-mode")
                with gr.Row():
                    undo = gr.Button(t("undo_marker"), elem_id="undo-marker", size="sm")
                    clear = gr.Button(t("clear_markers"), elem_id="clear-markers", size="sm")
                    upload = gr.UploadButton(t("upload"), file_types=["image"], file_count="multiple",
                                             elem_id="upload", size="sm", variant="primary")
                thumbs = gr.Gallery(label=t("images"), elem_id="thumbnails", columns=6, height=150, fit_columns=False,
                                    object_fit="contain", allow_preview=False, interactive=False, format="png")
            with gr.Column(scale=5):
                chat = gr.Chatbot(label=t("chat"), elem_id="chat", height=520, buttons=["copy", "copy_all"])
                chat_input = gr.MultimodalTextbox(label=t("chat_input"), placeholder=t("chat_placeholder"),
                                                  file_types=["image"], file_count="multiple", elem_id="chat-input",
                                                  show_label=False)
                with gr.Row():
                    stop = gr.Button(t("stop"), elem_id="stop", variant="stop", size="sm")
                    regenerate = gr.Button(t("regenerate"), elem_id="regenerate", size="sm")
                    clear_chat = gr.Button(t("clear_chat"), elem_id="clear-chat", size="sm")
                    new_session = gr.Button(t("new_session"), elem_id="new-session", size="sm")
                status = gr.Markdown("", elem_id="status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                gr.Markdown("### " + t("edit"))
                instruction = gr.Textbox(label=t("edit_instruction"), placeholder=t("edit_placeholder"),
                                         elem_id="edit-instruction")
                with gr.Row():
                    edit = gr.Button(t("edit_button"), elem_id="edit", variant="primary", size="sm")
                    remove = gr.Button(t("remove_button"), elem_id="remove", size="sm")
                    som = gr.Button(t("som"), elem_id="som", size="sm")
                versions = gr.Gallery(label=t("versions"), elem_id="versions", columns=4, height=220,
                                      fit_columns=False, object_fit="contain", allow_preview=False,
                                      interactive=False, format="png", buttons=["download"])
                download = gr.DownloadButton(t("download_version"), elem_id="download-version", size="sm")
                with gr.Row():
                    export = gr.Button(t("export"), elem_id="export", size="sm")
                    export_file = gr.DownloadButton(t("export_file"), elem_id="export-file", size="sm")
                    import_file = gr.UploadButton(t("import"), file_types=[".zip"], elem_id="import", size="sm")
            with gr.Column(scale=5):
                gr.Markdown("### " + t("score"))
                with gr.Row():
                    labels = gr.Textbox(label=t("labels"), placeholder=t("labels_placeholder"), elem_id="labels",
                                        scale=4)
                    model = gr.Radio(["clip", "siglip"], value="clip", label=t("score_model"), elem_id="score-model",
                                     scale=2)
                score = gr.Button(t("score"), elem_id="score", size="sm")
                plot = gr.Image(label=t("score_plot"), type="pil", format="png", interactive=False,
                                elem_id="score-plot", height=260)
                scores = gr.Dataframe(headers=SCORE_HEADERS, label=t("score_table"), interactive=False,
                                      elem_id="score-table", max_height=200)
        with gr.Accordion(t("compare"), open=True, elem_id="compare-panel"):
            with gr.Row():
                compare_left = gr.Dropdown([], value=None, label=t("compare_left"), elem_id="compare-left")
                compare_right = gr.Dropdown([], value=None, label=t("compare_right"), elem_id="compare-right")
            compare = gr.ImageSlider(label=t("compare_slider"), type="filepath", format="png", interactive=False,
                                     elem_id="compare", max_height=520, buttons=["fullscreen"])
        with gr.Accordion(t("generate"), open=True, elem_id="generate-panel"):
            with gr.Row(equal_height=False):
                sketch = gr.Sketchpad(label=t("sketch"), type="pil", image_mode="RGB", canvas_size=(512, 512),
                                      fixed_canvas=True, height=340, elem_id="sketch", layers=False,
                                      transforms=(), brush=gr.Brush(colors=["#000000"], default_size=6,
                                                                    color_mode="fixed"))
                with gr.Column():
                    prompt = gr.Textbox(label=t("generate_prompt"), placeholder=t("generate_placeholder"),
                                        elem_id="generate-prompt")
                    with gr.Row():
                        seed = gr.Textbox(label=t("generate_seed"), value="", placeholder=t("generate_seed_random"),
                                          elem_id="generate-seed")  # empty: a random seed (a Number shows 0)
                        size = gr.Dropdown(["512x512", "768x512", "512x768", "640x448", "448x640"],
                                           value="512x512", label=t("generate_size"), elem_id="generate-size",
                                           allow_custom_value=True)
                    generate = gr.Button(t("generate_button"), elem_id="generate", variant="primary", size="sm")
        with gr.Accordion(t("trace"), open=True):
            trace = gr.Dataframe(headers=TRACE_HEADERS, interactive=False, wrap=True, elem_id="tool-trace",
                                 max_height=300, column_widths=["4%", "9%", "35%", "7%", "27%", "18%"])
        # API twins of clicks and gallery picks (clients cannot send .select events).
        with gr.Group(elem_id="api-inputs", visible=False):
            x = gr.Number(label="x", precision=0, elem_id="api-x")
            y = gr.Number(label="y", precision=0, elem_id="api-y")
            ref = gr.Textbox(label="image or version id", elem_id="api-ref")
            question = gr.Textbox(label="question", elem_id="api-question")
            negative = gr.Checkbox(False, label="negative", elem_id="api-negative")
            new_object = gr.Checkbox(True, label="new object", elem_id="api-new-object")
            add_point_btn = gr.Button("add_point")
            select_btn = gr.Button("select_image")
            revert_btn = gr.Button("revert")
            ask_btn = gr.Button("ask")
            resume_id = gr.Textbox(label="session id", elem_id="api-session-id")
            resume_btn = gr.Button("resume")
            left_id = gr.Textbox(label="left version id", elem_id="api-left")
            right_id = gr.Textbox(label="right version id", elem_id="api-right")
            compare_btn = gr.Button("compare")

        out = _Outputs(sid=sid, image=image, thumbs=thumbs, versions=versions, chat=chat, status=status,
                       trace=trace, plot=plot, scores=scores, export=export_file, chat_input=chat_input,
                       compare_left=compare_left, compare_right=compare_right, compare=compare, download=download)
        outs = out.components
        quick = dict(outputs=outs, show_progress="hidden")
        turn = dict(outputs=outs, show_progress="hidden", concurrency_id="turn")

        # -- session ----------------------------------------------------------------------------
        app.load(_plain(out, h.load), [browser_sid], outs, api_visibility="private")
        sid.change(lambda s: s, [sid], [browser_sid], api_visibility="private", show_progress="hidden")
        new_session.click(_plain(out, h.new_session), [sid], api_name="new_session", **quick)

        # -- images and markers -----------------------------------------------------------------
        upload.upload(_plain(out, h.upload), [sid, upload], api_name="upload", **quick)

        def on_click(session_id, shape_value, color_value, mode_value, evt: gr.SelectData):
            return _plain(out, h.click)(session_id, evt.index, shape_value, color_value, mode_value)

        def on_thumb(session_id, evt: gr.SelectData):
            return _plain(out, h.select_index)(session_id, evt.index)

        def on_version(session_id, evt: gr.SelectData):
            return _plain(out, h.revert_index)(session_id, evt.index)

        image.select(on_click, [sid, shape, color, click_mode], api_visibility="private", **quick)
        thumbs.select(on_thumb, [sid], api_visibility="private", **quick)
        versions.select(on_version, [sid], api_visibility="private", **quick)
        add_point_btn.click(_plain(out, h.add_point), [sid, x, y, shape, color, negative, new_object],
                            api_name="add_point", **quick)
        select_btn.click(_plain(out, h.select_image), [sid, ref], api_name="select_image", **quick)
        revert_btn.click(_plain(out, h.revert), [sid, ref], api_name="revert", **quick)
        undo.click(_plain(out, h.undo_marker), [sid], api_name="undo_marker", **quick)
        clear.click(_plain(out, h.clear_markers), [sid], api_name="clear_markers", **quick)

        # -- versions: compare two, download one ------------------------------------------------
        compare_btn.click(_plain(out, h.compare), [sid, left_id, right_id], api_name="compare", **quick)
        for picker in (compare_left, compare_right):  # after the API twin, which keeps the name /compare
            picker.input(_plain(out, h.compare), [sid, compare_left, compare_right], api_visibility="private",
                         **quick)
        download.click(_plain(out, h.download_version), [sid, ref], api_name="download_version", **quick)

        # -- answers (streamed; Stop sets the turn's cancel flag, and the turn ends itself with "Stopped.") ---
        # Not Gradio's cancels=: cancelling the event task mid-step flashes "Error" on every output in the page.
        chat_input.submit(_stream(out, h.chat), [sid, chat_input], api_name="chat", trigger_mode="always_last",
                          **turn)  # Enter during an answer: answered next, once (the default drops it)
        ask_btn.click(_stream(out, h.ask), [sid, question], api_name="ask", **turn)
        regenerate.click(_stream(out, h.regenerate), [sid], api_name="regenerate", **turn)
        score.click(_stream(out, h.score), [sid, labels, model], api_name="score", **turn)
        labels.submit(_stream(out, h.score), [sid, labels, model], api_visibility="private", **turn)
        som.click(_stream(out, h.som), [sid], api_name="som", **turn)
        edit.click(_stream(out, h.edit), [sid, instruction], api_name="edit", **turn)
        remove.click(_stream(out, h.remove), [sid, instruction],
                     api_name="remove", **turn)
        generate.click(_stream(out, h.generate), [sid, prompt, sketch, seed, size], api_name="generate", **turn)
        prompt.submit(_stream(out, h.generate), [sid, prompt, sketch, seed, size], api_visibility="private",
                      **turn)
        stop.click(_plain(out, h.stop), [sid], out.components, api_name="stop", show_progress="hidden",
                   concurrency_limit=None)
        clear_chat.click(_plain(out, h.clear_chat), [sid], api_name="clear_chat", **quick)
        # The chat's own trash icon (it empties the display first) forgets the conversation too.
        chat.clear(_plain(out, h.clear_chat), [sid], api_visibility="private", **quick)
        export.click(_plain(out, h.export), [sid], api_name="export", **quick)
        import_file.upload(_plain(out, h.import_session), [sid, import_file], api_name="import_session", **quick)
        resume_btn.click(_plain(out, h.resume), [sid, resume_id], api_name="resume", **quick)
    app.mmchat_handlers = h  # for tests and debugging
    _default_launch_options(app)
    return app


def _default_launch_options(app: gr.Blocks) -> None:
    """Make ``app.launch()`` use the page options (i18n, CSS) unless the caller passes its own."""
    launch = app.launch

    @functools.wraps(launch)
    def launch_with_options(*args, **kwargs):
        for key, value in launch_options().items():
            kwargs.setdefault(key, value)
        return launch(*args, **kwargs)

    app.launch = launch_with_options
