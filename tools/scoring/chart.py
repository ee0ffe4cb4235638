"""The scores as a bar chart image (shown beside the answer in the UI).

Labels in any script: DejaVu Sans draws Latin, Greek and Cyrillic; the installed fonts that cover what it
lacks (a CJK font for Japanese labels, say) are added as per-glyph fallbacks. Where no installed font can draw
a label, its bar is numbered by its row in the table and the chart says so, instead of drawing empty boxes.
"""

from __future__ import annotations

from PIL import Image

from tools.scoring.schemas import ScoreResult

BASE_FONT = "DejaVu Sans"  # matplotlib's own default, always installed with it
PLACEHOLDER_FONTS = ("Last Resort",)  # fonts that "cover" every character with a box naming its block


def label_fonts(labels: list[str]) -> tuple[list[str], set[str]]:
    """The font families that draw the labels (DejaVu Sans first), and the characters none of them has."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    missing = {ord(c) for label in labels for c in label if not c.isspace()}
    missing -= set(FT2Font(font_manager.findfont(BASE_FONT)).get_charmap())
    families = [BASE_FONT]
    for entry in font_manager.fontManager.ttflist:
        if not missing:
            break
        if entry.name in families or entry.name.startswith(PLACEHOLDER_FONTS):
            continue
        try:
            covered = missing & set(FT2Font(entry.fname).get_charmap())
        except (OSError, RuntimeError, ValueError):  # a broken or unreadable font file: not ours to fix
            continue
        if covered:
            families.append(entry.name)
            missing -= covered
    return families, {chr(code) for code in missing}


def chart_figure(result: ScoreResult):
    """The chart as a matplotlib Figure (``score_chart`` renders it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(result.labels)
    fonts, undrawable = label_fonts(result.labels)
    shown = [f"#{i}" if undrawable & set(label) else label if len(label) <= 40 else label[:39] + "…"
             for i, label in enumerate(result.labels, start=1)]  # #k: the table's k-th row
    fig = Figure(figsize=(6.4, max(1.6, 0.38 * n + 1.0)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(n))[::-1]
    bars = ax.barh(ys, result.scores, color="#d62728" if result.region else "#1f77b4")
    ax.set_yticks(ys, shown, fontfamily=fonts)
    ax.set_xlim(0, 1.12)
    for bar, score in zip(bars, result.scores):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{score:.3f}", va="center", fontsize=9)
    what = "marked region" if result.region else "whole image"
    kind = "softmax over labels" if result.mode == "softmax" else "sigmoid per label"
    ax.set_title(f"{result.model.upper()} zero-shot scores ({kind}, {what})", fontsize=10)
    ax.set_xlabel("probability (#k: no font here draws that label; it is the table's row k)" if undrawable
                  else "probability")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def score_chart(result: ScoreResult) -> Image.Image:
    """A horizontal bar chart of the scores (best at the top), as an RGB image."""
    import io

    buffer = io.BytesIO()
    chart_figure(result).savefig(buffer, format="png")
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
