"""BLIP captioning and VQA on the tiny checkpoints: strings come back, prefixes are continued, schemas."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw
from pydantic import ValidationError

from chat.errors import UserError
from tools.caption import CAPTION_PROMPT, CaptionInput, VqaInput, answer_question, caption


@pytest.fixture(scope="module")
def registry(assistant):
    return assistant.registry


@pytest.fixture(scope="module")
def image():
    im = Image.new("RGB", (120, 90), (200, 190, 170))
    ImageDraw.Draw(im).ellipse((30, 20, 90, 70), fill=(200, 40, 40))
    return im


def test_caption_is_a_string(registry, image):
    text = caption(registry, image, max_new_tokens=8)
    assert isinstance(text, str) and text == text.strip()
    assert text == caption(registry, image, max_new_tokens=8)  # greedy: deterministic


def test_caption_continues_the_prefix_as_written(registry, image):
    text = caption(registry, image, prefix="  A Photo   of ", max_new_tokens=6)
    assert isinstance(text, str)
    assert text.startswith("A Photo of")  # the user's spelling, not the model's lower-cased echo
    assert not text.lower().startswith("a photo of a photo of")
    assert len(text) > len("A Photo of")


def test_caption_accepts_other_image_modes(registry):
    text = caption(registry, Image.new("RGBA", (40, 30), (0, 0, 255, 128)), max_new_tokens=4)
    assert isinstance(text, str)


def test_vqa_answers_with_a_string(registry, image):
    answer = answer_question(registry, image, "  what   color is the ball? ")
    assert isinstance(answer, str) and answer == answer.strip()


@pytest.mark.parametrize("question", ["", "   ", "x" * 501])
def test_vqa_rejects_bad_questions_before_loading(question, image):
    class NoModels:
        def get(self, name):
            raise AssertionError("no model should load for a bad question")

    with pytest.raises(UserError, match="question"):
        answer_question(NoModels(), image, question)


def test_caption_input_schema():
    assert CaptionInput().prefix is None
    assert CaptionInput(prefix="   ").prefix is None
    assert CaptionInput(prefix=" a  painting of ").prefix == "a painting of"
    with pytest.raises(ValidationError, match="limit is 200"):
        CaptionInput(prefix="x" * 201)
    with pytest.raises(ValidationError, match="Extra inputs"):
        CaptionInput(text="a painting of")
    props = CaptionInput.model_json_schema()["properties"]
    assert "continue" in props["prefix"]["description"] and "image" not in props  # the chat adds image ids


def test_vqa_input_schema():
    assert VqaInput(question=" what  is it? ").question == "what is it?"
    with pytest.raises(ValidationError, match="question is empty"):
        VqaInput(question="  ")
    with pytest.raises(ValidationError, match="limit is 500"):
        VqaInput(question="why " * 200)
    with pytest.raises(ValidationError, match="Field required"):
        VqaInput()
    with pytest.raises(ValidationError, match="Extra inputs"):
        VqaInput(question="what?", model="blip")
    assert "question" in VqaInput.model_json_schema()["properties"]["question"]["description"]


@pytest.fixture
def decoder_inputs(registry, monkeypatch):
    """The token ids each BLIP caption decodes from (None: from BLIP's start token alone), and its output."""
    model = registry.get("blip_caption").model
    calls: list[tuple] = []
    original = model.generate

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((kwargs.get("input_ids"), out[0]))
        return out

    monkeypatch.setattr(model, "generate", spy)
    return calls


def test_caption_starts_from_blips_prompt_and_cuts_it(registry, image, decoder_inputs):
    """By default the decoder starts from BLIP's trained prompt 'a picture of' (salesforce/BLIP BLIP_Decoder),
    and the caption is only what the model wrote after it, as BLIP returns it."""
    tokenizer = registry.get("blip_caption").processor.tokenizer
    text = caption(registry, image, max_new_tokens=8)
    ((ids, output),) = decoder_inputs
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == CAPTION_PROMPT == "a picture of"
    prompt_tokens = len(tokenizer(CAPTION_PROMPT, add_special_tokens=False)["input_ids"])
    after = " ".join(tokenizer.decode(output[1 + prompt_tokens:], skip_special_tokens=True).split())
    assert text == after.removeprefix("##")  # (a word piece glued to 'of' by random weights loses its ##)
    assert not text.startswith(CAPTION_PROMPT)


def test_an_empty_caption_prompt_decodes_unconditionally(registry, image, decoder_inputs):
    text = caption(registry, image, max_new_tokens=8, prompt="")
    ((ids, output),) = decoder_inputs
    tokenizer = registry.get("blip_caption").processor.tokenizer
    assert ids is None and text == " ".join(tokenizer.decode(output, skip_special_tokens=True).split())


def test_a_prefix_replaces_the_prompt_and_stays(registry, image, decoder_inputs):
    text = caption(registry, image, prefix="a painting of", max_new_tokens=6)
    tokenizer = registry.get("blip_caption").processor.tokenizer
    assert tokenizer.decode(decoder_inputs[0][0][0], skip_special_tokens=True) == "a painting of"
    assert text.startswith("a painting of")


def test_the_configured_caption_prompt_reaches_blip(assistant, image, decoder_inputs):
    from chat.config import ToolsConfig
    from chat.session import Session
    from chat.toolbox import TOOLS, ToolContext

    assert ToolsConfig().caption_prompt == CAPTION_PROMPT
    session = Session()
    session.add_image(image)
    config = assistant.config.model_copy(update={"tools": ToolsConfig(caption_prompt="a photograph of")})
    assert TOOLS["caption"].execute(ToolContext(assistant, session, config=config), {}).ok
    tokenizer = assistant.registry.get("blip_caption").processor.tokenizer
    assert tokenizer.decode(decoder_inputs[0][0][0], skip_special_tokens=True) == "a photograph of"
