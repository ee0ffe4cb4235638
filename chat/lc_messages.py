"""LangChain messages as the local model's :class:`chat.mllm.Turn`s, and images in message content.

Images travel in message content in any of these parts:

- ``{"type": "pil_image", "image": <PIL.Image.Image>, "id": "..."}``: an image already in this process, handed
  over as it is (no encoding, no copy). :func:`pil_part` makes one; only the local model reads it (a remote
  server gets data URLs, :func:`image_part`). ``id`` names what it shows: two parts with one id show one image.
- ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`` (OpenAI's) and LangChain's
  standard ``{"type": "image", "base64": "...", "mime_type": "image/png"}`` (or ``"url": "data:..."``).
  Only inline ``data:`` URLs are read: nothing is downloaded.

A system message becomes the system turn, a human message a user turn with its images, an AI message an
assistant turn whose tool calls are written as the model writes them (``{"name": ..., "arguments": {...}}``, one
per line, after its text), and a tool message a user turn ``Result of the tool NAME: ...`` with its images (the
last one followed by the request it serves).
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from PIL import Image

from chat.errors import UserError

PIL_PART = "pil_image"


def pil_part(image: Image.Image, key: str | None = None) -> dict:
    """A content part carrying ``image`` itself, for the local model (``key``: what it shows; default a new id)."""
    return {"type": PIL_PART, "image": image, "id": key or f"pil-{uuid.uuid4().hex}"}


def image_part(image: Image.Image, max_side: int | None = None) -> dict:
    """An OpenAI-style content part carrying ``image`` as a PNG data URL (optionally downscaled): what a remote
    server, or any LangChain chat model, reads."""
    image = image.convert("RGB")
    if max_side and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


def part_key(part: Any) -> str | None:
    """What an image part shows (its id, or its data URL); None for a part that is not an image."""
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind == PIL_PART:
        return str(part.get("id") or id(part["image"]))
    if kind == "image_url":
        url = part["image_url"]
        return url["url"] if isinstance(url, dict) else url
    if kind == "image":
        return part.get("base64") or part.get("url")
    return None


def decode_image(data: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=False)))
        image.load()
        return image.convert("RGB")
    except Exception:  # noqa: BLE001 - any undecodable payload is the caller's mistake
        raise UserError("An image in the message could not be decoded; send a PNG or JPEG data URL.") from None


def _data_of(url: str) -> str:
    if not url.startswith("data:") or "," not in url:
        raise UserError("Images must be sent inline as data: URLs; nothing is downloaded.")
    return url.split(",", 1)[1]


def _part(part: Any) -> tuple[str, Image.Image | None]:
    """(text, image) of one content part."""
    if isinstance(part, str):
        return part, None
    kind = part.get("type")
    if kind == "text":
        return str(part.get("text", "")), None
    if kind == PIL_PART:
        return "", part["image"].convert("RGB")
    if kind == "image_url":
        url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
        return "", decode_image(_data_of(url))
    if kind == "image" and part.get("base64"):
        return "", decode_image(part["base64"])
    if kind == "image" and part.get("url"):
        return "", decode_image(_data_of(part["url"]))
    return "", None  # tool-call and reasoning blocks, ...: nothing the local model reads


def content_text(content: Any) -> str:
    """The text of a message's content: a string as it is, or the text of its parts joined."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content or [])


def tool_call_text(name: str, arguments: dict) -> str:
    """A tool call as the local model writes it (and is constrained to write it)."""
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def message_to_turn(message: BaseMessage):
    from chat.mllm import Turn

    content = message.content if isinstance(message.content, list) else [message.content]
    texts, found = [], []
    for part in content:
        text, image = _part(part)
        if text:
            texts.append(text)
        if image is not None:
            found.append(image)
    text = "\n".join(texts)
    if isinstance(message, SystemMessage):
        return Turn("system", text)
    if isinstance(message, AIMessage):
        calls = [tool_call_text(c["name"], c["args"]) for c in message.tool_calls]
        return Turn("assistant", "\n".join([text, *calls] if text else calls))
    if isinstance(message, ToolMessage):
        return Turn("user", f"Result of the tool {message.name or ''}: {text}".replace("  ", " "), found)
    return Turn("user", text, found)


def messages_to_turns(messages: list[BaseMessage]) -> list:
    """The messages as :class:`chat.mllm.Turn`s (images in their content decoded, or taken as they are). When the
    last message is a tool's result, it ends with the request it serves (``My request: ...``, the last human
    message's text), so what the model does next (another tool, or the answer) is about that request."""
    from chat.mllm import Turn

    turns = [message_to_turn(m) for m in messages]
    if messages and isinstance(messages[-1], ToolMessage):
        request = next((t.text for m, t in zip(reversed(messages), reversed(turns))
                        if not isinstance(m, (AIMessage, ToolMessage, SystemMessage))), "")
        if request.strip():
            turns[-1] = Turn("user", f"{turns[-1].text}\nMy request: {request.strip()}", turns[-1].images)
    return turns


def with_system_text(turns: list, text: str) -> list:
    """``turns`` with ``text`` added to the system turn (one is made first when there is none)."""
    from chat.mllm import Turn

    if not text:
        return turns
    if turns and turns[0].role == "system":
        return [Turn("system", f"{turns[0].text}\n{text}".strip()), *turns[1:]]
    return [Turn("system", text), *turns]


def with_last_user_suffix(turns: list, suffix: str) -> list:
    """``turns`` with ``suffix`` after the last turn's text (the question a constrained choice answers)."""
    from chat.mllm import Turn

    last = turns[-1] if turns else None
    if last is None or last.role != "user":
        return [*turns, Turn("user", suffix.strip())]
    return [*turns[:-1], Turn("user", last.text + suffix, last.images)]


__all__ = ["PIL_PART", "content_text", "decode_image", "image_part", "message_to_turn", "messages_to_turns", "part_key", "pil_part",
           "tool_call_text", "with_last_user_suffix", "with_system_text"]
