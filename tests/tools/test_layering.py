"""tools/ is the ground floor: nothing under it imports the chat (so a tool can be lifted out, and the chat's
modules depend on the tools, never the other way round)."""

from __future__ import annotations

import ast
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, function-local ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_nothing_under_tools_imports_chat():
    files = sorted(TOOLS.rglob("*.py"))
    assert len(files) > 20  # the scan sees the package
    offenders = [f"{path.relative_to(TOOLS.parent)}:{line} imports {module}"
                 for path in files for line, module in imported_modules(path)
                 if module == "chat" or module.startswith("chat.")]
    assert not offenders, "\n".join(offenders)


def test_the_scan_catches_a_chat_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef f():\n    from chat.errors import UserError\n    return UserError\n")
    assert (4, "chat.errors") in imported_modules(sample)
