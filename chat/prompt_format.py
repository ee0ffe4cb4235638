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

**Typed text.** Special tokens typed in any message (``<image>``, ``<s>``, ``</s>``...) are encoded as text by
transformers' own ``apply_chat_template(..., sanitize_control_tokens=True)``. Role markers are plain text, so
no tokenizer facility can tell a typed ``USER:`` from the template's: :func:`neutral_text` rewrites them.

**Stops.** :func:`stop_strings` are the markers a made-up next turn would start with; :class:`StopText` cuts a
streamed answer before them.
"""

from __future__ import annotations

import re

SYSTEM_SENTENCES = {
    # haotian-liu/LLaVA llava/conversation.py, conv_vicuna_v1 (LLaVA-1.5's --version v1)
    "vicuna_v1": "A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    # conv_llava_v1 (ViP-LLaVA's PROMPT_VERSION=llava_v1)
    "llava_v1": "A chat between a curious human and an artificial intelligence assistant. "
                "The assistant gives helpful, detailed, and polite answers to the human's questions.",
}
TEMPLATES = ("checkpoint", *SYSTEM_SENTENCES)

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
