"""Remark 1 as a certificate: D(K) is concave in K, so the bound 1/D is convex where D > 0.

K·(lambda^(gamma/K) − 1) is the perspective of an exponential plus a linear term, hence
convex; every other term of D is linear in K. The certificate checks this symbolically,
finds the feasible interval {K in [1, t_sum/(alpha+beta)] : D(K) > 0}, and confirms both
claims numerically on a fine grid, saying where a claim fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sympy as sp
from scipy.optimize import brentq
from scipy.special import lambertw

from bladefl_platform.errors import InputError

from . import bound as _bound
from .bound import SYMBOLS, Canonical, canonical, denominator_expr, to_latex
from .params import Params
from .timemodel import gamma, k_max_continuous, lam

__all__ = ["ConvexityCertificate", "MAX_GRID_POINTS", "certify", "feasible_interval", "maximizer", "second_derivative"]

#: Most grid points of the numeric check (a few arrays of this many floats).
MAX_GRID_POINTS = 1_000_000


@lru_cache(maxsize=None)
def second_derivative(variant: str = "per-round") -> tuple[sp.Expr, bool]:
    """d²D/dK² in closed form, and whether sympy proves it equals the negative expression below.

    The closed form is −(delta·xi/(L·epsilon²))·lambda^(gamma/K)·(t_sum·ln(lambda)/alpha)²/K³,
    the same for both variants since the lazy term is at most linear in K.
    """
    s = SYMBOLS
    d2 = sp.diff(denominator_expr(variant), s["K"], 2)
    lambda_ = lam(s["eta"], s["L"])
    gam = gamma(s["K"], s["t_sum"], s["alpha"], s["beta"])
    claimed = -(s["delta"] * s["xi"] / (s["L"] * s["epsilon"] ** 2)) * lambda_ ** (gam / s["K"]) * (
        s["t_sum"] * sp.log(lambda_) / s["alpha"]
    ) ** 2 / s["K"] ** 3
    equal = sp.simplify(sp.powsimp(sp.expand(d2 - claimed), force=True)) == 0
    # Every factor of -claimed is a product of positive symbols, so sympy can decide its sign.
    return claimed, bool(equal and claimed.is_negative)


def maximizer(c: Canonical, lo: float, hi: float) -> float:
    """The K in [lo, hi] that maximizes the concave D = p0 + p1·K − q·K·exp(a/K), in closed form.

    dD/dK = 0 gives e^x·(1 − x) = p1/q with x = a/K, so x = 1 + W0(−p1/(q·e)) (Lambert W).
    If p1/q >= 1, D increases for every K > 0 and the right end wins.
    """
    if math.isnan(c.gap) or math.isnan(c.a):
        return _golden_maximizer(c.value, lo, hi)
    if c.gap <= 0:
        return hi
    x = _stationary_x(c.gap, c.log_neg_ratio)
    k_free = c.a / x if x > 0 else math.inf
    if math.isnan(k_free):  # a and x both 0 or both inf
        return _golden_maximizer(c.value, lo, hi)
    return float(min(max(k_free, lo), hi))


# W0(-1/e + m/e) = -1 + p - p²/3 + 11p³/72 - ... with p = sqrt(2m) (Corless et al. 1996, eq. 4.22).
_BRANCH_SERIES = (0.0, 1.0, -1.0 / 3.0, 11.0 / 72.0, -43.0 / 540.0, 769.0 / 17280.0, -221.0 / 8505.0)


def _stationary_x(gap: float, log_neg_ratio: float) -> float:
    """The x > 0 with e^x·(1 − x) = 1 − gap, for gap > 0, without losing digits near x = 0 or overflowing."""
    if gap < 1e-3:
        # Near the branch point: series, then Newton on log(1 − x) + x = log(1 − gap) in cancellation-free form.
        p = math.sqrt(2.0 * gap)
        x = sum(coef * p**i for i, coef in enumerate(_BRANCH_SERIES))
        target = math.log1p(-gap)
        for _ in range(3):
            f = float(_bound._log1p_minus(-x)) - target
            x -= f / (-x / (1.0 - x))
        return x
    if gap < 1.0:
        return 1.0 + float(lambertw(-(1.0 - gap) / math.e, 0).real)
    if gap == 1.0:
        return 1.0
    # p1/q < 0: x = 1 + W0(rho/e) with rho = -p1/q, in logarithms where rho overflows.
    log_rho = log_neg_ratio if not math.isnan(log_neg_ratio) else math.log(gap - 1.0)
    if log_rho < 690.0:
        return 1.0 + float(lambertw(math.exp(log_rho) / math.e, 0).real)
    if math.isinf(log_rho):
        return math.inf
    # w + ln w = log_rho - 1 for w = W0(rho/e).
    target = log_rho - 1.0
    w = target - math.log(target)
    for _ in range(6):
        w -= (w + math.log(w) - target) / (1.0 + 1.0 / w)
    return 1.0 + w


def _golden_maximizer(f, lo: float, hi: float) -> float:
    """argmax of a concave f on [lo, hi] by golden-section search (when the closed form has no numbers)."""
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    for _ in range(100):
        x1, x2 = b - g * (b - a), a + g * (b - a)
        f1, f2 = f(x1), f(x2)
        if f1 < f2 or (math.isnan(f1) and not math.isnan(f2)):
            a = x1
        else:
            b = x2
    return 0.5 * (a + b)


def _d(params: Params, variant: str):
    def value(k: float) -> float:
        return float(_bound.denominator(k, params, variant))

    return value


def feasible_interval(params: Params, variant: str = "per-round") -> tuple[float, float] | None:
    """{K in [1, t_sum/(alpha+beta)] : D(K) > 0} as (lo, hi), or None when it is empty.

    D is evaluated in the cancellation-free form of :func:`bladefl_theory.bound.denominator`,
    the one the integer search uses, so an integer with a finite bound always lies inside.
    """
    lo, hi = 1.0, k_max_continuous(params.t_sum, params.alpha, params.beta)
    D = _d(params, variant)
    k_best = maximizer(canonical(params, variant), lo, hi)
    if not D(k_best) > 0:
        # A safety net for the closed form: the best point of a grid that holds the first integers.
        ks = np.unique(np.concatenate([np.linspace(lo, hi, 257), np.arange(1.0, min(hi, 4096.0) + 1.0)]))
        d = np.asarray(_bound.denominator(ks, params, variant), dtype=float)
        positive = d > 0
        if not positive.any():
            return None
        k_best = float(ks[np.argmax(np.where(positive, d, -np.inf))])
    left = lo if D(lo) > 0 else _crossing(D, lo, k_best)
    right = hi if D(hi) > 0 else _crossing(D, hi, k_best)
    return (left, right)


def _crossing(D, outside: float, inside: float) -> float:
    """The K between ``outside`` (D <= 0) and ``inside`` (D > 0) where D crosses zero (D is concave)."""
    lo, hi = sorted((outside, inside))
    return float(brentq(lambda k: _finite(D(k)), lo, hi, xtol=1e-12))


def _finite(v: float) -> float:
    # brentq needs finite values of the right sign; D is -inf (or nan) only where C overflows.
    return -1e300 if math.isnan(v) else min(max(v, -1e300), 1e300)


@dataclass(frozen=True)
class ConvexityCertificate:
    """The outcome of :func:`certify`: what holds, on which interval, and where a claim fails."""

    variant: str
    k_range: tuple[float, float]
    denominator_concave_symbolic: bool
    second_derivative_latex: str
    feasible: tuple[float, float] | None
    grid_points: int
    max_second_difference_D: float
    min_second_difference_bound: float | None
    holds: bool
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "variant": self.variant,
            "k_range": list(self.k_range),
            "denominator_concave_symbolic": self.denominator_concave_symbolic,
            "second_derivative_latex": self.second_derivative_latex,
            "feasible": list(self.feasible) if self.feasible else None,
            "grid_points": self.grid_points,
            "max_second_difference_D": self.max_second_difference_D,
            "min_second_difference_bound": self.min_second_difference_bound,
            "holds": self.holds,
            "failures": list(self.failures),
        }


def _second_differences(ks: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Second differences of values/scale over consecutive finite triples, the scale max(1, max |value|), and their
    K."""
    finite = np.isfinite(values)
    scale = max(1.0, float(np.max(np.abs(values[finite]), initial=0.0)))
    v = values / scale
    with np.errstate(invalid="ignore"):
        d2 = v[:-2] - 2 * v[1:-1] + v[2:]
    valid = finite[:-2] & finite[1:-1] & finite[2:]
    return d2[valid], scale, ks[1:-1][valid]


def certify(params: Params, variant: str = "per-round", grid_points: int = 4001) -> ConvexityCertificate:
    """Check Remark 1 for these parameters: symbolically, then on a grid of ``grid_points`` K values."""
    if isinstance(grid_points, bool) or not isinstance(grid_points, int) or not 3 <= grid_points <= MAX_GRID_POINTS:
        raise InputError(f"grid_points must be an integer from 3 to {MAX_GRID_POINTS} (got {grid_points!r})")
    expr, concave = second_derivative(variant)
    lo, hi = 1.0, k_max_continuous(params.t_sum, params.alpha, params.beta)
    failures: list[str] = []
    if not concave:
        failures.append("sympy could not prove d²D/dK² < 0")

    # Second differences on a uniform grid approximate h²·f''; a tolerance scaled to the
    # values absorbs rounding without hiding a real sign change. They are taken of the values
    # divided by that scale, so that none overflows; where D is -inf (C beyond float range)
    # there is nothing to difference.
    ks = np.linspace(lo, hi, grid_points)
    d = np.asarray(_bound.denominator(ks, params, variant), dtype=float)
    d2, scale_d, where_d = _second_differences(ks, d)
    max_d2 = float(np.max(d2)) * scale_d if d2.size else 0.0
    if d2.size and np.max(d2) > 1e-9:
        bad = where_d[d2 > 1e-9]
        failures.append(f"D is not concave on the grid near K = {bad[0]:.4g}..{bad[-1]:.4g}")
    convex_d = not (d2.size and np.max(d2) > 1e-9)

    feasible = feasible_interval(params, variant)
    min_b2: float | None = None
    convex_b = True
    if feasible is None:
        failures.append(f"D(K) <= 0 for every K in [{lo:g}, {hi:.4g}]: no finite bound, Remark 1 is vacuous")
    else:
        inner = np.linspace(feasible[0], feasible[1], grid_points)
        b = np.asarray(_bound.bound_value(inner, params, variant), dtype=float)
        b2, scale_b, where_b = _second_differences(inner, b)
        if b2.size:
            min_b2 = float(np.min(b2)) * scale_b
            if np.min(b2) < -1e-9:
                convex_b = False
                bad = where_b[b2 < -1e-9]
                failures.append(f"the bound is not convex on the grid near K = {bad[0]:.4g}..{bad[-1]:.4g}")
        if feasible[0] > lo:
            failures.append(
                f"the bound is not finite on [{lo:g}, {feasible[0]:.4g}]: D(K) <= 0 there, so Remark 1 holds only "
                "on the feasible interval"
            )
        if feasible[1] < hi:
            failures.append(
                f"the bound is not finite on [{feasible[1]:.4g}, {hi:.4g}]: D(K) <= 0 there, so Remark 1 holds only "
                "on the feasible interval"
            )
    holds_on_feasible = concave and convex_d and feasible is not None and convex_b
    return ConvexityCertificate(
        variant=variant,
        k_range=(lo, hi),
        denominator_concave_symbolic=concave,
        second_derivative_latex=to_latex(expr),
        feasible=feasible,
        grid_points=grid_points,
        max_second_difference_D=max_d2,
        min_second_difference_bound=min_b2,
        holds=bool(holds_on_feasible),
        failures=failures,
    )
