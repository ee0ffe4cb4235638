"""The tool table: every tool's slash command reads back to its arguments; a new tool is one module and one entry,
and is then in /help, a slash command and a LangChain tool; /find shows its regions."""

from __future__ import annotations

import pytest
from langchain_core.tools import StructuredTool
from PIL import Image, ImageDraw

from chat.errors import UserError
from chat.events import Delta, Done, ToolFinished, ToolStarted
from chat.lc_tools import make_tools, run_tool
from chat.router import Router
from chat.session import Session
from chat.toolbox import TOOLS, ToolContext, ToolOutput, ToolSpec, command, help_text, register
from tests import toy_tool
from tests.fakes import ScriptedChat, local, of, run

EXAMPLES = {  # arguments a person can give each tool by its slash command
    "caption": [{}, {"prefix": "a painting of"}, {"image": "img2.v3", "prefix": "a photo of"}],
    "vqa": [{"question": "what colour is the car?"}, {"image": "img1", "question": "is it --steps 3 big?"}],
    "score": [{"labels": ["cat", "dog"]}, {"labels": ["a red, shiny apple"], "model": "siglip"},
              {"labels": ["siglip: a cat", "dog"], "model": "clip"}, {"labels": ["img2 on a plate", "pear"], "model": "clip"},
              {"image": "img1.v2", "labels": ["a cat", "a dog", "a bird"], "model": "siglip"}],
    "classify": [{}, {"rounds": 3}, {"image": "img3", "rounds": 1}],
    "mark": [{}, {"outside": "blur"}, {"image": "img1.v1", "outside": "grey"}],
    "som": [{}, {"max_regions": 12}, {"max_regions": 5, "method": "sam"}, {"image": "img2", "method": "slic"}],
    "edit": [{"instruction": "make it winter"},
             {"image": "img1.v2", "instruction": "add a hat", "steps": 20, "seed": 7, "guidance_scale": 9.5}],
    "remove": [{}, {"target": "the dog"}, {"image": "img1", "target": "the cup", "steps": 3, "seed": 0}],
    "generate": [{"prompt": "a red fox"}, {"prompt": "a lighthouse at dusk", "width": 640, "height": 448, "seed": 1,
                                           "steps": 4}],
    "sketch": [{"prompt": "a house"}, {"image": "img2", "prompt": "a cat on a sofa", "width": 256, "height": 320}],
    "find": [{"phrase": "the red cup on the left"}, {"image": "img1.v1", "phrase": "the cat", "method": "circle",
                                                     "top_k": 3, "margin": 0.5}],
}


def test_every_tool_has_examples():
    assert set(EXAMPLES) == set(TOOLS)


@pytest.mark.parametrize("name, args", [(n, a) for n, examples in EXAMPLES.items() for a in examples])
def test_the_slash_command_of_some_arguments_reads_back_to_them(name, args):
    spec = TOOLS[name]
    line = spec.command(args)
    word, _, rest = line[1:].partition(" ")
    assert command(word) is spec
    assert spec.parse(rest) == args, line
    spec.validate(args)  # and they are arguments the tool takes


def test_the_table_derives_what_the_chat_needs():
    assert {n for n, s in TOOLS.items() if s.image} == set(TOOLS) - {"generate"}
    assert {n for n, s in TOOLS.items() if s.final} == {"mark", "som", "edit", "remove", "generate", "sketch", "find"}
    for spec in TOOLS.values():  # the tool's own schema has no chat image id: the chat adds it
        assert "image" not in spec.input.model_fields
        assert f"`{spec.usage}`" in help_text() and spec.summary in help_text()
    assert command("ask") is TOOLS["vqa"] and command("vqa") is None and command("help") is None
    with pytest.raises(UserError, match=r"/remove has no option --size; its options are: --steps, --seed, --choice\."):
        TOOLS["remove"].parse("the dog --size 64x64")


# -- a new tool: one module (tests/toy_tool.py) and one entry ---------------------------------------------------------
def count(ctx: ToolContext, a) -> ToolOutput:
    _, vid, image = ctx.image(a.image)
    n = toy_tool.count_bright(image, a.threshold)
    return ToolOutput("count", f"{n} pixels of {vid} are brighter than {a.threshold}.", f"{n} pixels",
                      {"image": vid, "threshold": a.threshold}, data={"count": n})


@pytest.fixture
def toy():
    spec = register(ToolSpec("count", toy_tool.CountInput, count, "count the bright pixels", "/count [threshold]",
                             text="threshold", final=True))
    yield spec
    del TOOLS["count"]


@pytest.fixture
def session():
    s = Session()
    image = Image.new("RGB", (40, 30), (0, 0, 0))
    ImageDraw.Draw(image).rectangle((0, 0, 9, 9), fill=(255, 255, 255))  # 100 white pixels
    s.add_image(image, name="dark")
    return s


def test_a_new_tool_is_in_help_a_slash_command_and_a_langchain_tool(assistant, session, toy):
    assert "- `/count [threshold]`: count the bright pixels" in help_text()
    router = Router(assistant, local(ScriptedChat()))
    assert "/count [threshold]" in "".join(d.text for d in of(run(router, session, "/help"), Delta))

    events = run(router, session, "/count 200")
    assert of(events, ToolStarted)[0].tool == "count" and of(events, ToolStarted)[0].decision == "slash command"
    assert of(events, ToolFinished)[0].output.data == {"count": 100}
    assert of(events, Done)[0].message.content == "100 pixels of img1.v1 are brighter than 200."
    bad = run(router, session, "/count 300")
    assert of(bad, Done)[0].error == "Invalid threshold for count: input should be less than or equal to 255."

    tools = {t.name: t for t in make_tools(assistant, session)}
    assert isinstance(tools["count"], StructuredTool) and set(tools["count"].args) == {"threshold", "image"}
    assert tools["count"].description == "Count the pixels of an image brighter than a threshold."
    assert run_tool(tools["count"], {"threshold": 0}).data == {"count": 100}
    assert toy.command({"threshold": 7}) == "/count 7" and toy.parse("7") == {"threshold": 7}


def test_find_shows_the_regions_and_lists_them_in_the_reply(assistant, session):
    from skimage import data

    session.add_image(Image.fromarray(data.chelsea()).resize((160, 120)), name="cat")
    router = Router(assistant, local(ScriptedChat()))
    events = run(router, session, "/find the cat")
    finished = of(events, ToolFinished)[0]
    regions = finished.output.data["result"].regions
    assert finished.entry.tool == "find" and finished.error is None and regions
    assert finished.overlay is not None and finished.overlay.size == (160, 120)
    reply = of(events, Done)[0].message.content
    assert reply.startswith("Found in img2.v1:") and "1" in reply
