"""Extreme but valid parameters: no exception, and the numbers of 700-digit arithmetic.

The reference evaluates the sympy expression of D(K) itself (``denominator_expr``) with mpmath.
"""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bladefl_theory import Params
from bladefl_theory import bound as B
from bladefl_theory.convexity import certify
from bladefl_theory.solvers import explain_infeasible, feasible_interval, kstar
from bladefl_theory.timemodel import k_max, k_max_continuous

DPS = 700
_REF = {}


def reference_d(K, p, variant, dps=DPS):
    if variant not in _REF:
        args = [B.SYMBOLS[n] for n in B.ARG_NAMES]
        _REF[variant] = sp.lambdify(args, B.denominator_expr(variant), modules="mpmath")
    with mpmath.workdps(dps):
        return _REF[variant](mpmath.mpf(K), *[mpmath.mpf(getattr(p, n)) for n in Params.names()])


def reference_bound(K, p, variant, dps=DPS):
    d = reference_d(K, p, variant, dps)
    if not d > 0:
        return math.inf
    b = 1 / d
    return float(b) if b < mpmath.mpf(1e308) else math.inf


def reference_argmax(p, variant):
    """argmax of D over [1, t_sum/(alpha+beta)] by golden-section search (D is concave)."""
    with mpmath.workdps(DPS):
        lo, hi = mpmath.mpf(1), mpmath.mpf(p.t_sum) / (mpmath.mpf(p.alpha) + mpmath.mpf(p.beta))
        g = (mpmath.sqrt(5) - 1) / 2
        for _ in range(120):
            a, b = hi - g * (hi - lo), lo + g * (hi - lo)
            if reference_d(a, p, variant) < reference_d(b, p, variant):
                lo = a
            else:
                hi = b
        return float((lo + hi) / 2)


EXTREME = [
    dict(alpha=0.001),
    dict(alpha=1e-6, M=4, sigma2=0.1),
    dict(epsilon=1e-300),
    dict(epsilon=1e-150, M=3),
    dict(epsilon=1e300),
    dict(epsilon=1e150, M=3),
    dict(beta=1e300, t_sum=1.5e300),
    dict(eta=1e-300),
    dict(eta=1e-12, M=2),
    dict(L=1e-300),
    dict(N=2**53, M=2**53 - 2),
    dict(phi=1e300),
    dict(phi=1e-300),
    dict(delta=1e300, M=5),
    dict(xi=1e-300),
    dict(theta=1e300, M=1),
    dict(sigma2=1e300, M=1),
    dict(t_sum=1e300, alpha=1e299, beta=1e299),
]


@pytest.mark.parametrize("variant", B.VARIANTS)
@pytest.mark.parametrize("change", EXTREME, ids=lambda c: ",".join(f"{k}={v:g}" for k, v in c.items()))
def test_extreme_parameters_match_high_precision(change, variant):
    p = Params(**change)
    km = k_max(p.t_sum, p.alpha, p.beta)
    ks = np.arange(1, min(km, 40) + 1)
    got = np.asarray(B.bound_value(ks, p, variant), dtype=float)
    want = np.array([reference_bound(int(k), p, variant) for k in ks])
    assert np.array_equal(np.isfinite(got), np.isfinite(want)), (got, want)
    finite = np.isfinite(want)
    assert np.allclose(got[finite], want[finite], rtol=1e-9, atol=0)

    r = kstar(p, variant)
    if np.isfinite(want).any():
        assert r.success and want[r.k_star - 1] == pytest.approx(want.min(), rel=1e-12)
        assert certify(p, variant, grid_points=101).feasible is not None
    else:
        assert r.status == 2 and "epsilon" in r.message
    feasible = feasible_interval(p, variant)
    if feasible is not None:
        assert r.k_star_continuous == pytest.approx(reference_argmax(p, variant), rel=1e-6, abs=1e-6)
    explain_infeasible(p, variant)  # a message in every case, never an exception


@pytest.mark.parametrize("variant", B.VARIANTS)
@pytest.mark.parametrize("change", EXTREME, ids=lambda c: ",".join(f"{k}={v:g}" for k, v in c.items()))
def test_extreme_parameters_give_finite_or_flagged_numbers(change, variant):
    p = Params(**change)
    km = min(k_max(p.t_sum, p.alpha, p.beta), 40)
    ks = np.arange(1, km + 1)
    for f in (B.bound_value, B.bound_self_consistent, B.epsilon_threshold, B.denominator):
        out = np.asarray(f(ks, p, variant), dtype=float)
        assert not np.isnan(out).any(), f.__name__
    for value in B.terms(1.0, p, variant).values():
        assert not math.isnan(value)
    feasible = feasible_interval(p, variant)
    if feasible is not None:  # within [1, t_sum/(alpha+beta)], and D > 0 inside it (D is concave)
        lo, hi = feasible
        assert 1.0 <= lo <= hi <= k_max_continuous(p.t_sum, p.alpha, p.beta)
        if hi - lo > 1e-9 * hi:  # 20 of the 26 intervals; the rest are slivers within the root finder's tolerance
            assert float(B.denominator((lo + hi) / 2, p, variant)) > 0


def test_eta_tiny_convexity_agrees_with_kstar():
    p = Params(eta=1e-300)
    r = kstar(p)
    c = certify(p)
    assert r.success and r.k_star == 1
    assert c.feasible is not None and c.holds
    assert r.k_star_continuous == pytest.approx(1.0)


_CANON = {}


def reference_canonical(p, variant):
    if variant not in _CANON:
        args = [B.SYMBOLS[n] for n in Params.names()]
        _CANON[variant] = sp.lambdify(args, B.canonical_exprs(variant), modules="mpmath")
    with mpmath.workdps(DPS):
        return _CANON[variant](*[mpmath.mpf(getattr(p, n)) for n in Params.names()])


@pytest.mark.parametrize("variant", B.VARIANTS)
@pytest.mark.parametrize(
    "change",
    # Not M = 0 with a tiny epsilon: p1 = (1 − 0.01·10·10)/epsilon² − ... then hangs on the last bits of the inputs.
    [{}, dict(M=6, sigma2=0.3), dict(alpha=0.001), dict(eta=1e-300), dict(epsilon=1e-100, L=20.0, M=3),
     dict(epsilon=1e200)],
    ids=str,
)
def test_canonical_coefficients_are_the_sympy_ones(change, variant):
    p = Params(**change)
    c = B.canonical(p, variant)
    p0, p1, q, a = reference_canonical(p, variant)
    with mpmath.workdps(DPS):
        for got, want in ((c.p0, p0), (c.p1, p1), (c.a, a), (c.log_q, mpmath.log(q)), (c.gap, 1 - p1 / q)):
            if abs(want) > mpmath.mpf("1e308"):
                assert math.isinf(got) and (got > 0) == (want > 0)
            else:
                assert got == pytest.approx(float(want), rel=1e-10, abs=1e-300)
        if p1 < 0 and abs(p1 / q) > 1e-6:  # near 0, p1/q hangs on the last bits of the inputs (0.01·10·10 vs 1)
            assert c.log_neg_ratio == pytest.approx(float(mpmath.log(-p1 / q)), rel=1e-12)


@st.composite
def wide_params(draw):
    """Valid parameters whose magnitudes span many orders (log-uniform), beyond the realistic ranges."""
    def log_uniform(lo, hi):
        return 10.0 ** draw(st.floats(lo, hi))

    N = draw(st.integers(2, 10**6))
    alpha, beta = log_uniform(-6, 3), log_uniform(-6, 3)
    return Params(
        N=N, M=draw(st.integers(0, N - 1)), sigma2=log_uniform(-10, 3), alpha=alpha, beta=beta,
        t_sum=(alpha + beta) * draw(st.floats(1.001, 60.0)), eta=log_uniform(-12, -0.5), L=log_uniform(-3, 0.49),
        xi=log_uniform(-5, 5), delta=log_uniform(-5, 5), epsilon=log_uniform(-8, 8), phi=log_uniform(-10, 5),
        theta=log_uniform(-10, 3),
    )


@settings(max_examples=40)
@given(wide_params(), st.sampled_from(B.VARIANTS))
def test_bound_matches_high_precision_over_wide_parameters(p, variant):
    assume(p.eta * p.L < 1)
    km = min(k_max(p.t_sum, p.alpha, p.beta), 12)
    got = np.asarray(B.bound_value(np.arange(1, km + 1), p, variant), dtype=float)
    for k, g in zip(range(1, km + 1), got):
        d = reference_d(k, p, variant, dps=80)
        terms = B.terms(float(k), p, variant)
        with mpmath.workdps(80):
            # Rounding the inputs moves D by about 1e-15 of its largest term: no claim within that.
            if abs(d) < 1e-12 * (abs(mpmath.mpf(terms["progress"])) + abs(mpmath.mpf(terms["divergence"]))):
                continue
        want = reference_bound(k, p, variant, dps=80)
        assert math.isfinite(g) == math.isfinite(want), (k, g, want)
        if math.isfinite(want):
            assert g == pytest.approx(want, rel=1e-9)
