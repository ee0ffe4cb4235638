"""``mmchat mcp`` with the official MCP client SDK: list the tools, call two of them, check what comes back."""

from __future__ import annotations

import base64
import io
import os
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config_path(tiny_dir, tmp_path_factory):
    data = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    data["data_dir"] = str(tmp_path_factory.mktemp("mcp-data"))
    path = tmp_path_factory.mktemp("mcp") / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def session_with(config_path, work):
    """Run ``work(client)`` against ``python -m chat mcp`` spawned over stdio; its result."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    server = StdioServerParameters(command=sys.executable, args=["-m", "chat", "mcp", "--config", str(config_path)],
                                   env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=str(ROOT))

    async def main():
        async with Client(server, read_timeout_seconds=300) as client:
            return await work(client)

    return anyio.run(main)


def picture() -> Image.Image:
    return Image.new("RGB", (160, 120), (40, 90, 200))


def decoded(content) -> Image.Image:
    assert content.type == "image" and content.mime_type == "image/png"
    return Image.open(io.BytesIO(base64.b64decode(content.data))).convert("RGB")


def test_list_the_tools_and_call_two_of_them(config_path, tmp_path):
    path = tmp_path / "blue.png"
    picture().save(path)
    buffer = io.BytesIO()
    picture().save(buffer, format="PNG")

    async def work(client):
        tools = (await client.list_tools()).tools
        mark = await client.call_tool("mark", {"image_base64": base64.b64encode(buffer.getvalue()).decode(),
                                               "points": [[80, 60]]})
        score = await client.call_tool("score", {"image_path": str(path), "labels": ["a cat", "a blue square"]})
        missing = await client.call_tool("caption", {})
        return tools, mark, score, missing

    tools, mark, score, missing = session_with(config_path, work)
    by_name = {t.name: t for t in tools}
    assert {"caption", "vqa", "score", "classify", "mark", "som", "edit", "remove", "generate", "sketch"} <= set(by_name)
    assert {"image_path", "image_base64", "points"} <= set(by_name["edit"].input_schema["properties"])
    assert "image" not in by_name["score"].input_schema["properties"]
    assert "labels" in by_name["score"].input_schema["properties"]
    assert "image_path" not in by_name["generate"].input_schema["properties"]  # no image to give

    assert not mark.is_error and mark.content[0].text.startswith("Drew 1 marker on img1.v1")
    overlay = np.asarray(decoded(mark.content[1]), dtype=int)
    assert overlay.shape == (120, 160, 3)
    red = (overlay[..., 0] > 180) & (overlay[..., 1] < 80) & (overlay[..., 2] < 80)
    ys, xs = np.nonzero(red)
    assert len(xs) and abs(xs.mean() - 80) < 6 and abs(ys.mean() - 60) < 6  # a red circle around the point

    assert not score.is_error and "a cat" in score.content[0].text and "a blue square" in score.content[0].text
    assert len(score.content) == 2 and decoded(score.content[1]).size[0] > 100  # the bar chart

    assert missing.is_error and missing.content[0].text == (
        "Error: This tool works on an image: give image_path or image_base64.")
