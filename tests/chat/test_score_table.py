"""The score table shows every label exactly as typed, with its score, through the real router.

Labels may contain commas ('a red, shiny apple') and there may be more than the five the one-line summary
names: the table is built from the tool's structured result, not parsed back from the summary.
"""

from __future__ import annotations

import pytest

from tests.fakes import sample_image

LABELS = ["a red, shiny apple", "a pear, half eaten", "cat", "dog", "a bird (small)", "car 2", "tree, oak"]


def test_score_table_lists_every_label_exactly(assistant, tmp_path):
    router_module = pytest.importorskip("chat.router")
    from chat.ui.handlers import Handlers

    h = Handlers(assistant, router=router_module.Router(assistant))
    sid = h.upload(None, [str(sample_image(tmp_path / "fruit.png"))]).session_id
    final = list(h.score(sid, " | ".join(LABELS), "clip"))[-1]

    rows = final.scores
    assert sorted(row[0] for row in rows) == sorted(LABELS)  # all seven, commas kept, nothing cut
    scores = [row[1] for row in rows]
    assert scores == sorted(scores, reverse=True)  # best first
    assert abs(sum(scores) - 1.0) < 1e-3  # CLIP softmax over the labels: the table holds every probability
    entry = assistant.sessions.get(sid).trace[-1]
    assert entry.tool == "score" and "+2 more" in entry.summary  # the summary alone names only five
