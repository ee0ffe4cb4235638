"""How well the chat model routes: ``mmchat eval-router [FILE]`` over a JSONL of requests with the expected tool.

One request per line (``chat/data/router_requests.jsonl`` is bundled: 162 requests, English and Japanese, every
tool, plain questions and ambiguous ones)::

    {"text": "Is it a cat or a dog?", "lang": "en", "tool": "score", "args": {"labels": ["cat", "dog"]}, "kind": "tool"}
    {"text": "What's in this picture?", "tool": "caption", "also": ["vqa", "answer"], "kind": "ambiguous"}
    {"text": "Remove the dog.", "tool": "remove", "args": {"target": "dog"}, "markers": 1}

``tool`` is the expected tool, or ``answer`` for a reply in words; ``also`` lists other tools that are right too;
``args`` the key arguments (a string must appear in the generated one, case and spacing aside; a list must hold
the same items; a number or a flag must be equal); ``markers`` places that many clicks on the photo first.

Each request is a new session holding one photo (scikit-image's cat, ``skimage.data.chelsea()``) and goes through
the router as a typed message does (:func:`router_decide`); the turn is stopped at its first step, so no tool runs:
the tool the router starts with its arguments (the chat model's own tool call, its arguments generated under the
tool's schema by the local model), or the first words of an answer in words. Reported: tool accuracy
(overall, per language, per kind), argument accuracy (of the requests with ``args`` whose tool was right), a
confusion table (expected x chosen) and the time per decision (from the message to that first step: median, 90th
percentile).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from chat.errors import UserError

BUNDLED = Path(__file__).resolve().parent / "data" / "router_requests.jsonl"
ANSWER = "answer"


@dataclass
class Request:
    text: str
    tool: str
    lang: str = "en"
    kind: str = "tool"
    also: list[str] = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)
    markers: int = 0


def read_requests(path: str | Path | None = None) -> list[Request]:
    """The requests of a JSONL file (the bundled set by default); a bad line is one sentence naming it."""
    path = Path(path) if path else BUNDLED
    if not path.is_file():
        raise UserError(f"{path} is not a file; give a JSONL of requests (see 'mmchat eval-router --help').")
    requests = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            requests.append(Request(**{k: v for k, v in row.items() if k in Request.__dataclass_fields__}))
        except (json.JSONDecodeError, TypeError) as exc:
            raise UserError(f"{path} line {number} is not a request ({exc}); each line needs at least "
                            '{"text": ..., "tool": ...}.') from None
    if not requests:
        raise UserError(f"{path} holds no requests.")
    return requests


def _norm(value: Any) -> str:
    return " ".join(str(value).lower().split())


def argument_matches(expected: Any, got: Any) -> bool:
    """A string must appear in the generated one (case and spacing aside); a list must hold the same items; a
    number or a flag must be equal."""
    if isinstance(expected, str):
        return got is not None and _norm(expected) in _norm(got)
    if isinstance(expected, list):
        return isinstance(got, list) and sorted(map(_norm, expected)) == sorted(map(_norm, got))
    return expected == got


@dataclass
class Outcome:
    request: Request
    chosen: str
    args: dict[str, Any]
    seconds: float
    error: str | None = None

    @property
    def tool_ok(self) -> bool:
        return self.chosen == self.request.tool or self.chosen in self.request.also

    @property
    def args_ok(self) -> bool | None:
        """None when there is nothing to check (no expected arguments, or the wrong tool)."""
        if not self.request.args or self.chosen != self.request.tool:
            return None
        return all(argument_matches(v, self.args.get(k)) for k, v in self.request.args.items())


@dataclass
class Table:
    outcomes: list[Outcome]
    model: str = ""

    def _accuracy(self, outcomes: list[Outcome]) -> float | None:
        return round(sum(o.tool_ok for o in outcomes) / len(outcomes), 3) if outcomes else None

    def to_dict(self) -> dict:
        out = self.outcomes
        checked = [o for o in out if o.args_ok is not None]
        times = sorted(o.seconds for o in out)
        confusion: dict[str, dict[str, int]] = {}
        for o in out:
            row = confusion.setdefault(o.request.tool, {})
            row[o.chosen] = row.get(o.chosen, 0) + 1
        return {
            "model": self.model,
            "requests": len(out),
            "tool_accuracy": self._accuracy(out),
            "by_language": {lang: self._accuracy([o for o in out if o.request.lang == lang])
                            for lang in sorted({o.request.lang for o in out})},
            "by_kind": {kind: self._accuracy([o for o in out if o.request.kind == kind])
                        for kind in sorted({o.request.kind for o in out})},
            "argument_accuracy": round(sum(bool(o.args_ok) for o in checked) / len(checked), 3) if checked else None,
            "arguments_checked": len(checked),
            "errors": sum(o.error is not None for o in out),
            "median_ms": round(1000 * statistics.median(times), 1),
            "p90_ms": round(1000 * times[min(len(times) - 1, int(0.9 * len(times)))], 1),
            "confusion": confusion,
            "rows": [{"text": o.request.text, "lang": o.request.lang, "kind": o.request.kind,
                      "expected": o.request.tool, "chosen": o.chosen, "arguments": o.args, "tool_ok": o.tool_ok,
                      "args_ok": o.args_ok, "ms": round(1000 * o.seconds, 1), "error": o.error} for o in out],
        }

    def markdown(self) -> str:
        d = self.to_dict()
        lines = [f"Routing of {d['requests']} requests ({d['model']}):",
                 f"tool accuracy {d['tool_accuracy']} ("
                 + ", ".join(f"{k} {v}" for k, v in {**d['by_language'], **d['by_kind']}.items()) + ")",
                 f"argument accuracy {d['argument_accuracy']} (of {d['arguments_checked']} with the right tool and "
                 f"expected arguments); decision time median {d['median_ms']} ms, 90th percentile {d['p90_ms']} ms"
                 + (f"; {d['errors']} errors (the first: {next(o.error for o in self.outcomes if o.error)})"
                    if d["errors"] else ""), ""]
        chosen = sorted({c for row in d["confusion"].values() for c in row})
        lines.append("| expected \\ chosen | " + " | ".join(chosen) + " |")
        lines.append("| --- | " + " | ".join("---:" for _ in chosen) + " |")
        for tool in sorted(d["confusion"]):
            row = d["confusion"][tool]
            lines.append(f"| {tool} | " + " | ".join(str(row.get(c, "")) for c in chosen) + " |")
        return "\n".join(lines)


def router_decide(router) -> Callable[[Any, str], tuple[str, dict]]:
    """``decide`` through ``router.respond`` as a typed message goes: the tool it starts and its arguments, or
    ``answer`` at the first words of a reply; the turn is stopped there (the tool does not run). A reply that is
    an error raises it, so it is counted as an error."""
    from chat.events import Delta, ToolStarted

    def decide(session, text: str) -> tuple[str, dict]:
        events = router.respond(session, text)
        try:
            for event in events:
                if isinstance(event, ToolStarted):
                    return event.tool, dict(event.arguments)
                if isinstance(event, Delta) and event.text.strip():
                    if event.text.strip().startswith("Error:"):
                        raise UserError(event.text.strip().removeprefix("Error:").strip())
                    return ANSWER, {}
        finally:
            events.close()  # stops the turn: no tool runs, no answer is generated
        return ANSWER, {}

    return decide


def photo():
    """The photo every request is about: scikit-image's cat (451 x 300)."""
    from PIL import Image
    from skimage import data

    return Image.fromarray(data.chelsea())


def evaluate(decide: Callable[[Any, str], tuple[str, dict]], requests: list[Request], model: str = "",
             progress: Callable[[int, int, str], None] | None = None) -> Table:
    """``decide(session, text) -> (tool or "answer", arguments)`` for each request, on a new session each time."""
    from chat.session import Session
    from tools.markers import Marker

    picture = photo()
    outcomes = []
    for index, request in enumerate(requests, 1):
        session = Session()
        session.add_image(picture, name="chelsea.png")
        for i in range(request.markers):
            session.add_marker(Marker(x=picture.width // 2 + 30 * i, y=picture.height // 2))
        start = time.perf_counter()
        try:
            chosen, args = decide(session, request.text)
            error = None
        except Exception as exc:  # noqa: BLE001 - one failing request is counted, the rest go on
            from chat.errors import describe

            chosen, args, error = "error", {}, describe(exc)
        outcomes.append(Outcome(request, chosen, dict(args or {}), time.perf_counter() - start, error))
        if progress is not None:
            progress(index, len(requests), f"{request.text[:40]} -> {chosen}")
    return Table(outcomes, model)


__all__ = ["ANSWER", "BUNDLED", "Outcome", "Request", "Table", "argument_matches", "evaluate", "read_requests",
           "router_decide"]
