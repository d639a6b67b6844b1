"""Lemma 1 and Theorem 1 of the paper as sympy expressions, and their numeric evaluation.

The bound is written 1/D(K). ``printed`` is eq. (6) verbatim: the lazy term enters once.
``per-round`` multiplies the lazy term by K, as if the lazy perturbation entered each of the
K aggregations (docs/mathematics.md); only this variant lets K* move with M and sigma2.

The sympy expressions are the definition; the numeric functions evaluate them in a form free of
cancellation and overflow (tests hold the two against 700-digit arithmetic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Union

import numpy as np
import sympy as sp

from .params import VARIANTS, Params, Variant
from .timemodel import gamma, lam

__all__ = [
    "VARIANTS",
    "Variant",
    "SYMBOLS",
    "ARG_NAMES",
    "lemma1",
    "theorem1",
    "denominator_expr",
    "lazy_constant_expr",
    "terms_expr",
    "terms",
    "denominator",
    "bound_value",
    "split_expr",
    "epsilon_threshold",
    "self_consistent_expr",
    "bound_self_consistent",
    "Canonical",
    "canonical",
    "canonical_exprs",
    "bernoulli_gap",
    "to_latex",
    "to_pretty",
]

ARG_NAMES = ("K",) + Params.names()
_positive = dict(positive=True)
SYMBOLS: dict[str, sp.Symbol] = {
    "K": sp.Symbol("K", **_positive),
    "N": sp.Symbol("N", **_positive),
    "M": sp.Symbol("M", nonnegative=True),
    "sigma2": sp.Symbol("sigma2", nonnegative=True),
    "alpha": sp.Symbol("alpha", **_positive),
    "beta": sp.Symbol("beta", **_positive),
    "t_sum": sp.Symbol("t_sum", **_positive),
    "eta": sp.Symbol("eta", **_positive),
    "L": sp.Symbol("L", **_positive),
    "xi": sp.Symbol("xi", **_positive),
    "delta": sp.Symbol("delta", **_positive),
    "epsilon": sp.Symbol("epsilon", **_positive),
    "phi": sp.Symbol("phi", **_positive),
    "theta": sp.Symbol("theta", nonnegative=True),
}
#: The paper's shorthands gamma and lambda as symbols; their definitions are :mod:`bladefl_theory.timemodel`'s.
GAMMA = sp.Symbol("gamma", positive=True)
LAMBDA = sp.Symbol("lambda", positive=True)

_LATEX_NAMES = {
    SYMBOLS["sigma2"]: r"\sigma^{2}",
    SYMBOLS["t_sum"]: r"t^{\mathrm{sum}}",
    SYMBOLS["epsilon"]: r"\varepsilon",
}

ParamsLike = Union[Params, Mapping[str, "np.typing.ArrayLike"]]


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)} (got {variant!r})")


def _definitions() -> dict[sp.Symbol, sp.Expr]:
    s = SYMBOLS
    return {GAMMA: gamma(s["K"], s["t_sum"], s["alpha"], s["beta"]), LAMBDA: lam(s["eta"], s["L"])}


def lazy_constant_expr() -> sp.Expr:
    """c = xi·(M/N)·theta + xi·(sqrt(M)/N)·sigma2, the lazy clients' term of eq. (6)."""
    s = SYMBOLS
    return s["xi"] * s["M"] / s["N"] * s["theta"] + s["xi"] * sp.sqrt(s["M"]) / s["N"] * s["sigma2"]


def _pieces(variant: str | None) -> dict[str, sp.Expr]:
    # The three parts of the numerator of eqs. (5)/(6); D = gamma*eta*phi - (divergence - progress + lazy)/epsilon^2.
    s = SYMBOLS
    pieces = {
        "divergence": (s["delta"] * s["xi"] * s["K"] / s["L"]) * (LAMBDA ** (GAMMA / s["K"]) - 1),
        "progress": s["eta"] * s["xi"] * s["delta"] * GAMMA,
        "lazy": sp.Integer(0),
    }
    if variant is not None:
        _check_variant(variant)
        lazy = lazy_constant_expr()
        pieces["lazy"] = s["K"] * lazy if variant == "per-round" else lazy
    return pieces


def _numerator(variant: str | None) -> sp.Expr:
    p = _pieces(variant)
    return p["divergence"] - p["progress"] + p["lazy"]


def terms_expr(variant: str = "per-round") -> dict[str, sp.Expr]:
    """D(K) split as progress − divergence − lazy, to tell which term dominates."""
    s = SYMBOLS
    p = _pieces(variant)
    eps2 = s["epsilon"] ** 2
    out = {
        "progress": GAMMA * s["eta"] * s["phi"] + p["progress"] / eps2,
        "divergence": p["divergence"] / eps2,
        "lazy": p["lazy"] / eps2,
    }
    return {k: sp.sympify(v).subs(_definitions()) for k, v in out.items()}


def terms(K: float, params: Params, variant: str = "per-round") -> dict[str, float]:
    """The progress, divergence and lazy terms of D at one K (D = progress − divergence − lazy).

    Evaluated in floating point without exceptions: a term beyond float range is ``inf``.
    """
    _check_variant(variant)
    v = _floats(params)
    K = np.float64(K)
    with _quiet():
        gam = gamma(K, v["t_sum"], v["alpha"], v["beta"])
        r = gam / K
        k0 = _scaled(v["delta"] * v["xi"] / v["L"], v["epsilon"])
        out = {
            "progress": gam * v["eta"] * v["phi"] + _scaled(v["eta"] * v["xi"] * v["delta"] * gam, v["epsilon"]),
            "divergence": np.where(r == 0, 0.0, k0 * K * np.expm1(r * np.log1p(v["eta"] * v["L"]))),
            "lazy": _scaled(_lazy(K, v, variant), v["epsilon"]),
        }
    return {n: float(x) for n, x in out.items()}


def _printed_form(variant: str | None, expand_definitions: bool) -> sp.Expr:
    s = SYMBOLS
    expr = 1 / (GAMMA * (s["eta"] * s["phi"] - _numerator(variant) / (s["epsilon"] ** 2 * GAMMA)))
    return expr.subs(_definitions()) if expand_definitions else expr


def lemma1(expand_definitions: bool = True) -> sp.Expr:
    """Eq. (5): the bound on F(w^K) − F(w*) without lazy clients."""
    return _printed_form(None, expand_definitions)


def theorem1(variant: str = "printed", expand_definitions: bool = True) -> sp.Expr:
    """Eq. (6) (``printed``) or its ``per-round`` variant: the bound with M lazy clients."""
    return _printed_form(variant, expand_definitions)


def denominator_expr(variant: str = "per-round", expand_definitions: bool = True) -> sp.Expr:
    """D(K) with bound = 1/D: gamma·eta·phi − numerator/epsilon²."""
    s = SYMBOLS
    expr = GAMMA * s["eta"] * s["phi"] - _numerator(variant) / s["epsilon"] ** 2
    return expr.subs(_definitions()) if expand_definitions else expr


def _floats(params: ParamsLike) -> Mapping[str, np.ndarray | np.float64]:
    """Every parameter as float64 (integers too: N may exceed what numpy's integers hold)."""
    if isinstance(params, Params):
        return _params_floats(params)
    missing = [n for n in Params.names() if n not in params]
    if missing:
        raise ValueError(f"missing parameters: {', '.join(missing)}")
    return {n: np.asarray(params[n], dtype=float) for n in Params.names()}


@lru_cache(maxsize=256)
def _params_floats(params: Params) -> dict[str, np.float64]:
    # Cached: solvers evaluate D at many K for one Params. Callers must not modify the dict.
    return {n: np.float64(float(getattr(params, n))) for n in Params.names()}


def _quiet():
    return np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore")


def _horner(y, coefficients):
    # sum(c_i * y**i) for a float or an array.
    out = 0.0 * y
    for c in reversed(coefficients):
        out = out * y + c
    return out


_EXPM1_SERIES = (0.0, 0.0) + tuple(1.0 / math.factorial(n) for n in range(2, 21))
_LOG1P_SERIES = (0.0, 0.0) + tuple((-1.0) ** (n + 1) / n for n in range(2, 33))


def _expm1_minus_scalar(u: float) -> float:
    if abs(u) < 0.5:
        return _horner(u, _EXPM1_SERIES)
    if u == math.inf:
        return math.inf
    try:
        return math.expm1(u) - u
    except OverflowError:
        return math.inf


def _log1p_minus_scalar(y: float) -> float:
    if abs(y) < 0.25:
        return _horner(y, _LOG1P_SERIES)
    return math.log1p(y) - y


def _expm1_minus(u):
    """e^u − 1 − u without cancellation near u = 0 (a series there, for |u| < 0.5)."""
    u = np.asarray(u, dtype=float)
    if u.ndim == 0:
        return np.float64(_expm1_minus_scalar(float(u)))
    with _quiet():
        out = np.where(np.isposinf(u), np.inf, np.expm1(u) - u)
    small = np.abs(u) < 0.5
    if small.any():
        out[small] = _horner(u[small], _EXPM1_SERIES)
    return out


def _log1p_minus(y):
    """log(1 + y) − y without cancellation near y = 0 (a series there, for |y| < 0.25; y > −1)."""
    y = np.asarray(y, dtype=float)
    if y.ndim == 0:
        return np.float64(_log1p_minus_scalar(float(y)))
    with _quiet():
        out = np.log1p(y) - y
    small = np.abs(y) < 0.25
    if small.any():
        out[small] = _horner(y[small], _LOG1P_SERIES)
    return out


def bernoulli_gap(r, h):
    """lambda^r − 1 − h·r with lambda = 1 + h: >= 0 for r >= 1 (Bernoulli), 0 at r = 0 and r = 1.

    Written as (e^u − 1 − u) + r·(log(1 + h) − h) with u = r·log(1 + h), each part free of
    cancellation, so the O(h²) value survives when h = eta·L is tiny.
    """
    r, h = np.asarray(r, dtype=float), np.asarray(h, dtype=float)
    if r.ndim == 0 and h.ndim == 0:
        return np.float64(_bernoulli_gap_scalar(float(r), float(h)))
    with _quiet():
        e1 = _expm1_minus(r * np.log1p(h))
        out = e1 + r * _log1p_minus(h)
        return np.where(np.isposinf(e1), np.inf, np.where((h == 0) | (r == 0), 0.0, out))


def _bernoulli_gap_scalar(r: float, h: float) -> float:
    if h == 0 or r == 0:
        return 0.0
    e1 = _expm1_minus_scalar(r * math.log1p(h))
    return math.inf if e1 == math.inf else e1 + r * _log1p_minus_scalar(h)


def _scaled(x, epsilon):
    # x/epsilon² as (x/epsilon)/epsilon: epsilon² alone under- or overflows long before the quotient does.
    return (x / epsilon) / epsilon


def _lazy(K, v, variant):
    c = v["xi"] * v["M"] / v["N"] * v["theta"] + v["xi"] * np.sqrt(v["M"]) / v["N"] * v["sigma2"]
    return K * c if variant == "per-round" else c * np.ones_like(K)


def _split(K, params: ParamsLike, variant: str):
    """(A, C) of :func:`split_expr` in floating point, free of cancellation (see :func:`bernoulli_gap`)."""
    if isinstance(params, Params) and np.ndim(K) == 0:
        return _split_scalar(float(K), _python_floats(params), variant)
    v = _floats(params)
    K = np.asarray(K, dtype=float)
    with _quiet():
        gam = gamma(K, v["t_sum"], v["alpha"], v["beta"])
        A = gam * v["eta"] * v["phi"]
        g = bernoulli_gap(gam / K, v["eta"] * v["L"])
        # divergence − progress = (delta·xi·K/L)·(lambda^(gamma/K) − 1 − eta·L·gamma/K)
        C = np.where(g == 0, 0.0, (v["delta"] * v["xi"] / v["L"]) * K * g) + _lazy(K, v, variant)
    return A, C


@lru_cache(maxsize=256)
def _python_floats(params: Params) -> dict[str, float]:
    return {n: float(getattr(params, n)) for n in Params.names()}


def _split_scalar(K: float, v: dict[str, float], variant: str) -> tuple[np.float64, np.float64]:
    # _split's formulas in Python floats (no exceptions: products overflow to inf), ten times faster for one K.
    gam = gamma(K, v["t_sum"], v["alpha"], v["beta"])
    A = gam * v["eta"] * v["phi"]
    g = _bernoulli_gap_scalar(gam / K, v["eta"] * v["L"])
    c = v["xi"] * v["M"] / v["N"] * v["theta"] + v["xi"] * math.sqrt(v["M"]) / v["N"] * v["sigma2"]
    C = (0.0 if g == 0 else (v["delta"] * v["xi"] / v["L"]) * K * g) + (K * c if variant == "per-round" else c)
    return np.float64(A), np.float64(C)


def denominator(K, params: ParamsLike, variant: str = "per-round"):
    """D(K) = A − C/epsilon² evaluated numerically; any argument may be a numpy array (broadcast together).

    ``-inf`` where C/epsilon² exceeds float range; ``nan`` only where A and C both do.
    """
    _check_variant(variant)
    A, C = _split(K, params, variant)
    eps = _floats(params)["epsilon"]
    if np.ndim(A) == 0 and np.ndim(C) == 0 and np.ndim(eps) == 0:
        a, c, e = float(A), float(C), float(eps)
        return np.float64(-math.inf if c == math.inf else a - (c / e) / e)
    with _quiet():
        d = np.where(np.isposinf(C), -np.inf, A - _scaled(C, eps))
    return d if d.ndim else np.float64(d)


def bound_value(K, params: ParamsLike, variant: str = "per-round"):
    """The bound 1/D(K) on F(w^K) − F(w*); ``inf`` where D(K) <= 0 (no finite bound there)."""
    d = np.asarray(denominator(K, params, variant), dtype=float)
    with _quiet():
        out = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), np.inf)
    return out if out.ndim else float(out)


def split_expr(variant: str = "per-round") -> tuple[sp.Expr, sp.Expr]:
    """(A, C) with D = A − C/epsilon²: A = gamma·eta·phi, C = divergence − progress + lazy."""
    A = GAMMA * SYMBOLS["eta"] * SYMBOLS["phi"]
    C = _numerator(variant)  # checks the variant
    defs = _definitions()
    return A.subs(defs), C.subs(defs)


def epsilon_threshold(K, params: ParamsLike, variant: str = "per-round"):
    """The epsilon above which the bound at K is finite: sqrt(C/A), 0 where C <= 0, ``inf`` where A <= 0.

    ``params.epsilon`` is ignored. Any argument may be a numpy array (broadcast together).
    """
    _check_variant(variant)
    A, C = _split(K, params, variant)
    with _quiet():
        out = np.where(A > 0, np.sqrt(np.clip(C, 0, None)) / np.sqrt(np.where(A > 0, A, 1.0)), np.inf)
        out = np.where(np.isnan(out), np.inf, out)
    return out if out.ndim else float(out)


def self_consistent_expr(variant: str = "per-round") -> sp.Expr:
    """The bound with epsilon set to the bound itself: the positive root b of b = 1/D(K; epsilon = b).

    Wang et al.'s proof needs F(w^k) − F(w*) >= epsilon along the run, so the bound is only
    informative down to epsilon; with D = A − C/epsilon² the fixed point solves A·b² − b − C = 0.
    C >= 0 wherever tau >= 1 (Bernoulli's inequality), so the root with the + sign is the positive one:
    (1 + sqrt(1 + 4AC))/(2A), written for A > 0 as 1/(2A) + sqrt(1/(4A²) + C/A) so that A·C cannot overflow.
    """
    A, C = split_expr(variant)
    return 1 / (2 * A) + sp.sqrt(1 / (4 * A**2) + C / A)


def bound_self_consistent(K, params: ParamsLike, variant: str = "per-round"):
    """The bound with epsilon eliminated (:func:`self_consistent_expr`); ``inf`` where gamma·eta·phi <= 0.

    ``params.epsilon`` is ignored. Any argument may be a numpy array (broadcast together).
    """
    _check_variant(variant)
    A, C = _split(K, params, variant)
    with _quiet():
        half = 1.0 / (2.0 * np.where(A > 0, A, 1.0))
        ratio = C / np.where(A > 0, A, 1.0)
        # 1/(2A) + sqrt(1/(4A²) + C/A), with hypot so that neither square overflows.
        root = np.where(ratio >= 0, np.hypot(half, np.sqrt(np.clip(ratio, 0, None))), np.sqrt(half * half + ratio))
        b = half + root
    out = np.where((A > 0) & np.isfinite(b) & (b > 0), b, np.inf)
    return out if out.ndim else float(out)


@dataclass(frozen=True)
class Canonical:
    """D(K) = p0 + p1·K − q·K·exp(a/K), the form every solver works with.

    K·exp(a/K) is the perspective of exp, so D is concave in K; ``tests`` check that this
    form equals :func:`denominator_expr` symbolically. ``q`` may underflow, so ``log_q`` is
    kept; ``gap`` = 1 − p1/q and ``log_neg_ratio`` = ln(−p1/q) (where p1 < 0) are computed
    without cancellation, for the stationarity condition e^x·(1 − x) = p1/q.
    """

    p0: float
    p1: float
    q: float
    a: float
    log_q: float
    gap: float
    log_neg_ratio: float = math.nan

    def value(self, K: float) -> float:
        """D(K); ``-inf`` where exp(a/K) overflows."""
        with _quiet():
            linear = self.p0 + self.p1 * np.float64(K)
            curved = K * np.exp(self.a / np.float64(K) + self.log_q)
        return -math.inf if np.isposinf(curved) and np.isfinite(linear) else float(linear - curved)


@lru_cache(maxsize=None)
def canonical_exprs(variant: str = "per-round") -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
    """(p0, p1, q, a) of :class:`Canonical` read off :func:`denominator_expr` with sympy.

    :func:`canonical` evaluates the same coefficients in a numerically safe form; the tests hold
    the two against each other.
    """
    # With E = lambda^(gamma/K), D is p0 + p1*K - k0*K*E, and E = lambda^(-beta/alpha) * exp(a/K)
    # with a = t_sum*ln(lambda)/alpha.
    s = SYMBOLS
    E = sp.Symbol("E", positive=True)
    defs = _definitions()
    d = denominator_expr(variant, expand_definitions=False).subs(LAMBDA ** (GAMMA / s["K"]), E)
    poly = sp.Poly(sp.expand(d.subs(GAMMA, defs[GAMMA])), s["K"], E)
    if not set(poly.monoms()) <= {(0, 0), (1, 0), (1, 1)}:
        raise AssertionError(f"D({variant}) is not of the form p0 + p1*K - k0*K*E: {poly.monoms()}")
    lambda_ = defs[LAMBDA]
    k0 = -poly.coeff_monomial(s["K"] * E)
    return (
        poly.coeff_monomial(1),
        poly.coeff_monomial(s["K"]),
        k0 * lambda_ ** (-s["beta"] / s["alpha"]),
        s["t_sum"] * sp.log(lambda_) / s["alpha"],
    )


def canonical(params: Params, variant: str = "per-round") -> Canonical:
    """The coefficients of D(K) in canonical form for these parameters, without exceptions.

    k0 = delta·xi/(L·epsilon²) is carried as a logarithm, and 1 − p1/q through
    :func:`bernoulli_gap`, so tiny or huge alpha, beta, eta·L or epsilon neither overflow nor
    cancel; a coefficient beyond float range is ``±inf``.
    """
    _check_variant(variant)
    v = {n: float(x) for n, x in _params_floats(params).items()}
    per_round = variant == "per-round"
    with _quiet():
        c = _lazy(np.float64(1.0), _floats(params), "printed")  # the lazy constant
        h = np.float64(v["eta"]) * v["L"]
        ln_lam = np.log1p(h)
        b = np.float64(v["beta"]) / v["alpha"]
        eps = np.float64(v["epsilon"])
        a = np.float64(v["t_sum"]) * ln_lam / v["alpha"]
        log_k0 = np.log(v["delta"]) + np.log(v["xi"]) - np.log(v["L"]) - 2 * np.log(eps)
        log_q = log_k0 - b * ln_lam
        slope_phi = b * v["eta"] * v["phi"]  # beta·eta·phi/alpha
        p0 = np.float64(v["t_sum"]) * v["eta"] * v["phi"] / v["alpha"] + _scaled(
            np.float64(v["eta"]) * v["xi"] * v["delta"] * v["t_sum"] / v["alpha"] - (0.0 if per_round else c), eps
        )
        p1 = -slope_phi + _scaled(
            np.float64(v["delta"]) * v["xi"] / v["L"] - np.float64(v["eta"]) * v["xi"] * v["delta"] * b
            - (c if per_round else 0.0),
            eps,
        )
        # p1/q = (1 − h·b − S)·lambda^b with S = (L/(delta·xi))·(epsilon²·beta·eta·phi/alpha + lazy slope).
        lazy_slope = c if per_round else 0.0
        S = (np.float64(v["L"]) / v["delta"] / v["xi"]) * (eps * (eps * slope_phi) + lazy_slope)
        R = 1.0 - h * b - S
        # ln(−R) also where S overflows (huge epsilon): there −R is S to float precision.
        log_S = (
            np.log(v["L"]) - np.log(v["delta"]) - np.log(v["xi"])
            + np.logaddexp(2 * np.log(eps) + np.log(slope_phi), np.log(lazy_slope))
        )
        log_neg_R = np.log(-R) if R < 0 and np.isfinite(R) and R > -1e300 else log_S
        gap, log_neg_ratio = _gap(R, S, h, b, b * ln_lam, log_neg_R)
        q = np.exp(log_q)
    return Canonical(
        p0=float(p0), p1=float(p1), q=float(q), a=float(a), log_q=float(log_q), gap=float(gap),
        log_neg_ratio=log_neg_ratio,
    )


def _gap(R, S, h, b, lb, log_neg_R) -> tuple[float, float]:
    """1 − p1/q = 1 − R·lambda^b (lb = b·ln lambda) without cancellation or overflow, and ln(p1/q − 1) where
    p1/q < 0 (NaN elsewhere); called under :func:`_quiet` by :func:`canonical`."""
    if lb > 700.0:  # lambda^b beyond float range: only R's sign counts
        if R > 0:
            return -math.inf, math.nan
        if R < 0:
            return math.inf, float(log_neg_R + lb)
        return 1.0, math.nan
    lam_b = np.exp(lb)
    ratio = R * lam_b
    if abs(1.0 - ratio) < 0.5:
        # 1 − (1 − h·b − S)·lambda^b = (1 − lambda^b + h·b·lambda^b) + S·lambda^b, the first part as
        # h·b·(lambda^b − 1) − (lambda^b − 1 − h·b): both O(h²), neither cancels the other.
        gap = h * b * np.expm1(lb) - _bernoulli_gap_scalar(float(b), float(h)) + S * lam_b
    else:
        gap = 1.0 - ratio
    return gap, float(log_neg_R + lb) if ratio < 0 else math.nan


def to_latex(expr: sp.Expr) -> str:
    """LaTeX of an expression with the paper's symbol names."""
    return sp.latex(expr, symbol_names=_LATEX_NAMES)


def to_pretty(expr: sp.Expr) -> str:
    """Unicode pretty text of an expression."""
    return sp.pretty(expr, use_unicode=True)
