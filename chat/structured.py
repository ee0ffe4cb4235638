"""Grammar-constrained decoding for the local model: tool arguments and structured output that always parse.

    >>> vocabulary = Vocabulary(tokenizer, vocab_size)          # once per tokenizer (about 1 s for 32k tokens)
    >>> constraint = JsonConstraint(schema)                      # a JSON schema (a tool's arguments, an answer)
    >>> mask = constraint.mask(vocabulary, budget=256)           # one per generation: a transformers LogitsProcessor
    >>> model.generate(..., logits_processor=LogitsProcessorList([mask]))

The library is llguidance (guidance-ai; the grammar engine of llama.cpp's and vLLM's structured output): a
pure wheel with no dependency, JSON schemas and Lark grammars compiled in about a millisecond, and a token mask
computed in microseconds per step from its own tokenizer trie (measured in ``python -m chat.bench cpu --only
structured``). xgrammar needs triton for its mask kernels on GPU, outlines brings a larger stack of its own
(outlines-core, its own model wrappers), lm-format-enforcer walks characters in Python.

At every step the mask allows only tokens that keep the text a prefix of a document matching the schema; once
the document is complete it allows only the end-of-sequence token, so generation stops there. The arguments'
forced start (``{"`` or ``{"labels": ["``) is prefilled with the prompt instead of generated token by token
(:meth:`JsonConstraint.forced_start`). A random or confused model could keep a string open until it runs out of
tokens: in the last ``CLOSING`` tokens of the budget the mask prefers tokens that close what is open (``"``,
``]``, ``}``), so the document still completes; a document that did not is reported, never returned as valid.
"""

from __future__ import annotations

import copy
import json
from typing import Any

CLOSING = 24  # the last tokens of a budget in which closing tokens are preferred


class Vocabulary:
    """llguidance's view of one tokenizer (built once, kept by its model) and its tokens made of closing
    characters (``"``, ``]``, ``}``), by their text."""

    def __init__(self, tokenizer, vocab_size: int | None = None):
        import llguidance.hf

        size = max(vocab_size or 0, len(tokenizer))
        self.size = size
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=size)
        self.eos = tokenizer.eos_token_id
        self.closers: dict[str, list[int]] = {}
        for token in range(len(tokenizer)):
            if not self.tokenizer.is_special_token(token):
                text = self.tokenizer.decode_bytes([token]).decode("utf-8", "replace")
                if text and set(text) <= set('"]}'):
                    self.closers.setdefault(text, []).append(token)

    def text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode_bytes(tokens).decode("utf-8", "replace")


def closing_text(document: str) -> str:
    """What closes the JSON ``document`` (a prefix): ``"`` if a string is open, then ``]``/``}`` for each open
    array or object, innermost first."""
    stack: list[str] = []
    in_string = escaped = False
    for char in document:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append("]" if char == "[" else "}")
        elif char in "]}" and stack:
            stack.pop()
    return ('"' if in_string else "") + "".join(reversed(stack))


def generation_schema(schema: dict) -> dict:
    """``schema`` as generated: objects that leave ``additionalProperties`` open get it closed (a document of the
    generation schema still matches ``schema``; without it a model could add keys no one asked for)."""
    schema = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "additionalProperties" not in node:
                node["additionalProperties"] = False
                node.setdefault("properties", {})
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


class JsonConstraint:
    """Generation constrained to JSON documents that match a JSON schema."""

    def __init__(self, schema: dict):
        from llguidance import LLMatcher

        self.schema = schema
        self.grammar = LLMatcher.grammar_from_json_schema(
            json.dumps(generation_schema(schema)),
            defaults={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "})

    def matcher(self, vocabulary: Vocabulary):
        from llguidance import LLMatcher

        matcher = LLMatcher(vocabulary.tokenizer, self.grammar, log_level=0)
        if matcher.is_error():
            raise ValueError(f"the schema cannot be used for generation: {matcher.get_error()}")
        return matcher

    def forced_start(self, vocabulary: Vocabulary) -> str:
        """The text every matching document starts with (``{"`` at least for an object): prefilled, not generated."""
        return self.matcher(vocabulary).compute_ff_bytes().decode("utf-8", "ignore")

    def mask(self, vocabulary: Vocabulary, budget: int, start: str = "") -> GrammarMask:
        """A LogitsProcessor for one generation of at most ``budget`` new tokens after ``start`` (the forced start
        already in the prompt)."""
        matcher = self.matcher(vocabulary)
        if start and not matcher.consume_tokens(vocabulary.tokenizer.tokenize_str(start)):
            raise ValueError(f"the schema does not start with {start!r}: {matcher.get_error()}")
        mask = GrammarMask(matcher, vocabulary, budget)
        mask.tokens = vocabulary.tokenizer.tokenize_str(start) if start else []
        return mask

    def parse(self, text: str) -> Any:
        """The document in ``text``; ValueError (one sentence) when it is incomplete or does not match the schema."""
        import jsonschema

        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("the generated JSON is incomplete (it ran out of tokens)") from None
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(self.schema).iter_errors(value))
        if error is not None:
            raise ValueError(f"the generated JSON does not match the schema: {error.message}")
        return value


class GrammarMask:
    """transformers LogitsProcessor: each step, the tokens the grammar does not allow get -inf.

    It consumes the tokens generated since its last call (``input_ids`` holds the prompt, then them), so one
    instance serves one generation."""

    def __init__(self, matcher, vocabulary: Vocabulary, budget: int):
        import llguidance.numpy

        self.matcher = matcher
        self.vocabulary = vocabulary
        self.budget = budget
        self.tokens: list[int] = []  # consumed so far (the forced start's first)
        self.bits = llguidance.numpy.allocate_token_bitmask(1, vocabulary.size)
        self.prompt_len: int | None = None
        self.steps = 0
        self.mask_seconds = 0.0  # time spent computing and applying masks (the cost of the constraint)

    @property
    def complete(self) -> bool:
        return self.matcher.is_accepting()

    def allowed(self):
        """A boolean tensor over the vocabulary: the tokens the grammar allows next."""
        import numpy as np
        import torch

        import llguidance.numpy

        llguidance.numpy.fill_next_token_bitmask(self.matcher, self.bits)
        bits = np.unpackbits(self.bits.view(np.uint8), bitorder="little")[: self.vocabulary.size]
        return torch.from_numpy(bits.astype(bool))

    def __call__(self, input_ids, scores):
        import time

        import torch

        start = time.perf_counter()
        if self.prompt_len is None:
            self.prompt_len = input_ids.shape[1]
        new = input_ids[0, self.prompt_len + self.steps:].tolist()
        for token in new:
            self.matcher.consume_token(token)
        self.steps += len(new)
        self.tokens.extend(new)
        allowed = self.allowed()
        if self.matcher.is_error():  # cannot happen with its own masks; stop rather than generate garbage
            allowed = torch.zeros_like(allowed)
            allowed[self.vocabulary.eos] = True
        width = scores.shape[-1]
        if allowed.numel() < width:
            allowed = torch.cat([allowed, torch.zeros(width - allowed.numel(), dtype=torch.bool)])
        allowed = allowed[:width].to(scores.device)
        if self.budget - self.steps <= CLOSING:
            allowed = self._closing(allowed)
        scores = scores.masked_fill(~allowed, float("-inf"))
        self.mask_seconds += time.perf_counter() - start
        return scores

    def _closing(self, allowed):
        """Near the end of the budget: of the allowed tokens, the one that closes most of what is open (the
        longest start of :func:`closing_text`); the model's own choice when none is allowed (a required key or
        item must come first)."""
        import torch

        closing = closing_text(self.vocabulary.text(self.tokens))
        for end in range(len(closing), 0, -1):
            tokens = [t for t in self.vocabulary.closers.get(closing[:end], []) if t < allowed.numel() and allowed[t]]
            if tokens:
                out = torch.zeros_like(allowed)
                out[tokens] = True
                return out
        return allowed


__all__ = ["CLOSING", "GrammarMask", "JsonConstraint", "Vocabulary", "closing_text", "generation_schema"]
