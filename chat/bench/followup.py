"""Follow-up vs first time-to-first-token (part 2 of ``python -m chat.bench cpu``).

A random-weight LLaVA of meaningful size (CLIP ViT-B/16 at 336 px = 441 image tokens, 8-layer 1024-wide
Llama) is built, loaded through ``ModelRegistry`` and asked through ``MultimodalChat.stream``, the assistant's
own code path; the user text of both turns has the same number of tokens. TTFT is taken when the language
model head first runs (the first token's logits exist); the time to the first streamed text piece is reported
too. The follow-up's greedy answer is checked against ``reuse=False``. The same is measured through
``Router.respond`` (the app's path: constrained choice, then the streamed answer), and the constrained choice
against one full forward per option.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from chat.bench.cpu import FIRST_QUESTION, FOLLOW_UP_QUESTION, synthetic_image
from chat.bench.timing import median, ms, ratio


def _torch():
    import torch

    return torch


class _FirstLogits:
    """Records when the language model head first runs in a generation: the first token's logits exist."""

    def __init__(self, model):
        self.at: float | None = None
        self._handle = model.get_output_embeddings().register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if self.at is None:
            if getattr(output, "is_cuda", False):
                _torch().cuda.synchronize()  # the hook runs when the kernels are queued, not when they are done
            self.at = time.perf_counter()

    def reset(self) -> None:
        self.at = None

    def close(self) -> None:
        self._handle.remove()


def timed_turn(chat, turns, options, probe: _FirstLogits, reuse: bool = True) -> dict:
    """One turn through ``MultimodalChat.stream``: TTFT (first logits), first streamed piece, total, answer."""
    probe.reset()
    start = time.perf_counter()
    first_piece = None
    pieces = []
    for piece in chat.stream(turns, options, reuse=reuse):
        if first_piece is None:
            first_piece = time.perf_counter()
        pieces.append(piece)
    end = time.perf_counter()
    return {
        "ttft": (probe.at or end) - start,
        "first_piece": (first_piece or end) - start,
        "total": end - start,
        "answer": "".join(pieces).strip(),
        "stats": dict(chat.last_stats),
    }


def _same_length_questions(tokenizer) -> tuple[str, str]:
    """The two user texts, padded with words so both have the same number of tokens."""
    first, follow = FIRST_QUESTION, FOLLOW_UP_QUESTION

    def n(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    for _ in range(32):
        if n(first) == n(follow):
            break
        if n(first) < n(follow):
            first += " now"
        else:
            follow += " now"
    return first, follow


CHOICE_OPTIONS = ("caption", "vqa", "score", "classify", "mark", "som", "edit", "remove", "generate", "sketch",
                  "answer")


def _choice_seconds(chat, image, runs: int) -> float:
    """Median seconds of the router's constrained choice among the tool names (one prefill, then the options),
    with nothing reused from earlier turns (so the prompt and the image are prefilled every time)."""
    from chat.mllm import Turn

    turns = [Turn("user", "Which tool fits this request: what is in the red circle?", [image])]
    chat.choice_logprobs(turns, list(CHOICE_OPTIONS), reuse=False)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        chat.choice_logprobs(turns, list(CHOICE_OPTIONS), reuse=False)
        times.append(time.perf_counter() - start)
    return median(times)


def _choice_per_option_seconds(chat, image) -> tuple[float, float]:
    """Seconds of the naive constrained choice (one full forward of prompt + option per option) and the largest
    difference between its scores and ``choice_logprobs``'s."""
    from chat.mllm import Turn

    torch = _torch()
    turns = [Turn("user", "Which tool fits this request: what is in the red circle?", [image])]
    model, tokenizer = chat.bundle.model, chat.bundle.processor.tokenizer
    base = chat.inputs(turns)
    start = time.perf_counter()
    naive = []
    with torch.inference_mode():
        for option in CHOICE_OPTIONS:
            ids = tokenizer(option, add_special_tokens=False, return_tensors="pt")["input_ids"].to(base["input_ids"].device)
            full = dict(base, input_ids=torch.cat([base["input_ids"], ids], dim=1),
                        attention_mask=torch.ones(1, base["input_ids"].shape[1] + ids.shape[1], dtype=torch.long,
                                                  device=ids.device))
            logits = torch.log_softmax(model(**full).logits[0, -ids.shape[1] - 1:-1].float(), dim=-1)
            naive.append(float(logits.gather(1, ids[0].unsqueeze(1)).mean()))
    seconds = time.perf_counter() - start
    fast = chat.choice_logprobs(turns, list(CHOICE_OPTIONS), reuse=False)
    return seconds, max(abs(a - b) for a, b in zip(naive, fast))


def router_followup(assistant, runs: int, image) -> dict:
    """The same comparison through the app's own path, ``Router.respond`` with the local model: a free-text turn
    is a constrained choice among the tools and then the streamed answer. TTFT is taken at the first text delta.
    The choice is forced to 'answer' (random weights would pick tools this config does not hold)."""
    from chat.events import Delta
    from chat.router import Router
    from chat.session import Session

    router = Router(assistant)
    router.choice_margin = float("inf")
    chat = assistant.mllm

    def turn(session, text) -> tuple[float, str]:
        start, first = time.perf_counter(), None
        for event in router.respond(session, text):
            if first is None and isinstance(event, Delta):
                first = time.perf_counter()
        if session.trace[-1].tool != "answer" or session.trace[-1].error:  # timed the model's answer, nothing else
            raise RuntimeError(f"the router did not answer {text!r} in words: {session.trace[-1]}")
        return (first or time.perf_counter()) - start, session.messages[-1].content

    firsts, follows, uncached, identical = [], [], [], True
    for i in range(runs + 1):
        chat.prefix_cache.clear()
        chat.vision_cache.clear()
        session = Session()
        session.add_image(image)
        first, _ = turn(session, FIRST_QUESTION)
        follow, answer = turn(session, FOLLOW_UP_QUESTION)
        stats = dict(chat.last_stats)
        session.messages[-2:] = []  # the same follow-up again, with empty caches
        chat.prefix_cache.clear()
        chat.vision_cache.clear()
        plain, plain_answer = turn(session, FOLLOW_UP_QUESTION)
        identical = identical and answer == plain_answer
        if i:
            firsts.append(first)
            follows.append(follow)
            uncached.append(plain)
    first, follow, plain = median(firsts), median(follows), median(uncached)
    return {"router_first_ttft_ms": ms(first), "router_followup_ttft_ms": ms(follow),
            "router_followup_uncached_ttft_ms": ms(plain), "router_ttft_ratio": ratio(follow, first),
            "router_uncached_ratio": ratio(follow, plain), "router_reused_tokens": stats["reused_tokens"],
            "router_prompt_tokens": stats["prompt_tokens"], "router_images_encoded": stats["images_encoded"],
            "router_greedy_identical": identical}


def followup_ttft(registry, runs: int, new_tokens: int = 16, image=None) -> dict:
    """First turn vs follow-up TTFT through the assistant's chat model (any registry: CPU or GPU)."""
    from chat.mllm import GenerationOptions, MultimodalChat, Turn

    chat = MultimodalChat(registry)
    model = chat.bundle.model
    image = image if image is not None else synthetic_image(640, 480)
    options = GenerationOptions(max_new_tokens=new_tokens, temperature=0.0)
    first_text, follow_text = _same_length_questions(chat.bundle.processor.tokenizer)
    probe = _FirstLogits(model)
    firsts, follows, uncached = [], [], []
    identical = True
    try:
        for i in range(runs + 1):  # the first round warms up and is not counted
            chat.prefix_cache.clear()
            chat.vision_cache.clear()
            first_turns = [Turn("user", first_text, [image])]
            first = timed_turn(chat, first_turns, options, probe)
            turns = first_turns + [Turn("assistant", first["answer"]), Turn("user", follow_text)]
            follow = timed_turn(chat, turns, options, probe)
            plain = timed_turn(chat, turns, options, probe, reuse=False)
            identical = identical and follow["answer"] == plain["answer"]
            if i:
                firsts.append(first)
                follows.append(follow)
                uncached.append(plain)
    finally:
        probe.close()
    f_ttft, u_ttft = median(r["ttft"] for r in follows), median(r["ttft"] for r in uncached)
    t_ttft = median(r["ttft"] for r in firsts)
    choice = _choice_seconds(chat, image, runs)
    naive, diff = _choice_per_option_seconds(chat, image)
    return {
        "choice_options": len(CHOICE_OPTIONS),
        "choice_ms": ms(choice),
        "choice_per_option_ms": ms(naive),
        "choice_speedup": ratio(naive, choice),
        "choice_max_diff": diff,
        "choice_vs_first_ttft": ratio(choice, t_ttft),
        "prompt_tokens_first": firsts[-1]["stats"]["prompt_tokens"],
        "prompt_tokens_followup": follows[-1]["stats"]["prompt_tokens"],
        "reused_tokens_followup": follows[-1]["stats"]["reused_tokens"],
        "images_encoded_followup": follows[-1]["stats"]["images_encoded"],
        "first_ttft_ms": ms(t_ttft),
        "followup_ttft_ms": ms(f_ttft),
        "followup_uncached_ttft_ms": ms(u_ttft),
        "ttft_ratio": ratio(f_ttft, t_ttft),
        "uncached_ttft_ratio": ratio(f_ttft, u_ttft),
        "first_piece_ratio": ratio(median(r["first_piece"] for r in follows), median(r["first_piece"] for r in firsts)),
        "greedy_identical": identical,
    }


def run(runs: int, quick: bool, quantize: str = "none") -> dict:
    from chat.assistant import Assistant
    from chat.bench.models import CPU_DIMS, QUICK_DIMS, bench_config, build_llava

    dims = QUICK_DIMS if quick else CPU_DIMS
    with tempfile.TemporaryDirectory(prefix="mmchat-bench-llava-") as tmp:
        start = time.perf_counter()
        path = build_llava(Path(tmp) / "llava", dims)
        build_s = time.perf_counter() - start
        new_tokens = 8 if quick else 16
        assistant = Assistant(bench_config(path, quantize=quantize, max_new_tokens=new_tokens))
        registry = assistant.registry
        params = sum(p.numel() for p in registry.get("llava").model.parameters())
        image = synthetic_image(640, 480)
        result = followup_ttft(registry, runs, new_tokens=new_tokens, image=image)
        result.update(router_followup(assistant, runs, image))
        registry.unload_all()
    return {"model": dims.describe(), "params_m": round(params / 1e6, 1), "quantize": quantize,
            "build_s": round(build_s, 1), **result}
