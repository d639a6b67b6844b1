"""Symbolic facts about Lemma 1 and Theorem 1, checked with sympy."""

import math

import numpy as np
import pytest
import sympy as sp

from bladefl_theory import Params
from bladefl_theory import bound as B
from bladefl_theory.convexity import second_derivative
from bladefl_theory.solvers import closed_form_maximizer

S = B.SYMBOLS


@pytest.mark.parametrize("variant", B.VARIANTS)
def test_theorem1_without_lazy_clients_is_lemma1(variant):
    diff = B.theorem1(variant, expand_definitions=False).subs(S["M"], 0) - B.lemma1(expand_definitions=False)
    assert sp.simplify(diff) == 0


@pytest.mark.parametrize("variant", B.VARIANTS)
def test_bound_is_one_over_denominator(variant):
    product = B.theorem1(variant, expand_definitions=False) * B.denominator_expr(variant, expand_definitions=False)
    assert sp.simplify(product) == 1


def test_printed_slope_does_not_depend_on_lazy_parameters():
    slope = sp.diff(B.denominator_expr("printed"), S["K"])
    assert not slope.free_symbols & {S["M"], S["sigma2"], S["theta"]}


def test_per_round_slope_does_depend_on_lazy_parameters():
    slope = sp.diff(B.denominator_expr("per-round"), S["K"])
    assert {S["M"], S["sigma2"], S["theta"]} <= slope.free_symbols


def test_variants_differ_only_by_the_lazy_term_times_k_minus_one():
    d = B.denominator_expr("printed") - B.denominator_expr("per-round")
    expected = (S["K"] - 1) * B.lazy_constant_expr() / S["epsilon"] ** 2
    assert sp.simplify(d - expected) == 0


@pytest.mark.parametrize("variant", B.VARIANTS)
def test_terms_add_up_to_the_denominator(variant):
    t = B.terms_expr(variant)
    assert sp.simplify(t["progress"] - t["divergence"] - t["lazy"] - B.denominator_expr(variant)) == 0


@pytest.mark.parametrize("variant", B.VARIANTS)
def test_second_derivative_is_proved_negative(variant):
    expr, proved = second_derivative(variant)
    assert proved
    assert expr.is_negative


@pytest.mark.parametrize("variant", B.VARIANTS)
@pytest.mark.parametrize("M, sigma2", [(0, 0.0), (4, 0.1), (13, 0.7)])
def test_canonical_form_matches_the_expression(variant, M, sigma2):
    p = Params(M=M, sigma2=sigma2, t_sum=137.0, alpha=1.3, beta=7.0, L=20.0)
    c = B.canonical(p, variant)
    for k in (1.0, 2.5, 4.0, 7.7):
        assert c.value(k) == pytest.approx(float(B.denominator(k, p, variant)), rel=1e-12, abs=1e-12)


def test_sympy_derives_the_lambert_w_closed_form():
    # D = p0 + p1*K - q*K*exp(a/K); with x = a/K the stationarity condition is solved by W.
    K, a, q, x = sp.symbols("K a q x", positive=True)
    p0, p1 = sp.symbols("p0 p1", real=True)
    D = p0 + p1 * K - q * K * sp.exp(a / K)
    stationary = sp.simplify(sp.diff(D, K).subs(K, a / x))
    (solution,) = sp.solve(stationary, x)
    assert solution.has(sp.LambertW)
    for params in (Params(), Params(M=6, sigma2=0.3), Params(L=50.0, phi=3.0)):
        c = B.canonical(params, "per-round")
        x_star = complex(solution.subs({a: c.a, q: c.q, p1: c.p1}).evalf()).real
        assert closed_form_maximizer(c, 1.0, 1e9) == pytest.approx(c.a / x_star, rel=1e-10)


def test_per_round_kstar_falls_with_the_lazy_term():
    # K* = a/(1 + W(-p1/(q e))); p1 falls with the lazy constant c, so dK*/dp1 > 0 means dK*/dc < 0.
    a, q = sp.symbols("a q", positive=True)
    p1 = sp.Symbol("p1", real=True)
    k_star = a / (1 + sp.LambertW(-p1 / (q * sp.E)))
    dk = sp.diff(k_star, p1)
    rng = np.random.default_rng(0)
    for _ in range(50):
        av, qv = rng.uniform(0.1, 50), rng.uniform(0.01, 10)
        pv = qv * rng.uniform(-20, 0.999)
        assert float(dk.subs({a: av, q: qv, p1: pv})) > 0
    # and p1 falls as M or sigma2 grows, in per-round only.
    p1_by_m = [B.canonical(Params(M=m, sigma2=0.1), "per-round").p1 for m in range(0, 19)]
    assert all(b < a for a, b in zip(p1_by_m, p1_by_m[1:]))
    p1_by_s = [B.canonical(Params(M=4, sigma2=s), "per-round").p1 for s in (0.0, 0.1, 0.2, 0.3)]
    assert all(b < a for a, b in zip(p1_by_s, p1_by_s[1:]))
    assert len({B.canonical(Params(M=m, sigma2=0.3), "printed").p1 for m in range(0, 19)}) == 1


def test_numeric_bound_broadcasts_over_parameter_arrays():
    p = Params().as_dict()
    grid = {**p, "M": np.arange(0, 20)[:, None], "sigma2": np.array([0.01, 0.1, 0.3])[None, :]}
    values = B.bound_value(7, grid, "per-round")
    assert values.shape == (20, 3)
    scalar = B.bound_value(7, Params(M=5, sigma2=0.1), "per-round")
    assert values[5, 1] == pytest.approx(scalar)


def test_bound_is_infinite_where_the_denominator_is_not_positive():
    p = Params()
    assert math.isinf(B.bound_value(1, p))
    assert B.bound_value(7, p) == pytest.approx(1 / float(B.denominator(7, p)))


def test_latex_uses_the_papers_symbols():
    text = B.to_latex(B.theorem1("printed", expand_definitions=False))
    for symbol in (r"\sigma^{2}", r"\varepsilon", r"\lambda", r"\gamma", r"\theta", r"\xi"):
        assert symbol in text


@pytest.mark.parametrize("variant", B.VARIANTS)
def test_denominator_is_A_minus_C_over_epsilon_squared(variant):
    # The self-consistent bound and the epsilon threshold read A and C off this split of D.
    A, C = B.split_expr(variant)
    assert not A.has(S["epsilon"]) and not C.has(S["epsilon"])
    assert sp.simplify(B.denominator_expr(variant) - (A - C / S["epsilon"] ** 2)) == 0


@pytest.mark.parametrize("variant", B.VARIANTS)
@pytest.mark.parametrize("M, sigma2", [(0, 0.0), (4, 0.01), (10, 0.3)])
def test_self_consistent_bound_is_the_bound_at_epsilon_equal_to_itself(variant, M, sigma2):
    p = Params(M=M, sigma2=sigma2)
    for K in range(1, 10):
        b = B.bound_self_consistent(K, p, variant)
        assert 0 < b < math.inf
        assert B.bound_value(K, p.replace(epsilon=b), variant) == pytest.approx(b, rel=1e-9)
        # Any smaller epsilon gives a larger (or no finite) bound: the fixed point is the best epsilon.
        assert B.bound_value(K, p.replace(epsilon=0.9 * b), variant) > b


def test_self_consistent_bound_is_finite_where_the_printed_bound_is_not():
    p = Params(epsilon=0.05)
    assert math.isinf(B.bound_value(1, p)) and math.isfinite(B.bound_self_consistent(1, p))
    # epsilon does not enter it.
    assert B.bound_self_consistent(3, p) == B.bound_self_consistent(3, p.replace(epsilon=7.0))
    values = B.bound_self_consistent(np.arange(1, 10), Params(M=4, sigma2=0.1))
    assert values.shape == (9,) and np.isfinite(values).all()


@pytest.mark.parametrize("variant", B.VARIANTS)
def test_epsilon_threshold_separates_finite_from_infinite_bounds(variant):
    p = Params(M=6, sigma2=0.2)
    for K in range(1, 10):
        t = B.epsilon_threshold(K, p, variant)
        assert 0 < t < math.inf
        assert math.isinf(B.bound_value(K, p.replace(epsilon=0.99 * t), variant))
        assert math.isfinite(B.bound_value(K, p.replace(epsilon=1.01 * t), variant))
    # phi <= 0 (eta*L >= 2 in a profile) leaves no epsilon that helps.
    assert math.isinf(B.epsilon_threshold(3, {**p.as_dict(), "phi": -1.0}, variant))
