"""The sequential paired verification of K* (studies.kstar.sequential) on a synthetic loss oracle with known noise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bladefl_platform.errors import InputError
from bladefl_validate.studies.kstar import sequential
from bladefl_validate.studies.kstar.sequential import VerifyDesign, verify

#: Replicates per drawn curve, and the p-value below which the failures are too many for the stated confidence.
REPLICATES = 60
TOO_UNLIKELY = 1e-4


class Oracle:
    """Final losses mu_K x (1 + a seed's effect, shared by every K) + independent noise; every run costs ``cost``."""

    def __init__(self, mu: np.ndarray, noise: float, seed_sd: float, cost: float, rng: np.random.Generator):
        self.mu, self.noise, self.seed_sd, self.cost, self.rng = mu, noise, seed_sd, cost, rng
        self.seed_effect: dict[int, float] = {}
        self.calls: list[list[tuple[int, int]]] = []

    def __call__(self, runs):
        self.calls.append(list(runs))
        out = []
        for k, s in runs:
            effect = self.seed_effect.setdefault(s, float(self.rng.normal(0.0, self.seed_sd)))
            m = self.mu[k - 1]
            out.append((m * (1 + effect) + float(self.rng.normal(0.0, self.noise * m)), self.cost))
        return out


@st.composite
def problems(draw):
    """A loss curve over K = 1..K_max (a minimum, flat or sharp, and bumps), its noise, a band, and a design."""
    k_max = draw(st.integers(3, 12))
    k0 = draw(st.floats(1.0, float(k_max)))
    curvature = draw(st.floats(0.0, 0.3))
    bumps = np.array(draw(st.lists(st.floats(0.0, 0.02), min_size=k_max, max_size=k_max)))
    mu = 1.0 + curvature * (np.log(np.arange(1, k_max + 1)) - np.log(k0)) ** 2 + bumps
    centre = draw(st.integers(1, k_max))
    width = draw(st.integers(0, 1))
    band = list(range(max(1, centre - width), min(k_max, centre + width) + 1))
    noise = draw(st.floats(0.002, 0.05))
    seed_sd = draw(st.floats(0.0, 0.1))
    design = VerifyDesign(tolerance=draw(st.sampled_from([0.0, 0.005, 0.01, 0.03])),
                          confidence=draw(st.sampled_from([0.8, 0.9, 0.95])),
                          max_cpu_hours=draw(st.floats(0.002, 0.2)), max_seeds=draw(st.sampled_from([32, 128])))
    cost = draw(st.floats(0.5, 5.0))
    return mu, noise, seed_sd, band, design, cost, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=15)
@given(problems())
def test_stops_within_tolerance_of_the_true_best_at_the_stated_confidence_and_within_budget(problem):
    mu, noise, seed_sd, band, design, cost, seed = problem
    rng = np.random.default_rng(seed)
    confirmed = wrong = 0
    for _ in range(REPLICATES):
        oracle = Oracle(mu, noise, seed_sd, cost, rng)
        v = verify(oracle, band, len(mu), design)
        # Never a batch the budget cannot pay for: only the first run (which tells the cost) is unchecked.
        assert v.cpu_seconds <= max(design.budget, cost) + 1e-9
        assert v.cpu_seconds == pytest.approx(cost * sum(map(len, oracle.calls)))
        assert len(v.looks) <= design.max_looks and v.seeds <= design.max_seeds
        if v.confirmed:
            confirmed += 1
            # Right: within the tolerance of the true best of the K it measured (and the edge rule moved it on).
            measured = [r["K"] for r in v.table]
            wrong += mu[v.k_star - 1] > (1 + design.tolerance) * min(mu[k - 1] for k in measured) + 1e-12
            assert v.confidence >= design.confidence
    if confirmed:
        # More wrong verdicts than a rate of 1 - confidence explains, beyond chance, fails.
        assert stats.binom.sf(wrong - 1, confirmed, 1 - design.confidence) > TOO_UNLIKELY, (wrong, confirmed)


def test_the_binomial_check_has_power_against_a_test_without_the_split(monkeypatch):
    """The replicate check above fails a rule that ignores the repeated looks and comparisons (one level per
    comparison of 0.5): with a best K 2% ahead of three others it names a wrong one far more often than 10%."""
    monkeypatch.setattr(VerifyDesign, "pair_alpha", lambda self, ks, confidence=None: 0.5)
    mu = np.array([1.0, 1.02, 1.02, 1.02])
    design = VerifyDesign(tolerance=0.005, confidence=0.9, max_cpu_hours=10, max_seeds=64)
    rng = np.random.default_rng(1)
    verdicts = [verify(Oracle(mu, 0.05, 0.0, 1.0, rng), [1, 2, 3, 4], 4, design) for _ in range(REPLICATES)]
    confirmed = [v for v in verdicts if v.confirmed]
    wrong = sum(mu[v.k_star - 1] > 1.005 for v in confirmed)
    assert stats.binom.sf(wrong - 1, len(confirmed), 0.1) <= TOO_UNLIKELY


def test_separates_a_clear_best_and_names_the_indistinguishable():
    mu = np.array([1.2, 1.0, 1.001, 1.3])
    rng = np.random.default_rng(0)
    v = verify(Oracle(mu, 0.01, 0.05, 1.0, rng), [2, 3], 4, VerifyDesign(tolerance=0.01, max_cpu_hours=1))
    assert v.confirmed and v.k_star in (2, 3) and v.reason == "within tolerance"
    assert set(v.indistinguishable) == {2, 3} - {v.k_star}
    assert 1 in v.eliminated and set(v.eliminated) <= {1, 4}  # the edge beyond K*'s side was measured and beaten
    strict = verify(Oracle(mu, 0.01, 0.05, 1.0, rng), [1, 2], 4, VerifyDesign(tolerance=0.0, max_cpu_hours=1))
    assert strict.reason in ("separated", "looks", "seeds")


def test_moves_on_when_the_best_sits_at_an_edge():
    mu = np.array([1.5, 1.4, 1.3, 1.2, 1.1, 1.0, 1.05])
    v = verify(Oracle(mu, 0.001, 0.0, 1.0, np.random.default_rng(0)), [2, 3], 7, VerifyDesign(max_moves=3))
    assert [r["K"] for r in v.table] == [2, 3, 4, 5, 6] and v.k_star == 6 and v.at_edge
    v = verify(Oracle(mu, 0.001, 0.0, 1.0, np.random.default_rng(0)), [4, 5], 7, VerifyDesign(max_moves=3))
    assert v.k_star == 6 and v.reason == "separated" and not v.at_edge


def test_budget_stops_before_a_batch_it_cannot_pay_for():
    mu = np.array([1.0, 1.0, 1.0])
    oracle = Oracle(mu, 0.05, 0.0, 10.0, np.random.default_rng(0))
    v = verify(oracle, [1, 2, 3], 3, VerifyDesign(max_cpu_hours=95 / 3600))
    assert v.reason == "budget" and v.cpu_seconds <= 95 and v.confidence < 0.9
    assert v.runs == 9 and v.seeds == 3  # the probe, then 3 seeds at 3 K (8 runs more would cost 80 of 85 left)


def test_the_same_measurements_give_the_same_verdict():
    mu = np.array([1.1, 1.0, 1.02])
    first = Oracle(mu, 0.02, 0.05, 1.0, np.random.default_rng(3))
    v1 = verify(first, [1, 2, 3], 3, VerifyDesign())
    stored = dict(v1.losses)
    again = verify(lambda runs: [(stored[r], 1.0) for r in runs], [1, 2, 3], 3, VerifyDesign())
    assert (again.k_star, again.reason, again.seeds, again.table) == (v1.k_star, v1.reason, v1.seeds, v1.table)


@pytest.mark.parametrize("field, value, fragment", [
    ("tolerance", -0.01, "tolerance must be >= 0 and < 1"), ("tolerance", float("nan"), "tolerance must be finite"),
    ("confidence", 1.0, "confidence must be > 0 and < 1"), ("max_cpu_hours", 0.0, "max_cpu_hours must be > 0"),
    ("max_cpu_hours", float("inf"), "max_cpu_hours must be finite"),
])
def test_bad_design_is_one_input_error(field, value, fragment):
    with pytest.raises(InputError, match=fragment):
        VerifyDesign(**{field: value})


def test_the_offset_of_the_prediction_is_paired():
    mu = np.array([1.1, 1.0, 1.02])
    v = verify(Oracle(mu, 0.0, 0.0, 1.0, np.random.default_rng(0)), [1, 2, 3], 3, VerifyDesign())
    off = sequential.prediction_offset(v, 1)
    assert v.k_star == 2 and off["blocks"] == -1 and off["relative_loss"] == pytest.approx(0.1)


def test_no_confidence_in_a_k_star_that_a_k_measured_on_fewer_seeds_beats():
    """Columns K*, j (measured on the first four seeds only, where it beats K*), k (beats j, and K* is within the
    tolerance of it over all seeds): the table does not support K* at any confidence."""
    nan = float("nan")
    best = [1.2] * 4 + [0.5] * 6
    j = [1.0] * 4 + [nan] * 6
    k = [0.9] * 4 + [0.85] * 6
    values = np.array([best, j, k]).T
    assert sequential.confidence_reached(values, 0, VerifyDesign(tolerance=0.5), 3) == 0.0
