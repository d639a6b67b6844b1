"""Remark 1 as a certificate: D(K) is concave in K, so the bound 1/D is convex where D > 0.

K·(lambda^(gamma/K) − 1) is the perspective of an exponential plus a linear term, hence
convex; every other term of D is linear in K. The certificate checks this symbolically,
takes the feasible interval {K in [1, t_sum/(alpha+beta)] : D(K) > 0} from :mod:`bladefl_theory.solvers`,
and confirms both claims numerically on a fine grid, saying where a claim fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sympy as sp

from bladefl_platform.errors import InputError

from . import bound as _bound
from .bound import SYMBOLS, denominator_expr, to_latex
from .params import MAX_GRID_POINTS, Params
from .solvers import feasible_interval
from .timemodel import gamma, k_max_continuous, lam

__all__ = ["ConvexityCertificate", "MAX_GRID_POINTS", "certify", "second_derivative"]


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
        min_b2, convex_b = _bound_convex(params, variant, feasible, grid_points, failures)
        failures += _infeasible_ends(feasible, lo, hi)
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


def _bound_convex(params: Params, variant: str, feasible: tuple[float, float], grid_points: int,
                  failures: list[str]) -> tuple[float | None, bool]:
    """The bound's smallest second difference on a grid of the feasible interval (None if too few points), and
    whether it is convex there; a failure is appended to ``failures``."""
    inner = np.linspace(feasible[0], feasible[1], grid_points)
    b = np.asarray(_bound.bound_value(inner, params, variant), dtype=float)
    b2, scale_b, where_b = _second_differences(inner, b)
    if not b2.size:
        return None, True
    convex = not np.min(b2) < -1e-9
    if not convex:
        bad = where_b[b2 < -1e-9]
        failures.append(f"the bound is not convex on the grid near K = {bad[0]:.4g}..{bad[-1]:.4g}")
    return float(np.min(b2)) * scale_b, convex


def _infeasible_ends(feasible: tuple[float, float], lo: float, hi: float) -> list[str]:
    """The ends of [lo, hi] outside the feasible interval, where the bound is not finite."""
    ends = []
    if feasible[0] > lo:
        ends.append(f"[{lo:g}, {feasible[0]:.4g}]")
    if feasible[1] < hi:
        ends.append(f"[{feasible[1]:.4g}, {hi:.4g}]")
    return [f"the bound is not finite on {where}: D(K) <= 0 there, so Remark 1 holds only on the feasible interval"
            for where in ends]
