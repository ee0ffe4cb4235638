"""The tool table: one :class:`ToolSpec` per tool, and everything the chat derives from it.

    >>> from chat.toolbox import TOOLS, ToolContext
    >>> TOOLS["edit"].usage                                  # '/edit INSTRUCTION [--steps N] [--seed S] ...'
    >>> TOOLS["edit"].execute(ToolContext(assistant, session), {"instruction": "make it winter"})

``/help`` (:func:`help_text`), the slash commands (:func:`command`), the router's tool list, the LangChain tools
(:mod:`chat.lc_tools`), the CLI verbs (:mod:`chat.commands`) and the page's buttons all read this table, and
every one of them runs a tool through its ``run``. Adding a tool is one module in ``tools/`` (a typed function
and its pydantic input schema) plus one entry here (:func:`register`, or a module in this package).

One concern per module: :mod:`.spec` (ToolSpec, ToolContext, ToolOutput), :mod:`.vision` (caption, vqa, score,
classify, mark, som), :mod:`.diffusion` (edit, remove, generate, sketch), :mod:`.grounding` (find),
:mod:`.free_text` (what a message says for a tool), :mod:`.chat_model` (the chat model as the tools see it).
"""

from __future__ import annotations

from chat.toolbox import diffusion, grounding, vision
from chat.toolbox.spec import IMAGE_HELP, Cancelled, Progress, ToolContext, ToolOutput, ToolSpec, failed

TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in [*vision.TOOLS, *diffusion.TOOLS, *grounding.TOOLS]}
HELP = ("/help", "list these commands")


def register(spec: ToolSpec) -> ToolSpec:
    """Add a tool to the table (or replace the one of that name); it is in /help, the slash commands, the
    router's list and the LangChain tools from then on."""
    TOOLS[spec.name] = spec
    return spec


def command(word: str) -> ToolSpec | None:
    """The tool a slash command's word runs (``ask`` -> vqa), or None."""
    word = word.lower()
    return next((spec for spec in TOOLS.values() if spec.command_name == word), None)


def help_text() -> str:
    """The commands, in table order, as /help lists them."""
    lines = [f"- `{spec.usage}`: {spec.summary}" for spec in TOOLS.values()] + [f"- `{HELP[0]}`: {HELP[1]}"]
    return "Commands (or just ask in words):\n" + "\n".join(lines)


def image_tools() -> set[str]:
    return {name for name, spec in TOOLS.items() if spec.image}


def final_tools() -> set[str]:
    """The tools whose confirmation is the whole reply (they act: edit, remove, generate, ...)."""
    return {name for name, spec in TOOLS.items() if spec.final}


__all__ = ["IMAGE_HELP", "TOOLS", "Cancelled", "Progress", "ToolContext", "ToolOutput", "ToolSpec", "command",
           "failed", "final_tools", "help_text", "image_tools", "register"]
