"""Lemma 1 and Theorem 1 of the paper as sympy expressions, and their numeric evaluation.

The bound is written 1/D(K). ``printed`` is eq. (6) verbatim: the lazy term enters once.
``per-round`` multiplies the lazy term by K, as if the lazy perturbation entered each of the
K aggregations (see ``shared/notes/theory.md``); only this variant lets K* move with M and sigma2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Union

import numpy as np
import sympy as sp

from .params import Params

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
    "bound",
    "split_expr",
    "epsilon_threshold",
    "self_consistent_expr",
    "bound_self_consistent",
    "Canonical",
    "canonical",
    "to_latex",
    "to_pretty",
]

Variant = Literal["per-round", "printed"]
VARIANTS: tuple[str, ...] = ("per-round", "printed")

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
#: The paper's shorthands: gamma = (t_sum − K·beta)/alpha and lambda = eta·L + 1.
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
    return {GAMMA: (s["t_sum"] - s["K"] * s["beta"]) / s["alpha"], LAMBDA: s["eta"] * s["L"] + 1}


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


@lru_cache(maxsize=None)
def _terms_compiled(variant: str):
    args = [SYMBOLS[n] for n in ARG_NAMES]
    exprs = terms_expr(variant)
    return tuple(exprs), sp.lambdify(args, tuple(exprs.values()), modules="math")


def terms(K: float, params: Params, variant: str = "per-round") -> dict[str, float]:
    """The progress, divergence and lazy terms of D at one K (D = progress − divergence − lazy)."""
    _check_variant(variant)
    names, f = _terms_compiled(variant)
    return {n: float(v) for n, v in zip(names, f(float(K), *_values(params)))}


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


@lru_cache(maxsize=None)
def _compiled(variant: str):
    args = [SYMBOLS[n] for n in ARG_NAMES]
    return sp.lambdify(args, denominator_expr(variant), modules="numpy")


def _values(params: ParamsLike) -> list:
    if isinstance(params, Params):
        return [getattr(params, n) for n in Params.names()]
    missing = [n for n in Params.names() if n not in params]
    if missing:
        raise ValueError(f"missing parameters: {', '.join(missing)}")
    return [np.asarray(params[n], dtype=float) for n in Params.names()]


def denominator(K, params: ParamsLike, variant: str = "per-round"):
    """D(K) evaluated numerically; any argument may be a numpy array (broadcast together)."""
    _check_variant(variant)
    with np.errstate(over="ignore", invalid="ignore"):
        return _compiled(variant)(np.asarray(K, dtype=float), *_values(params))


def bound(K, params: ParamsLike, variant: str = "per-round"):
    """The bound 1/D(K) on F(w^K) − F(w*); ``inf`` where D(K) <= 0 (no finite bound there)."""
    d = np.asarray(denominator(K, params, variant), dtype=float)
    with np.errstate(divide="ignore"):
        out = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), np.inf)
    return out if out.ndim else float(out)


def split_expr(variant: str = "per-round") -> tuple[sp.Expr, sp.Expr]:
    """(A, C) with D = A − C/epsilon²: A = gamma·eta·phi, C = divergence − progress + lazy."""
    A = GAMMA * SYMBOLS["eta"] * SYMBOLS["phi"]
    C = _numerator(variant)  # checks the variant
    defs = _definitions()
    return A.subs(defs), C.subs(defs)


@lru_cache(maxsize=None)
def _split_compiled(variant: str):
    return sp.lambdify([SYMBOLS[n] for n in ARG_NAMES], split_expr(variant), modules="numpy")


def epsilon_threshold(K, params: ParamsLike, variant: str = "per-round"):
    """The epsilon above which the bound at K is finite: sqrt(C/A), 0 where C <= 0, ``inf`` where A <= 0.

    ``params.epsilon`` is ignored. Any argument may be a numpy array (broadcast together).
    """
    _check_variant(variant)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        A, C = (np.asarray(x, dtype=float) for x in _split_compiled(variant)(np.asarray(K, dtype=float), *_values(params)))
        out = np.where(A > 0, np.sqrt(np.clip(C, 0, None) / np.where(A > 0, A, 1.0)), np.inf)
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


@lru_cache(maxsize=None)
def _self_consistent_compiled(variant: str):
    args = [SYMBOLS[n] for n in ARG_NAMES]
    return sp.lambdify(args, (split_expr(variant)[0], self_consistent_expr(variant)), modules="numpy")


def bound_self_consistent(K, params: ParamsLike, variant: str = "per-round"):
    """The bound with epsilon eliminated (:func:`self_consistent_expr`); ``inf`` where gamma·eta·phi <= 0.

    ``params.epsilon`` is ignored. Any argument may be a numpy array (broadcast together).
    """
    _check_variant(variant)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        A, b = (np.asarray(x, dtype=float) for x in _self_consistent_compiled(variant)(np.asarray(K, dtype=float), *_values(params)))
    out = np.where((A > 0) & np.isfinite(b) & (b > 0), b, np.inf)
    return out if out.ndim else float(out)


@dataclass(frozen=True)
class Canonical:
    """D(K) = p0 + p1·K − q·K·exp(a/K), the form every solver works with.

    K·exp(a/K) is the perspective of exp, so D is concave in K; ``tests`` check that this
    form equals :func:`denominator_expr` symbolically.
    """

    p0: float
    p1: float
    q: float
    a: float

    def value(self, K: float) -> float:
        """D(K); ``-inf`` where exp(a/K) overflows."""
        try:
            return self.p0 + self.p1 * K - self.q * K * math.exp(self.a / K)
        except OverflowError:
            return -math.inf


@lru_cache(maxsize=None)
def _canonical_compiled(variant: str):
    # Read p0, p1, q, a off the one definition of D: with E = lambda^(gamma/K), D is
    # p0 + p1*K - k0*K*E, and E = lambda^(-beta/alpha) * exp(a/K) with a = t_sum*ln(lambda)/alpha.
    s = SYMBOLS
    E = sp.Symbol("E", positive=True)
    defs = _definitions()
    d = denominator_expr(variant, expand_definitions=False).subs(LAMBDA ** (GAMMA / s["K"]), E)
    poly = sp.Poly(sp.expand(d.subs(GAMMA, defs[GAMMA])), s["K"], E)
    if not set(poly.monoms()) <= {(0, 0), (1, 0), (1, 1)}:
        raise AssertionError(f"D({variant}) is not of the form p0 + p1*K - k0*K*E: {poly.monoms()}")
    lam = defs[LAMBDA]
    k0 = -poly.coeff_monomial(s["K"] * E)
    coefficients = (
        poly.coeff_monomial(1),
        poly.coeff_monomial(s["K"]),
        k0 * lam ** (-s["beta"] / s["alpha"]),
        s["t_sum"] * sp.log(lam) / s["alpha"],
    )
    return sp.lambdify([s[n] for n in Params.names()], coefficients, modules="math")


def canonical(params: Params, variant: str = "per-round") -> Canonical:
    """The coefficients of D(K) in canonical form for these parameters."""
    _check_variant(variant)
    p0, p1, q, a = _canonical_compiled(variant)(*_values(params))
    return Canonical(p0=float(p0), p1=float(p1), q=float(q), a=float(a))


def to_latex(expr: sp.Expr) -> str:
    """LaTeX of an expression with the paper's symbol names."""
    return sp.latex(expr, symbol_names=_LATEX_NAMES)


def to_pretty(expr: sp.Expr) -> str:
    """Unicode pretty text of an expression."""
    return sp.pretty(expr, use_unicode=True)
