"""BLIP captioning and visual question answering.

    >>> caption(registry, image)                          # 'a dog running on a beach'
    >>> caption(registry, image, prefix="a painting of")  # 'a painting of a dog on a beach'
    >>> answer_question(registry, image, "what color is the dog?")   # 'brown'

BLIP's captioner was trained and evaluated with the text prompt 'a picture of ' ahead of every caption
(salesforce/BLIP ``models/blip.py``: ``BLIP_Decoder(prompt='a picture of ')``, which decodes from it and returns
``caption[len(prompt):]``). :func:`caption` does the same by default (``prompt``, ``tools.caption_prompt`` in the
config): the decoder starts from the prompt and the prompt is cut from the caption; an empty prompt decodes
from BLIP's start token alone. A ``prefix`` replaces the prompt and stays in the caption.

Models come from the registry ("blip_caption": BlipForConditionalGeneration, "blip_vqa":
BlipForQuestionAnswering), which owns their device and dtype. Generation is greedy, so answers are
deterministic.
"""

from __future__ import annotations

from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.errors import UserError
from tools.text import clean_text

MAX_QUESTION_CHARS = 500
MAX_PREFIX_CHARS = 200
CAPTION_PROMPT = "a picture of"  # BLIP's trained caption prompt (cut from the caption it starts)


class CaptionInput(BaseModel):
    """Describe an image in one short sentence (BLIP captioning), optionally continuing a given start."""

    model_config = ConfigDict(extra="forbid")

    prefix: str | None = Field(
        None,
        description="Optional start of the caption for the model to continue, e.g. 'a painting of' or 'the man "
        "is holding'; leave empty for a free caption. Up to 200 characters.",
    )

    @field_validator("prefix", mode="before")
    @classmethod
    def _prefix(cls, value):
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("the prefix must be text, e.g. 'a painting of'")
        text = " ".join(value.split())
        if len(text) > MAX_PREFIX_CHARS:
            raise ValueError(f"the prefix is {len(text)} characters long; the limit is {MAX_PREFIX_CHARS}")
        return text or None


class VqaInput(BaseModel):
    """Answer a short factual question about an image in a word or two (BLIP VQA), e.g. 'what color is the car?'."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        description="A short question about the image, e.g. 'how many people are there?' or 'what color is the "
        "car?'. Up to 500 characters.",
    )

    @field_validator("question", mode="before")
    @classmethod
    def _question(cls, value):
        return _clean_question(value)


def _clean_question(value: Any) -> str:
    """The question with whitespace tidied; ValueError (one clause, lower case) when unusable."""
    return clean_text(value, "question", "'what color is the car?'", MAX_QUESTION_CHARS,
                      ask="ask something about the image")


def _inputs(bundle, image: Image.Image, text: str | None) -> dict:
    """Processor outputs on the model's device, pixel values in the model's dtype."""
    if not isinstance(image, Image.Image):
        raise UserError(f"The image must be an image, not {type(image).__name__}.")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    kwargs = {"images": rgb, "return_tensors": "pt"}
    if text is not None:
        kwargs["text"] = text
    raw = bundle.processor(**kwargs)
    model = bundle.model
    out = {}
    for key, value in raw.items():
        if hasattr(value, "to"):
            value = value.to(model.device)
            if value.is_floating_point():
                value = value.to(model.dtype)
        out[key] = value
    return out


def _tidy(text: str) -> str:
    return " ".join(text.split())


def _continuation(bundle, inputs: dict, ids) -> str:
    """The text BLIP generated after the prompt in ``inputs`` (the prompt's echo in ``ids`` dropped)."""
    import torch

    decode = bundle.processor.tokenizer.decode
    # BLIP replaces [CLS] with [DEC], drops the trailing [SEP] and echoes the prompt before continuing.
    prompt = inputs["input_ids"][0]
    n = int(inputs["attention_mask"][0].sum()) - 1 if "attention_mask" in inputs else len(prompt) - 1
    if len(ids) >= n and torch.equal(ids[1:n].cpu(), prompt[1:n].cpu()):
        return _tidy(decode(ids[n:], skip_special_tokens=True))
    # fall back on the text: drop an echo of the prompt, compared case- and space-insensitively
    text = _tidy(decode(ids, skip_special_tokens=True))
    echo = _tidy(decode(prompt, skip_special_tokens=True))
    return _tidy(text[len(echo):] if echo and text.lower().startswith(echo.lower()) else text)


def caption(models, image: Image.Image, prefix: str | None = None, max_new_tokens: int = 30,
            prompt: str | None = CAPTION_PROMPT) -> str:
    """A one-sentence caption of ``image``. The decoder starts from ``prompt`` (BLIP's trained 'a picture of';
    None or '' for none), which is cut from the caption. With ``prefix`` the model continues that text instead
    and the caption starts with the prefix as given (the model's lower-cased echo of it is dropped)."""
    import torch

    if prefix is not None:
        if not isinstance(prefix, str):
            raise UserError("The caption prefix must be text, e.g. 'a painting of'.")
        prefix = _tidy(prefix)[:MAX_PREFIX_CHARS] or None
    if not isinstance(prompt, (str, type(None))):
        raise UserError("The caption prompt must be text, e.g. 'a picture of'.")
    prompt = _tidy(prompt or "")[:MAX_PREFIX_CHARS] or None
    if not 1 <= int(max_new_tokens) <= 512:
        raise UserError("max_new_tokens must be between 1 and 512.")
    bundle = models.get("blip_caption")
    start = prefix or prompt
    inputs = _inputs(bundle, image, start)
    with torch.inference_mode():
        output = bundle.model.generate(**inputs, max_new_tokens=int(max_new_tokens))
    ids = output[0]
    if start is None:
        return _tidy(bundle.processor.tokenizer.decode(ids, skip_special_tokens=True))
    continuation = _continuation(bundle, inputs, ids)
    if prefix is None:  # BLIP's prompt: the caption is what follows it
        return continuation[2:] if continuation.startswith("##") else continuation
    if continuation.startswith("##"):  # a word piece glued to the prefix's last word
        return prefix + continuation[2:]
    return f"{prefix} {continuation}".strip()


def answer_question(models, image: Image.Image, question: str, max_new_tokens: int = 20) -> str:
    """A short answer (a word or a few) to ``question`` about ``image``."""
    import torch

    try:
        question = _clean_question(question)
    except ValueError as exc:
        text = str(exc)
        raise UserError(text[0].upper() + text[1:] + ".") from None
    bundle = models.get("blip_vqa")
    inputs = _inputs(bundle, image, question)
    with torch.inference_mode():
        output = bundle.model.generate(**inputs, max_new_tokens=int(max_new_tokens))
    return _tidy(bundle.processor.tokenizer.decode(output[0], skip_special_tokens=True))


__all__ = ["CAPTION_PROMPT", "CaptionInput", "VqaInput", "caption", "answer_question"]
