"""``mmchat mcp``: the tools as an MCP server over stdio (:mod:`chat.mcp_server`)."""

from __future__ import annotations

from chat.commands.common import add_common, load


def register(sub) -> None:
    p = sub.add_parser("mcp", help="serve the tools to MCP clients (desktop agents) over stdio",
                       description="Serve mark, som, score, caption, vqa, classify, edit, remove, generate and sketch "
                                   "as MCP tools over stdin/stdout (the official mcp SDK). Image tools take "
                                   "image_path or image_base64 and optional points; results come back as text and "
                                   "PNG images. Models load on first use; messages go to stderr.")
    add_common(p, json_flag=False)
    p.set_defaults(func=run)


def run(args) -> int:
    from chat.assistant import Assistant
    from chat.commands.common import stderr_progress
    from chat.mcp_server import serve

    serve(Assistant(load(args), progress=stderr_progress))
    return 0
