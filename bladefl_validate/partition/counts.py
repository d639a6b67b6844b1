"""What a partition gives each client: the label counts table and its heat map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .partitioner import _as_labels

#: The classes of the data sets the toolkit reads (MNIST, Fashion-MNIST).
NUM_CLASSES = 10


def label_counts(labels: np.ndarray, parts: list[np.ndarray], num_classes: int = NUM_CLASSES) -> pd.DataFrame:
    """Samples of each class held by each client: rows ``client`` 0..N-1, columns ``class`` 0..C-1."""
    y = _as_labels(labels)
    width = max(num_classes, int(y.max()) + 1 if y.size else 0)
    rows = [np.bincount(y[np.asarray(p, dtype=np.int64)], minlength=width) for p in parts]
    table = np.vstack(rows) if rows else np.zeros((0, width), dtype=np.int64)
    return pd.DataFrame(table, index=pd.RangeIndex(len(rows), name="client"),
                        columns=pd.RangeIndex(width, name="class"))


def plot_partition(counts_df: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG heat map of a :func:`label_counts` table to ``path``; returns the path."""
    from bladefl_platform.report import new_figure, save_figure

    values = counts_df.to_numpy()
    n_clients, n_classes = values.shape
    fig, axes = new_figure(max(4.0, 0.55 * n_classes + 2.0), min(40.0, max(3.0, 0.3 * n_clients + 1.5)))
    ax = axes[0][0]
    image = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="samples")
    ax.set_xlabel("class")
    ax.set_ylabel("client")
    ax.set_xticks(range(n_classes), [str(c) for c in counts_df.columns])
    if n_clients <= 40:
        ax.set_yticks(range(n_clients), [str(c) for c in counts_df.index])
    if n_clients * n_classes <= 400:
        threshold = values.max() / 2 if values.size else 0
        for (r, c), v in np.ndenumerate(values):
            if v:
                ax.text(c, r, str(v), ha="center", va="center", fontsize=7,
                        color="black" if v > threshold else "white")
    ax.set_title(title or f"label counts, {n_clients} clients")
    path = Path(path)
    save_figure(fig, path, dpi=100)
    return path
