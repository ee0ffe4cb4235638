"""The Gradio app, built by a factory that takes the assistant (launching is the CLI's job)."""

from __future__ import annotations

import gradio as gr

from chat.errors import describe


def create_app(assistant) -> gr.Blocks:
    from chat.mllm import Turn

    def ask(image, question, history):
        history = list(history or [])
        if image is None:
            raise gr.Error("Upload an image first.")
        if not (question or "").strip():
            raise gr.Error("Type a question about the image.")
        history.append({"role": "user", "content": question})
        history.append({"role": "assistant", "content": ""})
        try:
            for piece in assistant.mllm.stream([Turn("user", question, [image])]):
                history[-1]["content"] += piece
                yield history, ""
        except Exception as exc:  # noqa: BLE001 - shown as one sentence in the chat
            history[-1]["content"] = f"Error: {describe(exc)}"
            yield history, ""

    with gr.Blocks(title="mmchat") as app:
        gr.Markdown("# mmchat\nA local multimodal chat assistant.")
        with gr.Row():
            image = gr.Image(type="pil", label="Image", elem_id="image")
            chat = gr.Chatbot(label="Chat", elem_id="chat")
        question = gr.Textbox(label="Message", elem_id="chat-input")
        question.submit(ask, [image, question, chat], [chat, question])
    return app
