"""The system and learning parameters of BLADE-FL as one validated, immutable object, and the limits of the inputs.

Light to import (no numpy, sympy or scipy): the command line declares its options from these names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Literal

from bladefl_platform.checks import FINITE, ConstraintError, Interval, Rule, validate

from .system import MAX_N, SYSTEM_CONSTRAINTS, SYSTEM_DEFAULTS, SYSTEM_PARAMETERS, SYSTEM_RULES, System, check_system
from .timemodel import k_max

__all__ = ["Params", "ParameterError", "MAX_K", "MAX_N", "MAX_GRID_POINTS", "SYSTEM_PARAMETERS", "LEARNING_CONSTANTS",
           "SYSTEM_DEFAULTS", "DEFAULT_CONSTANTS", "VARIANTS", "Variant", "SYSTEM_CONSTRAINTS", "LEARNING_CONSTRAINTS",
           "SYSTEM_RULES", "K_MAX_RULE", "check_system"]

#: Constants of the learning problem (Assumption 1, Definition 1, Theorem 1), given by a profile.
LEARNING_CONSTANTS = ("L", "xi", "delta", "epsilon", "phi", "theta")

#: The shipped ``default`` profile's constants (profile_data/default.json), written out so that the defaults need
#: no profile to be read; tests/theory/test_params.py holds the two equal.
DEFAULT_CONSTANTS: dict[str, float] = {"L": 10.0, "xi": 1.0, "delta": 10.0, "epsilon": 1.0, "phi": 5.43994,
                                       "theta": 0.1}
#: The two forms of the paper's bound (:mod:`bladefl_theory.bound`), which a bound profile may name: the lazy term
#: in each of the K rounds, or once, as eq. (6) prints it.
VARIANTS: tuple[str, ...] = ("per-round", "printed")
#: Largest K_max = floor(t_sum/(alpha+beta)): the integer search and the per-K table cover 1..K_max.
MAX_K = 100_000
#: Most grid points of the convexity certificate's numeric check (a few arrays of this many floats).
MAX_GRID_POINTS = 1_000_000

Variant = Literal["per-round", "printed"]

#: The one error of a parameter that breaks a rule (:class:`bladefl_platform.checks.ConstraintError`).
ParameterError = ConstraintError

#: The learning constants' rules: theta may be 0 (no plagiarism), the others not.
LEARNING_CONSTRAINTS: dict[str, list] = {
    **{name: [Real, FINITE, Interval(Real, 0, None, closed="neither")] for name in ("L", "xi", "delta", "epsilon",
                                                                                      "phi")},
    "theta": [Real, FINITE, Interval(Real, 0, None, closed="left")],
}


def _k_max_searchable(v: Mapping[str, Any]) -> str | None:
    km = k_max(v["t_sum"], v["alpha"], v["beta"])
    if km <= MAX_K:
        return None
    return (f"t_sum/(alpha+beta) must be at most {MAX_K}: it is K_max, the number of K the integer search "
            f"and the per-K table cover (got K_max={km if km < 10**15 else f'a {len(str(km))}-digit number'})")


def _lemma1(v: Mapping[str, Any]) -> str | None:
    if v["eta"] * v["L"] < 1:
        return None
    return (f"eta*L must be < 1, Lemma 1's condition (got eta={v['eta']:g}, L={v['L']:g}, "
            f"eta*L={v['eta'] * v['L']:g})")


#: K_max within the integer search's and the per-K table's reach.
K_MAX_RULE = Rule("t_sum", _k_max_searchable)
#: The rules of the theory's parameters beyond the deployment's.
PARAMS_RULES = (K_MAX_RULE, Rule("eta", _lemma1))


def _default(name: str) -> Any:
    return field(default=DEFAULT_CONSTANTS[name])


@dataclass(frozen=True)
class Params(System):
    """The theory's question: a deployment (:class:`~bladefl_theory.system.System`) and the learning constants.

    Defaults are the paper's Section 5.1 settings and the shipped ``default`` profile.
    Every rule is checked on construction and on :meth:`replace`.
    """

    L: float = _default("L")
    xi: float = _default("xi")
    delta: float = _default("delta")
    epsilon: float = _default("epsilon")
    phi: float = _default("phi")
    theta: float = _default("theta")

    def check(self) -> None:
        validate(self.as_dict(), {**SYSTEM_CONSTRAINTS, **LEARNING_CONSTRAINTS}, (*SYSTEM_RULES, *PARAMS_RULES))

    def replace(self, **changes: Any) -> "Params":
        """A copy with some parameters changed, validated again."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise ParameterError(unknown[0], f"unknown parameter {unknown[0]!r}; known: {', '.join(self.names())}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, float | int]:
        """The parameters as a plain dict, in the order of :meth:`names`."""
        return {name: getattr(self, name) for name in self.names()}

    @staticmethod
    def names() -> tuple[str, ...]:
        """Parameter names: system parameters first, then learning constants."""
        return SYSTEM_PARAMETERS + LEARNING_CONSTANTS
