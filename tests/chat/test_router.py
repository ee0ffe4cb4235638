"""The router: explicit routes, the tool-calling loop (local and native), fallback, trace, errors, cancel."""

import dataclasses
import json
import threading
import time

import numpy as np
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from PIL import Image

from chat.errors import UserError
from chat.events import Delta, Done, Status, ToolFinished, ToolStarted
from chat.lc_messages import content_text
from chat.lc_model import LocalMultimodalChatModel
from chat.router import Router
from chat.session import Session
from chat.toolbox import TOOLS as TABLE
from chat.toolbox import ToolOutput
from tests.fakes import ScriptedChat, local, of, run
from tools.markers import Marker

TOOLS = ["caption", "vqa", "score", "classify", "mark", "som", "edit", "remove", "generate", "sketch", "find"]


def FakeMLLM(choice=None, answer="It is a cat.", endless=False):  # noqa: N802 - the scripted chat of tests/fakes.py
    return ScriptedChat(answer, choice=choice, endless=endless)


@pytest.fixture
def session():
    s = Session()
    s.add_image(Image.new("RGB", (80, 60), (40, 160, 60)))
    return s


def replace_run(monkeypatch, name, run):
    """The tool's entry with another ``run(ctx, args)`` for this test."""
    monkeypatch.setitem(TABLE, name, dataclasses.replace(TABLE[name], run=run))


@pytest.fixture
def calls(monkeypatch):
    """Replace every tool body with a recorder: (tool, validated arguments) per call."""
    seen = []
    for name in TOOLS:
        def body(ctx, args, name=name):
            seen.append((name, args.model_dump(exclude_none=True)))
            return ToolOutput(name, f"{name} done", f"{name} summary", args.model_dump(exclude_none=True))
        replace_run(monkeypatch, name, body)
    return seen


@pytest.mark.parametrize("text, tool, arguments", [
    ("/caption", "caption", {}),
    ("/caption a painting of", "caption", {"prefix": "a painting of"}),
    ("/caption img1.v1", "caption", {"image": "img1.v1"}),
    ("/ask what color is the car?", "vqa", {"question": "what color is the car?"}),
    ("/score cat | dog | bird", "score", {"labels": ["cat", "dog", "bird"], "model": "clip", "region": True}),
    ("/score siglip: a cat", "score", {"labels": ["a cat"], "model": "siglip", "region": True}),
    ("/score cat, dog --siglip", "score", {"labels": ["cat", "dog"], "model": "siglip", "region": True}),
    ("/som", "som", {"fill": False, "boundaries": True}),
    ("/mark", "mark", {"outside": "none"}),
    ("/edit make it a watercolor", "edit", {"instruction": "make it a watercolor", "region": True}),
    ("/remove the dog", "remove", {"target": "the dog"}),
    ("/remove", "remove", {"target": "the object"}),
    ("/classify 3", "classify", {"rounds": 3}),
    ("/classify", "classify", {"rounds": 2}),
    ("/generate a lighthouse at dusk", "generate", {"prompt": "a lighthouse at dusk", "width": 512, "height": 512}),
    ("/sketch a cat on a sofa", "sketch", {"prompt": "a cat on a sofa"}),
    ("/generate a red apple --seed 7 --size 640x448 --steps 3", "generate",
     {"prompt": "a red apple", "seed": 7, "width": 640, "height": 448, "steps": 3}),
    ("/edit img1 make it snowy --steps=4 --guidance 9.5", "edit",
     {"image": "img1", "instruction": "make it snowy", "steps": 4, "guidance_scale": 9.5, "region": True}),
])
def test_slash_commands_run_their_tool_with_their_arguments(assistant, session, calls, text, tool, arguments):
    fake = FakeMLLM()
    events = run(Router(assistant, local(fake)), session, text)
    assert calls == [(tool, arguments)]
    assert of(events, ToolStarted)[0].decision == "slash command"
    assert of(events, Delta)[-1].text == f"{tool} done" and not fake.choices and not fake.turns


def test_help_and_unknown_commands_list_the_commands(assistant, session, calls):
    router = Router(assistant, local(FakeMLLM()))
    help_text = "".join(d.text for d in of(run(router, session, "/help"), Delta))
    assert "/score cat | dog" in help_text and "/edit INSTRUCTION" in help_text and "/help" in help_text
    unknown = "".join(d.text for d in of(run(router, session, "/paint it"), Delta))
    assert unknown.startswith("Unknown command /paint. Commands") and "/generate PROMPT" in unknown
    assert not calls


@pytest.mark.parametrize("text, expected", [
    ("/generate a cat --foo 3", "/generate has no option --foo; its options are: --steps, --seed, --size."),
    ("/generate a cat --size big", "--size takes WIDTHxHEIGHT in pixels, e.g. 640x448, not 'big'."),
])
def test_bad_command_options_are_one_sentence(assistant, session, calls, text, expected):
    events = run(Router(assistant, local(FakeMLLM())), session, text)
    said = " ".join(str(getattr(e, "text", "")) for e in events) + " ".join(str(e) for e in events)
    assert expected in said and not calls


def test_buttons_run_a_tool_without_parsing_text(assistant, session, calls):
    events = run(Router(assistant, local(FakeMLLM())), session, action="score", arguments={"labels": ["a | b"]})
    assert calls == [("score", {"labels": ["a | b"], "model": "clip", "region": True})]
    assert of(events, ToolStarted)[0].decision == "button"


def call(name: str, **arguments) -> str:
    """A tool call as the local model writes it (its arguments generated under the tool's schema)."""
    return json.dumps({"name": name, "arguments": arguments})


def test_the_local_model_calls_score_with_generated_arguments_then_answers_with_the_result(assistant, session, calls):
    fake = FakeMLLM(choice=[{"score": -0.5, "answer": -3.0}, {"answer": -0.1}])
    fake.answers = [call("score", labels=["cat", "dog"]), "Mostly a cat."]
    events = run(Router(assistant, local(fake)), session, "Is it a cat or a dog?")
    assert calls == [("score", {"labels": ["cat", "dog"], "model": "clip", "region": True, "image": "img1.v1"})]
    (turns, options), second = fake.choices
    assert options == TOOLS + ["answer"]
    assert turns[-1].images and turns[-1].text.startswith("[img1.v1] Is it a cat or a dog?\n\nWhich tool")
    assert turns[0].role == "system" and "- score(labels, model?, region?, image?):" in turns[0].text
    started = of(events, ToolStarted)[0]
    assert started.decision == "model tool call (step 1, logprob margin 2.50)"
    # the tool's result goes back to the model, which answers the request with it
    answer_turns = fake.turns[-1]
    assert answer_turns[-2].text == call("score", labels=["cat", "dog"])
    assert answer_turns[-1].text == "Result of the tool score: score done\nMy request: [img1.v1] Is it a cat or a dog?"
    assert "".join(d.text for d in of(events, Delta)) == "Mostly a cat."
    assert [t.tool for t in session.trace] == ["score", "answer"] and session.trace[1].decision == "after score"


@pytest.mark.parametrize("choice, text, decision", [
    ({"score": -2.5, "answer": -3.0}, "is it a cat or a dog?", "fallback: answer directly (score margin 0.50 < 1.0)"),
    ({"answer": -0.1}, "hello there", "model choice: answer directly"),
])
def test_unsure_choices_answer_directly(assistant, session, calls, choice, text, decision):
    fake = FakeMLLM(choice=choice, answer="Hello.")
    events = run(Router(assistant, local(fake)), session, text)
    assert not calls and not of(events, ToolStarted)
    assert "".join(d.text for d in of(events, Delta)) == "Hello."
    assert session.trace[-1].tool == "answer" and session.trace[-1].decision == decision


def test_arguments_that_do_not_complete_are_said_and_nothing_runs(assistant, session, calls):
    fake = FakeMLLM(choice={"remove": -0.1, "answer": -5.0}, answer='{"name": "remove", "arguments": {"targ')
    events = run(Router(assistant, local(fake)), session, "remove it")
    assert not calls and not of(events, ToolStarted)
    said = "".join(d.text for d in of(events, Delta))
    assert said.startswith("The model could not finish the arguments of the remove tool")
    assert session.trace[-1].decision == "model choice: remove, but its arguments did not complete"


def test_caption_it_then_make_the_sky_purple_is_two_calls_in_one_message(assistant, session, calls):
    """The issue's example: the caption's result goes back to the model, which then calls edit; edit is final."""
    fake = FakeMLLM(choice=[{"caption": -0.2, "answer": -4.0}, {"edit": -0.3, "answer": -4.0}])
    fake.answers = [call("caption"), call("edit", instruction="make the sky purple"), "unused"]
    events = run(Router(assistant, local(fake)), session, "caption it, then make the sky purple")
    assert calls == [("caption", {"image": "img1.v1"}),
                     ("edit", {"instruction": "make the sky purple", "region": True, "image": "img1.v1"})]
    assert [e.decision for e in of(events, ToolStarted)] == ["model tool call (step 1, logprob margin 3.80)",
                                                             "model tool call (step 2, logprob margin 3.70)"]
    second_choice = fake.choices[1][0]
    assert second_choice[-2].text == call("caption")
    assert second_choice[-1].text.startswith("Result of the tool caption: caption done\n"
                                             "My request: [img1.v1] caption it, then make the sky purple")
    assert len(fake.choices) == 2 and len(fake.turns) == 2  # edit ends the turn: no third step
    assert events[-1].message.content == "edit done"
    assert [(t.tool, t.arguments) for t in session.trace] == [
        ("caption", {"image": "img1.v1"}),
        ("edit", {"instruction": "make the sky purple", "region": True, "image": "img1.v1"})]


def test_the_loop_stops_at_the_step_limit_and_at_a_repeated_call(assistant, session, calls, monkeypatch):
    monkeypatch.setattr(assistant.config.limits, "max_tool_steps", 2)
    fake = FakeMLLM(choice={"vqa": -0.1, "answer": -6.0})
    fake.answers = [call("vqa", question="what colour?"), call("vqa", question="what shape?"), "Green and square."]
    events = run(Router(assistant, local(fake)), session, "tell me everything")
    assert [c[0] for c in calls] == ["vqa", "vqa"]  # two calls, then the model must answer in words
    assert len(fake.choices) == 2 and "".join(d.text for d in of(events, Delta)) == "Green and square."
    assert session.trace[-1].decision == "after vqa"
    calls.clear()
    fake = FakeMLLM(choice={"vqa": -0.1, "answer": -6.0})
    fake.answers = [call("vqa", question="what colour?"), call("vqa", question="what colour?"), "Green."]
    events = run(Router(assistant, local(fake)), session, "what colour is it really?")
    assert len(calls) == 1  # the same call again does not run again: the model answers with what it has
    assert fake.turns[-1][-1].text.startswith("Result of the tool vqa: Already done")
    assert "".join(d.text for d in of(events, Delta)) == "Green."


def test_a_model_with_nothing_to_add_after_a_tool_replies_with_the_tools_result(assistant, session, calls):
    fake = FakeMLLM(choice=[{"caption": -0.1, "answer": -5.0}, {"answer": 0.0}])
    fake.answers = [call("caption"), " "]
    events = run(Router(assistant, local(fake)), session, "describe it")
    assert events[-1].message.content == "caption done" and session.trace[-1].decision == "after caption"


def test_a_failed_call_is_said_and_the_model_goes_on(assistant, session, calls, monkeypatch):
    replace_run(monkeypatch, "remove", lambda ctx, args: (_ for _ in ()).throw(
        UserError("Nothing is marked: click on the object to remove, or name it.")))
    fake = FakeMLLM(choice=[{"remove": -0.1, "answer": -5.0}, {"answer": 0.0}])
    fake.answers = [call("remove"), "Tell me which object."]
    events = run(Router(assistant, local(fake)), session, "remove it")
    said = "".join(d.text for d in of(events, Delta))
    assert said == "Error: Nothing is marked: click on the object to remove, or name it.\nTell me which object."
    assert fake.turns[-1][-1].text.startswith("Result of the tool remove: Error: Nothing is marked")
    assert events[-1].error == "Nothing is marked: click on the object to remove, or name it."
    assert len(session.record("img1").versions) == 1


def test_the_trace_records_decision_arguments_duration_and_summary(assistant, session):
    router = Router(assistant, local(FakeMLLM()))
    events = run(router, session, "/score cat | dog")  # the real tool on the tiny CLIP
    (finished,) = of(events, ToolFinished)
    entry = session.trace[finished.trace_index]
    assert entry.tool == "score" and entry.decision == "slash command" and entry.error is None
    assert entry.arguments == {"image": "img1.v1", "labels": ["cat", "dog"], "model": "clip", "region": False}
    assert entry.seconds > 0 and entry.summary.startswith(("cat 0.", "dog 0."))
    assert finished.plot is not None
    user, reply = session.messages
    assert (user.role, user.content, user.images) == ("user", "/score cat | dog", ["img1.v1"])
    assert reply.role == "assistant" and reply.content.startswith("CLIP scores for img1.v1") and reply.trace == [0]
    assert events[-1].message is reply and not events[-1].cancelled


def test_a_failing_tool_becomes_an_error_reply_and_the_session_stays_intact(assistant, session, monkeypatch):
    def broken(ctx, args):
        raise RuntimeError("the GPU caught fire")

    replace_run(monkeypatch, "edit", broken)
    router = Router(assistant, local(FakeMLLM()))
    events = run(router, session, "/edit make it winter")
    assert of(events, Delta)[-1].text == "Error: Something went wrong (RuntimeError): the GPU caught fire"
    assert session.trace[-1].error == "Something went wrong (RuntimeError): the GPU caught fire"
    assert len(session.record("img1").versions) == 1 and session.active == "img1"
    assert [m.role for m in session.messages] == ["user", "assistant"]
    empty = run(router, session, "/edit")  # bad arguments are results too
    assert of(empty, Delta)[-1].text.startswith("Error: Invalid instruction for edit: the instruction is empty")
    assert run(router, session, "/caption img7")[-1].message.content == \
        "Error: There is no image 'img7' in this session (images: img1)."


def test_cancel_stops_the_answer_and_keeps_the_partial_text(assistant, session):
    fake = FakeMLLM(choice={"answer": 0.0}, answer="la", endless=True)
    cancel = threading.Event()
    events = []
    for event in Router(assistant, local(fake)).respond(session, "sing", cancel=cancel):
        events.append(event)
        if len(of(events, Delta)) == 3:
            cancel.set()
    done = events[-1]
    assert isinstance(done, Done) and done.cancelled and len(of(events, Delta)) <= 4
    assert done.message.content.startswith("la la la") and session.messages[-1] is done.message


def test_cancel_stops_a_running_tool(assistant, session, monkeypatch):
    """The tool's progress goes straight into the turn's sink while it runs (no thread of its own): Stop there
    ends it at its next step."""
    def slow_edit(ctx, args):
        for step in range(1, 1001):
            ctx.progress(step, 1000)
            time.sleep(0.002)
        raise AssertionError("not cancelled")

    replace_run(monkeypatch, "edit", slow_edit)
    cancel = threading.Event()
    sunk = []

    def sink(event):
        sunk.append(event)
        if isinstance(event, Status):
            cancel.set()

    start = time.perf_counter()
    events = list(Router(assistant, local(FakeMLLM())).respond(session, "/edit make it winter", cancel=cancel, sink=sink))
    assert time.perf_counter() - start < 1.5 and events[-1].cancelled
    assert of(sunk, Status)[0].fraction == pytest.approx(0.001) and session.trace[-1].error == "Cancelled."
    assert not of(events, Status)  # the progress went to the sink, not after the tool


def test_stop_during_a_called_tool_ends_the_loop(assistant, session, monkeypatch):
    """Stop while the model's first call runs: the tool stops, and the model is not asked for a next step."""
    cancel = threading.Event()

    def vqa_then_stop(ctx, args):
        cancel.set()
        ctx.progress(1, 10)  # the tool's next step sees Stop

    replace_run(monkeypatch, "vqa", vqa_then_stop)
    fake = FakeMLLM(choice=[{"vqa": -0.1, "answer": -5.0}, {"edit": -0.1, "answer": -5.0}])
    fake.answers = [call("vqa", question="what colour?"), call("edit", instruction="make it blue")]
    events = list(Router(assistant, local(fake)).respond(session, "what colour? then make it blue", cancel=cancel))
    assert events[-1].cancelled and len(fake.choices) == 1 and len(fake.turns) == 1
    assert [t.tool for t in session.trace] == ["vqa"] and session.trace[-1].error == "Cancelled."
    assert len(session.record("img1").versions) == 1


def test_the_model_sees_the_image_with_markers_and_the_history(assistant, session):
    fake = FakeMLLM(choice={"answer": 0.0}, answer="A green field.")
    router = Router(assistant, local(fake))
    run(router, session, "what is this?")
    first = fake.turns[-1]
    run(router, session, "and its colour?")  # nothing changed: the image stays in the first turn only
    turns = fake.turns[-1]
    assert [t.role for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[1].text == "[img1.v1] what is this?" and len(turns[1].images) == 1 and turns[2].text == "A green field."
    assert turns[3].text == "[img1.v1] and its colour?" and not turns[3].images
    assert [(t.role, t.text) for t in turns[:2]] == [(t.role, t.text) for t in first]  # the earlier prompt, replayed
    assert np.array_equal(np.asarray(turns[1].images[0]), np.asarray(first[1].images[0]))
    session.add_marker(Marker(x=40, y=30, radius=10))
    run(router, session, "and what is in the red circle?")
    turns = fake.turns[-1]
    assert turns[5].text == "[img1.v1] and what is in the red circle?" and len(turns[5].images) == 1
    seen = np.asarray(turns[5].images[0])
    assert tuple(seen[30, 40 + 11]) == (255, 0, 0) and tuple(seen[5, 5]) == (40, 160, 60)  # the ring is drawn
    assert tuple(np.asarray(turns[1].images[0])[30, 40 + 11]) != (255, 0, 0)  # the first turn showed no ring


def test_older_images_keep_only_their_text(assistant, session):
    fake = FakeMLLM(choice={"answer": 0.0}, answer="ok")
    router = Router(assistant, local(fake))
    for i in range(4):
        session.add_marker(Marker(x=10 + 15 * i, y=30, radius=5))  # a new view of the image every turn
        run(router, session, f"question {i}")
    users = [t for t in fake.turns[-1] if t.role == "user"]
    assert [len(t.images) for t in users] == [0, 1, 1, 1]  # no max_images: 3, this turn's and the 2 most recent


def test_history_is_trimmed_to_the_context_window(assistant, session):
    class ShortContext(LocalMultimodalChatModel):
        def context_window(self):
            return 400

        def get_num_tokens_from_messages(self, messages, tools=None):
            return sum(len(str(m.content)) // 4 for m in messages)

    fake = FakeMLLM(choice={"answer": 0.0}, answer="x" * 300)
    router = Router(assistant, ShortContext(chat=fake))
    for i in range(4):
        run(router, session, f"question {i}")
    roles = [t.role for t in fake.turns[-1]]
    assert roles[0] == "system" and roles[-1] == "user" and len(roles) < 8
    assert fake.turns[-1][1].role == "user"  # the kept history starts with a user turn


def test_an_answer_citing_set_of_mark_regions_is_highlighted(assistant, session):
    fake = FakeMLLM(choice={"answer": 0.0}, answer="The tree is [1].")
    router = Router(assistant, local(fake))
    som = run(router, session, "/som 3")
    marked = of(som, ToolFinished)[0].overlay
    events = run(router, session, "which region is the tree?")
    assert np.array_equal(np.asarray(fake.turns[-1][-1].images[0]), np.asarray(marked))  # the model saw the numbers
    (highlight,) = of(events, ToolFinished)
    assert highlight.overlay is not None and highlight.entry.tool == "highlight"
    assert highlight.entry.arguments == {"image": "img1.v1", "marks": [1]}


class ToolCallingModel(BaseChatModel):
    """A scripted chat model with native tool calling: the first call asks for a tool, then it answers."""

    replies: list = []
    bound: list = []
    seen: list = []  # the messages of each call

    @property
    def _llm_type(self):
        return "scripted"

    def bind_tools(self, tools, **kwargs):
        self.bound.append([t.name for t in tools])
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        return ChatResult(generations=[ChatGeneration(message=self.replies.pop(0))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        reply = self.replies.pop(0)
        chunks = [{"name": c["name"], "args": __import__("json").dumps(c["args"]), "id": c["id"], "index": i}
                  for i, c in enumerate(reply.tool_calls)]
        yield ChatGenerationChunk(message=AIMessageChunk(content=reply.content, tool_call_chunks=chunks))


def test_native_tool_calling_for_models_that_support_it(assistant, session, calls):
    model = ToolCallingModel(replies=[
        AIMessage(content="", tool_calls=[{"name": "score", "args": {"labels": ["cat", "dog"]}, "id": "c1"}]),
        AIMessage(content="A cat, by the scores."),
    ])
    events = run(Router(assistant, model), session, "cat or dog?")
    assert model.bound == [TOOLS, TOOLS]  # the tools, then the result and the tools again
    assert calls == [("score", {"labels": ["cat", "dog"], "model": "clip", "region": True, "image": "img1.v1"})]
    assert of(events, ToolStarted)[0].decision == "model tool call (step 1)"
    assert session.trace[-1].decision == "after score"
    assert "".join(d.text for d in of(events, Delta)) == "A cat, by the scores."


def test_calls_after_a_repeated_one_in_the_same_reply_are_not_run_and_the_model_is_told_why(assistant, session,
                                                                                             calls):
    model = ToolCallingModel(replies=[
        AIMessage(content="", tool_calls=[{"name": "caption", "args": {}, "id": "c1"},
                                          {"name": "caption", "args": {}, "id": "c2"},
                                          {"name": "vqa", "args": {"question": "what colour?"}, "id": "c3"}]),
        AIMessage(content="A green field."),
    ])
    events = run(Router(assistant, model), session, "describe it")
    assert calls == [("caption", {"image": "img1.v1"})]
    told = [m.content for m in model.seen[-1] if isinstance(m, ToolMessage)]
    assert told == ["caption done", "Already done: the result is above.", "Not run: answer with the results above."]
    assert "".join(d.text for d in of(events, Delta)) == "A green field."


def test_a_native_model_that_calls_no_tool_streams_its_answer_once(assistant, session, calls):
    model = ToolCallingModel(replies=[AIMessage(content="Just a field.")])
    events = run(Router(assistant, model), session, "what is this?")
    assert not calls and not model.replies  # one model call: its reply is the answer
    assert "".join(d.text for d in of(events, Delta)) == "Just a field."
    assert session.trace[-1].decision == "model tool call: none, answered directly"


def test_buttons_with_an_image_and_empty_messages(assistant, session, calls):
    session.add_image(Image.new("RGB", (20, 20)))
    router = Router(assistant, local(FakeMLLM()))
    events = run(router, session, action="caption", arguments={"image": "img1"})
    assert calls == [("caption", {"image": "img1"})] and session.messages[-2].images == ["img1.v1"]
    assert session.messages[-2].content == "/caption"
    hint = run(router, session, "   ")
    assert of(hint, Delta)[0].text.startswith("Type a question, or a command") and len(calls) == 1
    unknown = run(router, session, action="fly", arguments={})
    assert of(unknown, Delta)[-1].text.startswith("Error: There is no tool 'fly'; tools: caption, vqa")
    assert of(events, Done)[0].message.content == "caption done"


def test_the_assistant_routes_free_text_through_the_tiny_model(assistant):
    session = Session()
    session.add_image(Image.new("RGB", (40, 40), (200, 200, 20)))
    events = run(assistant.router, session, "hello, what do you see?")
    assert isinstance(assistant.router.chat_model, LocalMultimodalChatModel)
    assert of(events, Delta) and events[-1].message.content
    assert session.trace[-1].tool in ("answer", *TOOLS)


def test_free_text_drawing_request_generates_a_picture_without_an_image(assistant, calls):
    """Visual ChatGPT's first turn: "draw me ..." with no image yet is a text-to-image call."""
    fake = FakeMLLM(choice={"generate": -0.2, "answer": -3.0}, answer=call("generate", prompt="a cat on a sofa"))
    events = run(Router(assistant, local(fake)), Session(), "Please draw me a cat on a sofa")
    assert calls == [("generate", {"prompt": "a cat on a sofa", "width": 512, "height": 512})]
    assert len(fake.choices) == 1 and len(fake.turns) == 1  # one choice, its arguments; generate ends the turn
    assert events[-1].message.content == "generate done"
    assert of(events, ToolStarted)[0].decision != "slash command"


def test_follow_ups_reuse_the_image_and_sessions_get_their_own_answers(assistant):
    """Through the real router and the tiny LLaVA: a follow-up (choice + answer) never encodes or prefills the
    image again, and a second session asking the same words about another image gets the answer it would get
    with empty caches, not the first session's."""
    mllm = assistant.mllm
    router = Router(assistant)
    router.choice_margin = 1e9  # always answer in words (the choice still runs)
    stats = []
    choose = mllm.choice_logprobs

    def recording(*args, **kwargs):
        out = choose(*args, **kwargs)
        stats.append(dict(mllm.last_stats))
        return out

    def ask(session, text):
        answer = list(router.respond(session, text))[-1].message.content
        return answer, stats[-1], dict(mllm.last_stats)

    def session_with(colour):
        s = Session()
        s.add_image(Image.new("RGB", (80, 60), colour))
        return s

    mllm.prefix_cache.clear()
    mllm.vision_cache.clear()
    try:
        mllm.choice_logprobs = recording
        red, blue = session_with((200, 30, 30)), session_with((20, 40, 220))
        ask(red, "What is in the red circle?")
        blue_answer, choice, answer = ask(blue, "What is in the red circle?")
        assert choice["images_encoded"] == 1 and answer["reused_tokens"] >= answer["prompt_tokens"] - 2
        _, choice, answer = ask(red, "And what colour is it?")
        image_tokens = int(mllm.bundle.model.config.image_seq_length)
        assert choice["images_encoded"] == 0 and choice["reused_tokens"] > image_tokens + 20
        assert answer["images_encoded"] == 0 and answer["reused_tokens"] >= answer["prompt_tokens"] - 2
        mllm.prefix_cache.clear()
        mllm.vision_cache.clear()
        assert ask(session_with((20, 40, 220)), "What is in the red circle?")[0] == blue_answer
    finally:
        del mllm.choice_logprobs


def test_regenerate_replays_what_the_last_message_ran(assistant, session, calls):
    """The user message keeps the tool and arguments that ran (the image pinned to its version): Regenerate runs
    them again, after the image moved on; free text is routed again; the answer is replaced, not added."""
    router = Router(assistant, local(FakeMLLM(answer="A green square.")))
    run(router, session, "/edit make it snowy --steps 4")
    asked = session.messages[-2]
    assert asked.action == "edit" and asked.arguments == {"image": "img1.v1", "instruction": "make it snowy",
                                                         "steps": 4}
    session.add_version("img1", Image.new("RGB", (80, 60), "white"), note="another edit")  # the image moved on
    events = list(router.regenerate(session))
    assert calls == [("edit", {"instruction": "make it snowy", "steps": 4, "region": True}),
                     ("edit", {"image": "img1.v1", "instruction": "make it snowy", "steps": 4, "region": True})]
    assert of(events, ToolStarted)[0].decision == "slash command" and isinstance(events[-1], Done)
    assert [m.role for m in session.messages] == ["user", "assistant"] and session.messages[-1].content == "edit done"

    run(router, session, "what is it?")
    assert session.messages[-2].action is None and session.messages[-2].arguments == {"image": "img1.v2"}
    list(router.regenerate(session))
    assert [m.content for m in session.messages] == ["/edit make it snowy --steps 4", "edit done", "what is it?",
                                                     "A green square."]


def test_regenerate_with_nothing_asked_says_so(assistant):
    with pytest.raises(UserError, match="nothing to regenerate"):
        list(Router(assistant, local(FakeMLLM())).regenerate(Session()))


def test_every_step_of_the_loop_is_fitted_to_the_context_window(assistant, session, monkeypatch):
    """The calls' results make a message's prompt longer at each step: each step is fitted to the window again,
    so the oldest earlier turns leave; the request, its calls and their results stay (LLaVA-1.5 has 2048 tokens)."""
    class ShortContext(LocalMultimodalChatModel):
        def context_window(self):
            return 1000

        def get_num_tokens_from_messages(self, messages, tools=None):
            return sum(len(str(m.content)) // 4 for m in messages)

    for name in ("vqa", "caption"):
        replace_run(monkeypatch, name, lambda ctx, args, name=name: ToolOutput(name, f"{name}: " + "y" * 1000, name, {}))
    fake = FakeMLLM(choice={"answer": 0.0}, answer="x" * 300)
    router = Router(assistant, ShortContext(chat=fake))
    for i in range(3):
        run(router, session, f"question {i}")
    fake.choice = [{"vqa": -0.1, "answer": -5.0}, {"caption": -0.1, "answer": -5.0}, {"answer": 0.0}]
    fake.choices.clear()
    fake.answers = [call("vqa", question="what colour?"), call("caption"), "Green, a square."]
    fake.turns.clear()
    prompts = []
    build = router.prompts.messages
    monkeypatch.setattr(router.prompts, "messages", lambda *a, **k: prompts.append(build(*a, **k)) or prompts[-1])
    events = run(router, session, "what colour is it, and what is it?")
    assert "".join(d.text for d in of(events, Delta)) == "Green, a square."
    reserve = getattr(router.chat_model.options, "max_new_tokens", None) or 256  # what the answer may take
    counts = [router.chat_model.get_num_tokens_from_messages(p) for p in prompts]
    assert len(prompts) == 3 and all(n + reserve <= 1000 for n in counts), counts
    asked = [[content_text(m.content) for m in p if m.type == "human"] for p in prompts]
    assert len(asked[0]) > len(asked[2]) >= 1  # earlier turns left as the results came in
    assert all(a[-1].endswith("what colour is it, and what is it?") for a in asked)  # the request stays
    assert [m.type for m in prompts[2][-4:]] == ["ai", "tool", "ai", "tool"]  # both calls and results stay
