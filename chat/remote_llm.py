"""An OpenAI-compatible server (vLLM, Ollama, llama.cpp, ...) as the chat model, set by ``remote_llm``.

    remote_llm:
      base_url: http://127.0.0.1:8000/v1
      model: llava-hf/llava-1.5-7b-hf
      api_key_env: VLLM_API_KEY          # optional; the key stays out of the YAML

The router talks to it as to the local model: streamed answers, images as ``image_url`` data-URL content
parts, tools through ``bind_tools`` (native tool calls). What this adds to langchain-openai:

- requests carry ``max_tokens`` (which every OpenAI-compatible server reads; ``ChatOpenAI`` sends
  ``max_completion_tokens``, which Ollama ignores) and the config's temperature, top_p and seed;
- every failure of the server becomes one sentence (:class:`chat.errors.UserError`) naming the server;
- a server that refuses tools (Ollama: "... does not support tools"; vLLM started without
  ``--enable-auto-tool-choice``) says so once; later requests go without tools, so chat keeps working;
- images are padded to square first (``remote_llm.image_aspect_ratio: pad``, the default), centred on CLIP's
  mean colour as LLaVA-1.5 was trained: the server applies its own processor, and vLLM serving LLaVA-1.5 uses
  the Hugging Face one, which centre-crops away the sides of a wide photo and the markers there. Padding hides
  nothing from any model (llama.cpp/Ollama pad LLaVA images the same way themselves); ``original`` sends them
  as they are, for models that take any shape (Qwen2-VL, GPT-4o, ...) and would spend tokens on the border.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import openai
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai.chat_models.base import BaseChatOpenAI
from PIL import Image
from pydantic import Field, PrivateAttr

from chat.config import GenerationConfig, RemoteLLM
from chat.errors import UserError

TOOL_KWARGS = ("tools", "tool_choice", "parallel_tool_calls")


class RemoteChatModel(BaseChatOpenAI):
    """Chat Completions against an OpenAI-compatible server, with one-sentence errors."""

    _tools_refused: bool = PrivateAttr(False)  # the server refused a request because of its tools
    image_aspect_ratio: Literal["pad", "original"] = Field(
        "pad", description="pad: images go padded to square; original: as they are")

    def prepare_image(self, image: Image.Image, max_side: int | None = None) -> Image.Image:
        """The image as it is sent to the server (see the module's docstring): downscaled to ``max_side`` at
        most, then padded to square unless ``image_aspect_ratio`` is ``original``."""
        from tools.aspect import CLIP_FILL, expand2square

        if max_side and max(image.size) > max_side:
            image = image.copy()
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        if self.image_aspect_ratio != "pad":
            return image
        return expand2square(image, CLIP_FILL)

    @property
    def tools_refused(self) -> bool:
        return self._tools_refused

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        kwargs = self._without_refused_tools(kwargs)
        try:
            yield from super()._stream(messages, stop, run_manager, **kwargs)
        except openai.APIError as exc:
            raise self._user_error(exc, with_tools=bool(kwargs.get("tools"))) from None

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        kwargs = self._without_refused_tools(kwargs)
        try:
            return super()._generate(messages, stop, run_manager, **kwargs)
        except openai.APIError as exc:
            raise self._user_error(exc, with_tools=bool(kwargs.get("tools"))) from None

    def _without_refused_tools(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not self._tools_refused:
            return kwargs
        return {k: v for k, v in kwargs.items() if k not in TOOL_KWARGS}

    def _user_error(self, exc: openai.APIError, with_tools: bool) -> UserError:
        """One sentence for a failed request (and remember a refusal of tools)."""
        where = f"The remote model server at {self.openai_api_base}"
        says = _server_says(exc)
        if isinstance(exc, openai.APITimeoutError):
            return UserError(f"{where} did not answer within {self.request_timeout:g} s; try again, or raise "
                             "remote_llm.timeout_s.")
        if isinstance(exc, openai.APIConnectionError):
            return UserError(f"{where} cannot be reached; check remote_llm.base_url and that the server is running.")
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            return UserError(f"{where} refused the API key (HTTP {status}); check remote_llm.api_key_env.")
        if with_tools and status != 429 and "tool" in says.lower():
            self._tools_refused = True
            return UserError(f"{where} does not accept tools ({says}); it answers without them from now on (slash "
                             "commands such as /score still run the tools).")
        if status == 404:
            return UserError(f"{where} does not serve the model '{self.model_name}' (HTTP 404: {says}); check "
                             "remote_llm.model and remote_llm.base_url.")
        if status == 429:
            return UserError(f"{where} is busy (HTTP 429: {says}); wait a moment and try again.")
        if status is not None and status >= 500:
            return UserError(f"{where} failed (HTTP {status}: {says}); try again, or look at the server's log.")
        if status is not None:
            return UserError(f"{where} rejected the request (HTTP {status}: {says}).")
        return UserError(f"{where} sent a reply that could not be read ({says}).")


def _server_says(exc: openai.APIError) -> str:
    """The server's own error message, on one line and short (OpenAI's ``error.message``, FastAPI's ``detail``)."""
    body = getattr(exc, "body", None)
    text: Any = None
    if isinstance(body, dict):
        error = body.get("error", body)
        text = error.get("message") or error.get("detail") if isinstance(error, dict) else error
    text = " ".join(str(text or exc.message or type(exc).__name__).split())
    return (text[:200] + "...") if len(text) > 200 else text.rstrip(".")


def remote_chat_model(remote: RemoteLLM, generation: GenerationConfig) -> RemoteChatModel:
    """The chat model for ``remote_llm``, with the config's generation settings."""
    return RemoteChatModel(base_url=remote.base_url, model=remote.model, api_key=remote.key(),
                           timeout=remote.timeout_s, max_retries=remote.max_retries, streaming=True, stream_usage=True,
                           max_tokens=generation.max_new_tokens, temperature=generation.temperature,
                           top_p=generation.top_p, seed=generation.seed,
                           image_aspect_ratio=remote.image_aspect_ratio)


class RemoteTurns:
    """The server behind the local model's turn protocol, for what talks in :class:`chat.mllm.Turn`s (``mmchat ask``,
    ``classify``): ``stream(turns, options, cancel)`` and ``generate(turns, options)``. Each turn's images go as
    data URLs, prepared as for the router (downscaled to ``image_side``, padded unless ``original``). It makes no
    constrained choice (``choice_logprobs``): a caller that needs one falls back as it does without it."""

    image_side = 672

    def __init__(self, model: RemoteChatModel):
        self.model = model
        self.name = model.model_name

    def messages(self, turns) -> list[BaseMessage]:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        from chat.lc_messages import image_part

        out: list[BaseMessage] = []
        for turn in turns:
            if turn.role == "system":
                out.append(SystemMessage(turn.text))
            elif turn.role == "assistant":
                out.append(AIMessage(turn.text))
            else:
                parts = [image_part(self.model.prepare_image(i, self.image_side)) for i in turn.images]
                out.append(HumanMessage(content=[*parts, {"type": "text", "text": turn.text}]))
        return out

    def stream(self, turns, options=None, cancel=None, **_: Any) -> Iterator[str]:
        """The answer piece by piece (``options``: a GenerationOptions; ``cancel`` stops it at the next piece)."""
        settings = {}
        if options is not None:
            settings = {"max_tokens": options.max_new_tokens, "temperature": options.temperature,
                        "top_p": options.top_p, "seed": options.seed}
        for chunk in self.model.stream(self.messages(turns), **{k: v for k, v in settings.items() if v is not None}):
            if cancel is not None and cancel.is_set():
                return
            if isinstance(chunk.content, str) and chunk.content:
                yield chunk.content

    def generate(self, turns, options=None, reuse: bool = True) -> str:
        return "".join(self.stream(turns, options)).strip()


__all__ = ["RemoteChatModel", "RemoteTurns", "remote_chat_model"]
