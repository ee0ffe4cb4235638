"""What the chat model adds to grounding: its RefCOCO box for a phrase, and the phrases an answer mentions.

    >>> ask = box_asker(chat)        # LLaVA-1.5 only (None otherwise): find's ``box_from_model``
    >>> find_regions(registry, image, {"phrase": "the cat", "method": "llava"}, box_from_model=ask, sam=sam)
    >>> answer_phrases(chat, image, "A cat sits by the red cup.")   # ['A cat', 'the red cup']

Both are generated under a JSON schema (grammar-constrained decoding, :mod:`chat.structured`), so they always
parse: the box as the array LLaVA-1.5 was fine-tuned to answer (``[0.23, 0.41, 0.55, 0.98]``), the phrases as
:class:`tools.grounding.grounded.Phrases`. A remote model (``remote_llm``) gives phrases through its structured
output and no boxes (its training is unknown).
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from tools.grounding import BoxFromModel, GroundingError
from tools.grounding.grounded import MAX_PHRASES, Phrases, extraction_prompt
from tools.grounding.model_box import box_prompt, check_box

BOX_SCHEMA = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}, "minItems": 4,
              "maxItems": 4}
BOX_TOKENS = 40  # "[0.23, 0.41, 0.55, 0.98]" is about 25 tokens with Llama's tokenizer
PHRASE_TOKENS = 160


def _greedy(chat, max_new_tokens: int):
    from chat.mllm import GenerationOptions

    settings = chat.registry.config.generation.model_dump() | {"max_new_tokens": max_new_tokens,
                                                                "temperature": 0.0}
    return GenerationOptions(**settings)


def _document(chat, text: str, image: Image.Image, schema: dict, max_new_tokens: int) -> Any:
    from chat.mllm import Turn
    from chat.structured import JsonConstraint

    constraint = JsonConstraint(schema)
    turns = [Turn("user", text, [image])]
    answer = "".join(chat.stream(turns, _greedy(chat, max_new_tokens), constraint=constraint))
    try:
        return constraint.parse(answer)
    except ValueError as exc:
        raise GroundingError(f"The chat model's answer could not be used: {exc}.") from None


def gives_boxes(chat) -> bool:
    """Whether ``chat`` is a local LLaVA-1.5 (fine-tuned on RefCOCO boxes of the padded square image)."""
    training = getattr(chat, "training", None)
    known = training() if callable(training) else None
    return known is not None and known.family == "LLaVA-1.5"


def box_asker(chat) -> BoxFromModel | None:
    """``(image, phrase) -> [x0, y0, x1, y1]`` asked of the chat model as LLaVA-1.5 was trained; None when the
    chat model was not trained to give boxes."""
    if not gives_boxes(chat):
        return None

    def ask(image: Image.Image, phrase: str):
        return check_box(_document(chat, box_prompt(phrase), image, BOX_SCHEMA, BOX_TOKENS))

    return ask


def answer_phrases(chat, image: Image.Image, answer: str) -> list[str]:
    """The things in the image that ``answer`` mentions, as the chat model lists them (structured output)."""
    prompt = extraction_prompt(answer)
    if hasattr(chat, "model") and hasattr(chat.model, "with_structured_output"):  # remote: its own structured output
        from chat.mllm import Turn

        try:
            result = chat.model.with_structured_output(Phrases).invoke(chat.messages([Turn("user", prompt, [image])]))
        except Exception as exc:  # noqa: BLE001 - the server's refusal, in one sentence
            raise GroundingError(f"The chat model could not list the answer's phrases: {exc}".rstrip(".") + ".") from None
        return list(Phrases.model_validate(result).phrases)[:MAX_PHRASES]
    return list(Phrases.model_validate(_document(chat, prompt, image, Phrases.model_json_schema(), PHRASE_TOKENS))
                .phrases)[:MAX_PHRASES]


def ground(assistant, image: Image.Image, answer: str, min_score: float = 0.0):
    """The answer grounded on ``image`` (:class:`tools.grounding.grounded.GroundedAnswer`): its phrases listed by
    the chat model, each found with the assistant's caches (SAM candidates when the config has SAM)."""
    from tools.grounding import CandidateOptions, find_regions
    from tools.grounding.grounded import ground_answer

    registry = assistant.registry
    sam = registry.get("sam") if "sam" in registry.available() else None
    phrases = answer_phrases(assistant.mllm, image, answer)

    def find(phrase: str):
        return find_regions(registry, image, {"phrase": phrase, "top_k": 1, "method": "ensemble"}, sam=sam,
                            cache=assistant.embedding_cache, candidate_cache=assistant.candidate_cache,
                            options=CandidateOptions(sam_points=8 if sam is not None else 0))

    return ground_answer(answer, phrases, find, min_score=min_score)


__all__ = ["BOX_SCHEMA", "answer_phrases", "box_asker", "ground", "gives_boxes"]
