"""The local multimodal model as a LangChain chat model: streaming, images in content parts, cancel, remote."""

import base64
import io
import threading

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from PIL import Image

from chat.errors import UserError
from chat.lc_model import LocalMultimodalChatModel, image_part, make_chat_model, messages_to_turns


class Recorder:
    """A scripted MultimodalChat: records the turns, streams words, honours cancel."""

    def __init__(self, words=("a", "red", "square"), endless=False):
        self.words, self.endless, self.calls = list(words), endless, []

    def stream(self, turns, options=None, cancel=None):
        self.calls.append((turns, options))
        i = 0
        while self.endless or i < len(self.words):
            if cancel is not None and cancel.is_set():
                return
            yield self.words[i % len(self.words)] + " "
            i += 1
        if cancel is not None:
            cancel.set()  # the real model sets the event it was given when it finishes

    def choice_logprobs(self, turns, options):
        return [-float(i) for i, _ in enumerate(options)]


def red(size=(40, 30)):
    return Image.new("RGB", size, (220, 20, 20))


def test_streams_several_chunks_through_langchain_on_the_tiny_model(assistant):
    model = make_chat_model(assistant)
    assert isinstance(model, LocalMultimodalChatModel)
    message = HumanMessage(content=[image_part(red()), {"type": "text", "text": "Describe the image."}])
    chunks = list(model.stream([message], max_new_tokens=12))
    assert len(chunks) >= 3 and all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(c.content for c in chunks).strip()
    reply = model.invoke([message], max_new_tokens=4)
    assert isinstance(reply, AIMessage) and isinstance(reply.content, str)


def test_the_callers_cancel_event_is_left_alone_when_a_stream_ends(assistant):
    model = make_chat_model(assistant)
    cancel = threading.Event()
    list(model.stream("hi", cancel=cancel, max_new_tokens=3))
    assert not cancel.is_set()


def test_token_count_and_context_window_of_the_tiny_model(assistant, monkeypatch):
    from chat.tiny import fixtures

    real = fixtures.load(fixtures.REPOS["llava"])  # the tiny LLaVA is shaped like llava-1.5-7b-hf
    model = make_chat_model(assistant)
    mllm = assistant.mllm
    # models.llava.context_tokens when set; else LLaVA-1.5's fine-tuning context (2048, not its 4096 positions)
    assert model.context_window() == (mllm.spec.context_tokens or 2048)
    monkeypatch.setattr(mllm.spec, "context_tokens", 1000)
    assert model.context_window() == 1000
    monkeypatch.setattr(mllm.spec, "context_tokens", None)
    monkeypatch.setattr(mllm, "training", lambda: None)  # a family whose fine-tuning is not known: its positions
    assert model.context_window() == real["text_config"]["max_position_embeddings"] == 4096
    monkeypatch.undo()
    text_only = model.get_num_tokens_from_messages([HumanMessage("what is this?")])
    with_image = model.get_num_tokens_from_messages(
        [HumanMessage(content=[image_part(red()), {"type": "text", "text": "what is this?"}])])
    assert with_image - text_only >= assistant.mllm.bundle.model.config.image_seq_length  # every patch token counts


def test_images_in_content_parts_reach_the_model():
    chat = Recorder()
    model = LocalMultimodalChatModel(chat=chat)
    part = image_part(red((50, 20)))
    messages = [SystemMessage("be brief"), HumanMessage(content=[part, {"type": "text", "text": "what?"}]),
                AIMessage("a square"), HumanMessage(content=[part, {"type": "text", "text": "and now?"}])]
    assert model.invoke(messages).content == "a red square"
    turns = chat.calls[0][0]
    assert [t.role for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[1].images[0].size == (50, 20) and turns[1].images[0].getpixel((0, 0)) == (220, 20, 20)
    assert turns[3].text == "and now?" and turns[3].images[0].size == (50, 20)


def test_images_in_this_process_go_to_the_local_model_as_they_are():
    """The local model's own image part hands the PIL image over: no PNG, no base64, the same object."""
    chat = Recorder()
    model = LocalMultimodalChatModel(chat=chat)
    image = red((64, 32))
    part = model.image_part(image)
    assert part["type"] == "pil_image" and part["image"] is image
    model.invoke([HumanMessage(content=[part, {"type": "text", "text": "what?"}])])
    (turn,) = chat.calls[0][0]
    assert turn.images[0].size == (64, 32) and turn.images[0].getpixel((5, 5)) == (220, 20, 20)
    grey = Image.new("L", (8, 8), 128)
    (turn,) = messages_to_turns([HumanMessage(content=[model.image_part(grey)])])
    assert turn.images[0].mode == "RGB"  # as every other image part


def test_langchain_standard_image_blocks_work_too():
    buffer = io.BytesIO()
    red((8, 8)).save(buffer, format="PNG")
    block = {"type": "image", "base64": base64.b64encode(buffer.getvalue()).decode(), "mime_type": "image/png"}
    (turn,) = messages_to_turns([HumanMessage(content=[block, {"type": "text", "text": "hi"}])])
    assert turn.images[0].size == (8, 8) and turn.text == "hi"


def test_only_inline_images_are_accepted():
    with pytest.raises(UserError, match="data: URLs"):
        messages_to_turns([HumanMessage(content=[{"type": "image_url", "image_url": {"url": "http://x/a.png"}}])])
    with pytest.raises(UserError, match="could not be decoded"):
        messages_to_turns([HumanMessage(content=[{"type": "image_url", "image_url": "data:image/png;base64,AAAA"}])])


def test_cancel_stops_the_stream_promptly():
    model = LocalMultimodalChatModel(chat=Recorder(endless=True))
    cancel = threading.Event()
    got = []
    for chunk in model.stream("go", cancel=cancel):
        if chunk.content:  # LangChain ends a stream with an empty closing chunk
            got.append(chunk.content)
        if len(got) == 3:
            cancel.set()
    assert len(got) == 3


def test_stop_sequences_cut_the_answer():
    model = LocalMultimodalChatModel(chat=Recorder(words=("one", "two", "USER:", "three")))
    assert model.invoke("count", stop=["USER:"]).content == "one two"


def test_remote_llm_gives_an_openai_compatible_model(tiny_config):
    from chat.assistant import Assistant
    from chat.config import RemoteLLM
    from chat.remote_llm import RemoteChatModel

    remote = RemoteLLM(base_url="http://127.0.0.1:9/v1", model="llava-remote", api_key="k")
    model = make_chat_model(Assistant(tiny_config.model_copy(update={"remote_llm": remote})))
    assert isinstance(model, RemoteChatModel)
    assert model.model_name == "llava-remote" and model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.streaming and model.openai_api_key.get_secret_value() == "k"
    assert model.max_tokens == tiny_config.generation.max_new_tokens
