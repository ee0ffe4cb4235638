"""Which handler each control runs, with which inputs, under which API name.

- quick actions (markers, images, versions, sessions) run at once, in parallel across sessions;
- what makes an answer runs under the concurrency id ``turn`` (``server.concurrency`` at a time); the chat box
  first queues the message (at once, so a message sent during an answer shows as queued), then the page asks
  for the queue to be answered;
- Stop and the two-tab sync tick never wait behind an answer.
"""

from __future__ import annotations

import gradio as gr

from chat.ui.render import Outputs, plain, stream

DOWNLOAD_JS = """(file) => {
  if (!file || !file.url) { return; }
  const a = document.createElement('a');
  a.href = file.url; a.download = file.orig_name || 'mmchat-export.zip';
  document.body.appendChild(a); a.click(); a.remove();
}"""


def wire(app: gr.Blocks, h, c) -> None:
    out = Outputs(sid=c.sid, image=c.image, thumbs=c.thumbs, versions=c.versions, chat=c.chat, status=c.status,
                  trace=c.trace, plot=c.plot, scores=c.scores, export=c.export_file, chat_input=c.chat_input,
                  compare_left=c.compare_left, compare_right=c.compare_right, compare=c.compare, download=c.download,
                  rev=c.rev, drop=c.drop, strips_box=c.strips_box, versions_note=c.versions_note, sessions=c.sessions, title=c.title,
                  rename=c.rename, confirm_group=c.confirm_group, confirm_text=c.confirm_text,
                  confirm_kind=c.confirm_kind, tabs=c.tabs, stop=c.stop, edit_status=c.edit_status,
                  score_status=c.score_status, generate_status=c.generate_status, compare_status=c.compare_status,
                  edit=c.edit, remove=c.remove, som=c.som, score=c.score, generate=c.generate,
                  regenerate=c.regenerate, clear_chat=c.clear_chat, compare_current=c.compare_current,
                  grounded=c.grounded)
    outs = out.components
    quick = dict(outputs=outs, show_progress="hidden")
    turn = dict(outputs=outs, show_progress="hidden", concurrency_id="turn")
    private = dict(api_visibility="private")

    # -- session ----------------------------------------------------------------------------
    app.load(plain(out, h.load), [c.browser_sid], outs, show_progress="hidden", **private)
    c.sid.change(lambda s: s, [c.sid], [c.browser_sid], show_progress="hidden", **private)
    c.timer.tick(plain(out, h.sync), [c.sid, c.rev], outs, show_progress="hidden", concurrency_limit=None,
                 **private)
    c.new_session.click(plain(out, lambda sid: h.ask_confirm(sid, "new")), [c.sid], **quick, **private)
    c.delete.click(plain(out, lambda sid: h.ask_confirm(sid, "delete")), [c.sid], **quick, **private)
    c.confirm_yes.click(plain(out, h.confirm), [c.sid, c.confirm_kind], **quick, **private)
    c.confirm_no.click(lambda: (gr.update(visible=False), ""), None, [c.confirm_group, c.confirm_kind],
                       show_progress="hidden", **private)
    c.resume_btn.click(plain(out, h.resume), [c.sid, c.resume_id], api_name="resume", **quick)
    c.sessions.input(plain(out, h.resume), [c.sid, c.sessions], **quick, **private)
    c.rename_btn.click(plain(out, h.rename_session), [c.sid, c.rename], api_name="rename_session", **quick)
    c.grounded.input(plain(out, h.set_grounded), [c.sid, c.grounded], api_name="set_grounded", **quick)
    c.rename.submit(plain(out, h.rename_session), [c.sid, c.rename], **quick, **private)
    c.delete_btn.click(plain(out, h.delete_session), [c.sid, c.resume_id], api_name="delete_session", **quick)
    c.import_file.upload(plain(out, h.import_session), [c.sid, c.import_file], api_name="import_session", **quick)
    c.export.click(stream(out, h.export_when_free), [c.sid], api_name="export", **quick).then(
        None, [c.export_file], None, js=DOWNLOAD_JS, **private)

    # -- images and markers -----------------------------------------------------------------
    c.upload.upload(plain(out, h.upload), [c.sid, c.upload], api_name="upload", **quick)
    c.drop.upload(plain(out, h.upload), [c.sid, c.drop], **quick, **private)
    c.too_big_btn.click(plain(out, h.upload_refused), [c.sid, c.too_big], **quick, **private)  # see page.js

    def on_click(session_id, shape, color, mode, evt: gr.SelectData):
        yield from h.click_with_progress(session_id, evt.index, shape, color, mode)

    def on_thumb(session_id, evt: gr.SelectData):
        return h.select_index(session_id, evt.index)

    def on_version(session_id, evt: gr.SelectData):
        return h.revert_index(session_id, evt.index)

    c.image.select(stream(out, on_click), [c.sid, c.shape, c.color, c.click_mode], **quick, **private)
    c.key_btn.click(stream(out, h.key_point_with_progress), [c.sid, c.key, c.shape, c.color, c.click_mode],
                    **quick, **private)
    c.thumbs.select(plain(out, on_thumb), [c.sid], **quick, **private)
    c.versions.select(plain(out, on_version), [c.sid], **quick, **private)
    c.add_point_btn.click(plain(out, h.add_point), [c.sid, c.x, c.y, c.shape, c.color, c.negative, c.new_object],
                          api_name="add_point", **quick)
    c.select_btn.click(plain(out, h.select_image), [c.sid, c.ref], api_name="select_image", **quick)
    c.revert_btn.click(plain(out, h.revert), [c.sid, c.ref], api_name="revert", **quick)
    c.undo.click(plain(out, h.undo_marker), [c.sid], api_name="undo_marker", **quick)
    c.clear.click(plain(out, h.clear_markers), [c.sid], api_name="clear_markers", **quick)

    # -- versions: compare two, download one --------------------------------------------------
    c.compare_btn.click(plain(out, h.compare, "compare"), [c.sid, c.left_id, c.right_id], api_name="compare", **quick)
    for picker in (c.compare_left, c.compare_right):  # after the API twin, which keeps the name /compare
        picker.input(plain(out, h.compare, "compare"), [c.sid, c.compare_left, c.compare_right], **quick, **private)
    c.compare_current.click(plain(out, h.compare_parent), [c.sid, c.ref], api_name="compare_parent", **quick)
    c.download.click(plain(out, h.download_version), [c.sid, c.ref], api_name="download_version", **quick)
    c.act_btn.click(plain(out, h.chat_action), [c.sid, c.act], api_name="chat_action", **quick)

    # -- answers (streamed; Stop sets the turn's cancel flag, and the turn ends itself with "Stopped.") ---
    # Not Gradio's cancels=: cancelling the event task mid-step flashes "Error" on every output in the page.
    c.chat_input.submit(plain(out, h.send), [c.sid, c.chat_input], trigger_mode="multiple", concurrency_limit=None,
                        **quick, **private).then(stream(out, h.run_queue), [c.sid], **turn, **private)
    c.chat_btn.click(stream(out, h.chat), [c.sid, c.chat_input], api_name="chat", **turn)
    c.ask_btn.click(stream(out, h.ask), [c.sid, c.question], api_name="ask", **turn)
    c.regenerate.click(stream(out, h.regenerate), [c.sid], api_name="regenerate", **turn)
    c.score.click(stream(out, h.score, "score"), [c.sid, c.labels, c.model], api_name="score", **turn)
    c.labels.submit(stream(out, h.score, "score"), [c.sid, c.labels, c.model], **turn, **private)
    c.som.click(stream(out, h.som, "edit"), [c.sid], api_name="som", **turn)
    edit_inputs = [c.sid, c.instruction, c.steps, c.seed, c.guidance]
    c.edit.click(stream(out, h.edit, "edit"), edit_inputs, api_name="edit", **turn)
    c.instruction.submit(stream(out, h.edit, "edit"), edit_inputs, **turn, **private)
    c.remove.click(stream(out, h.remove, "edit"), [c.sid, c.target, c.steps, c.seed], api_name="remove", **turn)
    generate_inputs = [c.sid, c.prompt, c.sketch, c.gen_seed, c.size, c.gen_steps]
    c.generate.click(stream(out, h.generate, "generate"), generate_inputs, api_name="generate", **turn)
    c.prompt.submit(stream(out, h.generate, "generate"), generate_inputs, **turn, **private)
    c.stop.click(plain(out, h.stop), [c.sid], outs, api_name="stop", show_progress="hidden", concurrency_limit=None)
    c.clear_chat.click(plain(out, h.clear_chat), [c.sid], api_name="clear_chat", **quick)
    # The chat's own trash icon (it empties the display first) forgets the conversation too.
    c.chat.clear(plain(out, h.clear_chat), [c.sid], **quick, **private)
    # The API's New session starts one at once (the page asks first).
    gr.Button("new_session", visible=False).click(plain(out, h.new_session), [c.sid], api_name="new_session", **quick)
