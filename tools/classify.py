"""Coarse-to-fine classification: the multimodal model proposes names, CLIP scores them, repeat; then the
model answers one label.

Round 1 asks the chat model for a few possible names of the main object; CLIP scores them against the
image. Each later round tells the model the scores so far and asks for more specific names. At the end
CLIP scores every name proposed (one softmax over all of them), the model is shown those scores and picks
one name by constrained choice: ``chat.choose(turns, names)`` scores each name as its answer and the most
probable one is the label. Only when the chat model offers no ``choose`` does the label fall back to the best
CLIP score (``decision.by == "clip"``). Text and image embeddings go through the caller's cache, so the vision
encoder runs once for the whole dialogue.

``chat`` is a :class:`ChatModel`: ``generate(turns) -> str`` over plain turns ``{"role", "text", "images"}``
and, for the final choice, optionally ``choose(turns, options) -> list[float]`` (the chat's local LLaVA and a
remote OpenAI-compatible server both are, through ``chat.toolbox.chat_model``; tests use scripted fakes).
When the model's answer cannot be parsed into names (e.g. random tiny weights), words drawn from the answer,
then a generic list, keep the machinery running.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Protocol, Sequence, TypedDict

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from tools.errors import UserError
from tools.scoring import DEFAULT_TEMPLATES, EmbeddingCache, score_labels

GENERIC_LABELS: tuple[str, ...] = ("object", "animal", "person", "scene", "food")
CANDIDATES_PER_ROUND = 5
MAX_CANDIDATE_CHARS = 40
MAX_CANDIDATE_WORDS = 5

FIRST_PROMPT = (
    "List {n} possible names for the main object in this image, most likely first. "
    "Answer with the names only, comma separated."
)
NEXT_PROMPT = (
    "An image-text matching model scored your names for this image: {scores}. "
    "List {n} more specific names for the main object (for example its kind, species, breed or model), "
    "most likely first. Answer with the names only, comma separated."
)
FINAL_PROMPT = (
    "The image-text matching model scored all the names together: {scores}. "
    "Which one of these names is right for the main object? Answer with that name only."
)


class Turn(TypedDict):
    """One turn of a conversation with the chat model: who speaks, the text, and the images it shows."""

    role: Literal["system", "user", "assistant"]
    text: str
    images: list[Image.Image]


class ChatModel(Protocol):
    """What classify needs of a chat model. ``choose(turns, options) -> list[float]`` (the mean log-probability of
    each option as the answer) is optional: without it the final label is the best CLIP score."""

    def generate(self, turns: list[Turn]) -> str: ...


class ClassifyInput(BaseModel):
    """Name the main object of an image by asking the chat model for names and checking them with CLIP."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(
        2, ge=1, le=10,
        description="How many propose-and-score rounds to run (1 to 10); later rounds ask for more specific names.",
    )


class ClassifyRound(BaseModel):
    candidates: list[str]
    scores: list[float]
    answer: str = Field("", description="the chat model's raw answer this round")
    fallback: bool = Field(False, description="True when the candidates did not come from a parsable answer")


class ClassifyDecision(BaseModel):
    """The final answer: one of all the names proposed, picked by the chat model (or CLIP as a fallback)."""

    label: str
    by: Literal["model", "clip"] = Field(description="model: the chat model's constrained choice; clip: the "
                                                     "best CLIP score, when the chat model cannot choose")
    options: list[str] = Field(description="every name proposed, best CLIP score first")
    clip_scores: list[float] = Field(description="CLIP scores of the options, one softmax over all of them")
    model_logprobs: list[float] = Field(default_factory=list,
                                        description="the chat model's mean log-probability of each option")


class ClassifyResult(BaseModel):
    label: str
    rounds: list[ClassifyRound]
    decision: ClassifyDecision
    score: float = Field(0.0, description="the label's CLIP score among all the options")

    def outline(self) -> str:
        """How the label was found, in a few words: 'chosen by the chat model among 6 names from 2 rounds
        (round 1 best: cat 0.62; round 2 best: tabby cat 0.48)'."""
        n, k = len(self.decision.options), len(self.rounds)
        by = "chosen by the chat model" if self.decision.by == "model" else "the best CLIP score"
        best = "; ".join(f"round {i} best: {r.candidates[0]} {r.scores[0]:.2f}"
                         for i, r in enumerate(self.rounds, 1) if r.candidates)
        return (f"{by} among {n} name{'s' if n != 1 else ''} from {k} round{'s' if k != 1 else ''}"
                + (f" ({best})" if best else ""))

    def summary(self) -> str:
        """The label and every round's three best names with their scores (for the trace)."""
        steps = []
        for i, r in enumerate(self.rounds, 1):
            best = ", ".join(f"{c} {s:.2f}" for c, s in list(zip(r.candidates, r.scores))[:3])
            steps.append(f"round {i}: {best}")
        n = len(self.decision.options)
        by = "chosen by the chat model" if self.decision.by == "model" else "best CLIP score"
        steps.append(f"final: {by} of {n} name{'s' if n != 1 else ''}")
        return f"{self.label} ({'; '.join(steps)})"


# --------------------------------------------------------------------------------------------
# Parsing the model's answer
# --------------------------------------------------------------------------------------------
_SPLIT = re.compile(r"[,;!?\n\r\t|/]+|\s+or\s+|\.\s+|\.$")
_LEADING = re.compile(r"^\s*(?:[-*\u2022>#]+|\(?\d{1,2}[.):\]]|\(?[a-e][.)])\s*", re.IGNORECASE)
_PREAMBLE = re.compile(r"^(?:here are|sure|possible names|names|the main object|answer|it is|it's|this is)\b[^:]*:\s*",
                       re.IGNORECASE)
_COPULA = re.compile(r"^(?:the\s+)?(?:main\s+)?(?:object|it|this|that)\s+(?:is|looks like|appears to be|might be)\s+",
                     re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:a|an|the|some)\s+", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
_STOP = {
    "a", "an", "the", "and", "or", "of", "in", "on", "is", "it", "this", "that", "with", "for", "to", "are",
    "image", "picture", "photo", "object", "main", "names", "name", "possible", "list", "here", "sure",
    "not", "who", "what", "which", "you", "your", "can", "has", "have", "was", "were", "be", "but", "from", "by",
    "as", "at", "all", "any", "its", "there", "their", "they", "them", "these", "those", "very", "just", "also",
    "more", "most", "some", "yes", "no", "show", "answer", "question",
}


def _clean_candidate(piece: str) -> str:
    text = _PREAMBLE.sub("", piece.strip())
    text = _LEADING.sub("", text)
    text = _COPULA.sub("", text)
    text = re.sub(r"[^\w\s'-]", " ", text, flags=re.UNICODE)  # punctuation, quotes, emoji
    text = re.sub(r"[_\d]+", " ", text)
    text = " ".join(text.split()).strip(" '-")
    text = _ARTICLE.sub("", text)
    return text.lower()


def _plausible(name: str) -> bool:
    words = name.split()
    return (
        0 < len(words) <= MAX_CANDIDATE_WORDS
        and len(name) <= MAX_CANDIDATE_CHARS
        and all(_WORD.fullmatch(w.strip("'-") or "x") for w in words)
        and any(len(w) >= 3 for w in words)
        and name not in _STOP
    )


def parse_candidates(text: str, limit: int = CANDIDATES_PER_ROUND) -> list[str]:
    """Names from a free-form answer: commas, newlines, numbered or bulleted lists; deduplicated, lowercase."""
    out: list[str] = []
    for piece in _SPLIT.split(text or ""):
        name = _clean_candidate(piece)
        if _plausible(name) and name not in out:
            out.append(name)
        if len(out) >= limit:
            break
    return out


def fallback_candidates(text: str, exclude: Sequence[str] = (), limit: int = CANDIDATES_PER_ROUND) -> list[str]:
    """Words drawn from an unparsable answer, topped up from :data:`GENERIC_LABELS`."""
    seen = {e.lower() for e in exclude}
    out: list[str] = []
    for word in _WORD.findall(text or ""):
        w = word.lower().strip("'-")
        sensible = 3 <= len(w) <= 15 and w.isascii() and re.search(r"[aeiouy]", w) is not None
        if sensible and w not in _STOP and w not in seen and w not in out:
            out.append(w)
        if len(out) >= limit:
            return out
    for w in GENERIC_LABELS:
        if len(out) >= limit:
            break
        if w not in seen and w not in out:
            out.append(w)
    return out


# --------------------------------------------------------------------------------------------
# The tool
# --------------------------------------------------------------------------------------------
def _turn(role: str, text: str, images: list[Image.Image] | None = None) -> Turn:
    return {"role": role, "text": text, "images": list(images or [])}


def classify(
    models: Any,
    image: Image.Image,
    chat: ChatModel,
    *,
    rounds: int = 2,
    cache: EmbeddingCache | None = None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    model: str = "clip",
    per_round: int = CANDIDATES_PER_ROUND,
) -> ClassifyResult:
    """Run ``rounds`` propose (chat model) / score (CLIP) rounds, then let the chat model pick the label among
    every name proposed, with their CLIP scores in its context (see the module doc)."""
    if not 1 <= rounds <= 10:
        raise UserError(f"rounds must be between 1 and 10, not {rounds}.")
    cache = cache if cache is not None else EmbeddingCache()
    turns = [_turn("user", FIRST_PROMPT.format(n=per_round), [image])]
    history: list[ClassifyRound] = []
    best: tuple[float, str] | None = None  # (logit, label): the leader so far, refined when answers run dry
    seen: list[str] = []
    for i in range(rounds):
        answer = (chat.generate(turns) or "").strip()
        candidates = [c for c in parse_candidates(answer, per_round) if c not in seen]
        fallback = len(candidates) < 2
        if fallback:
            extra = fallback_candidates(answer, exclude=seen + candidates, limit=per_round)
            candidates = (candidates + extra)[:per_round]
            if len(candidates) < 2 and best is not None:  # nothing new to say: keep refining the leader
                candidates = [best[1]] + [c for c in candidates if c != best[1]]
        if len(candidates) < 2:
            candidates = list(dict.fromkeys(candidates + list(GENERIC_LABELS)))[:per_round]
        result = score_labels(models, image, candidates, model=model, templates=templates, cache=cache)
        history.append(ClassifyRound(candidates=result.labels, scores=result.scores, answer=answer, fallback=fallback))
        for label, logit in zip(result.labels, result.logits):
            if best is None or logit > best[0]:
                best = (logit, label)
        seen.extend(c for c in result.labels if c not in seen)
        turns.append(_turn("assistant", answer or ", ".join(candidates)))
        if i + 1 < rounds:
            turns.append(_turn("user", NEXT_PROMPT.format(scores=_shown(result), n=per_round)))
    final = score_labels(models, image, seen, model=model, templates=templates, cache=cache)
    turns.append(_turn("user", FINAL_PROMPT.format(scores=_shown(final))))
    decision = decide(chat, turns, final.labels, final.scores)
    score = final.scores[final.labels.index(decision.label)]
    return ClassifyResult(label=decision.label, rounds=history, decision=decision, score=score)


def _shown(result) -> str:
    return ", ".join(f"{label} {score:.2f}" for label, score in zip(result.labels, result.scores))


def decide(chat: ChatModel, turns: list[Turn], options: list[str], clip_scores: list[float]) -> ClassifyDecision:
    """The chat model's constrained choice among ``options`` (best CLIP score first); the best CLIP score
    only when the model has no ``choose``."""
    choose = getattr(chat, "choose", None)
    if not callable(choose):
        return ClassifyDecision(label=options[0], by="clip", options=options, clip_scores=clip_scores)
    logprobs = [float(v) for v in choose(turns, options)]
    if len(logprobs) != len(options):
        raise ValueError(f"choose gave {len(logprobs)} scores for {len(options)} options")
    pick = max(range(len(options)), key=lambda i: logprobs[i])  # ties: the better CLIP score
    return ClassifyDecision(label=options[pick], by="model", options=options, clip_scores=clip_scores,
                            model_logprobs=logprobs)
