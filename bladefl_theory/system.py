"""The deployment both packages describe: N clients, M of them lazy, the lazy noise sigma2 and the time model.

:class:`System` holds the seven settings, their defaults (the paper's Section 5.1) and their rules, declared once as
:mod:`bladefl_platform.checks` constraints. The theory's question (:class:`~bladefl_theory.params.Params`) and the
validator's run (:class:`bladefl_validate.config.RunConfig`) are each a System with more fields; a run's |D_i|,
batch, model and partition are the run's own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from bladefl_platform.checks import FINITE, Interval, Rule, shown, validate

from .timemodel import k_max

__all__ = ["System", "SYSTEM_PARAMETERS", "SYSTEM_DEFAULTS", "SYSTEM_CONSTRAINTS", "SYSTEM_RULES", "MAX_N",
           "check_system"]

#: Largest N: the bound is computed in floating point, which holds integers exactly up to 2**53.
MAX_N = 2**53

#: The deployment's rules, per parameter (the theory's and the simulator's).
SYSTEM_CONSTRAINTS: dict[str, list] = {
    "N": [Integral, Interval(Integral, 2, None, closed="left"),
          Interval(Integral, None, MAX_N, text=f"at most 2**53 = {MAX_N}", why=", the integers a float holds exactly")],
    "M": [Integral],
    "sigma2": [Real, FINITE, Interval(Real, 0, None, closed="left")],
    **{name: [Real, FINITE, Interval(Real, 0, None, closed="neither")] for name in ("alpha", "beta", "t_sum", "eta")},
}


def _lazy_below_n(v: Mapping[str, Any]) -> str | None:
    if 0 <= v["M"] <= v["N"] - 1:
        return None
    return (f"M must satisfy 0 <= M <= N-1 = {v['N'] - 1}, since a lazy client needs an honest one to copy "
            f"(got M={shown(v['M'])})")


def _one_block(v: Mapping[str, Any]) -> str | None:
    if k_max(v["t_sum"], v["alpha"], v["beta"]) >= 1:
        return None
    return (f"t_sum must be >= alpha + beta = {v['alpha'] + v['beta']:g}, room for one block with one local epoch "
            f"(got t_sum={v['t_sum']:g})")


#: The rules between the deployment's parameters.
SYSTEM_RULES = (Rule("M", _lazy_below_n), Rule("t_sum", _one_block))


@dataclass(frozen=True)
class System:
    """N clients, M of them lazy, noise variance sigma2, and the time model (alpha, beta, t_sum, eta).

    Defaults are the paper's Section 5.1 settings. Every rule is checked on construction; a subclass that adds
    fields checks them together with these (:meth:`check`).
    """

    N: int = 20
    M: int = 0
    sigma2: float = 0.01
    alpha: float = 1.0
    beta: float = 10.0
    t_sum: float = 100.0
    eta: float = 0.01

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """ConstraintError unless the deployment keeps its rules (a subclass checks its own fields too)."""
        validate(self.system(), SYSTEM_CONSTRAINTS, SYSTEM_RULES)

    def system(self) -> dict[str, Any]:
        """The seven deployment settings by name, in the order of :data:`SYSTEM_PARAMETERS`."""
        return {name: getattr(self, name) for name in SYSTEM_PARAMETERS}


#: The deployment's parameters, in order.
SYSTEM_PARAMETERS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(System))
#: The paper's Section 5.1 settings, the defaults of both packages.
SYSTEM_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(System)}


def check_system(N: Any, M: Any, sigma2: Any, alpha: Any, beta: Any, t_sum: Any, eta: Any) -> None:
    """Check the deployment parameters (the rules shared by the theory and the simulator)."""
    System(N=N, M=M, sigma2=sigma2, alpha=alpha, beta=beta, t_sum=t_sum, eta=eta)
