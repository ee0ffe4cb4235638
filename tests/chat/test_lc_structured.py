"""Tool calls and structured output of the local model: constrained decoding on the tiny LLaVA, tool choice,
usage, tracing parameters, and a LangChain agent (LangChain's own runtime) driving the project's tools."""

from __future__ import annotations

import json

import jsonschema
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from PIL import Image
from pydantic import BaseModel, Field
from typing_extensions import Annotated, TypedDict

from chat.lc_model import CHOICE_PROMPT, TOOLS_HEADER, LocalMultimodalChatModel, make_chat_model
from chat.toolbox import TOOLS
from chat.structured import closing_text


@tool
def weather(city: str, days: int = 1) -> str:
    """The weather forecast for a city."""
    return f"sunny in {city}"


@tool
def clock() -> str:
    """The time now."""
    return "noon"


class Joke(BaseModel):
    """A joke."""

    setup: str = Field(description="the question")
    punchline: str = Field(description="the answer")


class JokeDict(TypedDict):
    """A joke."""

    setup: Annotated[str, ..., "the question"]
    punchline: Annotated[str, ..., "the answer"]


class Scripted:
    """A scripted MultimodalChat: choice scores from a dict; answers a fixed text; records what it was asked."""

    name = "scripted"

    def __init__(self, scores=None, answer="It is a cat.", document='{"name": "weather", "arguments": {"city": "Oslo"}}'):
        self.scores, self.answer, self.document = scores or {}, answer, document
        self.choices, self.streams = [], []

    def choice_logprobs(self, turns, options, stats=None):
        self.choices.append((turns, options))
        return [self.scores.get(o, -5.0) for o in options]

    def stream(self, turns, options=None, cancel=None, constraint=None, stats=None):
        self.streams.append((turns, options, constraint))
        if stats is not None:
            stats.update(prompt_tokens=100, reused_tokens=40, output_tokens=7)
        yield from ([self.document] if constraint is not None else [" " + self.answer + " "])


def red(size=(64, 48)):
    return Image.new("RGB", size, (220, 20, 20))


@pytest.fixture(scope="module")
def model(tiny_config):
    from chat.assistant import Assistant

    return make_chat_model(Assistant(tiny_config))


# -- constrained decoding on the tiny model -----------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_project_tool_call_validates_against_its_schema(model, assistant, seed):
    """Random weights, sampling: whatever the model writes, each tool's arguments match the tool's schema."""
    from chat.lc_tools import make_tools
    from chat.session import Session

    tools = make_tools(assistant, Session())
    for name, spec in TOOLS.items():
        bound = model.bind_tools(tools, tool_choice=name, temperature=1.0, seed=seed)
        message = bound.invoke([HumanMessage(content=[model.image_part(red()), {"type": "text", "text": "go"}])])
        assert [c["name"] for c in message.tool_calls] == [name], message.content
        jsonschema.validate(message.tool_calls[0]["args"], spec.schema.model_json_schema())
        assert message.tool_calls[0]["id"].startswith("call_") and message.usage_metadata["output_tokens"] > 0


def test_a_string_the_model_keeps_open_is_closed_within_the_budget(model):
    bound = model.bind_tools([weather], tool_choice="weather", max_tokens=8)  # below the closing margin from the start
    message = bound.invoke("The weather in Oslo?")
    (call,) = message.tool_calls
    assert set(call["args"]) <= {"city", "days"} and isinstance(call["args"]["city"], str)
    assert message.usage_metadata["output_tokens"] <= 256


def test_closing_text_of_json_prefixes():
    assert closing_text('{"a": ["x", "y') == '"]}'
    assert closing_text('{"a": {"b": "q\\"}') == '"}}'  # an escaped quote does not close the string
    assert closing_text('{"a": 1') == "}"
    assert closing_text('{"a": [1, 2], "b": "}]"') == "}"


@pytest.mark.parametrize("schema", [Joke, JokeDict, Joke.model_json_schema()], ids=["pydantic", "typeddict", "json"])
@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output_of_each_schema_kind(model, schema, method):
    out = model.with_structured_output(schema, method=method).invoke("Tell me a joke about cats.")
    if schema is Joke:
        assert isinstance(out, Joke)
    else:
        assert set(out) == {"setup", "punchline"} and all(isinstance(v, str) for v in out.values())


def test_structured_output_with_the_raw_reply(model):
    out = model.with_structured_output(Joke, include_raw=True).invoke("A joke?")
    assert isinstance(out["parsed"], Joke) and out["parsing_error"] is None
    assert json.loads(out["raw"].content) == out["parsed"].model_dump()


def test_usage_counts_the_image_tokens_and_what_was_generated(model, assistant):
    text_only = model.invoke("What is it?", max_tokens=5).usage_metadata
    with_image = model.invoke([HumanMessage(content=[model.image_part(red()), {"type": "text", "text": "What is it?"}])],
                              max_tokens=5).usage_metadata
    image_tokens = assistant.mllm.bundle.model.config.image_seq_length
    assert with_image["input_tokens"] - text_only["input_tokens"] >= image_tokens - 1  # 576: every patch counts
    assert with_image["output_tokens"] <= 5 and with_image["total_tokens"] == with_image["input_tokens"] + 5 - (
        5 - with_image["output_tokens"])
    chunks = list(model.stream("What is it?", max_tokens=5))
    assert [c.usage_metadata is not None for c in chunks].count(True) == 1 and chunks[-1].usage_metadata
    assert chunks[-1].chunk_position == "last" and chunks[-1].response_metadata["model_name"].endswith("llava")


def test_tracing_parameters(model):
    params = model._get_ls_params(stop=["USER:"], temperature=0.5)
    assert params["ls_provider"] == "mmchat" and params["ls_model_name"].endswith("llava")
    assert (params["ls_model_type"], params["ls_temperature"], params["ls_stop"]) == ("chat", 0.5, ["USER:"])
    assert params["ls_max_tokens"] == model.options.max_new_tokens


# -- tool choice (scripted model) ---------------------------------------------------------------
def test_auto_answers_in_words_when_the_answer_wins_the_choice():
    chat = Scripted(scores={"weather": -3.0, "clock": -4.0, "answer": -1.0})
    message = LocalMultimodalChatModel(chat=chat).bind_tools([weather, clock]).invoke("hi there")
    assert message.content == "It is a cat." and message.tool_calls == []
    (turns, options), = chat.choices
    assert options == ["weather", "clock", "answer"] and turns[-1].text == "hi there" + CHOICE_PROMPT
    assert turns[0].role == "system" and turns[0].text.startswith(TOOLS_HEADER)
    assert "- weather(city, days?): The weather forecast for a city." in turns[0].text
    assert chat.streams[0][0][-1].text == "hi there"  # the answer's prompt has no choice question


def test_auto_calls_the_tool_that_beats_the_answer_by_the_margin():
    chat = Scripted(scores={"weather": -1.0, "answer": -1.5})
    model = LocalMultimodalChatModel(chat=chat)
    message = model.bind_tools([weather, clock]).invoke("weather in Oslo?")
    assert message.tool_calls[0]["name"] == "weather" and message.tool_calls[0]["args"] == {"city": "Oslo"}
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert chat.streams[0][2] is not None  # the arguments were generated under the tool's schema
    assert model.bind_tools([weather], tool_margin=1.0).invoke("weather?").tool_calls == []  # 0.5 is not enough


def test_any_never_answers_and_a_named_tool_needs_no_choice():
    chat = Scripted(scores={"answer": 0.0, "clock": -9.0, "weather": -1.0})
    model = LocalMultimodalChatModel(chat=chat)
    assert model.bind_tools([weather, clock], tool_choice="any").invoke("x").tool_calls[0]["name"] == "weather"
    assert chat.choices[-1][1] == ["weather", "clock"]
    chat.document = '{"name": "clock", "arguments": {}}'
    message = model.bind_tools([weather, clock], tool_choice="clock").invoke("x")
    assert message.tool_calls[0]["name"] == "clock" and len(chat.choices) == 1  # no second choice made
    named = {"type": "function", "function": {"name": "clock"}}
    assert model.bind_tools([weather, clock], tool_choice=named).invoke("x").tool_calls[0]["name"] == "clock"


def test_none_answers_without_tools_and_an_unknown_name_is_refused():
    chat = Scripted()
    model = LocalMultimodalChatModel(chat=chat)
    assert model.bind_tools([weather], tool_choice="none").invoke("x").content == "It is a cat."
    assert chat.choices == []  # no choice: the tools are listed as with auto (the same prompt start), never called
    assert chat.streams[0][0][0].text.startswith(TOOLS_HEADER) and chat.streams[0][2] is None
    with pytest.raises(ValueError, match="not one of the bound tools"):
        model.bind_tools([weather], tool_choice="clock")


def test_arguments_that_did_not_complete_are_no_call_but_one_sentence():
    chat = Scripted(scores={"weather": 0.0}, document='{"name": "weather", "arguments": {"city": "Os')
    message = LocalMultimodalChatModel(chat=chat).bind_tools([weather], tool_choice="any").invoke("x")
    assert message.tool_calls == [] and message.invalid_tool_calls == []
    assert message.content.startswith("The model could not finish the arguments of the weather tool")


def test_earlier_tool_calls_and_results_are_replayed_as_the_model_wrote_them():
    chat = Scripted()
    history = [HumanMessage("weather in Oslo?"),
               AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Oslo"}, "id": "1"}]),
               ToolMessage("sunny", tool_call_id="1", name="weather")]
    LocalMultimodalChatModel(chat=chat).bind_tools([weather], tool_choice="none").invoke(history)
    turns = chat.streams[0][0]
    assert [t.role for t in turns] == ["system", "user", "assistant", "user"]
    assert "- weather(city, days?)" in turns[0].text  # tool_choice none: listed as with auto, never called
    assert turns[2].text == '{"name": "weather", "arguments": {"city": "Oslo"}}'
    assert turns[3].text == "Result of the tool weather: sunny\nMy request: weather in Oslo?"


def test_usage_adds_the_choice_and_the_answer():
    usage = LocalMultimodalChatModel(chat=Scripted()).bind_tools([weather]).invoke("x").usage_metadata
    assert usage["input_tokens"] == 100 and usage["input_token_details"]["cache_read"] == 40  # the choice: no counts
    assert usage["output_tokens"] == 7 and usage["total_tokens"] == 107


# -- LangChain's agent runtime ----------------------------------------------------------------
def test_a_langchain_agent_with_the_project_tools_completes_a_turn(assistant):
    """LangChain's own runtime (langchain.agents.create_agent, a LangGraph loop over bind_tools) drives the tiny
    local model and the project's tools on a session, with LangChain's tool-call limit (2 per run): whatever the
    random model decides, the turn ends with a reply and every tool call it made was answered."""
    from langchain.agents import create_agent
    from langchain.agents.middleware import ToolCallLimitMiddleware

    from chat.lc_tools import make_tools
    from chat.session import Session

    session = Session()
    session.add_image(red((80, 60)))
    model = make_chat_model(assistant)
    agent = create_agent(model, make_tools(assistant, session), system_prompt="You look at images.",
                         middleware=[ToolCallLimitMiddleware(run_limit=2, exit_behavior="end")])
    state = agent.invoke({"messages": [HumanMessage("caption it, then make the sky purple")]},
                         {"recursion_limit": 12})
    messages = state["messages"]
    last = messages[-1]  # a reply, or the confirmation of a final tool (return_direct: an edit ends the turn)
    assert (isinstance(last, AIMessage) and not last.tool_calls) or (
        isinstance(last, ToolMessage) and TOOLS[last.name].final)
    calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert calls and len(results) == len(calls) and all(r.content for r in results)
    ran = [r for r in results if "limit" not in r.content]
    assert 1 <= len(ran) <= 2 and all(r.name in TOOLS for r in ran)
    assert len(ran) == 2 or TOOLS[ran[0].name].final  # only a final tool ends the run before the limit
