"""Image reading moved to :mod:`tools.imageio` (the tools need it and must not import the chat); these names
stay importable from here for the page's modules."""

from tools.imageio import EXTENSIONS, extension, load_image_bytes, load_image_file, working_copy

__all__ = ["EXTENSIONS", "extension", "load_image_bytes", "load_image_file", "working_copy"]
