"""The local multimodal model as a LangChain chat model, and the factory that picks local or remote.

    >>> model = make_chat_model(assistant)          # LocalMultimodalChatModel, or RemoteChatModel (remote_llm)
    >>> for chunk in model.stream([HumanMessage(content=[image_part(img), {"type": "text", "text": "hi"}])]):
    ...     print(chunk.content, end="")

Messages become :class:`chat.mllm.Turn`s: system/human/ai (a tool message becomes a user turn). Images
travel in message content as OpenAI-style parts, ``{"type": "image_url", "image_url": {"url":
"data:image/png;base64,..."}}`` (LangChain's ``{"type": "image", "base64": ...}`` works too); each model
decodes them through its own :class:`ImageCache` (by the hash of their data), so an image sent again
with every turn is decoded once. Only ``data:`` URLs are accepted: nothing is downloaded.

Cancellation: a ``threading.Event`` given as ``cancel=`` to ``stream``/``invoke`` (or set on the model's
``cancel`` attribute) stops generation at the next token.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from collections import OrderedDict
from typing import Any, Iterator

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from PIL import Image
from pydantic import ConfigDict, Field

from chat.errors import UserError

IMAGE_CACHE_ENTRIES = 32


# --------------------------------------------------------------------------------------------
# Images in message content
# --------------------------------------------------------------------------------------------
def image_part(image: Image.Image, max_side: int | None = None) -> dict:
    """An OpenAI-style content part carrying ``image`` as a PNG data URL (optionally downscaled)."""
    image = image.convert("RGB")
    if max_side and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


class ImageCache:
    """Decoded images by the SHA-1 of their base64 data (a few recent ones)."""

    def __init__(self, entries: int = IMAGE_CACHE_ENTRIES):
        self.entries = entries
        self._images: OrderedDict[str, Image.Image] = OrderedDict()
        self._lock = threading.Lock()
        self.decodes = 0

    def decode(self, data: str) -> Image.Image:
        key = hashlib.sha1(data.encode("ascii", "ignore")).hexdigest()
        with self._lock:
            if key in self._images:
                self._images.move_to_end(key)
                return self._images[key]
        try:
            image = Image.open(io.BytesIO(base64.b64decode(data, validate=False)))
            image.load()
            image = image.convert("RGB")
        except Exception:  # noqa: BLE001 - any undecodable payload is the caller's mistake
            raise UserError("An image in the message could not be decoded; send a PNG or JPEG data URL.") from None
        with self._lock:
            self.decodes += 1
            self._images[key] = image
            while len(self._images) > self.entries:
                self._images.popitem(last=False)
        return image


def _data_of(url: str) -> str:
    if not url.startswith("data:") or "," not in url:
        raise UserError("Images must be sent inline as data: URLs; nothing is downloaded.")
    return url.split(",", 1)[1]


def _part(part: Any, images: ImageCache) -> tuple[str, Image.Image | None]:
    """(text, image) of one content part."""
    if isinstance(part, str):
        return part, None
    kind = part.get("type")
    if kind == "text":
        return str(part.get("text", "")), None
    if kind == "image_url":
        url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
        return "", images.decode(_data_of(url))
    if kind == "image" and part.get("base64"):
        return "", images.decode(part["base64"])
    if kind == "image" and part.get("url"):
        return "", images.decode(_data_of(part["url"]))
    return "", None  # tool calls, reasoning, ...: nothing the local model reads


def message_to_turn(message: BaseMessage, images: ImageCache):
    from chat.mllm import Turn

    content = message.content if isinstance(message.content, list) else [message.content]
    texts, found = [], []
    for part in content:
        text, image = _part(part, images)
        if text:
            texts.append(text)
        if image is not None:
            found.append(image)
    text = "\n".join(texts)
    if isinstance(message, SystemMessage):
        return Turn("system", text)
    if isinstance(message, AIMessage):
        return Turn("assistant", text)
    if isinstance(message, ToolMessage):
        return Turn("user", f"Result of the tool {message.name or ''}: {text}".replace("  ", " "), found)
    return Turn("user", text, found)


def messages_to_turns(messages: list[BaseMessage], images: ImageCache) -> list:
    """The messages as :class:`chat.mllm.Turn`s; images in their content are decoded through ``images``."""
    return [message_to_turn(m, images) for m in messages]


# --------------------------------------------------------------------------------------------
# The chat model
# --------------------------------------------------------------------------------------------
class _Linked(threading.Event):
    """Set when the caller's event is set; setting it (the model does when a stream ends) leaves the caller's alone."""

    def __init__(self, outer: threading.Event | None):
        super().__init__()
        self.outer = outer

    def is_set(self) -> bool:
        return super().is_set() or (self.outer is not None and self.outer.is_set())


# --------------------------------------------------------------------------------------------
# LangChain
# --------------------------------------------------------------------------------------------
class LocalMultimodalChatModel(BaseChatModel):
    """A LangChain chat model over :class:`chat.mllm.MultimodalChat` (token streaming, images, cancel)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    chat: Any = Field(description="a MultimodalChat (or anything with stream(turns, options, cancel))")
    options: Any = Field(None, description="GenerationOptions; None: the config's defaults")
    cancel: Any = Field(None, exclude=True, description="a threading.Event that stops generation when set")
    images: ImageCache = Field(default_factory=ImageCache, exclude=True, description="decoded images of messages")

    @property
    def _llm_type(self) -> str:
        return "mmchat-local-multimodal"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": getattr(self.chat, "name", "local")}

    def _options(self, kwargs: dict):
        from chat.mllm import GenerationOptions

        base = self.options.model_dump() if self.options is not None else {}
        base.update({k: kwargs[k] for k in GenerationOptions.model_fields if kwargs.get(k) is not None})
        return GenerationOptions(**base) if base else None

    def _pieces(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict) -> Iterator[str]:
        """The answer piece by piece, cut before the first stop sequence."""
        from chat.prompt_format import StopText

        cancel = _Linked(kwargs.get("cancel") or self.cancel)
        turns = messages_to_turns(messages, self.images)
        cut = StopText(stop or [])
        stream = self.chat.stream(turns, self._options(kwargs), cancel=cancel)
        try:
            for piece in stream:
                shown = cut.feed(piece)
                if shown:
                    yield shown
                if cut.stopped or cancel.is_set():
                    return
            rest = cut.flush()
            if rest:
                yield rest
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for piece in self._pieces(messages, stop, kwargs):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        text = "".join(self._pieces(messages, stop, kwargs)).strip()
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    # -- what the router needs beyond LangChain's interface ----------------------------------
    def choice_logprobs(self, messages: list[BaseMessage], options: list[str]) -> list[float]:
        """Mean log-probability of each option as the answer to ``messages`` (a constrained choice)."""
        return self.chat.choice_logprobs(messages_to_turns(messages, self.images), options)

    def context_window(self) -> int | None:
        """Prompt + answer tokens: ``models.<name>.context_tokens``, else the context the checkpoint's family was
        fine-tuned with (2048 for LLaVA-1.5, 4096 for LLaVA-NeXT), else what it can attend to; None when unknown
        (e.g. a scripted fake)."""
        try:
            if self.chat.spec.context_tokens:
                return self.chat.spec.context_tokens
            trained = self.chat.training()
            if trained is not None:
                return trained.context_tokens
            config = self.chat.bundle.model.config
        except Exception:  # noqa: BLE001
            return None
        text = getattr(config, "text_config", config)
        return getattr(text, "max_position_embeddings", None)

    def max_images(self) -> int | None:
        """Images one prompt may carry: ``models.<name>.max_images``, else as many as the checkpoint's family was
        fine-tuned with (1 for LLaVA-1.5, ViP-LLaVA, LLaVA-NeXT); None when neither is known."""
        try:
            return self.chat.spec.max_images or self.chat.training().max_images
        except Exception:  # noqa: BLE001 - a scripted fake has no config; another family has no training
            return None

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools=None) -> int:
        """Prompt tokens of ``messages`` as the model sees them (each image counts its patch tokens)."""
        bundle = self.chat.bundle
        prompt, images = self.chat.render(messages_to_turns(messages, self.images))
        ids = bundle.processor.tokenizer(prompt, add_special_tokens=True)["input_ids"]  # BOS included
        counts = self.chat.image_token_counts([(image.height, image.width) for image in images]) if images else []
        return len(ids) + sum(count - 1 for count in counts)


def make_chat_model(assistant) -> BaseChatModel:
    """The chat model the router talks to: the local one, or an OpenAI-compatible server (``remote_llm``)."""
    remote = assistant.config.remote_llm
    if remote is not None:
        from chat.remote_llm import remote_chat_model

        return remote_chat_model(remote, assistant.config.generation)
    return LocalMultimodalChatModel(chat=assistant.mllm, options=assistant.generation_options(), images=ImageCache())


__all__ = ["ImageCache", "LocalMultimodalChatModel", "image_part", "make_chat_model", "messages_to_turns"]
