"""The K* study's scoring rule: the measured K* and its plausible set, hit, regret, the parts and the targets.

This is the one file to change for a new scoring rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["plausible_set", "plausible_of", "seed_table", "bootstrap_regret", "VALIDATION", "TEST", "part_of",
           "TARGETS", "TARGETS_TEXT", "meets_targets"]


def plausible_set(runs: pd.DataFrame, share: float, draws: int, seed: int = 0) -> tuple[list[int], dict[int, float]]:
    """The K that are the argmin of the mean loss in at least ``share`` of the bootstrap resamples of seeds.

    ``runs`` has columns seed, K, final_global_train_loss. Seeds are resampled whole, so the comparison
    between two K is paired (the same seed gives the same partition, lazy set and w0 at every K). Only
    seeds measured at every K count. The argmin of the full mean is always included.
    """
    table = runs.pivot_table(index="seed", columns="K", values="final_global_train_loss").dropna()
    return plausible_of(table.to_numpy(), table.columns.to_numpy(), share, draws, np.random.default_rng(seed))


def plausible_of(values: np.ndarray, ks: np.ndarray, share: float, draws: int,
                 rng: np.random.Generator) -> tuple[list[int], dict[int, float]]:
    """:func:`plausible_set` of a seed-by-K array of final losses (columns ``ks``)."""
    best = int(ks[np.argmin(values.mean(axis=0))])
    if len(values) < 2:
        return [best], {best: 1.0}
    picks = rng.integers(0, len(values), size=(draws, len(values)))
    winners = ks[np.argmin(values[picks].mean(axis=1), axis=1)]
    found, counts = np.unique(winners, return_counts=True)
    shares = {int(k): float(c) / draws for k, c in zip(found, counts)}
    return sorted({best, *(k for k, v in shares.items() if v >= share)}), shares


def seed_table(runs: pd.DataFrame) -> pd.DataFrame:
    """A seed-by-K table of the final loss without gaps: the K measured on at least half of the seeds, then the
    seeds measured at all of those K (a campaign cut short has seeds that are measured at only some K)."""
    table = runs.pivot_table(index="seed", columns="K", values="final_global_train_loss")
    table = table.loc[:, table.notna().sum() * 2 >= len(table)]
    return table.dropna(axis=0)


def bootstrap_regret(table: pd.DataFrame, k_pred: int, k_meas: int, rng: np.random.Generator,
                     draws: int) -> tuple[float, float]:
    """Regret of ``k_pred`` against ``k_meas`` on a seed table, and its spread over ``draws`` resamples of the seeds."""
    values = table.to_numpy()
    cols = list(table.columns)
    a, b = values[:, cols.index(k_pred)], values[:, cols.index(k_meas)]
    regret = float(a.mean() / b.mean() - 1)
    picks = rng.integers(0, len(values), size=(draws, len(values)))
    draws = a[picks].mean(axis=1) / b[picks].mean(axis=1) - 1
    return regret, float(np.std(draws))


#: The held-out settings that choose the K* study's form (the arms), and those that only test it.
VALIDATION, TEST = "arms", "off-grid"


def part_of(role: str) -> str:
    """Which part a held-out setting of ``role`` plays: :data:`VALIDATION` or :data:`TEST`."""
    return TEST if role == "off-grid" else VALIDATION


#: The issue's targets: hit rate, median regret and worst regret on held-out settings.
TARGETS = {"hit_rate": 0.9, "median_regret": 0.01, "worst_regret": 0.05}
#: The targets as the reports quote them.
TARGETS_TEXT = (f">= {TARGETS['hit_rate']:.0%}, <= {TARGETS['median_regret']:.0%}, "
                f"<= {TARGETS['worst_regret']:.0%}")


def meets_targets(row: Mapping[str, float]) -> bool:
    """Whether a predictor's scores (hit rate, median and worst regret) meet the issue's :data:`TARGETS`."""
    return bool(row["hit_rate"] >= TARGETS["hit_rate"] and row["median_regret"] <= TARGETS["median_regret"]
                and row["worst_regret"] <= TARGETS["worst_regret"])
