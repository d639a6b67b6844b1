"""The K* study's scoring rule: the measured K* and its plausible set, hit, regret, the parts and the targets.

This is the one file to change for a new scoring rule.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

__all__ = ["PLAUSIBLE_SHARE", "BOOTSTRAP_DRAWS", "loss_table", "measured_kstar", "table_kstar", "kstar_shares",
           "plausible_set", "plausible_of", "seed_table", "hit", "regret", "aggregate", "bootstrap_regret",
           "split_half", "VALIDATION", "TEST", "part_of", "TARGETS", "TARGETS_TEXT", "meets_targets"]


#: A K is plausible when it is the measured K* in at least this share of the bootstrap resamples of the seeds.
PLAUSIBLE_SHARE = 0.1
#: Bootstrap resamples of the seeds, for plausible sets and regret spreads.
BOOTSTRAP_DRAWS = 1000


def loss_table(runs: pd.DataFrame) -> pd.DataFrame:
    """A seed-by-K table of the final global training loss of ``runs`` (columns seed, K, final_global_train_loss)."""
    return runs.pivot_table(index="seed", columns="K", values="final_global_train_loss")


def measured_kstar(values: np.ndarray, ks: np.ndarray) -> int:
    """The measured K*: the K of ``ks`` with the lowest mean final loss over the seeds (rows of ``values``)."""
    return int(_argmin_of_mean(values, ks))


def table_kstar(table: pd.DataFrame) -> int:
    """:func:`measured_kstar` of a seed-by-K table (:func:`loss_table`, :func:`seed_table`)."""
    return measured_kstar(table.to_numpy(), table.columns.to_numpy())


def _argmin_of_mean(values: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """The measured K* of one seed-by-K array, or of each in a stack of them."""
    return ks[np.argmin(values.mean(axis=-2), axis=-1)]


def kstar_shares(values: np.ndarray, ks: np.ndarray, draws: int, rng: np.random.Generator) -> dict[int, float]:
    """How often each K is the measured K* when the seeds (rows of ``values``) are resampled with replacement."""
    picks = rng.integers(0, len(values), size=(draws, len(values)))
    found, counts = np.unique(_argmin_of_mean(values[picks], ks), return_counts=True)
    return {int(k): float(c) / draws for k, c in zip(found, counts)}


def plausible_set(runs: pd.DataFrame, share: float = PLAUSIBLE_SHARE, draws: int = BOOTSTRAP_DRAWS,
                  seed: int = 0) -> tuple[list[int], dict[int, float]]:
    """The K that are the measured K* in at least ``share`` of the bootstrap resamples of seeds, and every K's share.

    ``runs`` has columns seed, K, final_global_train_loss. Seeds are resampled whole, so the comparison
    between two K is paired (the same seed gives the same partition, lazy set and w0 at every K). Only
    seeds measured at every K count. The measured K* of all the seeds is always included.
    """
    table = loss_table(runs).dropna()
    return plausible_of(table.to_numpy(), table.columns.to_numpy(), share, draws, np.random.default_rng(seed))


def plausible_of(values: np.ndarray, ks: np.ndarray, share: float, draws: int,
                 rng: np.random.Generator) -> tuple[list[int], dict[int, float]]:
    """:func:`plausible_set` of a seed-by-K array of final losses (columns ``ks``)."""
    best = measured_kstar(values, ks)
    if len(values) < 2:
        return [best], {best: 1.0}
    shares = kstar_shares(values, ks, draws, rng)
    return sorted({best, *(k for k, v in shares.items() if v >= share)}), shares


def seed_table(runs: pd.DataFrame) -> pd.DataFrame:
    """A seed-by-K table of the final loss without gaps: the K measured on at least half of the seeds, then the
    seeds measured at all of those K (a campaign cut short has seeds that are measured at only some K)."""
    table = loss_table(runs)
    table = table.loc[:, table.notna().sum() * 2 >= len(table)]
    return table.dropna(axis=0)


def hit(k: int | None, plausible: Collection[int]) -> bool:
    """A hit: the K* given is in the measured plausible set."""
    return k is not None and k in plausible


def regret(loss_at_k: float, loss_at_kstar: float) -> float:
    """The regret of a K: its mean final loss over the mean final loss at the measured K*, minus 1."""
    return float(loss_at_k / loss_at_kstar - 1)


def aggregate(hits: pd.Series, regrets: pd.Series) -> dict[str, float]:
    """The rule's one aggregation over settings: hit rate, median and worst regret (NaN where there is none; a
    setting without a regret counts for the hit rate alone)."""
    r = regrets.dropna()
    return {"hit_rate": float(hits.mean()) if len(hits) else math.nan,
            "median_regret": float(r.median()) if len(r) else math.nan,
            "worst_regret": float(r.max()) if len(r) else math.nan}


def bootstrap_regret(table: pd.DataFrame, k_pred: int, k_meas: int, rng: np.random.Generator,
                     draws: int = BOOTSTRAP_DRAWS) -> tuple[float, float]:
    """Regret of ``k_pred`` against ``k_meas`` on a seed table, and its spread over ``draws`` resamples of the seeds."""
    values = table.to_numpy()
    cols = list(table.columns)
    a, b = values[:, cols.index(k_pred)], values[:, cols.index(k_meas)]
    picks = rng.integers(0, len(values), size=(draws, len(values)))
    spread = a[picks].mean(axis=1) / b[picks].mean(axis=1) - 1
    return regret(a.mean(), b.mean()), float(np.std(spread))


def split_half(values: np.ndarray, ks: np.ndarray, k_pred: int, splits: int, rng: np.random.Generator,
               share: float = PLAUSIBLE_SHARE, draws: int = BOOTSTRAP_DRAWS) -> dict[str, float]:
    """Cross-fitted scores: ``k_pred`` and a fresh measurement, each scored on half of the seeds that did not choose
    it, over ``splits`` random halves A and B of the seeds (rows of ``values``).

    The truth is A's plausible set and mean loss; the fresh measurement's K* is B's measured K* (an independent
    replicate with as many seeds as A). Returns the mean hit and regret of both over the splits (``form_hit``,
    ``replicate_hit``, ``form_regret``, ``replicate_regret``).
    """
    half = len(values) // 2
    hits: dict[str, list[bool]] = {"form": [], "replicate": []}
    regrets: dict[str, list[float]] = {"form": [], "replicate": []}
    for _ in range(splits):
        order = rng.permutation(len(values))
        A, B = values[order[:half]], values[order[half:2 * half]]
        plausible, _ = plausible_of(A, ks, share, draws, rng)
        mean_a = A.mean(axis=0)
        for who, k in (("form", k_pred), ("replicate", measured_kstar(B, ks))):
            hits[who].append(hit(k, plausible))
            regrets[who].append(regret(mean_a[list(ks).index(k)], mean_a.min()))
    return {**{f"{who}_hit": float(np.mean(hits[who])) for who in hits},
            **{f"{who}_regret": float(np.mean(regrets[who])) for who in regrets}}


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
