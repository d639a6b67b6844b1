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

from . import bound as _bound
from .bound import SYMBOLS, Canonical, canonical, denominator_expr, to_latex
from .errors import InputError
from .params import Params
from .timemodel import k_max_continuous

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
    lam = s["eta"] * s["L"] + 1
    gam = (s["t_sum"] - s["K"] * s["beta"]) / s["alpha"]
    claimed = -(s["delta"] * s["xi"] / (s["L"] * s["epsilon"] ** 2)) * lam ** (gam / s["K"]) * (
        s["t_sum"] * sp.log(lam) / s["alpha"]
    ) ** 2 / s["K"] ** 3
    equal = sp.simplify(sp.powsimp(sp.expand(d2 - claimed), force=True)) == 0
    # Every factor of -claimed is a product of positive symbols, so sympy can decide its sign.
    return claimed, bool(equal and claimed.is_negative)


def maximizer(c: Canonical, lo: float, hi: float) -> float:
    """The K in [lo, hi] that maximizes the concave D = p0 + p1·K − q·K·exp(a/K), in closed form.

    dD/dK = 0 gives e^x·(1 − x) = p1/q with x = a/K, so x = 1 + W0(−p1/(q·e)) (Lambert W).
    If p1/q >= 1, D increases for every K > 0 and the right end wins.
    """
    ratio = c.p1 / c.q
    if ratio >= 1.0:
        return hi
    x = 1.0 + float(lambertw(-ratio / math.e, 0).real)
    k_free = c.a / x if x > 0 else math.inf
    return float(min(max(k_free, lo), hi))


def feasible_interval(params: Params, variant: str = "per-round") -> tuple[float, float] | None:
    """{K in [1, t_sum/(alpha+beta)] : D(K) > 0} as (lo, hi), or None when it is empty."""
    c = canonical(params, variant)
    lo, hi = 1.0, k_max_continuous(params.t_sum, params.alpha, params.beta)
    k_best = maximizer(c, lo, hi)
    if not c.value(k_best) > 0:
        return None
    # Below K = a/700, exp(a/K) overflows a float and D is -inf: start the root search above it.
    start = max(lo, min(c.a / 700.0, k_best))
    left = lo if c.value(lo) > 0 else brentq(c.value, start, k_best, xtol=1e-12)
    right = hi if c.value(hi) > 0 else brentq(c.value, k_best, hi, xtol=1e-12)
    return (left, right)


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
    # values absorbs rounding without hiding a real sign change.
    ks = np.linspace(lo, hi, grid_points)
    d = np.asarray(_bound.denominator(ks, params, variant), dtype=float)
    d2 = d[:-2] - 2 * d[1:-1] + d[2:]
    tol_d = 1e-9 * max(1.0, float(np.max(np.abs(d))))
    max_d2 = float(np.max(d2)) if d2.size else 0.0
    if max_d2 > tol_d:
        bad = ks[1:-1][d2 > tol_d]
        failures.append(f"D is not concave on the grid near K = {bad[0]:.4g}..{bad[-1]:.4g}")

    feasible = feasible_interval(params, variant)
    min_b2: float | None = None
    if feasible is None:
        failures.append(f"D(K) <= 0 for every K in [{lo:g}, {hi:.4g}]: no finite bound, Remark 1 is vacuous")
    else:
        inner = np.linspace(feasible[0], feasible[1], grid_points)
        b = np.asarray(_bound.bound(inner, params, variant), dtype=float)
        finite = np.isfinite(b)
        if finite.sum() >= 3:
            bf = b[finite]
            b2 = bf[:-2] - 2 * bf[1:-1] + bf[2:]
            min_b2 = float(np.min(b2))
            tol_b = 1e-9 * max(1.0, float(np.max(np.abs(bf))))
            if min_b2 < -tol_b:
                bad = inner[finite][1:-1][b2 < -tol_b]
                failures.append(f"the bound is not convex on the grid near K = {bad[0]:.4g}..{bad[-1]:.4g}")
        if feasible[0] > lo:
            failures.append(
                f"the bound is not finite on [{lo:g}, {feasible[0]:.4g}]: D(K) <= 0 there, so Remark 1 holds only on the feasible interval"
            )
        if feasible[1] < hi:
            failures.append(
                f"the bound is not finite on [{feasible[1]:.4g}, {hi:.4g}]: D(K) <= 0 there, so Remark 1 holds only on the feasible interval"
            )
    holds_on_feasible = concave and max_d2 <= tol_d and feasible is not None and (min_b2 is None or min_b2 >= -tol_b)
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
