"""mmchat: a local, private multimodal chat assistant."""

__version__ = "0.1.0"
