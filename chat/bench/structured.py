"""The cost of constrained decoding (part ``structured`` of ``python -m chat.bench cpu``).

On the follow-up benchmark's LLaVA (CLIP ViT-B/16 at 336 px + an 8 x 1024 Llama, random weights, float32),
through ``MultimodalChat.stream``, the assistant's own path:

1. per generated token: the same prompt, the same number of new tokens (a JSON string the schema keeps open
   with ``minLength``, vs free text with the end-of-sequence token banned), with and without the grammar's mask:
   decode milliseconds per token, and the mask's own time per step (llguidance computing the allowed tokens,
   plus applying them to the logits);
2. per turn: ``LocalMultimodalChatModel.bind_tools(<the project's tools>)`` asked "is it a cat or a dog?" about
   an image (first turn: nothing cached): answered in words with no tool offered, with the constrained choice
   made first, and a score call with its arguments generated under the tool's schema;
3. the mask alone on a vocabulary of Llama's size (32,000 tokens: a byte-level BPE trained here on Python's
   own sources, since no real tokenizer can be downloaded), per step of a 40-token document.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from chat.bench.timing import median, ms, ratio

QUESTION = "Is it a cat or a dog?"


def _decode_per_token(chat, turns, tokens: int, runs: int) -> dict:
    """Milliseconds per new token with and without the grammar's mask, the same number of tokens."""
    from transformers import LogitsProcessor

    from chat.mllm import GenerationOptions
    from chat.structured import JsonConstraint

    options = GenerationOptions(max_new_tokens=tokens, temperature=0.0)
    constraint = JsonConstraint({"type": "object", "properties": {"text": {"type": "string", "minLength": 10_000}},
                                 "required": ["text"]})
    eos = chat.bundle.processor.tokenizer.eos_token_id

    class NoEnd(LogitsProcessor):  # free text of exactly ``tokens`` tokens: the end-of-sequence token is banned
        def __call__(self, input_ids, scores):
            scores[:, eos] = float("-inf")
            return scores

    def timed(constrained: bool) -> tuple[float, dict]:
        """Both ways through the same machinery: the free text has no stop strings either (a document has
        none), and the end-of-sequence token banned."""
        stats: dict = {}
        original, stops = chat._generate_kwargs, chat._stop_criteria
        if not constrained:
            chat._generate_kwargs = lambda o: {**original(o), "logits_processor": [NoEnd()]}
            chat._stop_criteria = lambda: ([], None)
        try:
            start = time.perf_counter()
            "".join(chat.stream(turns, options, constraint=constraint if constrained else None, stats=stats))
            return time.perf_counter() - start, stats
        finally:
            chat._generate_kwargs, chat._stop_criteria = original, stops

    timed(True), timed(False)  # warm-up: the prompt's KV cache is kept, so each run prefills one token
    free, masked, mask_s, counts = [], [], [], []
    for _ in range(runs):
        seconds, stats = timed(False)
        free.append(seconds / stats["output_tokens"])
        seconds, stats = timed(True)
        masked.append(seconds / stats["output_tokens"])
        mask_s.append(stats["mask_seconds"] / stats["output_tokens"])
        counts.append(stats["output_tokens"])
    return {"tokens": counts[-1], "free_ms_per_token": ms(median(free), 2),
            "constrained_ms_per_token": ms(median(masked), 2), "mask_ms_per_token": ms(median(mask_s), 3),
            "overhead_ms_per_token": ms(median(masked) - median(free), 2),
            "overhead_ratio": ratio(median(masked), median(free))}


def _turns(assistant, image, runs: int) -> dict:
    """One question about an image, nothing cached, three ways: answered in words with no tool offered; the
    tools offered and the constrained choice made (answered in words: the margin is infinite); a score call (no
    choice: the tool is named), its arguments generated under the schema."""
    from langchain_core.messages import HumanMessage

    from chat.lc_model import make_chat_model
    from chat.lc_tools import make_tools
    from chat.session import Session

    model = make_chat_model(assistant)
    tools = make_tools(assistant, Session())
    chat = assistant.mllm
    message = [HumanMessage(content=[model.image_part(image), {"type": "text", "text": QUESTION}])]
    ways = {"answer": {}, "choice": {"tool_margin": float("inf")}, "call": {"tool_choice": "score"}}

    def turn(way: str) -> tuple[float, object]:
        chat.forget()
        start = time.perf_counter()
        bound = model if way == "answer" else model.bind_tools(tools, **ways[way])  # "answer": no tool offered
        reply = bound.invoke(message)
        return time.perf_counter() - start, reply

    for way in ways:  # warm-up
        turn(way)
    times: dict = {way: [] for way in ways}
    replies: dict = {}
    for _ in range(runs):
        for way in ways:
            seconds, replies[way] = turn(way)
            times[way].append(seconds)
    call = replies["call"]
    out = {f"{way}_turn_ms": ms(median(times[way])) for way in ways}
    out.update(choice_ms=ms(median(times["choice"]) - median(times["answer"])),
               argument_tokens=call.usage_metadata["output_tokens"],
               answer_tokens=replies["answer"].usage_metadata["output_tokens"],
               tool_call=call.tool_calls[0] if call.tool_calls else None)
    return out


def _llama_sized_vocabulary():
    """A byte-level BPE of 32,000 tokens trained on Python's own sources (offline, seconds)."""
    import sysconfig

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    files = sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))[:1500]
    texts = (path.read_text(encoding="utf-8", errors="ignore") for path in files)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=32_000, special_tokens=["<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>")


def _mask_alone(tokenizer, runs: int) -> dict:
    """llguidance's mask per step for the score tool's arguments on ``tokenizer``'s vocabulary (random choices
    among the allowed tokens, 40 steps or the end of the document)."""
    import numpy as np
    import torch

    from chat.structured import JsonConstraint, Vocabulary
    from tools.scoring import ScoreInput

    start = time.perf_counter()
    vocabulary = Vocabulary(tokenizer)
    build = time.perf_counter() - start
    constraint = JsonConstraint(ScoreInput.model_json_schema())
    rng = np.random.default_rng(0)
    per_step = []
    for _ in range(runs):
        mask = constraint.mask(vocabulary, budget=64)
        ids = torch.zeros(1, 1, dtype=torch.long)
        for _step in range(40):
            scores = torch.from_numpy(rng.normal(size=(1, vocabulary.size)).astype(np.float32))
            scores = mask(ids, scores)
            token = int(scores.argmax())
            if token == vocabulary.eos:
                break
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        per_step.append(mask.mask_seconds / max(mask.steps + 1, 1))
    return {"vocab": vocabulary.size, "vocabulary_build_ms": ms(build), "mask_ms_per_step": ms(median(per_step), 3)}


def run(runs: int, quick: bool) -> dict:
    from chat.assistant import Assistant
    from chat.bench.cpu import synthetic_image
    from chat.bench.models import CPU_DIMS, QUICK_DIMS, bench_config, build_llava
    from chat.mllm import Turn

    dims = QUICK_DIMS if quick else CPU_DIMS
    with tempfile.TemporaryDirectory(prefix="mmchat-bench-llava-") as tmp:
        path = build_llava(Path(tmp) / "llava", dims)
        assistant = Assistant(bench_config(path, max_new_tokens=16))
        image = synthetic_image(640, 480)
        chat = assistant.mllm
        result = {"model": dims.describe(), "vocab": len(chat.bundle.processor.tokenizer)}
        result["decode"] = _decode_per_token(chat, [Turn("user", QUESTION, [image])], 8 if quick else 32, runs)
        result["turn"] = _turns(assistant, image, runs)
        assistant.registry.unload_all()
    result["mask_32k"] = _mask_alone(_llama_sized_vocabulary(), runs) if not quick else {"skipped": "--quick"}
    return result


def render(s: dict) -> list[str]:
    d, t, m = s["decode"], s["turn"], s["mask_32k"]
    lines = [f"constrained decoding (llguidance) on {s['model']}, vocabulary {s['vocab']}:",
             f"  per token ({d['tokens']} new tokens): {d['constrained_ms_per_token']} ms with the mask vs "
             f"{d['free_ms_per_token']} ms without: {d['overhead_ms_per_token']:+} ms ({d['overhead_ratio']}x); "
             f"the mask itself {d['mask_ms_per_token']} ms per token",
             f"  one question about an image, nothing cached: answered in words {t['answer_turn_ms']} ms "
             f"({t['answer_tokens']} tokens); with the tools offered and the constrained choice {t['choice_turn_ms']} ms "
             f"(the choice {t['choice_ms']} ms); a score call {t['call_turn_ms']} ms ({t['argument_tokens']} argument "
             f"tokens under its schema)"]
    if "skipped" not in m:
        lines.append(f"  the mask alone on a {m['vocab']}-token vocabulary: {m['mask_ms_per_step']} ms per step "
                     f"(its view of the vocabulary built once in {m['vocabulary_build_ms']} ms)")
    return lines
