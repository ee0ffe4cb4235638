"""What a person typed -> tool arguments: slash commands (``/score cat | dog``, ``/generate ... --seed 7``)
and free text ("is it a cat or a dog?" -> labels), plus the command list that ``/help`` shows.

Pure functions over strings and the session; the router (:mod:`chat.router`) decides which tool runs.
"""

from __future__ import annotations

import re
from typing import Any

from chat.errors import UserError
from chat.session import Session

# command -> (tool, usage, one-line description); the order is the order of /help
COMMANDS: dict[str, tuple[str | None, str, str]] = {
    "caption": ("caption", "/caption [prefix]", "describe the image in one sentence (BLIP)"),
    "ask": ("vqa", "/ask QUESTION", "a short factual answer about the image (BLIP VQA)"),
    "score": ("score", "/score cat | dog [--siglip]", "zero-shot scores of labels (CLIP; 'siglip:' for SigLIP)"),
    "classify": ("classify", "/classify [rounds]", "name the main object (the chat model proposes, CLIP checks)"),
    "mark": ("mark", "/mark [blur|grey]", "draw the markers you placed on the image"),
    "som": ("som", "/som [max regions]", "number the image's regions (Set-of-Mark); then ask about [n]"),
    "edit": ("edit", "/edit INSTRUCTION [--steps N] [--seed S] [--guidance G]", "edit the image (only the marked region when it has markers)"),
    "remove": ("remove", "/remove [target] [--steps N] [--seed S]", "remove the marked object and fill in background"),
    "generate": ("generate", "/generate PROMPT [--size WxH] [--steps N] [--seed S]", "a new image from a text description"),
    "sketch": ("sketch", "/sketch PROMPT [--steps N] [--seed S]", "a picture from the active image used as a sketch"),
    "help": (None, "/help", "list these commands"),
}
TOOL_HELP = {tool: text for tool, _, text in COMMANDS.values() if tool}
IMAGE_TOOLS = {"caption", "vqa", "score", "classify", "mark", "som", "edit", "remove", "sketch"}


def help_text() -> str:
    lines = [f"- `{usage}`: {text}" for _, usage, text in COMMANDS.values()]
    return "Commands (or just ask in words):\n" + "\n".join(lines)


_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|'([^']+)'")
_LEAD = re.compile(r"^.*\b(?:is|are|it|this|that|these|there|a|an|the|of|like|between|show|shows|either)\s+|^.*:\s*",
                   re.IGNORECASE)
_TAIL = re.compile(r"\s+\b(?:in|on|inside|within|at|from)\s+(?:the|this|that|my)\b.*$", re.IGNORECASE)


def parse_labels(text: str) -> list[str]:
    """Labels in free text: quoted phrases if any; else the items of "X or Y" / "X, Y, Z" with the question
    around them dropped ("is it a cat or a dog?" -> ["cat", "dog"]). Fewer than two items: none."""
    quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]
    if quoted:
        return [" ".join(q.split()) for q in quoted if q.strip()]
    pieces = [p for p in re.split(r",|;|\||/|\bor\b", text.strip().rstrip("?.!"), flags=re.IGNORECASE)]
    pieces = [p.strip() for p in pieces if p.strip()]
    if len(pieces) < 2:
        return []
    pieces[0] = _LEAD.sub("", pieces[0])
    pieces[-1] = _TAIL.sub("", pieces[-1])
    labels = [re.sub(r"^(?:and\s+)?(?:a|an|the|some)\s+", "", p, flags=re.IGNORECASE).strip() for p in pieces]
    labels = [" ".join(label.split()[-4:]) for label in labels if label]
    return labels if len(labels) >= 2 else []


def _remove_target(text: str) -> str:
    match = re.search(r"\b(?:remove|erase|delete|get rid of)\s+(.+?)(?:\s+from\b.*)?[.!?]*$", text, re.IGNORECASE)
    return match.group(1).strip() if match else "the object"


def _generate_prompt(text: str) -> str:
    return re.sub(r"^\s*(?:please\s+)?(?:generate|create|draw|make|paint)\s+(?:me\s+)?(?:an?\s+)?"
                  r"(?:(?:new\s+)?(?:image|picture|photo|painting)\s+(?:of\s+)?)?", "", text, flags=re.IGNORECASE)


def fill_arguments(tool: str, text: str, session: Session, image: str | None) -> dict | None:
    """Arguments for ``tool`` from a free-text message, or None when they cannot be filled:
    vqa: question = the text; score: labels from the text (:func:`parse_labels`); edit: instruction = the
    text (region-aware through the image's markers); remove: target = what follows "remove", needs a
    marker; mark: needs a marker; generate/sketch: prompt = the text without "draw an image of";
    image tools need an image. ``image`` is the id the message is about."""
    if tool in IMAGE_TOOLS and image is None:
        return None
    markers = session.record(image).markers if image else []
    args: dict[str, Any] = {"image": image} if tool in IMAGE_TOOLS else {}
    if tool == "vqa":
        args["question"] = text
    elif tool == "score":
        labels = parse_labels(text)
        if not labels:
            return None
        args["labels"] = labels
    elif tool == "edit":
        args["instruction"] = text
    elif tool == "remove":
        if not markers:
            return None
        args["target"] = _remove_target(text)
    elif tool == "mark" and not markers:
        return None
    elif tool in ("generate", "sketch"):
        args["prompt"] = _generate_prompt(text) or text
    return args


OPTIONS = {  # slash-command options of the diffusion tools: --name value (or --name=value)
    "edit": ("steps", "seed", "guidance"), "remove": ("steps", "seed"),
    "generate": ("steps", "seed", "size"), "sketch": ("steps", "seed"),
}


def _options(tool: str, rest: str) -> tuple[dict[str, Any], str]:
    """``--steps 30 --seed 7 --size 640x448`` out of the text: (schema arguments, the text without them).
    Values are passed on as written when they are not numbers, so the tool's schema names the problem."""
    allowed = OPTIONS.get(tool, ())
    args: dict[str, Any] = {}

    def take(match: re.Match) -> str:
        name, value = match.group(1).lower(), match.group(2)
        if name not in allowed:
            hint = ", ".join(f"--{o}" for o in allowed) or "none"
            raise UserError(f"/{tool} has no option --{name}; its options are: {hint}.")
        if name == "size":
            size = re.fullmatch(r"(\d+)\s*[x×*,]\s*(\d+)", value)
            if not size:
                raise UserError(f"--size takes WIDTHxHEIGHT in pixels, e.g. 640x448, not '{value}'.")
            args["width"], args["height"] = int(size.group(1)), int(size.group(2))
        else:
            number = re.fullmatch(r"[+-]?\d+(\.\d+)?", value)
            key = "guidance_scale" if name == "guidance" else name
            args[key] = (float(value) if number.group(1) else int(value)) if number else value
        return " "

    if not allowed:
        return args, rest
    rest = re.sub(r"(?:^|\s)--([A-Za-z_-]+)(?:\s*=\s*|\s+)(\S+)", take, rest)
    return args, " ".join(rest.split())


_SCORE_MODEL = re.compile(r"(?:^|\s)(?:--(clip|siglip)\b|(clip|siglip):)", re.IGNORECASE)
_IMAGE_ID = re.compile(r"^(img\d+(?:\.v\d+)?)\b")


def score_command(labels: list[str], model: str = "clip") -> str:
    """The slash command that scores ``labels`` with ``model`` (``/score siglip: cat | dog``): what the Score
    button writes in the chat, so that Regenerate, which runs that text again, repeats it exactly. The model is
    named when it is not CLIP, or when the labels alone would read otherwise (one naming a model, the first
    looking like an image id)."""
    line = " | ".join(labels) + (" |" if len(labels) == 1 and "," in labels[0] else "")
    if model != "clip" or _SCORE_MODEL.search(line) or _IMAGE_ID.match(line):
        line = f"{model}: {line}"
    return f"/score {line}"


def command_arguments(tool: str, rest: str) -> dict[str, Any]:
    """Arguments of a slash command from the text after it (a leading image id such as ``img2`` picks the image;
    diffusion tools take ``--steps``, ``--seed``, ``--guidance`` or ``--size`` options)."""
    args: dict[str, Any] = {}
    options, rest = _options(tool, rest)
    args.update(options)
    match = re.match(_IMAGE_ID.pattern + r"\s*", rest)
    if match and tool in IMAGE_TOOLS:
        args["image"], rest = match.group(1), rest[match.end():]
    rest = rest.strip()
    if tool == "caption" and rest:
        args["prefix"] = rest
    elif tool == "vqa":
        args["question"] = rest
    elif tool == "score":
        model = _SCORE_MODEL.search(rest)
        if model:
            args["model"] = (model.group(1) or model.group(2)).lower()
            rest = (rest[:model.start()] + " " + rest[model.end():]).strip()
        parts = rest.split("|") if "|" in rest else rest.split(",")
        args["labels"] = [p.strip() for p in parts if p.strip()]
    elif tool in ("classify", "som") and rest:
        args["rounds" if tool == "classify" else "max_regions"] = int(rest) if rest.isdigit() else rest
    elif tool == "mark" and rest:
        args["outside"] = rest.lower()
    elif tool == "edit":
        args["instruction"] = rest
    elif tool == "remove" and rest:
        args["target"] = rest
    elif tool in ("generate", "sketch"):
        args["prompt"] = rest
    return args
