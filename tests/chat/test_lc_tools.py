"""The LangChain tool adapters: schemas, session images and versions, errors as results."""

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import StructuredTool
from PIL import Image
from pydantic import ValidationError

from chat.lc_tools import ToolOutput, make_tools, run_tool
from chat.session import Session
from tools.markers import Marker


@pytest.fixture
def session():
    s = Session()
    s.add_image(Image.new("RGB", (64, 48), (30, 120, 200)), name="blue")
    return s


@pytest.fixture
def tools(assistant, session):
    return {t.name: t for t in make_tools(assistant, session)}


def test_one_structured_tool_per_tool_with_the_typed_schema(tools):
    assert list(tools) == ["caption", "vqa", "score", "classify", "mark", "som", "edit", "remove", "generate", "sketch",
                          "find"]
    assert all(isinstance(t, StructuredTool) for t in tools.values())
    assert set(tools["score"].args) == {"labels", "model", "region", "image"}
    assert "instruction" in tools["edit"].args and tools["edit"].description.startswith("Edit an image")


@pytest.mark.parametrize("name, arguments, message", [
    ("score", {"labels": "cat"}, "Invalid labels for score: labels must be a list of strings"),
    ("score", {"labels": []}, "Invalid labels for score: no labels given"),
    ("score", {"labels": ["cat"], "model": "vit"}, "Invalid model for score: input should be 'clip' or 'siglip'"),
    ("score", {"labels": ["cat"], "colour": "red"}, "'colour' is not an argument of score (it takes labels, model"),
    ("vqa", {}, "The vqa tool needs 'question'."),
    ("edit", {"instruction": "  "}, "Invalid instruction for edit: the instruction is empty"),
    ("edit", {"instruction": "x", "seed": -1}, "Invalid seed for edit: input should be greater than or equal to 0"),
    ("classify", {"rounds": 11}, "Invalid rounds for classify: input should be less than or equal to 10"),
    ("caption", {"prefix": 5}, "Invalid prefix for caption: the prefix must be text, e.g. 'a painting of'"),
    ("caption", {"prefix": "a " * 150}, "Invalid prefix for caption: the prefix is 299 characters long; the limit is 200"),
    ("caption", {"question": "why?"}, "'question' is not an argument of caption (it takes prefix, image)."),
    ("mark", {"outside": "sepia"}, "Invalid outside for mark: input should be 'none', 'blur' or 'grey'"),
    ("mark", {"markers": [{"x": 1, "y": 2}]}, "'markers' is not an argument of mark (it takes outside, image)."),
    ("remove", {"target": "   "}, "Invalid target for remove: the target is empty; say what to do, e.g. 'the dog'"),
    ("remove", {"steps": 0}, "Invalid steps for remove: input should be greater than or equal to 1"),
    ("remove", {"seed": "lucky"}, "Invalid seed for remove: input should be a valid integer"),
    ("remove", {"instruction": "erase"}, "'instruction' is not an argument of remove (it takes target, steps, seed, choice, image)."),
])
def test_schemas_reject_bad_arguments_with_clear_messages(tools, name, arguments, message):
    with pytest.raises(ValidationError):
        tools[name].invoke(arguments)  # LangChain validates with the tool's schema
    out = run_tool(tools[name], arguments)  # the router's way: a result, never an exception
    assert isinstance(out, ToolOutput) and not out.ok
    assert out.text.startswith("Error: " + message), out.text


def test_tool_failures_are_results(tools, monkeypatch):
    out = run_tool(tools["caption"], {"image": "img9"})
    assert out.text == "Error: There is no image 'img9' in this session (images: img1)."

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("tools.caption.caption", boom)
    out = run_tool(tools["caption"], {})
    assert out.error == "Something went wrong (RuntimeError): boom" and out.summary == out.error


def test_an_edit_adds_a_version_with_its_parent(tools, session):
    out = run_tool(tools["edit"], {"instruction": "make it a watercolor", "steps": 2, "seed": 5})
    assert out.ok, out.text
    assert out.new_versions == ["img1.v2"] and session.record("img1").current_id == "img1.v2"
    version = session.version("img1.v2")
    assert version.parent == "img1.v1" and version.note == "edit: make it a watercolor"
    assert out.arguments == {"image": "img1.v1", "instruction": "make it a watercolor", "mode": "pix2pix",
                             "steps": 2, "seed": 5, "guidance_scale": 7.5}
    assert session.pixels("img1.v2").size == (64, 48)
    # markers make it region-aware (inpainting); an older version can be the parent
    session.add_marker(Marker(x=20, y=20, radius=8))
    again = run_tool(tools["edit"], {"instruction": "a red balloon", "image": "img1.v1", "seed": 1})
    assert again.arguments["mode"] == "inpaint" and again.arguments["steps"] == 2  # tools.edit_steps of tiny.yaml
    assert session.version(again.new_versions[0]).parent == "img1.v1"


def test_remove_needs_a_marker_or_a_name_and_generate_makes_a_new_image(tools, session):
    assert "Say what to remove" in run_tool(tools["remove"], {}).text  # no marker, nothing named
    named = run_tool(tools["remove"], {"target": "the dog", "steps": 1})  # found instead: a flat image has nothing
    assert not named.ok and "could not find 'the dog'" in named.text and len(session.record().versions) == 1
    out = run_tool(tools["generate"], {"prompt": "a lighthouse", "width": 64, "height": 64, "seed": 3})
    assert out.ok and out.new_versions == ["img2.v1"] and out.arguments["seed"] == 3
    assert session.record("img2").name == "generated: a lighthouse" and session.active == "img2"


def test_score_mark_and_som_results(tools, session):
    session.add_marker(Marker(x=30, y=20))
    out = run_tool(tools["score"], {"labels": ["cat", "dog"]})
    assert out.ok and out.text.startswith("CLIP scores for the marked region of img1.v1 (softmax): ")
    assert out.plot is not None and out.arguments["region"] is True and "| label |" in out.data["table"]
    mark = run_tool(tools["mark"], {})
    assert mark.text == "Drew 1 marker on img1.v1." and mark.overlay.size == (64, 48) and not mark.new_versions
    som = run_tool(tools["som"], {"max_regions": 4})
    assert som.ok and som.overlay is not None and len(som.data["masks"]) == len(som.data["marks"]) >= 1
    assert som.data["version"] == "img1.v1" and len(session.record("img1").versions) == 1


def test_a_tool_call_gives_a_tool_message_with_the_text(tools):
    message = tools["vqa"].invoke({"type": "tool_call", "id": "c1", "name": "vqa", "args": {"question": "color?"}})
    assert isinstance(message, ToolMessage) and message.content.startswith("Answer to 'color?' about img1.v1")


def test_classify_replies_in_one_sentence_with_the_label_and_its_rounds(tools):
    """The reply names the label once, then how it was found: who chose, among how many names, each round's best."""
    out = run_tool(tools["classify"], {"rounds": 2})
    result = out.data["result"]
    assert out.ok and out.text.startswith(f"Classification of img1.v1: {result.label}, chosen by the chat model among ")
    assert f"{result.label} ({result.label}" not in out.text, out.text  # said once, not repeated in brackets
    for i, r in enumerate(result.rounds, 1):
        assert f"round {i} best: {r.candidates[0]} {r.scores[0]:.2f}" in out.text
    n = len(result.decision.options)
    assert f" among {n} name{'s' if n != 1 else ''} from 2 rounds (" in out.text
    assert out.text.endswith(").") and "((" not in out.text and "\n" not in out.text
    assert out.summary.startswith(result.label)  # the trace keeps the longer summary
