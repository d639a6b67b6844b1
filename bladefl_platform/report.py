"""What every report shares: markdown tables, one number format, and figures drawn without pyplot's state.

Figures are :class:`matplotlib.figure.Figure` objects saved through the Agg canvas, so writing a report
never touches pyplot's global figure list or backend. The axis helpers give every K axis integer ticks,
label error bars with what they are (mean ± std over n seeds), and move a legend outside the axes when
it has more than five entries.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

__all__ = ["fmt", "regenerate", "markdown_table", "text_table", "new_figure", "save_figure", "k_axis", "legend",
           "mean_std_label"]


def fmt(x, digits: int = 4, *, spec: str | None = None, missing: str = "") -> str:
    """A number for people, the one formatter of every report and table.

    By default ``digits`` significant digits and integers as integers; with ``spec`` (``".4f"``, ``".1%"``...) a
    fixed format. A missing value (None, NaN, pandas' NA) is ``missing``; an infinite one ``∞`` or ``−∞``; anything
    else as text.
    """
    if x is None or x is pd.NA or (isinstance(x, numbers.Real) and x != x):
        return missing
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return str(x)
    x = float(x) if not isinstance(x, numbers.Integral) else int(x)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if spec is not None:
        return format(x, spec)
    if isinstance(x, numbers.Integral) or (float(x).is_integer() and abs(x) < 1e15):
        return str(int(x))
    return f"{x:.{digits}g}"


def regenerate(command: str, intro: str = "Regenerate with:") -> list[str]:
    """The lines of a report that say how to regenerate it: ``intro``, then ``command`` indented as code."""
    return [intro, "", f"    {command}", ""]


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A data frame as a markdown table, numbers through :func:`fmt`."""
    rows = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        rows.append("| " + " | ".join(fmt(v, digits) for v in row) + " |")
    return "\n".join(rows)


def text_table(frame: pd.DataFrame, digits: int = 4, missing: str = "—") -> str:
    """A data frame as aligned plain-text columns for a terminal.

    Numbers go through :func:`fmt`; ``missing`` stands where a cell is empty.
    """
    cells = [[str(c) for c in frame.columns]]
    cells += [[fmt(v, digits) or missing for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(frame.columns))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def new_figure(width: float, height: float, rows: int = 1, cols: int = 1, **subplots):
    """A pyplot-free figure and its axes grid (always 2-D)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(rows, cols, squeeze=False, **subplots)


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Lay out and write ``fig`` as a PNG through the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, format="png")


def k_axis(ax, ks: Sequence[int], label: str = "K (blocks)") -> None:
    """Integer ticks on a K axis: every K when they span at most 20 blocks, fewer beyond."""
    from matplotlib.ticker import MaxNLocator

    ks = list(ks)
    if ks and max(ks) - min(ks) < 20:
        ax.set_xticks(ks)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)


def legend(ax, **kwargs) -> None:
    """A legend inside the axes for up to five entries, outside on the right beyond."""
    handles, _ = ax.get_legend_handles_labels()
    if len(handles) > 5:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, **kwargs)
    elif handles:
        ax.legend(**kwargs)


def mean_std_label(what: str, seeds: int) -> str:
    """The label of an error-bar series: what is shown and over how many seeds."""
    return f"{what} (mean ± std over {seeds} seed{'s' if seeds != 1 else ''})"
