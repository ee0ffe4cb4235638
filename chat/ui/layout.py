"""The page: one working screen. The image (the one drop target while the session has none) with a compact
toolbar, its images and versions strips beside it, and the tool tabs (Edit, Score, Generate, Compare, Trace)
under it, each tab's button and result in the window; the chat on the right; sessions in a side panel; the
New session / Delete question floats over the header. Below 900 px wide the columns stack, the chat right
after the picture and its strips. Components keep the elem_ids of DESIGN.md; sizes the components cannot set
are in page.css.

Every action has a stable ``api_name`` so gradio_client can drive it; clicks on the image, the galleries and
the chat's links (``.select`` and script events, which clients cannot send) have API twins fed by hidden inputs.
The wiring of events to handlers is in :mod:`chat.ui.wiring`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr

from chat.ui.handlers import CLICK_MODES, COLORS, SHAPES, Handlers
from chat.ui.i18n import I18N, t
from chat.ui.views import SCORE_HEADERS, TRACE_HEADERS

HERE = Path(__file__).parent
CSS = (HERE / "page.css").read_text(encoding="utf-8")
JS = (HERE / "page.js").read_text(encoding="utf-8")
SIZES = ["512x512", "768x512", "512x768", "640x448", "448x640"]


def launch_options() -> dict:
    """Keyword arguments for ``app.launch`` that belong to the page (Gradio 6 takes them there)."""
    return {"i18n": I18N, "css": CSS, "js": JS}


class Page:
    """The page's components, by name (the wiring reads them from here)."""


def build(assistant, router=None) -> gr.Blocks:
    from chat.ui.wiring import wire

    h = Handlers(assistant, router=router)
    sam = h.sam_mode
    steps_default = assistant.config.tools.edit_steps
    c = Page()
    with gr.Blocks(title="mmchat", fill_width=True) as app:
        c.sid = gr.State(None)
        c.rev = gr.State(None)  # what this tab shows of the session (two tabs on one session stay in step)
        c.confirm_kind = gr.State("")
        c.browser_sid = gr.BrowserState(None, storage_key="mmchat-session", secret="mmchat-session-id")
        c.timer = gr.Timer(2.0)

        with gr.Sidebar(open=False, elem_id="sessions-panel", width=300):
            gr.Markdown(t("sessions_heading"))
            c.sessions = gr.Radio([], label=t("sessions"), elem_id="session-list", container=False)
            c.rename = gr.Textbox(label=t("session_name"), elem_id="session-name", max_lines=1)
            with gr.Row():
                c.rename_btn = gr.Button(t("rename"), elem_id="rename-session", size="sm")
                c.delete = gr.Button(t("delete_session"), elem_id="delete-session", size="sm", variant="stop")
            c.import_file = gr.UploadButton(t("import"), file_types=[".zip"], elem_id="import", size="sm")

        with gr.Row(elem_id="header", equal_height=True):
            gr.Markdown(t("brand"), elem_id="brand")
            c.title = gr.Markdown("", elem_id="session-title")
            c.new_session = gr.Button(t("new_session"), elem_id="new-session", size="sm", scale=0, min_width=110)
            c.export = gr.Button(t("export"), elem_id="export", size="sm", scale=0, min_width=110)
        with gr.Group(visible=False, elem_id="confirm") as c.confirm_group:
            c.confirm_text = gr.Markdown("", elem_id="confirm-text")
            with gr.Row():
                c.confirm_yes = gr.Button(t("confirm"), elem_id="confirm-yes", variant="stop", size="sm")
                c.confirm_no = gr.Button(t("cancel"), elem_id="confirm-no", size="sm")

        with gr.Row(elem_id="main", equal_height=False):
            with gr.Column(scale=6, elem_id="work", min_width=320):
                with gr.Row(elem_id="toolbar", equal_height=True):
                    c.shape = gr.Dropdown([(t(f"shape_{s}"), s) for s in SHAPES], value="circle",
                                          label=t("marker_shape"), elem_id="marker-shape", min_width=110, scale=1,
                                          container=False, show_label=False)
                    c.color = gr.Dropdown([(t(f"color_{k}"), k) for k in COLORS], value="red",
                                          label=t("marker_color"), elem_id="marker-color", min_width=100, scale=1,
                                          container=False, show_label=False)
                    c.click_mode = gr.Radio([(t(f"click_{m}"), m) for m in CLICK_MODES], value="new",
                                            label=t("click_mode"), elem_id="click-mode", visible=sam, scale=2,
                                            container=False, show_label=False)
                    c.undo = gr.Button(t("undo_marker"), elem_id="undo-marker", size="sm", scale=0, min_width=70)
                    c.clear = gr.Button(t("clear_markers"), elem_id="clear-markers", size="sm", scale=0, min_width=70)
                    c.som = gr.Button(t("som"), elem_id="som", size="sm", scale=0, min_width=90)
                    c.upload = gr.UploadButton(t("upload"), file_types=["image"], file_count="multiple",
                                               elem_id="upload", size="sm", variant="primary", scale=0, min_width=90)
                # The picture and, beside it on a desktop (under it on a phone), its images and versions strips.
                with gr.Row(elem_id="picture", equal_height=False):
                    with gr.Column(elem_id="stage", scale=3, min_width=300):
                        c.image = gr.Image(label=t("image"), type="pil", format="png", interactive=False,
                                           elem_id="image", height=350, buttons=["fullscreen"], show_label=False)
                        c.drop = gr.File(label=t("drop"), file_types=["image"], file_count="multiple", elem_id="drop",
                                         height=350)
                    with gr.Column(elem_id="strips-box", visible=False, scale=1, min_width=240) as c.strips_box:
                        with gr.Column(elem_id="strips"):
                            c.thumbs = gr.Gallery(label=t("images"), elem_id="thumbnails", columns=3, height="auto",
                                                  object_fit="contain", allow_preview=False, interactive=False,
                                                  format="png", buttons=[], fit_columns=False)
                            c.versions = gr.Gallery(label=t("versions"), elem_id="versions", columns=3, height="auto",
                                                    object_fit="contain", allow_preview=False, interactive=False,
                                                    format="png", buttons=[], fit_columns=False)
                        with gr.Row(elem_id="version-bar", equal_height=True):
                            c.versions_note = gr.Markdown("", elem_id="versions-note")
                            c.compare_current = gr.Button(t("compare_parent"), elem_id="compare-current", size="sm",
                                                          min_width=100)
                            c.download = gr.DownloadButton(t("download_version"), elem_id="download-version",
                                                           size="sm", min_width=100)
                with gr.Tabs(elem_id="tools") as c.tabs:
                    with gr.Tab(t("tab_edit"), id="edit", elem_id="tab-edit"):
                        with gr.Row(equal_height=True, elem_classes=["form-row"]):
                            c.instruction = gr.Textbox(label=t("edit_instruction"), placeholder=t("edit_placeholder"),
                                                       elem_id="edit-instruction", scale=5, max_lines=1)
                            c.edit = gr.Button(t("edit_button"), elem_id="edit", variant="primary", scale=0,
                                               min_width=100)
                        with gr.Row(equal_height=True, elem_classes=["form-row"]):
                            c.target = gr.Textbox(label=t("remove_target"), placeholder=t("remove_placeholder"),
                                                  elem_id="remove-target", scale=3, max_lines=1)
                            c.remove = gr.Button(t("remove_button"), elem_id="remove", scale=0, min_width=100)
                            c.steps = gr.Textbox("", label=t("steps"), placeholder=f"{steps_default}",
                                                 elem_id="edit-steps", min_width=70, scale=1, max_lines=1)
                            c.seed = gr.Textbox("", label=t("seed"), placeholder=t("seed_random"),
                                                elem_id="edit-seed", min_width=90, scale=1, max_lines=1)
                            c.guidance = gr.Textbox("", label=t("guidance"),
                                                    placeholder=f"{assistant.config.tools.guidance_scale:g}",
                                                    elem_id="edit-guidance", min_width=80, scale=1, max_lines=1)
                        c.edit_status = gr.Markdown("", elem_id="edit-status", elem_classes=["tab-status"])
                    with gr.Tab(t("tab_score"), id="score", elem_id="tab-score"):
                        with gr.Row(equal_height=True):
                            c.labels = gr.Textbox(label=t("labels"), placeholder=t("labels_placeholder"),
                                                  elem_id="labels", scale=4, max_lines=2)
                            c.model = gr.Radio(["clip", "siglip"], value="clip", label=t("score_model"),
                                               elem_id="score-model", scale=2, min_width=180)
                            c.score = gr.Button(t("score_button"), elem_id="score", variant="primary", scale=1,
                                                min_width=100)
                        c.score_status = gr.Markdown("", elem_id="score-status", elem_classes=["tab-status"])
                        with gr.Row(equal_height=True):
                            c.plot = gr.Image(label=t("score_plot"), type="pil", format="png", interactive=False,
                                              elem_id="score-plot", height=200, buttons=["fullscreen"])
                            c.scores = gr.Dataframe(headers=SCORE_HEADERS, label=t("score_table"), interactive=False,
                                                    elem_id="score-table", max_height=200, buttons=["copy"])
                    with gr.Tab(t("tab_generate"), id="generate", elem_id="tab-generate"):
                        with gr.Row(equal_height=False):
                            c.sketch = gr.Sketchpad(label=t("sketch"), type="pil", image_mode="RGB",
                                                    canvas_size=(512, 512), fixed_canvas=True, height=340,
                                                    elem_id="sketch", layers=False, transforms=(),
                                                    brush=gr.Brush(colors=["#000000"], default_size=6,
                                                                   color_mode="fixed"), scale=1, min_width=260)
                            with gr.Column(scale=1, min_width=240):
                                c.prompt = gr.Textbox(label=t("generate_prompt"), placeholder=t("generate_placeholder"),
                                                      elem_id="generate-prompt", max_lines=2)
                                with gr.Row():
                                    c.gen_steps = gr.Textbox("", label=t("steps"), placeholder=str(steps_default),
                                                             elem_id="generate-steps", min_width=70, max_lines=1)
                                    c.gen_seed = gr.Textbox("", label=t("seed"), placeholder=t("seed_random"),
                                                            elem_id="generate-seed", min_width=100, max_lines=1)
                                    c.size = gr.Dropdown(SIZES, value="512x512", label=t("generate_size"),
                                                         elem_id="generate-size", allow_custom_value=True,
                                                         min_width=110)
                                c.generate = gr.Button(t("generate_button"), elem_id="generate", variant="primary")
                                c.generate_status = gr.Markdown("", elem_id="generate-status",
                                                                elem_classes=["tab-status"])
                    with gr.Tab(t("tab_compare"), id="compare", elem_id="tab-compare"):
                        with gr.Row(equal_height=False):
                            with gr.Column(scale=1, min_width=200):
                                c.compare_left = gr.Dropdown([], value=None, label=t("compare_left"),
                                                             elem_id="compare-left")
                                c.compare_right = gr.Dropdown([], value=None, label=t("compare_right"),
                                                              elem_id="compare-right")
                                c.compare_status = gr.Markdown("", elem_id="compare-status",
                                                               elem_classes=["tab-status"])
                            # The slider is as wide as the picture (page.css), so its handle stays on it.
                            c.compare = gr.ImageSlider(label=t("compare_slider"), type="filepath", format="png",
                                                       interactive=False, elem_id="compare", max_height=320,
                                                       buttons=["fullscreen"], scale=2, min_width=240)
                    with gr.Tab(t("tab_trace"), id="trace", elem_id="tab-trace"):
                        c.trace = gr.Dataframe(headers=TRACE_HEADERS, interactive=False, wrap=True,
                                               elem_id="tool-trace", max_height=320,
                                               column_widths=["4%", "12%", "25%", "11%", "27%", "21%"])
            with gr.Column(scale=5, elem_id="talk", min_width=320):
                c.chat = gr.Chatbot(label=t("chat"), elem_id="chat", height="calc(100vh - 250px)",
                                    min_height=300, buttons=["copy", "copy_all"], show_label=False,
                                    placeholder=t("chat_empty"), feedback_options=None,
                                    allow_file_downloads=False)
                c.chat_input = gr.MultimodalTextbox(label=t("chat_input"), placeholder=t("chat_placeholder"),
                                                    file_types=["image"], file_count="multiple", elem_id="chat-input",
                                                    show_label=False, autofocus=True)
                with gr.Row(elem_id="chat-actions"):
                    c.stop = gr.Button(t("stop"), elem_id="stop", variant="secondary", size="sm", interactive=False)
                    c.regenerate = gr.Button(t("regenerate"), elem_id="regenerate", size="sm")
                    c.clear_chat = gr.Button(t("clear_chat"), elem_id="clear-chat", size="sm")
                    c.grounded = gr.Checkbox(False, label=t("grounded"), elem_id="grounded", container=False,
                                             scale=0, min_width=0)
                c.status = gr.Markdown("", elem_id="status")
        c.export_file = gr.File(label="export", elem_id="export-file", visible="hidden")

        # API twins of clicks, gallery picks and the chat's links (clients cannot send .select events); the
        # page's script fills the hidden boxes and presses the hidden buttons for links and keys.
        with gr.Group(elem_id="api-inputs", visible="hidden"):
            c.x = gr.Number(label="x", precision=0, elem_id="api-x")
            c.y = gr.Number(label="y", precision=0, elem_id="api-y")
            c.ref = gr.Textbox(label="image or version id", elem_id="api-ref")
            c.question = gr.Textbox(label="question", elem_id="api-question")
            c.negative = gr.Checkbox(False, label="negative", elem_id="api-negative")
            c.new_object = gr.Checkbox(True, label="new object", elem_id="api-new-object")
            c.add_point_btn = gr.Button("add_point", elem_id="api-add-point")
            c.select_btn = gr.Button("select_image", elem_id="api-select")
            c.revert_btn = gr.Button("revert", elem_id="api-revert")
            c.ask_btn = gr.Button("ask", elem_id="api-ask")
            c.chat_btn = gr.Button("chat", elem_id="api-chat")
            c.resume_id = gr.Textbox(label="session id", elem_id="api-session-id")
            c.resume_btn = gr.Button("resume", elem_id="api-resume")
            c.delete_btn = gr.Button("delete_session", elem_id="api-delete")
            c.left_id = gr.Textbox(label="left version id", elem_id="api-left")
            c.right_id = gr.Textbox(label="right version id", elem_id="api-right")
            c.compare_btn = gr.Button("compare", elem_id="api-compare")
            c.act = gr.Textbox(label="chat action", elem_id="api-act")
            c.act_btn = gr.Button("chat_action", elem_id="api-act-btn")
            c.key = gr.Textbox(label="keyboard point", elem_id="api-key")
            c.key_btn = gr.Button("key_point", elem_id="api-key-btn")
            c.too_big = gr.Textbox(label="refused upload", elem_id="api-too-big")  # page.js: a file over the limit
            c.too_big_btn = gr.Button("upload_refused", elem_id="api-too-big-btn")

        wire(app, h, c)
    app.mmchat_handlers = h  # for tests and debugging
    app.mmchat_components = c
    _default_launch_options(app)
    return app


def _default_launch_options(app: gr.Blocks) -> None:
    """Make ``app.launch()`` use the page options (i18n, CSS, script) unless the caller passes its own."""
    launch = app.launch

    @functools.wraps(launch)
    def launch_with_options(*args, **kwargs):
        for key, value in launch_options().items():
            kwargs.setdefault(key, value)
        return launch(*args, **kwargs)

    app.launch = launch_with_options
