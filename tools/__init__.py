"""The tools: typed functions over PIL images, one concern per module, usable without the chat."""
