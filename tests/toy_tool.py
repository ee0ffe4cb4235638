"""A toy tool, as a new tool is written: one typed function and its pydantic input schema (what ``tools/`` holds).

tests/chat/test_toolbox.py adds it to the chat with one entry of the table and finds it everywhere.
"""

from __future__ import annotations

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field


class CountInput(BaseModel):
    """Count the pixels of an image brighter than a threshold."""

    model_config = ConfigDict(extra="forbid")

    threshold: int = Field(128, ge=0, le=255, description="a pixel counts when its grey level is above this")


def count_bright(image: Image.Image, threshold: int) -> int:
    grey = image.convert("L")
    return sum(1 for value in grey.getdata() if value > threshold)
