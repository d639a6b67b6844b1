"""The K* study's scoring rule: the measured K*, its plausible set, hit, regret, the one aggregation, split halves."""

import math

import numpy as np
import pandas as pd

from bladefl_validate.config import RunConfig
from bladefl_validate.studies import reproduce, sweep_k
from bladefl_validate.studies.kstar.design import DESIGN
from bladefl_validate.studies.kstar.scoring import (
    BOOTSTRAP_DRAWS,
    PLAUSIBLE_SHARE,
    aggregate,
    bootstrap_regret,
    hit,
    kstar_shares,
    loss_table,
    measured_kstar,
    plausible_set,
    regret,
    split_half,
    table_kstar,
)


def runs_of(values: np.ndarray) -> pd.DataFrame:
    """A seed-by-K array of final losses (K = 1, 2, ...) as runs."""
    return pd.DataFrame([{"seed": s, "K": k + 1, "final_global_train_loss": float(values[s, k])}
                         for s in range(values.shape[0]) for k in range(values.shape[1])])


def test_the_measured_kstar_is_the_argmin_of_the_seed_mean():
    values = np.array([[3.0, 1.0, 2.0], [3.0, 5.0, 2.0]])  # per seed the best K differs; on the mean K = 3 wins
    assert measured_kstar(values, np.array([1, 2, 3])) == 3
    assert table_kstar(loss_table(runs_of(values))) == 3
    # The sweep's empirical K* is the same definition.
    configs = [RunConfig(K=k, seed=s) for s in range(2) for k in (1, 2, 3)]
    results = [{"final_global_train_loss": values[c.seed, c.K - 1], "final_test_loss": 0.0,
                "final_test_accuracy": 0.0, "wall_seconds": 0.0} for c in configs]
    runs, per_k = sweep_k.summarize(configs, results)
    assert sweep_k.SweepResult(RunConfig(), [0, 1], runs, per_k).k_star == 3


def test_plausible_set_is_paired_over_seeds():
    # Seed effects dwarf the K effect, but K = 2 is better than K = 1 and 3 for every seed: paired, it is certain.
    rows = [{"seed": s, "K": k, "final_global_train_loss": 10 * s + {1: 1.0, 2: 0.9, 3: 1.05}[k]}
            for s in range(5) for k in (1, 2, 3)]
    ks, shares = plausible_set(pd.DataFrame(rows), 0.1, 200)
    assert ks == [2] and shares == {2: 1.0}
    # Two K tied on average with opposite signs per seed: both plausible.
    rows = [{"seed": s, "K": k, "final_global_train_loss": (1.0 if (s + k) % 2 else 0.5)} for s in range(6)
            for k in (1, 2)]
    assert plausible_set(pd.DataFrame(rows), 0.1, 500)[0] == [1, 2]
    # One seed: the measured K* alone.
    assert plausible_set(pd.DataFrame(rows[:2])) == ([2], {2: 1.0})


def test_the_plausible_set_is_defined_once():
    """The sweep's bootstrap, the reproduction's plausible K and the K* study's design share one rule."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(6, 5)) + np.array([3.0, 2.0, 1.0, 1.05, 2.0])
    runs = runs_of(values)
    ks, shares = plausible_set(runs)
    assert sweep_k.bootstrap_k_star(runs) == shares
    assert kstar_shares(values, np.arange(1, 6), BOOTSTRAP_DRAWS, np.random.default_rng(0)) == shares
    assert ks == sorted({measured_kstar(values, np.arange(1, 6)), *(k for k, v in shares.items() if v >= 0.1)})
    assert reproduce.PLAUSIBLE_SHARE == DESIGN.plausible_share == PLAUSIBLE_SHARE
    assert DESIGN.bootstrap_draws == BOOTSTRAP_DRAWS


def test_hit_regret_and_their_one_aggregation():
    assert hit(2, (2, 3)) and not hit(1, (2, 3)) and not hit(None, (2, 3))
    assert regret(1.1, 1.0 + 0.0) == regret(2.2, 2.0)
    # A setting without a regret (a K never measured) counts for the hit rate alone.
    figures = aggregate(pd.Series([True, False, True, True]), pd.Series([0.0, 0.5, math.nan, 0.1]))
    assert figures["hit_rate"] == 0.75 and figures["median_regret"] == 0.1 and figures["worst_regret"] == 0.5
    empty = aggregate(pd.Series([], dtype=bool), pd.Series([], dtype=float))
    assert all(math.isnan(v) for v in empty.values())


def test_bootstrap_regret_is_zero_at_the_measured_kstar():
    table = loss_table(runs_of(np.array([[2.0, 1.0], [2.2, 1.2], [1.8, 0.9]])))
    assert bootstrap_regret(table, 2, 2, np.random.default_rng(0)) == (0.0, 0.0)
    r, spread = bootstrap_regret(table, 1, 2, np.random.default_rng(0))
    assert r == regret(2.0, 31 / 30) and spread > 0


def test_split_halves_score_a_k_on_seeds_that_did_not_choose_it():
    # K = 2 is best for every seed: a fresh measurement finds it and a K* of 2 scores perfectly; K = 1 misses.
    values = np.array([[1.0, 0.5, 0.8]] * 4) + np.arange(4)[:, None]
    ks = np.array([1, 2, 3])
    best = split_half(values, ks, 2, 5, np.random.default_rng(0))
    assert best == {"form_hit": 1.0, "replicate_hit": 1.0, "form_regret": 0.0, "replicate_regret": 0.0}
    worse = split_half(values, ks, 1, 5, np.random.default_rng(0))
    assert worse["form_hit"] == 0.0 and worse["form_regret"] > 0 and worse["replicate_regret"] == 0.0
