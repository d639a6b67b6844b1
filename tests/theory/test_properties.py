"""Hypothesis property tests of the bound and the K* solvers."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bladefl_theory import ParameterError, Params
from bladefl_theory import bound as B
from bladefl_theory.solvers import feasible_interval, kstar, solve_kstar
from bladefl_theory.timemodel import gamma, k_max

from strategies import params as params_st

variants = st.sampled_from(B.VARIANTS)


@given(params_st(), variants, st.floats(0.0, 1.0))
def test_bound_is_positive_exactly_on_the_feasible_interval(p, variant, u):
    feasible = feasible_interval(p, variant)
    hi = p.t_sum / (p.alpha + p.beta)
    if feasible is None:
        ks = np.linspace(1.0, hi, 257)
        assert not np.any(np.asarray(B.denominator(ks, p, variant)) > 1e-9 * max(1.0, abs(p.t_sum)))
        return
    lo_f, hi_f = feasible
    k = lo_f + u * (hi_f - lo_f)
    if hi_f - lo_f > 1e-6 and lo_f < k < hi_f:
        assert B.bound_value(k, p, variant) > 0
        assert math.isfinite(B.bound_value(k, p, variant))
    # Just outside the interval (inside [1, hi]) there is no finite bound.
    for outside in (lo_f - 1e-3 * max(1, lo_f), hi_f + 1e-3 * max(1, hi_f)):
        if 1.0 <= outside <= hi:
            assert not float(B.denominator(outside, p, variant)) > 0


@given(params_st(), variants)
def test_bound_is_convex_in_k_over_feasible_integers(p, variant):
    km = k_max(p.t_sum, p.alpha, p.beta)
    b = np.asarray(B.bound_value(np.arange(1, km + 1), p, variant), dtype=float)
    finite = np.flatnonzero(np.isfinite(b))
    assume(finite.size >= 3)
    # The feasible set is an interval, so its integers are consecutive.
    assert np.all(np.diff(finite) == 1)
    v = b[finite]
    second = v[:-2] - 2 * v[1:-1] + v[2:]
    assert np.all(second >= -1e-9 * np.max(np.abs(v)))


@given(params_st(), variants, st.data())
def test_bound_is_non_decreasing_in_m_and_sigma2(p, variant, data):
    km = k_max(p.t_sum, p.alpha, p.beta)
    K = data.draw(st.integers(1, km))
    if p.M < p.N - 1:
        assert B.bound_value(K, p.replace(M=p.M + 1), variant) >= B.bound_value(K, p, variant)
    assert B.bound_value(K, p.replace(sigma2=p.sigma2 + 0.05), variant) >= B.bound_value(K, p, variant)


@given(params_st(), variants)
def test_three_solvers_agree(p, variant):
    r = kstar(p, variant)
    assert r.solvers_agree, r.solvers


@given(params_st(), variants)
def test_integer_kstar_is_the_argmin_over_integers(p, variant):
    r = solve_kstar(p, variant, method="integer")
    b = np.asarray(B.bound_value(np.arange(1, r.k_max + 1), p, variant), dtype=float)
    if r.k_star is None:
        assert not np.isfinite(b).any()
    else:
        assert b[r.k_star - 1] == np.min(b)
        assert np.isfinite(b[r.k_star - 1])


@given(params_st(), st.data())
def test_per_round_kstar_is_non_increasing_in_m_and_sigma2(p, data):
    r0 = kstar(p, "per-round", cross_check=False)
    assume(r0.k_star_continuous is not None)
    bigger = p.replace(sigma2=p.sigma2 + data.draw(st.floats(0.01, 1.0)))
    if p.M < p.N - 1:
        bigger = bigger.replace(M=data.draw(st.integers(p.M + 1, p.N - 1)))
    r1 = kstar(bigger, "per-round", cross_check=False)
    if r1.k_star_continuous is not None:
        assert r1.k_star_continuous <= r0.k_star_continuous + 1e-9
    if r0.k_star is not None and r1.k_star is not None:
        assert r1.k_star <= r0.k_star


@given(params_st(), st.data())
def test_printed_kstar_ignores_m_and_sigma2(p, data):
    r0 = kstar(p, "printed", cross_check=False)
    other = p.replace(sigma2=data.draw(st.floats(0, 1)), M=data.draw(st.integers(0, p.N - 1)))
    r1 = kstar(other, "printed", cross_check=False)
    if r0.k_star_continuous is not None and r1.k_star_continuous is not None:
        assert r1.k_star_continuous == pytest.approx(r0.k_star_continuous, rel=1e-9)


@given(st.integers(-5, 1), st.floats(-1.0, -1e-6))
def test_invalid_parameters_are_rejected_with_the_right_message(n, sigma2):
    with pytest.raises(ParameterError, match="N must be an integer >= 2"):
        Params(N=n)
    with pytest.raises(ParameterError, match="sigma2 must be >= 0"):
        Params(sigma2=sigma2)


@given(params_st(), variants)
def test_self_consistent_bound_is_a_fixed_point_and_epsilon_threshold_splits_finiteness(p, variant):
    km = k_max(p.t_sum, p.alpha, p.beta)
    for K in range(1, min(km, 12) + 1):
        if not math.isfinite(float(B.denominator(K, p, variant))):
            continue  # lambda^tau overflows float64: no number to check
        b = B.bound_self_consistent(K, p, variant)
        # tau >= 1 at every integer K up to K_max, so C >= 0 and the fixed point exists.
        assert 0 < b < math.inf
        # D(epsilon = b) = 1/b, up to the rounding of D = A − C/b² (A = D at epsilon -> inf; C/b² may be ~A).
        A = float(gamma(K, p.t_sum, p.alpha, p.beta)) * p.eta * p.phi
        assert float(B.denominator(K, p.replace(epsilon=b), variant)) == pytest.approx(1 / b, rel=1e-6, abs=1e-12 * A)
        t = B.epsilon_threshold(K, p, variant)
        assert 0 <= t < math.inf
        assert math.isfinite(B.bound_value(K, p.replace(epsilon=1.001 * t + 1e-12), variant))
        if t > 0:
            assert math.isinf(B.bound_value(K, p.replace(epsilon=0.999 * t), variant))
