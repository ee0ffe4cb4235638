"""The tool table (:data:`chat.toolbox.TOOLS`) as LangChain ``StructuredTool``s bound to one session.

    >>> tools = {t.name: t for t in make_tools(assistant, session)}
    >>> out = run_tool(tools["score"], {"labels": ["cat", "dog"]})      # a ToolOutput, never an exception
    >>> out.text, out.plot, out.new_versions

Each tool's arguments are its chat schema (the tool's own from ``tools/`` plus the session's image id), so
LangChain's ``bind_tools`` shows a model exactly what the typed function accepts; calling one runs the entry's
``run`` (:meth:`chat.toolbox.ToolSpec.execute`): every failure, bad arguments included, comes back as a
ToolOutput whose text is ``"Error: <one sentence>"``. A tool whose entry is ``final`` (an edit, a new image, a
drawing on the image) is ``return_direct``: its confirmation ends an agent's turn, as it ends the router's.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import ValidationError

from chat.errors import describe, explain
from chat.toolbox import TOOLS, Progress, ToolContext, ToolOutput, failed


def make_tools(assistant, session, *, progress: Progress | None = None, chat_model=None,
               brief: bool = False) -> list[StructuredTool]:
    """One StructuredTool per entry of the table, bound to ``session`` (images, markers, versions). ``brief``: each
    described by its one-line summary (for a model whose context is short, e.g. LLaVA-1.5's 2048 tokens, where the
    tools' full descriptions would take 500 tokens of every prompt) instead of its full description."""
    ctx = ToolContext(assistant, session, progress=progress, chat_model=chat_model)
    return [StructuredTool.from_function(lambda spec=spec, **kwargs: spec.execute(ctx, kwargs), name=spec.name,
                                         description=spec.summary if brief else spec.help, args_schema=spec.schema,
                                         return_direct=spec.final)
            for spec in TOOLS.values()]


def run_tool(tool: StructuredTool, arguments: dict[str, Any]) -> ToolOutput:
    """Invoke a tool; bad arguments and any other failure come back as an error ToolOutput."""
    try:
        out = tool.invoke(dict(arguments))
    except ValidationError as exc:
        schema = tool.args_schema if isinstance(tool.args_schema, type) else None
        return failed(tool.name, explain(exc, tool=tool.name, schema=schema), arguments)
    except Exception as exc:  # noqa: BLE001
        return failed(tool.name, describe(exc), arguments)
    return out if isinstance(out, ToolOutput) else ToolOutput(tool.name, str(out), str(out)[:200], dict(arguments))


__all__ = ["ToolOutput", "make_tools", "run_tool"]
