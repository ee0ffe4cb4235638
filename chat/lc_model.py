"""The local multimodal model as a LangChain chat model, and the factory that picks local or remote.

    >>> model = make_chat_model(assistant)          # LocalMultimodalChatModel, or RemoteChatModel (remote_llm)
    >>> for chunk in model.stream([HumanMessage(content=[model.image_part(img), {"type": "text", "text": "hi"}])]):
    ...     print(chunk.content, end="")
    >>> model.bind_tools([caption, score]).invoke("is it a cat or a dog?").tool_calls
    [{'name': 'score', 'args': {'labels': ['cat', 'dog']}, 'id': 'call_...', 'type': 'tool_call'}]
    >>> model.with_structured_output(Joke).invoke("a joke about cats")      # Joke(setup=..., punchline=...)

Messages become :class:`chat.mllm.Turn`s (:mod:`chat.lc_messages`, which says which image parts are read).

**Tools** (``bind_tools``, ``tool_choice``: ``auto``, ``any``/``required``, a tool's name, ``none``). The system
turn lists the tools. Which tool (or, with ``auto``, a plain answer) is a constrained choice
(:meth:`chat.mllm.MultimodalChat.choice_logprobs`: the tool names scored in one batch after the question "Which
tool should handle this request?"); a tool must beat the answer by ``tool_margin``. Only the chosen tool's
arguments are generated, as ``{"name": ..., "arguments": {...}}`` constrained to its JSON schema by
:mod:`chat.structured` (the name and the forced start are prefilled), so every ``tool_calls`` entry validates
against the tool's schema. A call whose arguments did not complete within the budget is no call: the reply says
so in one sentence. With ``none`` the tools are listed the same way and the model answers in words (so each step
of a tool-calling loop starts with the same prompt, and the kept KV cache serves the next). How the choice went is
on the reply's ``response_metadata["tool_choice"]``: ``best`` (the likeliest tool), ``margin`` (its mean
log-probability over the answer's) and ``required`` (``tool_margin``).

**Structured output** (``with_structured_output``: pydantic, TypedDict or JSON schema; ``method`` ``json_schema``
(default: the answer is the document), ``function_calling`` (a forced tool call) or ``json_mode`` (any JSON
object)) uses the same constraint.

**Usage**: ``usage_metadata`` on the reply (on the last chunk when streaming): ``input_tokens`` are the prompt
tokens of every model call of the turn (each image counts its image tokens; the constrained choice is one call),
``input_token_details.cache_read`` those continued from a kept KV cache, ``output_tokens`` the generated ones.

Cancellation: a ``threading.Event`` given as ``cancel=`` to ``stream``/``invoke`` (or set on the model's
``cancel`` attribute) stops generation at the next token.
"""

from __future__ import annotations

import json
import threading
import uuid
from operator import itemgetter
from typing import Any, Callable, Iterator, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput, LangSmithParams
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from PIL import Image
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from chat.lc_messages import image_part, messages_to_turns, pil_part, with_last_user_suffix, with_system_text

CHOICE_PROMPT = "\n\nWhich tool should handle this request? Reply with the tool name only."
ANSWER = "answer"  # the option of a plain answer in the choice (tool_choice auto)
ARGUMENT_TOKENS = 256  # at most this many tokens of tool arguments or structured output (never fewer than asked)
TOOLS_HEADER = "Tools you can use:"
JSON_PROMPT = "Answer with one JSON object that matches this JSON schema: {schema}"


def _signature(tool: dict) -> str:
    """``name(arg, optional?): description`` of an OpenAI-format tool, for the system turn."""
    function = tool["function"]
    parameters = function.get("parameters") or {}
    required = set(parameters.get("required") or [])
    args = ", ".join(name + ("" if name in required else "?") for name in parameters.get("properties") or {})
    description = " ".join((function.get("description") or "").split())
    return f"- {function['name']}({args}): {description}".rstrip(": ")


def tools_text(tools: list[dict], with_answer: bool = True) -> str:
    """The system turn's list of the tools (and of the plain answer)."""
    lines = [TOOLS_HEADER, *(_signature(t) for t in tools)]
    if with_answer:
        lines.append(f"- {ANSWER}: reply in words, no tool needed")
    return "\n".join(lines)


def _call_schema(tool: dict) -> dict:
    """The JSON schema of one call of ``tool`` as the model writes it: ``{"name": NAME, "arguments": {...}}``."""
    function = tool["function"]
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "object", "properties": {"name": {"const": function["name"]}, "arguments": parameters},
            "required": ["name", "arguments"]}


def _chosen(tool_choice: Any, names: list[str]) -> tuple[list[str], bool]:
    """(the tools the choice is among, whether a plain answer is one of the options) for ``tool_choice``."""
    if tool_choice in (None, "auto"):
        return names, True
    if tool_choice in ("any", "required", True):
        return names, False
    if isinstance(tool_choice, dict):
        tool_choice = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if tool_choice in names:
        return [tool_choice], False
    raise ValueError(f"tool_choice {tool_choice!r} is not one of the bound tools ({', '.join(names)}).")


class _Linked(threading.Event):
    """Set when the caller's event is set; setting it (the model does when a stream ends) leaves the caller's alone."""

    def __init__(self, outer: threading.Event | None):
        super().__init__()
        self.outer = outer

    def is_set(self) -> bool:
        return super().is_set() or (self.outer is not None and self.outer.is_set())


class _Usage:
    """Token counts of the model calls of one turn."""

    def __init__(self):
        self.calls: list[dict] = []

    def add(self, stats: dict) -> None:
        if stats:
            self.calls.append(stats)

    def metadata(self) -> dict:
        prompt = sum(int(s.get("prompt_tokens", 0)) for s in self.calls)
        output = sum(int(s.get("output_tokens", 0)) for s in self.calls)
        cached = sum(int(s.get("reused_tokens", 0)) for s in self.calls)
        return {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output,
                "input_token_details": {"cache_read": cached}}


class _Trimmed:
    """Text pieces without the answer's leading and trailing whitespace (held back until more text comes)."""

    def __init__(self):
        self.started, self.held = False, ""

    def feed(self, piece: str) -> str:
        if not self.started:
            piece = piece.lstrip()
            self.started = bool(piece)
        body = piece.rstrip()
        if not body:
            self.held += piece
            return ""
        shown, self.held = self.held + body, piece[len(body):]
        return shown


class LocalMultimodalChatModel(BaseChatModel):
    """A LangChain chat model over :class:`chat.mllm.MultimodalChat`: token streaming, images, cancel, tool calls
    and structured output by constrained decoding, usage."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    chat: Any = Field(None, exclude=True, description="a MultimodalChat (or anything with stream(turns, options, "
                                                      "cancel)); None: made from ``config``")
    config: str | None = Field(None, description="the mmchat config file the model is made from when no chat is "
                                                 "given; None: $MMCHAT_CONFIG, else configs/default.yaml")
    options: Any = Field(None, exclude=True, description="GenerationOptions; None: the config's defaults")
    cancel: Any = Field(None, exclude=True, description="a threading.Event that stops generation when set")
    model: str | None = Field(None, description="the name traces give the model; default: its checkpoint path")
    temperature: float | None = Field(None, description="overrides the options' temperature")
    max_tokens: int | None = Field(None, description="overrides the options' max_new_tokens")
    stop: list[str] | None = Field(None, description="the answer ends before the first of these")
    streaming: bool = False  # LangChain's flag (invoke streams when set); the local model always streams inside
    tool_margin: float = Field(0.0, description="with tool_choice auto, a tool must beat the plain answer's mean "
                                                "log-probability by this much to be called")

    _others: dict = PrivateAttr(default_factory=dict)  # other chat models of the config, by name (model=...)

    @model_validator(mode="after")
    def _made_from_config(self) -> LocalMultimodalChatModel:
        """Without a chat, the model of ``config`` (nothing loads until the first message)."""
        if self.chat is None:
            from chat.assistant import Assistant
            from chat.config import load_config
            from chat.mllm import MultimodalChat

            assistant = Assistant(load_config(self.config))
            self.chat = MultimodalChat(assistant.registry)  # the local model, even where remote_llm is set
            self.options = self.options if self.options is not None else assistant.generation_options()
        return self

    @property
    def _llm_type(self) -> str:
        return "mmchat-local-multimodal"

    @property
    def model_name(self) -> str:
        return self._name_of(self.chat)

    def _name_of(self, chat) -> str:
        if self.model and chat is self.chat:
            return self.model
        try:
            return str(chat.spec.path)
        except Exception:  # noqa: BLE001 - a scripted fake has no spec
            return str(getattr(chat, "name", "local"))

    def _chat_for(self, kwargs: dict):
        """The chat model of this call: another model of the config when ``model=`` names one (``vip_llava``)."""
        name = kwargs.get("model")
        if not name or name in (self.model, getattr(self.chat, "name", None)):
            return self.chat
        from chat.mllm import MultimodalChat

        registry = self.chat.registry
        if name not in registry.config.models:
            known = ", ".join(registry.config.models)
            raise ValueError(f"model {name!r} is not a model of the config (models: {known}).")
        if name not in self._others:
            self._others[name] = MultimodalChat(registry, name)
        return self._others[name]

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_name}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        options = self._options(kwargs)
        params = LangSmithParams(ls_provider="mmchat", ls_model_name=kwargs.get("model") or self.model_name,
                                 ls_model_type="chat")
        temperature = options.temperature if options is not None else self.temperature
        max_tokens = options.max_new_tokens if options is not None else self.max_tokens
        if temperature is not None:
            params["ls_temperature"] = temperature
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    @staticmethod
    def image_part(image: Image.Image, key: str | None = None) -> dict:
        """The content part that hands ``image`` to this model as it is (no PNG, no base64)."""
        return pil_part(image, key)

    def _options(self, kwargs: dict):
        from chat.mllm import GenerationOptions

        try:
            base = self.options.model_dump() if self.options is not None else {}
        except AttributeError:
            base = {}
        if self.temperature is not None:
            base["temperature"] = self.temperature
        if self.max_tokens is not None:
            base["max_new_tokens"] = self.max_tokens
        base.update({k: kwargs[k] for k in GenerationOptions.model_fields if kwargs.get(k) is not None})
        if kwargs.get("max_tokens") is not None:
            base["max_new_tokens"] = kwargs["max_tokens"]
        return GenerationOptions(**base) if base else None

    def _document_options(self, kwargs: dict):
        """Options of a constrained generation: greedy unless a temperature was asked, and room for a document."""
        from chat.mllm import GenerationOptions

        options = self._options(kwargs)
        base = options.model_dump() if options is not None else {}
        base["max_new_tokens"] = max(base.get("max_new_tokens", 0), ARGUMENT_TOKENS)
        return GenerationOptions(**base)

    # -- one turn --------------------------------------------------------------------------
    def _pieces(self, chat, turns: list, stop: list[str] | None, kwargs: dict, usage: _Usage, options=None,
                constraint=None) -> Iterator[str]:
        """The answer piece by piece, cut before the first stop sequence."""
        from chat.prompt_format import StopText

        cancel = _Linked(kwargs.get("cancel") or self.cancel)
        cut = StopText([] if constraint is not None else (stop or self.stop or []))
        stats: dict = {}
        extra = {"constraint": constraint, "stats": stats} if constraint is not None else {"stats": stats}
        try:
            stream = chat.stream(turns, options or self._options(kwargs), cancel=cancel, **extra)
        except TypeError:  # a scripted chat without constraints or counts
            stream = chat.stream(turns, options or self._options(kwargs), cancel=cancel)
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
            usage.add(stats)

    def _choose(self, chat, turns: list, tools: list[dict], tool_choice: Any, margin: float,
                usage: _Usage, choice: dict) -> dict | None:
        """The tool to call (None: answer in words), by constrained choice when there is one to make; ``choice``
        receives how it went (the best tool, its margin over the answer, the margin asked for)."""
        names = [t["function"]["name"] for t in tools]
        among, answer = _chosen(tool_choice, names)
        if len(among) == 1 and not answer:
            return next(t for t in tools if t["function"]["name"] == among[0])
        options = among + ([ANSWER] if answer else [])
        stats: dict = {}
        asked = with_last_user_suffix(turns, CHOICE_PROMPT)
        try:
            scores = chat.choice_logprobs(asked, options, stats=stats)
        except TypeError:  # a scripted chat without counts
            scores = chat.choice_logprobs(asked, options)
        usage.add(stats)
        best = max(range(len(among)), key=lambda i: scores[i])
        choice["best"] = among[best]
        if answer:
            choice.update(margin=round(float(scores[best] - scores[-1]), 2), required=margin)
            if scores[best] - scores[-1] <= margin:
                return None
        return next(t for t in tools if t["function"]["name"] == among[best])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        usage = _Usage()
        chat = self._chat_for(kwargs)
        tools = kwargs.get("tools") or []
        tool_choice = kwargs.get("tool_choice")
        response_format = kwargs.get("response_format")
        turns = messages_to_turns(messages)
        finish, choice = "stop", {}
        if response_format is not None:
            turns = with_system_text(turns, JSON_PROMPT.format(schema=json.dumps(response_format)))
            chunks = self._document(chat, turns, response_format, kwargs, usage)
        elif tools:  # listed the same way whatever the choice, so every step of a turn shares the prompt's start
            turns = with_system_text(turns, tools_text(tools, with_answer=tool_choice in (None, "auto", "none")))
            tool = None if tool_choice == "none" else self._choose(
                chat, turns, tools, tool_choice, kwargs.get("tool_margin", self.tool_margin), usage, choice)
            if tool is not None:
                chunks = self._tool_call(chat, turns, tool, kwargs, usage)
                finish = "tool_calls"
            else:
                chunks = self._text(chat, turns, stop, kwargs, usage)
        else:
            chunks = self._text(chat, turns, stop, kwargs, usage)
        for chunk in chunks:
            if run_manager and isinstance(chunk.message.content, str) and chunk.message.content:
                run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=usage.metadata(), chunk_position="last",
            response_metadata={"model_name": self._name_of(chat), "model_provider": "mmchat", "finish_reason": finish,
                               **({"tool_choice": choice} if choice else {})}))

    def _text(self, chat, turns, stop, kwargs, usage) -> Iterator[ChatGenerationChunk]:
        trimmed = _Trimmed()
        for piece in self._pieces(chat, turns, stop, kwargs, usage):
            shown = trimmed.feed(piece)
            if shown:
                yield ChatGenerationChunk(message=AIMessageChunk(content=shown))

    def _document(self, chat, turns, schema: dict, kwargs, usage) -> Iterator[ChatGenerationChunk]:
        """The answer as a JSON document matching ``schema`` (streamed as it is generated)."""
        from chat.structured import JsonConstraint

        constraint = JsonConstraint(schema)
        for piece in self._pieces(chat, turns, None, kwargs, usage, self._document_options(kwargs), constraint):
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))

    def _tool_call(self, chat, turns, tool: dict, kwargs, usage) -> Iterator[ChatGenerationChunk]:
        """One call of ``tool``, its arguments generated under the tool's schema; sent whole once it validates."""
        from chat.structured import JsonConstraint

        name = tool["function"]["name"]
        constraint = JsonConstraint(_call_schema(tool))
        text = "".join(self._pieces(chat, turns, None, kwargs, usage, self._document_options(kwargs), constraint))
        try:
            arguments = constraint.parse(text)["arguments"]
        except ValueError as exc:
            yield ChatGenerationChunk(message=AIMessageChunk(
                content=f"The model could not finish the arguments of the {name} tool ({exc}); ask again, or "
                        "use its slash command."))
            return
        call = {"name": name, "args": json.dumps(arguments, ensure_ascii=False), "id": f"call_{uuid.uuid4().hex[:24]}",
                "index": 0, "type": "tool_call_chunk"}
        yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[call]))

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    # -- LangChain's tool calling and structured output -------------------------------------
    def bind_tools(self, tools: Sequence[dict[str, Any] | type | Callable | BaseTool], *,
                   tool_choice: str | dict | bool | None = None, **kwargs: Any) -> Runnable[LanguageModelInput, Any]:
        """The model with ``tools`` (any form LangChain converts: BaseTool, function, pydantic, TypedDict, JSON
        schema); ``tool_choice``: ``auto`` (default), ``any``/``required``, a tool's name, or ``none``."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice not in (None, "none"):
            _chosen(tool_choice, [t["function"]["name"] for t in formatted])  # an unknown name fails here
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(self, schema: dict | type, *, include_raw: bool = False,
                               method: str = "json_schema", strict: bool | None = None,
                               **kwargs: Any) -> Runnable[LanguageModelInput, Any]:
        """Replies parsed into ``schema`` (pydantic class: instances; TypedDict or JSON schema: dicts). ``method``:
        ``json_schema`` (the reply is a document of the schema), ``function_calling`` (a forced call of a tool
        named after the schema) or ``json_mode`` (any JSON object, parsed into the schema)."""
        from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
        from langchain_core.utils.pydantic import is_basemodel_subclass

        if kwargs:
            raise ValueError(f"Received unsupported arguments {kwargs}")
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw)
        if method not in ("json_schema", "json_mode"):
            raise ValueError(f"method must be json_schema, function_calling or json_mode, not {method!r}")
        document = convert_to_json_schema(schema) if method == "json_schema" else {"type": "object"}
        llm = self.bind(response_format=document, ls_structured_output_format={
            "kwargs": {"method": method, "strict": strict}, "schema": convert_to_json_schema(schema)})
        pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        parser = PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")

    # -- what the chat needs beyond LangChain's interface (classify's choice, the prompt's window) --
    def choice_logprobs(self, messages: list[BaseMessage], options: list[str]) -> list[float]:
        """Mean log-probability of each option as the answer to ``messages`` (a constrained choice)."""
        return self.chat.choice_logprobs(messages_to_turns(messages), options)

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
        """Prompt tokens of ``messages`` as the model sees them (each image counts its patch tokens; bound tools
        count the system turn's list of them)."""
        bundle = self.chat.bundle
        turns = messages_to_turns(messages)
        if tools:
            turns = with_system_text(turns, tools_text([convert_to_openai_tool(t) for t in tools]))
        prompt, images = self.chat.render(turns)
        ids = bundle.processor.tokenizer(prompt, add_special_tokens=True)["input_ids"]  # BOS included
        counts = self.chat.image_token_counts([(image.height, image.width) for image in images]) if images else []
        return len(ids) + sum(count - 1 for count in counts)


def make_chat_model(assistant) -> BaseChatModel:
    """The chat model the router talks to: the local one, or an OpenAI-compatible server (``remote_llm``)."""
    remote = assistant.config.remote_llm
    if remote is not None:
        from chat.remote_llm import remote_chat_model

        return remote_chat_model(remote, assistant.config.generation)
    return LocalMultimodalChatModel(chat=assistant.mllm, options=assistant.generation_options())


__all__ = ["LocalMultimodalChatModel", "image_part", "make_chat_model", "messages_to_turns", "pil_part",
           "tools_text"]
