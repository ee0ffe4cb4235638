"""What an answer points at, drawn on the image it is about (after the router streams the answer).

    >>> yield from highlighted(session, "img1.v1", "The cup is [2].")          # the Set-of-Mark region 2, lit
    >>> out = yield from grounded(assistant, session, "img1.v1", answer)       # grounded answers: each thing found

Each yields the router's events (a ``ToolFinished`` whose output carries the overlay) and records a trace entry.
"""

from __future__ import annotations

import time
from typing import Iterator

from chat.errors import describe
from chat.events import Event, ToolFinished, ToolStarted
from chat.session import Session
from chat.toolbox import ToolOutput, failed


def highlighted(session: Session, version_id: str, answer: str) -> Iterator[Event]:
    """If the answer cites Set-of-Mark regions ([n]) of the image, an overlay highlighting them."""
    from tools.som import highlight_marks, parse_mark_refs

    refs = parse_mark_refs(answer)
    masks = session.overlay_masks(version_id) if refs else []
    ids = [i for i in refs if 1 <= i <= len(masks)]
    if not ids:
        return
    start = time.perf_counter()
    overlay = highlight_marks(session.pixels(version_id), masks, ids)
    marks = f"marks {', '.join(map(str, ids))}"
    out = ToolOutput("highlight", f"Highlighted {marks} of {version_id}.", marks,
                     {"image": version_id, "marks": ids}, overlay=overlay)
    entry = out.entry(time.perf_counter() - start, "the answer cites Set-of-Mark regions")
    yield ToolFinished(trace_index=session.add_trace(entry), entry=entry, output=out)


def grounded(assistant, session: Session, version_id: str, answer: str) -> Iterator[Event]:
    """Grounded answers (the session's toggle): the things the answer mentions, found and drawn on the image in the
    colours of their numbers; returns the output, whose text names them (said under the answer)."""
    from chat.grounding_model import ground
    from tools.grounding.grounded import PALETTE_NAMES, draw_grounded

    yield ToolStarted(tool="ground", arguments={"image": version_id}, decision="grounded answers are on")
    start = time.perf_counter()
    try:
        image = session.pixels(version_id)
        found = ground(assistant, image, answer, assistant.config.tools.grounded_min_score)
        shown = [(n, p) for n, p in enumerate(found.phrases, 1) if p.region is not None]
        legend = ", ".join(f"[{n}] {p.phrase} ({PALETTE_NAMES[p.colour]})" for n, p in shown)
        text = (f"Shown on {version_id}: {legend}." if shown
                else f"Nothing the answer mentions was found on {version_id}.")
        out = ToolOutput("ground", text, legend or "nothing found",
                         {"image": version_id, "phrases": [p.phrase for p in found.phrases]},
                         overlay=draw_grounded(image, found) if shown else None, data={"grounded": found})
    except Exception as exc:  # noqa: BLE001 - the answer stands; grounding it failed
        out = failed("ground", describe(exc), {"image": version_id})
    entry = out.entry(time.perf_counter() - start, "grounded answers are on")
    yield ToolFinished(trace_index=session.add_trace(entry), entry=entry, output=out)
    return out


__all__ = ["grounded", "highlighted"]
