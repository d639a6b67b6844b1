"""The optimal number of blocks K*: closed form (Lambert W), conic program (cvxpy), integer search.

Minimizing the bound 1/D(K) is maximizing the concave D(K) where D > 0. :func:`solve_kstar` is the one
entry point, in the manner of scipy.optimize: it runs one method, or (``method="auto"``) the closed form
and the integer search, with cvxpy as a cross-check on request, and returns a :class:`KStarResult` with
the solution, ``status``, ``success`` and ``message``. The canonical form of D, its maximizer, the
feasible interval and the bound at every integer K are computed at most once per call, and only if a
method or a message needs them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
from scipy.special import lambertw

from . import bound as _bound
from .bound import Canonical, canonical, terms
from .params import MAX_K, VARIANTS, ParameterError, Params
from .timemodel import k_max, k_max_continuous, tau

__all__ = [
    "KStarResult",
    "METHODS",
    "Method",
    "STATUS",
    "solve_kstar",
    "kstar",
    "closed_form_maximizer",
    "feasible_interval",
    "explain_infeasible",
    "explain_no_integer",
    "finite_integers",
    "MAX_INTEGER_K",
]

Method = Literal["auto", "closed-form", "cvxpy", "integer"]
#: The methods of :func:`solve_kstar`.
METHODS: tuple[str, ...] = ("auto", "closed-form", "cvxpy", "integer")
#: Status codes shared by every method.
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


# --------------------------------------------------------------------------- the closed form


def closed_form_maximizer(c: Canonical, lo: float, hi: float) -> float:
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


# --------------------------------------------------------------------------- one problem, each part computed once


class _Problem:
    """D(K) for one parameter set and variant, with what the methods and messages share, computed on first use."""

    def __init__(self, params: Params, variant: str):
        self.params = params
        self.variant = variant
        self.lo = 1.0
        self.hi = k_max_continuous(params.t_sum, params.alpha, params.beta)
        self.k_max = k_max(params.t_sum, params.alpha, params.beta)  # at most MAX_INTEGER_K: Params checks it

    def D(self, k: float) -> float:
        """D(K) in the cancellation-free form of :func:`bladefl_theory.bound.denominator`."""
        return float(_bound.denominator(k, self.params, self.variant))

    @cached_property
    def canonical_form(self) -> Canonical:
        return canonical(self.params, self.variant)

    @cached_property
    def k_best(self) -> float:
        """The closed form's maximizer of D over [1, t_sum/(alpha+beta)]."""
        return closed_form_maximizer(self.canonical_form, self.lo, self.hi)

    @cached_property
    def feasible(self) -> tuple[float, float] | None:
        return _feasible_interval(self)

    @cached_property
    def bounds(self) -> np.ndarray:
        """The bound at K = 1..K_max (``inf`` where D <= 0)."""
        ks = np.arange(1, self.k_max + 1, dtype=float)
        return np.atleast_1d(np.asarray(_bound.bound_value(ks, self.params, self.variant), dtype=float))


def _feasible_interval(problem: _Problem) -> tuple[float, float] | None:
    D, lo, hi = problem.D, problem.lo, problem.hi
    k_best = problem.k_best
    if not D(k_best) > 0:
        # A safety net for the closed form: the best point of a grid that holds the first integers.
        ks = np.unique(np.concatenate([np.linspace(lo, hi, 257), np.arange(1.0, min(hi, 4096.0) + 1.0)]))
        d = np.asarray(_bound.denominator(ks, problem.params, problem.variant), dtype=float)
        positive = d > 0
        if not positive.any():
            return None
        k_best = float(ks[np.argmax(np.where(positive, d, -np.inf))])
    left = lo if D(lo) > 0 else _crossing(D, lo, k_best)
    right = hi if D(hi) > 0 else _crossing(D, hi, k_best)
    return (left, right)


def _crossing(D, outside: float, inside: float) -> float:
    """The K between ``outside`` (D <= 0) and ``inside`` (D > 0) where D crosses zero (D is concave)."""
    from scipy.optimize import brentq  # a tenth of a second to import; most parameter sets never need it

    lo, hi = sorted((outside, inside))
    return float(brentq(lambda k: _finite(D(k)), lo, hi, xtol=1e-12))


def _finite(v: float) -> float:
    # brentq needs finite values of the right sign; D is -inf (or nan) only where C overflows.
    return -1e300 if math.isnan(v) else min(max(v, -1e300), 1e300)


def feasible_interval(params: Params, variant: str = "per-round") -> tuple[float, float] | None:
    """{K in [1, t_sum/(alpha+beta)] : D(K) > 0} as (lo, hi), or None when it is empty.

    D is evaluated in the cancellation-free form of :func:`bladefl_theory.bound.denominator`,
    the one the integer search uses, so an integer with a finite bound always lies inside.
    """
    _check_variant(variant)
    return _Problem(params, variant).feasible


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class KStarResult:
    """K* for one parameter set and variant, by one method or (method ``auto``) by several.

    ``k_star`` is the integer K* (integer search; None for a continuous method, or when no integer K
    has a finite bound), ``k_star_continuous`` the maximizer of D over the real K range (closed form
    or cvxpy), ``bound`` the bound at the method's K*. With method ``auto``, ``solvers`` holds each
    method's own result and ``solvers_agree`` whether they agree; the answer is the integer search's.
    ``feasible`` and ``bounds`` are computed when first read.
    """

    params: Params
    variant: str
    method: str
    k_star: int | None
    k_star_continuous: float | None
    tau: int | None
    bound: float | None
    k_max: int
    status: int
    message: str
    _problem: _Problem = field(repr=False, compare=False)
    solvers: dict[str, KStarResult] = field(default_factory=dict)
    solvers_agree: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """An optimum was found (status 0, or 1: at an end of the K range)."""
        return self.status in (0, 1)

    @property
    def feasible(self) -> tuple[float, float] | None:
        """{K in [1, t_sum/(alpha+beta)] : D(K) > 0} as (lo, hi), or None when it is empty."""
        return self._problem.feasible

    @property
    def bounds(self) -> np.ndarray:
        """The bound at K = 1..K_max (``inf`` where D <= 0)."""
        return self._problem.bounds

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
            for k, b in enumerate(self.bounds, start=1)
        ]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's ``--json`` output)."""
        ran = self.solvers or {self.method: self}
        closed, conic, integer = (ran.get(m) for m in ("closed-form", "cvxpy", "integer"))
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
                "closed_form": _continuous_dict(closed) if closed else None,
                "cvxpy": _continuous_dict(conic) if conic else None,
                "integer": {"k": integer.k_star, "status": integer.status, "message": integer.message}
                if integer else None,
            },
            "table": self.table(),
            "notes": list(self.notes),
        }


def _continuous_dict(r: KStarResult) -> dict[str, Any]:
    return {"k": r.k_star_continuous, "bound": r.bound, "status": r.status, "message": r.message}


def _result(problem: _Problem, method: str, status: int, message: str, *, k_star: int | None = None,
            k_star_continuous: float | None = None, tau_: int | None = None, bound: float | None = None,
            **rest: Any) -> KStarResult:
    return KStarResult(params=problem.params, variant=problem.variant, method=method, k_star=k_star,
                       k_star_continuous=k_star_continuous, tau=tau_, bound=bound, k_max=problem.k_max,
                       status=status, message=message, _problem=problem, **rest)


# --------------------------------------------------------------------------- the methods


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ParameterError("variant", f"variant must be one of {', '.join(VARIANTS)} (got {variant!r})")


def _continuous(problem: _Problem, method: str, k: float) -> KStarResult:
    d = problem.D(k)
    if not d > 0:
        return _result(problem, method, 2, _explain_infeasible(problem))
    at_end = math.isclose(k, 1.0, rel_tol=0, abs_tol=1e-6) or math.isclose(k, problem.hi, rel_tol=1e-9, abs_tol=1e-6)
    status = 1 if at_end else 0
    return _result(problem, method, status, STATUS[status], k_star_continuous=k, bound=1.0 / d)


def _closed_form(problem: _Problem) -> KStarResult:
    """Continuous K* from dD/dK = 0 solved with Lambert's W (principal branch), clipped to the K range."""
    return _continuous(problem, "closed-form", problem.k_best)


def _cvxpy(problem: _Problem, solver: str | None) -> KStarResult:
    """Continuous K* as an exponential-cone program over the feasible interval.

    Maximize p0 + p1·K − t subject to q·K·exp(a/K) <= t and lo <= K <= hi; restricting K to
    the feasible interval keeps exp(a/K) within what a conic solver handles well.
    """
    from bladefl_platform.errors import require

    cp = require("cvxpy", "cvxpy")  # about a second to import: only the cross-check needs it

    def failed(message: str) -> KStarResult:
        return _result(problem, "cvxpy", 3, message)

    feasible = problem.feasible
    if feasible is None:
        return _result(problem, "cvxpy", 2, _explain_infeasible(problem))
    if feasible[1] - feasible[0] <= 1e-9 * max(1.0, feasible[1]):
        # A single point (t_sum = alpha + beta): nothing to optimize, and conic solvers dislike it.
        return _continuous(problem, "cvxpy", feasible[0])
    c = problem.canonical_form
    K, t = cp.Variable(), cp.Variable()
    # ExpCone(x, y, z) is y·exp(x/y) <= z. With x = a + ln(q)·K and y = K, z bounds
    # q·K·exp(a/K) itself: folding q into the exponent keeps the cone well scaled when q is tiny.
    # Divided by the size of its linear part, the objective is of order one whatever the parameters' scale.
    scale = max(abs(c.p0), abs(c.p1) * feasible[1])
    if not all(math.isfinite(x) for x in (c.p0, c.p1, c.a, c.log_q, scale)) or scale == 0:
        return failed("the canonical coefficients are beyond float range")
    log_q = c.log_q - math.log(scale)
    constraints = [cp.constraints.ExpCone(c.a + log_q * K, K, t), K >= feasible[0], K <= feasible[1]]
    program = cp.Problem(cp.Maximize(c.p0 / scale + (c.p1 / scale) * K - t), constraints)
    chosen = solver or _default_conic_solver(cp)
    try:
        program.solve(solver=chosen)
    except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
        # cvxpy refuses data it cannot scale (ValueError); the cross-check then reports a failed solver.
        return failed(f"{chosen}: {' '.join(str(exc).split())}")
    if program.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or K.value is None:
        return failed(f"{chosen} returned status {program.status}")
    k = float(min(max(float(K.value), feasible[0]), feasible[1]))
    return _continuous(problem, "cvxpy", k)


def _default_conic_solver(cp) -> str:
    installed = cp.installed_solvers()
    for name in ("CLARABEL", "ECOS", "SCS"):
        if name in installed:
            return name
    raise RuntimeError("no exponential-cone solver is installed with cvxpy (need CLARABEL, ECOS or SCS)")


def _integer(problem: _Problem) -> KStarResult:
    """Integer K* = argmin of the bound over K = 1..K_max, with tau local epochs per block."""
    bounds = problem.bounds
    if not np.isfinite(bounds).any():
        return _result(problem, "integer", 2, _explain_no_integer(problem))
    i = int(np.argmin(bounds))
    k = i + 1
    status = 1 if k in (1, problem.k_max) else 0
    p = problem.params
    return _result(problem, "integer", status, STATUS[status], k_star=k, tau_=tau(k, p.t_sum, p.alpha, p.beta),
                   bound=float(bounds[i]))


def _auto(problem: _Problem, check: bool, solver: str | None) -> KStarResult:
    """The integer search's answer, the closed form's continuous K*, and whether they (and cvxpy) agree."""
    closed = _closed_form(problem)
    conic = _cvxpy(problem, solver) if check else None
    integer = _integer(problem)
    agree = _agree(problem, closed, conic, integer)
    notes = []
    if not agree:
        found = ", ".join(
            f"{name} {'-' if k is None else f'{k:.6g}'}"
            for name, k in (("closed form", closed.k_star_continuous),
                            ("cvxpy", conic.k_star_continuous if conic else None), ("integer search", integer.k_star))
            if name != "cvxpy" or conic is not None
        )
        notes.append(f"the solvers disagree ({found}): D is too flat or too steep here for some of them to resolve")
    if problem.variant == "printed":
        notes.append(
            "printed (eq. 6 verbatim): dD/dK does not contain M, sigma2 or theta, so K* does not "
            "depend on them; lazy clients only raise the bound and shrink the feasible interval"
        )
    ran = {"closed-form": closed, **({"cvxpy": conic} if conic else {}), "integer": integer}
    return _result(problem, "auto", integer.status, integer.message, k_star=integer.k_star,
                   k_star_continuous=closed.k_star_continuous, tau_=integer.tau, bound=integer.bound,
                   solvers=ran, solvers_agree=agree, notes=notes)


def _agree(problem: _Problem, closed: KStarResult, conic: KStarResult | None, integer: KStarResult) -> bool:
    agree = closed.success == integer.success
    if closed.success and not integer.success and problem.feasible is not None:
        # A feasible interval can lie strictly between two integers.
        agree = min(math.floor(problem.feasible[1]), integer.k_max) < math.ceil(problem.feasible[0])
    if closed.success and integer.success:
        # D is concave, so the best integer is a neighbour of the continuous maximizer.
        k_c = closed.k_star_continuous
        assert k_c is not None  # a method that succeeded has a K
        agree = integer.k_star in (math.floor(k_c), math.ceil(k_c)) or (
            integer.k_star == integer.k_max and k_c >= integer.k_max
        )
    if conic is not None:
        if closed.success and conic.success:
            assert conic.k_star_continuous is not None and closed.k_star_continuous is not None
            agree = agree and math.isclose(conic.k_star_continuous, closed.k_star_continuous, rel_tol=AGREEMENT_RTOL,
                                           abs_tol=AGREEMENT_RTOL)
        else:
            agree = agree and closed.success == conic.success
    return bool(agree)


def solve_kstar(params: Params, variant: str = "per-round", method: Method = "auto", *, check: bool = False,
                solver: str | None = None) -> KStarResult:
    """K* for ``params`` by one method, or by the closed form and the integer search (``auto``).

    ``closed-form`` and ``cvxpy`` maximize D over the real K range; ``integer`` minimizes the bound over
    K = 1..K_max. ``auto`` answers with the integer K* and the closed form's continuous one and says whether
    they agree; ``check=True`` (``auto`` only) adds cvxpy as a third opinion, which imports cvxpy (a second).
    ``solver`` names cvxpy's conic solver [default: CLARABEL, else ECOS, else SCS].
    """
    _check_variant(variant)
    if method not in METHODS:
        raise ParameterError("method", f"method must be one of {', '.join(METHODS)} (got {method!r})")
    if check and method != "auto":
        raise ParameterError("check", f"check cross-checks method auto with cvxpy (method is {method!r})")
    problem = _Problem(params, variant)
    if method == "closed-form":
        return _closed_form(problem)
    if method == "cvxpy":
        return _cvxpy(problem, solver)
    if method == "integer":
        return _integer(problem)
    return _auto(problem, check, solver)


def kstar(params: Params, variant: str = "per-round", cross_check: bool = True) -> KStarResult:
    """K* for ``params``: the integer answer, the continuous one, and whether the solvers agree.

    :func:`solve_kstar` with method ``auto``; ``cross_check=False`` skips the cvxpy solve (the slowest) for sweeps.
    """
    return solve_kstar(params, variant, "auto", check=cross_check)


# --------------------------------------------------------------------------- what the CLI explains


def finite_integers(params: Params, variant: str = "per-round") -> tuple[int, int] | None:
    """The integers K in 1..K_max with a finite bound, as (first, last), or None.

    They are consecutive: D is concave.
    """
    _check_variant(variant)
    finite = np.flatnonzero(np.isfinite(_Problem(params, variant).bounds)) + 1
    return (int(finite[0]), int(finite[-1])) if finite.size else None


def explain_no_integer(params: Params, variant: str = "per-round") -> str:
    """Why no integer K in 1..K_max has a finite bound (the message of exit status 3)."""
    _check_variant(variant)
    return _explain_no_integer(_Problem(params, variant))


def _explain_no_integer(problem: _Problem) -> str:
    feasible = problem.feasible
    if feasible is None:
        return _explain_infeasible(problem)
    km, variant = problem.k_max, problem.variant
    first, last = max(1, math.ceil(feasible[0])), min(km, math.floor(feasible[1]))
    if first <= last:
        return (
            f"no integer K in 1..{km} gives a finite bound ({variant}): D(K) > 0 for K = {first}..{last}, "
            f"but so small there that the bound 1/D(K) exceeds float range (1.8e308)"
        )
    return (
        f"no integer K in 1..{km} gives a finite bound ({variant}): D(K) > 0 only on "
        f"[{feasible[0]:.4g}, {feasible[1]:.4g}], which holds no integer; {_epsilon_needed(problem)}"
    )


def explain_infeasible(params: Params, variant: str = "per-round") -> str:
    """Why no K has a finite bound: the terms of D at the K where D is largest."""
    _check_variant(variant)
    return _explain_infeasible(_Problem(params, variant))


def _explain_infeasible(problem: _Problem) -> str:
    k, variant = problem.k_best, problem.variant
    t = terms(k, problem.params, variant)
    against = {"divergence": t["divergence"], "lazy": t["lazy"]}
    dominant = max(against, key=lambda name: against[name])
    label = {
        "divergence": "the divergence term (delta·xi·K/L)(lambda^(gamma/K) − 1)/epsilon²",
        "lazy": "the lazy term (xi·M/N·theta + xi·sqrt(M)/N·sigma2)" + (" · K" if variant == "per-round" else "")
        + "/epsilon²",
    }[dominant]
    return (
        f"no K in [1, {problem.hi:.4g}] gives a finite bound ({variant}): at the best K = {k:.4g}, "
        f"divergence {t['divergence']:.4g} + lazy {t['lazy']:.4g} >= progress {t['progress']:.4g} "
        f"(gamma·eta·phi + eta·xi·delta·gamma/epsilon²); {label} dominates; {_epsilon_needed(problem)}"
    )


def _epsilon_needed(problem: _Problem) -> str:
    km, params, variant = problem.k_max, problem.params, problem.variant
    ks = np.arange(1, km + 1)
    needed = float(np.min(_bound.epsilon_threshold(ks, params, variant)))
    if not math.isfinite(needed):
        A, _ = _bound._split(ks, params, variant)
        if not (A > 0).any():
            return "no epsilon gives a finite bound (gamma·eta·phi <= 0 at every K)"
        return (f"no epsilon a float can hold gives a finite bound at any K in 1..{km} "
                "(the divergence term exceeds float range)")
    return f"a finite bound at some K in 1..{km} needs epsilon > {needed:.4g} (it is {params.epsilon:.4g})"
