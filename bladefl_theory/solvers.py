"""The optimal number of blocks K*: closed form (Lambert W), conic program (cvxpy), integer search.

Minimizing the bound 1/D(K) is maximizing the concave D(K) where D > 0. Each solver returns
a result object in the manner of scipy.optimize: the solution, ``status``, ``success`` and
``message``. :func:`kstar` runs all three and says whether they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import bound as _bound
from .bound import VARIANTS, canonical, terms
from .convexity import feasible_interval, maximizer
from .params import MAX_K, ParameterError, Params
from .timemodel import k_max, k_max_continuous, tau

__all__ = [
    "ContinuousResult",
    "IntegerResult",
    "KStarResult",
    "STATUS",
    "kstar",
    "kstar_closed_form",
    "kstar_cvxpy",
    "kstar_integer",
    "explain_infeasible",
    "explain_no_integer",
    "finite_integers",
    "MAX_INTEGER_K",
]

#: Status codes shared by every solver.
STATUS = {
    0: "optimum inside the feasible interval",
    1: "optimum at an end of the K range",
    2: "no K gives a finite bound (D(K) <= 0 everywhere)",
    3: "the solver failed",
}
#: Largest K_max the exhaustive integer search covers (a rule of :class:`Params`).
MAX_INTEGER_K = MAX_K
#: Continuous solvers agree when their K differ by less than this (relative to max(1, K)).
AGREEMENT_RTOL = 1e-3


class _Outcome:
    """What every solver result shares: ``status`` (a key of STATUS) and whether it counts as a success."""

    status: int

    @property
    def success(self) -> bool:
        """An optimum was found (status 0, or 1: at an end of the K range)."""
        return self.status in (0, 1)


@dataclass(frozen=True)
class ContinuousResult(_Outcome):
    """A continuous maximizer of D over [1, t_sum/(alpha+beta)]."""

    method: str
    k: float | None
    bound: float | None
    status: int
    message: str


@dataclass(frozen=True)
class IntegerResult(_Outcome):
    """The integer K* over 1..K_max with the bound at every K (``inf`` where D <= 0)."""

    k: int | None
    tau: int | None
    bound: float | None
    k_max: int
    bounds: np.ndarray
    status: int
    message: str


@dataclass(frozen=True)
class KStarResult(_Outcome):
    """K* for one parameter set and variant, from all three solvers."""

    params: Params
    variant: str
    k_star: int | None
    k_star_continuous: float | None
    tau: int | None
    bound: float | None
    k_max: int
    feasible: tuple[float, float] | None
    solvers_agree: bool
    status: int
    message: str
    closed_form: ContinuousResult
    cvxpy: ContinuousResult | None
    integer: IntegerResult
    notes: list[str] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        """One row per K = 1..K_max: tau, the bound, and whether it is finite."""
        p = self.params
        return [
            {
                "K": k,
                "tau": tau(k, p.t_sum, p.alpha, p.beta),
                "bound": float(b) if math.isfinite(b) else None,
                "feasible": bool(math.isfinite(b)),
            }
            for k, b in enumerate(self.integer.bounds, start=1)
        ]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's ``--json`` output)."""
        return {
            "k_star": self.k_star,
            "k_star_continuous": self.k_star_continuous,
            "tau": self.tau,
            "bound": self.bound,
            "k_max": self.k_max,
            "feasible": list(self.feasible) if self.feasible else None,
            "variant": self.variant,
            "params": self.params.as_dict(),
            "solvers_agree": self.solvers_agree,
            "status": self.status,
            "success": self.success,
            "message": self.message,
            "solvers": {
                "closed_form": _continuous_dict(self.closed_form),
                "cvxpy": _continuous_dict(self.cvxpy) if self.cvxpy else None,
                "integer": {"k": self.integer.k, "status": self.integer.status, "message": self.integer.message},
            },
            "table": self.table(),
            "notes": list(self.notes),
        }


def _continuous_dict(r: ContinuousResult) -> dict[str, Any]:
    return {"k": r.k, "bound": r.bound, "status": r.status, "message": r.message}


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ParameterError("variant", f"variant must be one of {', '.join(VARIANTS)} (got {variant!r})")


def _continuous_outcome(method: str, params: Params, variant: str, k: float) -> ContinuousResult:
    d = float(_bound.denominator(k, params, variant))
    if not d > 0:
        return ContinuousResult(method, None, None, 2, explain_infeasible(params, variant))
    hi = k_max_continuous(params.t_sum, params.alpha, params.beta)
    at_end = math.isclose(k, 1.0, rel_tol=0, abs_tol=1e-6) or math.isclose(k, hi, rel_tol=1e-9, abs_tol=1e-6)
    status = 1 if at_end else 0
    return ContinuousResult(method, k, 1.0 / d, status, STATUS[status])


def kstar_closed_form(params: Params, variant: str = "per-round") -> ContinuousResult:
    """Continuous K* from dD/dK = 0 solved with Lambert's W (principal branch), clipped to the K range."""
    _check_variant(variant)
    hi = k_max_continuous(params.t_sum, params.alpha, params.beta)
    return _continuous_outcome("closed-form", params, variant, maximizer(canonical(params, variant), 1.0, hi))


def kstar_cvxpy(params: Params, variant: str = "per-round", solver: str | None = None) -> ContinuousResult:
    """Continuous K* as an exponential-cone program over the feasible interval.

    Maximize p0 + p1·K − t subject to q·K·exp(a/K) <= t and lo <= K <= hi; restricting K to
    the feasible interval keeps exp(a/K) within what a conic solver handles well.
    """
    import cvxpy as cp

    _check_variant(variant)
    feasible = feasible_interval(params, variant)
    if feasible is None:
        return ContinuousResult("cvxpy", None, None, 2, explain_infeasible(params, variant))
    if feasible[1] - feasible[0] <= 1e-9 * max(1.0, feasible[1]):
        # A single point (t_sum = alpha + beta): nothing to optimize, and conic solvers dislike it.
        return _continuous_outcome("cvxpy", params, variant, feasible[0])
    c = canonical(params, variant)
    K, t = cp.Variable(), cp.Variable()
    # ExpCone(x, y, z) is y·exp(x/y) <= z. With x = a + ln(q)·K and y = K, z bounds
    # q·K·exp(a/K) itself: folding q into the exponent keeps the cone well scaled when q is tiny.
    # Divided by the size of its linear part, the objective is of order one whatever the parameters' scale.
    scale = max(abs(c.p0), abs(c.p1) * feasible[1])
    if not all(math.isfinite(x) for x in (c.p0, c.p1, c.a, c.log_q, scale)) or scale == 0:
        return ContinuousResult("cvxpy", None, None, 3, "the canonical coefficients are beyond float range")
    log_q = c.log_q - math.log(scale)
    constraints = [cp.constraints.ExpCone(c.a + log_q * K, K, t), K >= feasible[0], K <= feasible[1]]
    problem = cp.Problem(cp.Maximize(c.p0 / scale + (c.p1 / scale) * K - t), constraints)
    chosen = solver or _default_conic_solver(cp)
    try:
        problem.solve(solver=chosen)
    except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
        # cvxpy refuses data it cannot scale (ValueError); the cross-check then reports a failed solver.
        return ContinuousResult("cvxpy", None, None, 3, f"{chosen}: {' '.join(str(exc).split())}")
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or K.value is None:
        return ContinuousResult("cvxpy", None, None, 3, f"{chosen} returned status {problem.status}")
    k = float(min(max(float(K.value), feasible[0]), feasible[1]))
    return _continuous_outcome("cvxpy", params, variant, k)


def _default_conic_solver(cp) -> str:
    installed = cp.installed_solvers()
    for name in ("CLARABEL", "ECOS", "SCS"):
        if name in installed:
            return name
    raise RuntimeError("no exponential-cone solver is installed with cvxpy (need CLARABEL, ECOS or SCS)")


def kstar_integer(params: Params, variant: str = "per-round") -> IntegerResult:
    """Integer K* = argmin of the bound over K = 1..K_max, with tau local epochs per block."""
    _check_variant(variant)
    km = k_max(params.t_sum, params.alpha, params.beta)  # at most MAX_INTEGER_K: Params checks it
    ks = np.arange(1, km + 1, dtype=float)
    bounds = np.atleast_1d(np.asarray(_bound.bound_value(ks, params, variant), dtype=float))
    if not np.isfinite(bounds).any():
        return IntegerResult(None, None, None, km, bounds, 2, explain_no_integer(params, variant))
    i = int(np.argmin(bounds))
    k = i + 1
    status = 1 if k in (1, km) else 0
    return IntegerResult(k, tau(k, params.t_sum, params.alpha, params.beta), float(bounds[i]), km, bounds, status,
                         STATUS[status])


def finite_integers(params: Params, variant: str = "per-round") -> tuple[int, int] | None:
    """The integers K in 1..K_max with a finite bound, as (first, last), or None.

    They are consecutive: D is concave.
    """
    feasible = feasible_interval(params, variant)
    if feasible is None:
        return None
    km = k_max(params.t_sum, params.alpha, params.beta)
    ks = np.arange(max(1, math.ceil(feasible[0])), min(km, math.floor(feasible[1])) + 1)
    # Decide at the integers themselves: the interval's ends are only as exact as the root search.
    finite = ks[np.isfinite(np.atleast_1d(_bound.bound_value(ks, params, variant)))] if ks.size else ks
    return (int(finite[0]), int(finite[-1])) if finite.size else None


def explain_no_integer(params: Params, variant: str = "per-round") -> str:
    """Why no integer K in 1..K_max has a finite bound (the message of exit status 3)."""
    feasible = feasible_interval(params, variant)
    if feasible is None:
        return explain_infeasible(params, variant)
    km = k_max(params.t_sum, params.alpha, params.beta)
    first, last = max(1, math.ceil(feasible[0])), min(km, math.floor(feasible[1]))
    if first <= last:
        return (
            f"no integer K in 1..{km} gives a finite bound ({variant}): D(K) > 0 for K = {first}..{last}, "
            f"but so small there that the bound 1/D(K) exceeds float range (1.8e308)"
        )
    return (
        f"no integer K in 1..{km} gives a finite bound ({variant}): D(K) > 0 only on "
        f"[{feasible[0]:.4g}, {feasible[1]:.4g}], which holds no integer; {_epsilon_needed(params, variant)}"
    )


def explain_infeasible(params: Params, variant: str = "per-round") -> str:
    """Why no K has a finite bound: the terms of D at the K where D is largest."""
    hi = k_max_continuous(params.t_sum, params.alpha, params.beta)
    k = maximizer(canonical(params, variant), 1.0, hi)
    t = terms(k, params, variant)
    against = {"divergence": t["divergence"], "lazy": t["lazy"]}
    dominant = max(against, key=lambda name: against[name])
    label = {
        "divergence": "the divergence term (delta·xi·K/L)(lambda^(gamma/K) − 1)/epsilon²",
        "lazy": "the lazy term (xi·M/N·theta + xi·sqrt(M)/N·sigma2)" + (" · K" if variant == "per-round" else "")
        + "/epsilon²",
    }[dominant]
    return (
        f"no K in [1, {hi:.4g}] gives a finite bound ({variant}): at the best K = {k:.4g}, "
        f"divergence {t['divergence']:.4g} + lazy {t['lazy']:.4g} >= progress {t['progress']:.4g} "
        f"(gamma·eta·phi + eta·xi·delta·gamma/epsilon²); {label} dominates; {_epsilon_needed(params, variant)}"
    )


def _epsilon_needed(params: Params, variant: str) -> str:
    km = k_max(params.t_sum, params.alpha, params.beta)
    needed = float(np.min(_bound.epsilon_threshold(np.arange(1, km + 1), params, variant)))
    if not math.isfinite(needed):
        A, _ = _bound._split(np.arange(1, km + 1), params, variant)
        if not (A > 0).any():
            return "no epsilon gives a finite bound (gamma·eta·phi <= 0 at every K)"
        return (f"no epsilon a float can hold gives a finite bound at any K in 1..{km} "
                "(the divergence term exceeds float range)")
    return f"a finite bound at some K in 1..{km} needs epsilon > {needed:.4g} (it is {params.epsilon:.4g})"


def kstar(params: Params, variant: str = "per-round", cross_check: bool = True) -> KStarResult:
    """K* for ``params``: the integer answer, the continuous one, and whether the solvers agree.

    ``cross_check=False`` skips the cvxpy solve (the slowest) for sweeps.
    """
    _check_variant(variant)
    integer = kstar_integer(params, variant)
    closed = kstar_closed_form(params, variant)
    conic = kstar_cvxpy(params, variant) if cross_check else None
    feasible = feasible_interval(params, variant)

    agree = closed.success == integer.success
    if closed.success and not integer.success and feasible is not None:
        # A feasible interval can lie strictly between two integers.
        agree = min(math.floor(feasible[1]), integer.k_max) < math.ceil(feasible[0])
    if closed.success and integer.success:
        # D is concave, so the best integer is a neighbour of the continuous maximizer.
        k_c = closed.k
        assert k_c is not None  # a solver that succeeded has a K
        agree = integer.k in (math.floor(k_c), math.ceil(k_c)) or (
            integer.k == integer.k_max and k_c >= integer.k_max
        )
    if conic is not None:
        if closed.success and conic.success:
            assert conic.k is not None and closed.k is not None
            agree = agree and math.isclose(conic.k, closed.k, rel_tol=AGREEMENT_RTOL, abs_tol=AGREEMENT_RTOL)
        else:
            agree = agree and closed.success == conic.success

    notes = []
    if not agree:
        found = ", ".join(
            f"{name} {'-' if k is None else f'{k:.6g}'}"
            for name, k in (("closed form", closed.k), ("cvxpy", conic.k if conic else None),
                            ("integer search", integer.k))
            if name != "cvxpy" or conic is not None
        )
        notes.append(f"the solvers disagree ({found}): D is too flat or too steep here for some of them to resolve")
    if variant == "printed":
        notes.append(
            "printed (eq. 6 verbatim): dD/dK does not contain M, sigma2 or theta, so K* does not "
            "depend on them; lazy clients only raise the bound and shrink the feasible interval"
        )
    status = integer.status
    message = integer.message
    return KStarResult(
        params=params,
        variant=variant,
        k_star=integer.k,
        k_star_continuous=closed.k,
        tau=integer.tau,
        bound=integer.bound,
        k_max=integer.k_max,
        feasible=feasible,
        solvers_agree=bool(agree),
        status=status,
        message=message,
        closed_form=closed,
        cvxpy=conic,
        integer=integer,
        notes=notes,
    )
