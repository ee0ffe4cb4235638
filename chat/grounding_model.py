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
    """Whether ``chat`` is a local LLaVA-1.5 (fine-tuned on RefCOCO boxes of the padded square image). Read from
    the checkpoint's config through the registry: a model offloaded or not loaded yet is not loaded for it."""
    from chat.prompt_format import training

    if not callable(getattr(chat, "training", None)):  # a remote model: its training is unknown
        return False
    registry, name = getattr(chat, "registry", None), getattr(chat, "name", None)
    try:
        config = registry.model_config(name) if hasattr(registry, "model_config") else None
    except Exception:  # noqa: BLE001 - no readable config: the model itself could not load either
        return False
    known = training(config) if config is not None else chat.training()
    return known is not None and known.family == "LLaVA-1.5"


def box_asker(chat, cache=None) -> BoxFromModel | None:
    """``(image, phrase) -> [x0, y0, x1, y1]`` asked of the chat model as LLaVA-1.5 was trained; None when the
    chat model was not trained to give boxes. With ``cache`` (a :class:`tools.grounding.CandidateCache`) the
    answer for an image and a phrase is kept: asking again (a numbered answer to "which one?") generates nothing."""
    if not gives_boxes(chat):
        return None
    spec = chat.registry.config.model(chat.name)

    def ask(image: Image.Image, phrase: str):
        question = box_prompt(phrase)

        def generate():
            return _document(chat, question, image, BOX_SCHEMA, BOX_TOKENS)

        if cache is None:
            return check_box(generate())
        from tools.scoring import EmbeddingCache

        key = (chat.name, spec.path, spec.revision, EmbeddingCache.image_digest(image), question)
        return check_box(cache.model_box(key, generate))

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
