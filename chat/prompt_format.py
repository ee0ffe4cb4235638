"""What the chat model is asked: its trained prompt format, typed text kept as text, and where an answer ends.

**Formats.** LLaVA-1.5 and ViP-LLaVA were fine-tuned with LLaVA's ``SeparatorStyle.TWO`` conversations
(haotian-liu/LLaVA ``llava/conversation.py``; LLaVA-1.5's ``scripts/v1_5/finetune.sh`` trains with ``--version
v1`` = ``conv_vicuna_v1``, ViP-LLaVA's ``scripts/finetune_stage2.sh``/``stage3.sh`` with ``llava_v1`` =
``conv_llava_v1``)::

    {system} USER: <image>\\n{question} ASSISTANT: {answer}</s>USER: {question} ASSISTANT:

``</s>`` is the end-of-sequence token (id, not text) and BOS comes first. The two differ only in the system
sentence ("curious user ... user's questions" vs "curious human ... human's questions"). The hub templates
differ: llava-hf/llava-1.5-7b-hf's has no system sentence and ends an answer with a space instead of ``</s>``;
llava-hf/vip-llava-7b-hf's is ``###Human: ... ###Assistant:``. :func:`chat_template` gives the trained format
as a chat template (``models.<name>.chat_template: vicuna_v1 | llava_v1``; ``checkpoint`` keeps the hub's).
A system message is added after the trained sentence, which always comes first.

**Trainings.** :data:`TRAININGS` says, per checkpoint family (the config's ``model_type`` and its language model's),
how it was fine-tuned: its prompt format, images per prompt and context. Unset (``chat_template: auto``, no
``max_images``, no ``context_tokens``), the three ``models.<name>`` keys follow the checkpoint that is loaded, so
pointing ``models.llava.path`` at another family prompts it in that family's format; a family not listed gets its
own chat template, 3 images and its ``max_position_embeddings``. A trained format set by hand on a checkpoint of
another family is used as asked, with a load note (:func:`format_note`).

**Typed text.** Special tokens typed in any message (``<image>``, ``<s>``, ``</s>``...) are encoded as text by
transformers' own ``apply_chat_template(..., sanitize_control_tokens=True)``. Role markers are plain text, so
no tokenizer facility can tell a typed ``USER:`` from the template's: :func:`neutral_text` rewrites them.

**Stops.** :func:`stop_strings` are the markers a made-up next turn would start with; :class:`StopText` cuts a
streamed answer before them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SYSTEM_SENTENCES = {
    # haotian-liu/LLaVA llava/conversation.py, conv_vicuna_v1 (LLaVA-1.5's --version v1)
    "vicuna_v1": "A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    # conv_llava_v1 (ViP-LLaVA's PROMPT_VERSION=llava_v1)
    "llava_v1": "A chat between a curious human and an artificial intelligence assistant. "
                "The assistant gives helpful, detailed, and polite answers to the human's questions.",
}
TEMPLATES = ("checkpoint", *SYSTEM_SENTENCES)


@dataclass(frozen=True)
class Training:
    """How a checkpoint family was fine-tuned; its prompts follow it unless ``models.<name>`` says otherwise."""

    family: str  # what a person calls it
    chat_template: str  # a trained format of SYSTEM_SENTENCES, or "checkpoint" (its hub template is its format)
    max_images: int  # images in one prompt of its fine-tuning data
    context_tokens: int  # prompt + answer tokens it was fine-tuned with (--model_max_length)


# (model_type, its language model's model_type) -> how that family was fine-tuned
TRAININGS = {
    # haotian-liu/LLaVA scripts/v1_5/finetune.sh: --version v1, --model_max_length 2048, one image per sample
    ("llava", "llama"): Training("LLaVA-1.5", "vicuna_v1", 1, 2048),
    # mu-cai/ViP-LLaVA scripts/finetune_stage2.sh, stage3.sh: --version llava_v1, --model_max_length 2048
    ("vipllava", "llama"): Training("ViP-LLaVA", "llava_v1", 1, 2048),
    # liuhaotian/llava-v1.6-* config.json: tokenizer_model_max_length 4096; one image per sample; Mistral's
    # [INST] format, which llava-hf/llava-v1.6-mistral-7b-hf's chat template writes
    ("llava_next", "mistral"): Training("LLaVA-NeXT", "checkpoint", 1, 4096),
}


def family_of(config) -> tuple[str | None, str | None]:
    """(model_type, the language model's model_type) of a transformers config."""
    text = getattr(config, "text_config", None)
    return getattr(config, "model_type", None), getattr(text, "model_type", None)


def training(config) -> Training | None:
    """How the checkpoint of ``config`` was fine-tuned, when its family is known."""
    return TRAININGS.get(family_of(config))


def resolved_template(setting: str, config) -> str:
    """``models.<name>.chat_template`` for the checkpoint of ``config``: ``auto`` is its family's trained format
    (the checkpoint's own template for a family not in :data:`TRAININGS`)."""
    if setting != "auto":
        return setting
    known = training(config)
    return known.chat_template if known else "checkpoint"


def format_note(setting: str, config) -> str | None:
    """One line when ``setting`` is a trained format made for another family than ``config``'s, else None."""
    if setting not in SYSTEM_SENTENCES:
        return None
    own = training(config)
    if own is not None and own.chat_template == setting:
        return None
    made_for = " and ".join(t.family for t in TRAININGS.values() if t.chat_template == setting)
    model_type, text_type = family_of(config)
    this = own.family if own else f"{model_type} with a {text_type} language model"
    return (f"chat_template {setting} is the training format of {made_for}, but this checkpoint is {this}; "
            f"it is used as asked (without the key: {resolved_template('auto', config)})")

# Role markers of every supported template (the trained USER:/ASSISTANT:, ViP-LLaVA's hub ###Human:/###Assistant:)
_ROLE_MARKERS = re.compile(r"\b(USER|ASSISTANT):|###(Human|Assistant):")


def chat_template(name: str, image_token: str = "<image>") -> str | None:
    """The Jinja chat template of the trained format ``name`` (None for ``checkpoint``: the hub's own)."""
    if name == "checkpoint":
        return None
    sentence = SYSTEM_SENTENCES[name]
    text = "message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('\\n')"
    return (
        "{%- set ns = namespace(system=" + repr(sentence) + ") -%}"
        "{%- for message in messages if message['role'] == 'system' -%}"
        "{%- set ns.system = ns.system + ' ' + (" + text + ") -%}"
        "{%- endfor -%}"
        "{{- ns.system + ' ' -}}"
        "{%- for message in messages if message['role'] != 'system' -%}"
        "{%- if message['role'] == 'assistant' -%}"
        "{{- 'ASSISTANT: ' + (" + text + ") + eos_token -}}"
        "{%- else -%}"
        "{{- 'USER: ' -}}"
        "{%- for part in message['content'] | selectattr('type', 'equalto', 'image') -%}"
        "{{- " + repr(image_token + "\n") + " -}}"
        "{%- endfor -%}"
        "{{- (" + text + ") + ' ' -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
    )


def neutral_text(text: str) -> str:
    """``text`` with role markers of any supported template rewritten so they are not a turn boundary
    (``USER:`` -> ``User:``, ``###Human:`` -> ``### Human:``); everything else stays as typed."""
    def plain(match: re.Match) -> str:
        if match.group(1):
            return match.group(1).title() + ":"
        return "### " + match.group(2) + ":"

    return _ROLE_MARKERS.sub(plain, text)


def stop_strings(render, eos_token: str | None) -> list[str]:
    """The strings a made-up next turn starts with, for the template behind ``render`` (a function of a
    conversation and ``add_generation_prompt``): the markers it writes between an answer and the next question
    and before an answer, their leading punctuation (``###``), and the end-of-sequence token spelled as text."""
    def text(value):
        return {"role": value[0], "content": [{"type": "text", "text": value[1]}]}

    stops = [eos_token] if eos_token else []
    try:
        probe = render([text(("user", "\x01")), text(("assistant", "\x02")), text(("user", "\x03"))], True)
    except Exception:  # noqa: BLE001 - a template that refuses the probe: the end-of-sequence text only
        return stops
    between = probe[probe.index("\x02") + 1 : probe.index("\x03")]
    before_answer = probe[probe.index("\x03") + 1 :]
    for marker in (between.replace(eos_token or "\x00", ""), before_answer):
        marker = marker.strip()
        lead = re.match(r"[^\w\s]{2,}", marker)
        stops += [marker, lead.group(0)] if lead else [marker]
    return list(dict.fromkeys(s for s in stops if s))


class StopText:
    """Cuts a stream of text pieces before the first stop string; text that may begin one is held back."""

    def __init__(self, stops: list[str] | tuple[str, ...]):
        self.stops = [s for s in stops if s]
        self.held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text of ``piece`` (and what was held back) that is safe to show now."""
        if self.stopped:
            return ""
        text = self.held + piece
        cuts = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.stopped, self.held = True, ""
            return text[: min(cuts)]
        keep = max((n for s in self.stops for n in range(min(len(s) - 1, len(text)), 0, -1)
                    if text.endswith(s[:n])), default=0)
        self.held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What was held back, at the end of a stream that met no stop string."""
        held, self.held = ("" if self.stopped else self.held), ""
        return held
