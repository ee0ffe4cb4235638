"""The chat model as the tools see it: :class:`tools.classify.ChatModel` over the router's LangChain model.

    >>> chat = ToolChat(assistant.chat_model)      # the local LLaVA, or the remote server of ``remote_llm``
    >>> chat.generate([{"role": "user", "text": "Name the object.", "images": [image]}])
    >>> chat.choose(turns, ["cat", "dog"])         # the local model only (a constrained choice); else None

Plain turns ``{"role", "text", "images"}`` become LangChain messages, each image one content part as the model
takes it (:func:`image_content`: downscaled; the local model gets the PIL image itself, a remote server a PNG data
URL, padded to square first where it would centre-crop).
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from PIL import Image

from chat.lc_messages import content_text

IMAGE_SIDE = 672  # images are downscaled to this longest side before they reach the chat model


def image_content(chat_model: BaseChatModel, image: Image.Image, side: int = IMAGE_SIDE) -> dict:
    """One image as a content part for ``chat_model``, downscaled to ``side``: the image itself for the local model
    (no PNG, no base64), a PNG data URL for any other (a remote server's padded to square first)."""
    from chat.lc_model import LocalMultimodalChatModel, image_part, pil_part

    if isinstance(chat_model, LocalMultimodalChatModel):
        if max(image.size) > side:
            image = image.copy()
            image.thumbnail((side, side), Image.Resampling.LANCZOS)
        return pil_part(image.convert("RGB"))
    prepare = getattr(chat_model, "prepare_image", None)
    if prepare is not None:
        image = prepare(image, side)
    return image_part(image, side)


def messages(chat_model: BaseChatModel, turns: list[dict]) -> list[BaseMessage]:
    """Plain turns as the LangChain messages ``chat_model`` takes."""
    out: list[BaseMessage] = []
    for turn in turns:
        text, images = turn["text"], turn.get("images") or []
        if turn["role"] == "system":
            out.append(SystemMessage(text))
        elif turn["role"] == "assistant":
            out.append(AIMessage(text))
        else:
            parts = [image_content(chat_model, image) for image in images]
            out.append(HumanMessage(content=[*parts, {"type": "text", "text": text}] if parts else text))
    return out


class ToolChat:
    """``generate(turns) -> str`` for any LangChain chat model, and ``choose(turns, options)`` (the mean
    log-probability of each option as the answer) when the model can score options (the local one); else
    ``choose`` is None and classify falls back to CLIP's best score."""

    def __init__(self, chat_model: BaseChatModel):
        self.chat_model = chat_model
        scorer = getattr(chat_model, "choice_logprobs", None)
        self.choose = (lambda turns, options: scorer(messages(chat_model, turns), list(options))) if callable(
            scorer) else None

    def generate(self, turns: list[dict]) -> str:
        return content_text(self.chat_model.invoke(messages(self.chat_model, turns)).content).strip()


__all__ = ["IMAGE_SIDE", "ToolChat", "image_content", "messages"]
