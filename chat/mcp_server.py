"""The tools as an MCP server (``mmchat mcp``: stdio, the official ``mcp`` SDK), for desktop agents.

    {"mcpServers": {"mmchat": {"command": "mmchat", "args": ["mcp", "--config", "/path/to/config.yaml"]}}}

Every tool of the table (:data:`chat.toolbox.TOOLS`) is offered with its own arguments (from its schema), except that an MCP client has no
session: instead of an image id, an image tool takes ``image_path`` (a file on this machine) or ``image_base64``
(PNG or JPEG, a ``data:`` URL works too), and ``points`` ([[x, y], ...] in pixels) to mark before it runs, as
clicks in the app do (circles, or one object when ``tools.click_region: sam``). Each call works on a fresh
in-memory session holding that one image. The result is the tool's text, then every image it made (a new
version, an overlay, a chart) as an MCP image (PNG, base64). A failure is a result with ``isError`` and one
sentence. Models load on first use, as everywhere; progress goes to stderr (stdout carries the protocol).
"""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

IMAGE_INPUTS = {
    "image_path": {"type": "string", "description": "Path of an image file on this machine (PNG, JPEG, WebP...)."},
    "image_base64": {"type": "string", "description": "The image as base64 (PNG or JPEG); a data: URL works too."},
    "points": {"type": "array", "description": "Pixels (x, y) to mark before the tool runs, like clicks in the "
                                               "app, e.g. [[120, 80]]; edit, remove, mark and score use them.",
               "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}},
}


def tool_schemas() -> dict[str, tuple[str, dict, bool]]:
    """Tool name -> (description, MCP input schema, whether it works on an image), from the tool table."""
    from chat.toolbox import TOOLS

    out = {}
    for name, spec in TOOLS.items():
        json_schema = spec.input.model_json_schema()  # the tool's own arguments (no chat image id)
        properties = dict(json_schema.get("properties") or {})
        takes_image = spec.image
        json_schema["properties"] = {**properties, **(IMAGE_INPUTS if takes_image else {})}
        json_schema.pop("title", None)
        description = spec.help
        if takes_image:
            description += " Give the image as image_path or image_base64."
        out[name] = (description, json_schema, takes_image)
    return out


def _image_of(arguments: dict, limits) -> Image.Image:
    from chat.errors import UserError
    from chat.imageio import load_image_bytes, load_image_file

    path, data = arguments.pop("image_path", None), arguments.pop("image_base64", None)
    if path and data:
        raise UserError("Give the image once: image_path or image_base64, not both.")
    if path:
        return load_image_file(path, limits)
    if data:
        try:
            raw = base64.b64decode(data.split(",", 1)[1] if data.startswith("data:") else data, validate=False)
        except ValueError:
            raise UserError("image_base64 is not base64.") from None
        return load_image_bytes(raw, "image_base64", limits)
    raise UserError("This tool works on an image: give image_path or image_base64.")


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def call_tool(assistant, name: str, arguments: dict[str, Any]) -> tuple[str, list[Image.Image], bool]:
    """Run one tool on a fresh session: (its text, the images it made, whether it failed)."""
    from chat.clicks import place_points
    from chat.errors import describe
    from chat.lc_tools import make_tools, run_tool
    from chat.session import Session

    known = tool_schemas()
    if name not in known:
        return f"Error: there is no tool '{name}'; tools: {', '.join(known)}.", [], True
    arguments = dict(arguments or {})
    session = Session()
    try:
        if known[name][2]:
            config = assistant.config
            image = _image_of(arguments, config.limits)
            session.add_image(image, name="mcp")
            points = [tuple(int(v) for v in p) for p in arguments.pop("points", None) or []]
            if points:
                placed = place_points(config, assistant.registry, image, points, [], "circle", "red", None)
                for marker in placed.markers:
                    session.add_marker(marker)
    except Exception as exc:  # noqa: BLE001 - bad input is a result, never a crash of the server
        return f"Error: {describe(exc)}", [], True
    tool = {t.name: t for t in make_tools(assistant, session)}[name]
    out = run_tool(tool, arguments)
    images = [session.pixels(v) for v in out.new_versions] + [i for i in (out.overlay, out.plot) if i is not None]
    return out.text, images, not out.ok


def build_server(assistant):
    """The MCP server (``mcp.server.lowlevel.Server``) of ``assistant``'s tools."""
    import anyio
    import mcp_types as types
    from mcp.server import Server

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[
            types.Tool(name=name, description=description, input_schema=schema)
            for name, (description, schema, _) in tool_schemas().items()])

    async def call(ctx, params) -> types.CallToolResult:
        text, images, failed = await anyio.to_thread.run_sync(call_tool, assistant, params.name, params.arguments)
        content: list = [types.TextContent(type="text", text=text)]
        content += [types.ImageContent(type="image", data=_png(i), mime_type="image/png") for i in images]
        return types.CallToolResult(content=content, is_error=failed)

    return Server("mmchat", on_list_tools=list_tools, on_call_tool=call)


def serve(assistant) -> None:
    """Serve the tools over stdio until the client closes the connection."""
    import anyio
    from mcp.server.stdio import stdio_server

    server = build_server(assistant)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


__all__ = ["build_server", "call_tool", "serve", "tool_schemas"]
