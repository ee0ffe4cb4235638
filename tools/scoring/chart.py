"""The scores as a bar chart image (shown beside the answer in the UI)."""

from __future__ import annotations

from PIL import Image

from tools.scoring.schemas import ScoreResult


def score_chart(result: ScoreResult) -> Image.Image:
    """A horizontal bar chart of the scores (best at the top), as an RGB image."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(result.labels)
    shown = [label if len(label) <= 40 else label[:39] + "…" for label in result.labels]
    fig = Figure(figsize=(6.4, max(1.6, 0.38 * n + 1.0)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(n))[::-1]
    bars = ax.barh(ys, result.scores, color="#d62728" if result.region else "#1f77b4")
    ax.set_yticks(ys, shown)
    ax.set_xlim(0, 1.12)
    for bar, score in zip(bars, result.scores):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{score:.3f}", va="center", fontsize=9)
    what = "marked region" if result.region else "whole image"
    kind = "softmax over labels" if result.mode == "softmax" else "sigmoid per label"
    ax.set_title(f"{result.model.upper()} zero-shot scores ({kind}, {what})", fontsize=10)
    ax.set_xlabel("probability")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
