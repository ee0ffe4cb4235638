"""The page's changing text in the browser's language: status lines, warnings, the fixed text of tool replies,
``/help``, table headers and the chat's action links.

Handlers (and the tools and the router under them) write English; the page translates what it shows, the way
gettext does, with the English sentence as the key. A key may hold ``{name}`` fields, which match any text
and are put back into the translation as they were (``{t:name}``: translated too). A text is translated
sentence by sentence; a sentence with no entry stays as it is (a model's free answer, a name). No Gradio here.
"""

from __future__ import annotations

import re
from functools import lru_cache

from chat.ui.texts_ja import JA, JA_HELP_LINES, JA_WORDS

_FIELD = re.compile(r"\{(t:)?(\w+)\}")
_SENTENCE_END = re.compile(r"(?<=[.!?…:])\s+(?=[A-Z⚠(/\[✓⏳\"'])")


@lru_cache(maxsize=None)
def _compiled() -> list[tuple[re.Pattern, str, tuple[bool, ...]]]:
    out = []
    for english, japanese in JA.items():
        pattern, flags, last = "", [], 0
        for match in _FIELD.finditer(english):
            # a field never runs over the end of a sentence into the next one
            pattern += re.escape(english[last:match.start()]) + f"(?P<{match.group(2)}>(?:(?![.!?]\\s+[A-Z]).)+?)"
            flags.append(bool(match.group(1)))
            last = match.end()
        pattern += re.escape(english[last:])
        out.append((re.compile(pattern + r"\Z", re.DOTALL), japanese, tuple(flags)))
    # The most specific key first: "({size}, {n} markers)" before "({size})", which would match it too.
    fixed = {id(item): len(_FIELD.sub("", english)) for item, english in zip(out, JA)}
    return sorted(out, key=lambda item: -fixed[id(item)])


def _one(sentence: str) -> str | None:
    stripped = sentence.strip()
    if stripped in JA and not _FIELD.search(stripped):
        return JA[stripped]
    for pattern, japanese, _ in _compiled():
        match = pattern.match(stripped)
        if match is None:
            continue
        values = match.groupdict()

        def fill(field: re.Match) -> str:
            value = values.get(field.group(2), "")
            return translate(value, "ja") if field.group(1) else value

        return _FIELD.sub(fill, japanese)
    return None


def translate(text, lang: str = "en"):
    """``text`` in ``lang`` ('en': as it is)."""
    if lang != "ja" or not isinstance(text, str) or not text.strip():
        return text
    whole = _one(text)
    if whole is not None:
        return whole
    if "\n" in text:
        return "\n".join(translate(line, lang) for line in text.split("\n"))
    prefix = ""
    for mark in ("⚠ ", "✓ ", "⏳ ", "- ", "_"):
        if text.startswith(mark) and len(text) > len(mark):
            suffix = "_" if mark == "_" and text.endswith("_") else ""
            inner = text[len(mark):len(text) - len(suffix)]
            return mark + translate(inner, lang) + suffix
    parts = _SENTENCE_END.split(text)
    if len(parts) > 1:
        return prefix + " ".join(translate(part, lang) for part in parts)
    if text in JA_WORDS:
        return JA_WORDS[text]
    return text


def _help(text: str) -> str | None:
    """/help in Japanese: its header and each command's line."""
    if not text.startswith("Commands (or just ask in words):"):
        return None
    lines = []
    for line in text.split("\n"):
        match = re.match(r"- `(/\w+)([^`]*)`: (.*)$", line)
        if match and match.group(1) in JA_HELP_LINES:
            lines.append(f"- `{match.group(1)}{match.group(2)}`: {JA_HELP_LINES[match.group(1)]}")
        else:
            lines.append(translate(line, "ja"))
    return "\n".join(lines)


def _content(content, lang: str, role: str):
    if isinstance(content, list):
        return [_content(part, lang, role) for part in content]
    if not isinstance(content, str):
        return content
    if role == "user":  # what the person typed stays; the page's own notes under it are translated
        head, sep, tail = content.rpartition("\n\n_")
        return f"{head}{sep}{translate(tail.rstrip('_'), lang)}_" if sep and tail.endswith("_") else content
    helped = _help(content) if lang == "ja" else None
    if helped is not None:
        return helped
    if "class='mm-" in content:
        for english in ("Make current", "Compare with parent", "Download"):
            content = content.replace(f">{english}<", f">{translate(english, lang)}<")
        return content
    return "\n".join(translate(line, lang) for line in content.split("\n"))


def translate_chat(messages: list[dict], lang: str) -> list[dict]:
    """The chat's fixed text in ``lang``: tool bubbles, tool replies, errors, /help, notes and action links."""
    if lang != "ja":
        return messages
    out = []
    for message in messages:
        message = dict(message)
        message["content"] = _content(message.get("content"), lang, message.get("role", "assistant"))
        metadata = message.get("metadata")
        if metadata and metadata.get("title", "").startswith("tool: "):
            message["metadata"] = {**metadata, "title": "ツール: " + metadata["title"][6:]}
        out.append(message)
    return out


def translate_trace(rows: list[list], lang: str) -> list[list]:
    """The trace table's result and decision columns in ``lang``."""
    if lang != "ja":
        return rows
    return [[n, tool, args, seconds, translate(result, lang), translate(decision, lang)]
            for n, tool, args, seconds, result, decision in rows]
