"""The system and learning parameters of BLADE-FL as one validated, immutable object, and the limits of the inputs.

Light to import (no numpy, sympy or scipy): the command line declares its options from these names.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

from bladefl_platform.errors import InputError

from .profiles import load_profile
from .timemodel import k_max

__all__ = ["Params", "ParameterError", "MAX_K", "MAX_N", "MAX_GRID_POINTS", "SYSTEM_PARAMETERS", "LEARNING_CONSTANTS",
           "SYSTEM_DEFAULTS", "VARIANTS", "Variant", "check_system"]

#: Parameters that describe the deployment (paper, Section 5.1 defaults).
SYSTEM_PARAMETERS = ("N", "M", "sigma2", "alpha", "beta", "t_sum", "eta")
#: Constants of the learning problem (Assumption 1, Definition 1, Theorem 1), given by a profile.
LEARNING_CONSTANTS = ("L", "xi", "delta", "epsilon", "phi", "theta")

_DEFAULT_CONSTANTS = load_profile("default").constants
#: Largest N: the bound is computed in floating point, which holds integers exactly up to 2**53.
MAX_N = 2**53
#: Largest K_max = floor(t_sum/(alpha+beta)): the integer search and the per-K table cover 1..K_max.
MAX_K = 100_000
#: Most grid points of the convexity certificate's numeric check (a few arrays of this many floats).
MAX_GRID_POINTS = 1_000_000

Variant = Literal["per-round", "printed"]
#: The two forms of the paper's bound (:mod:`bladefl_theory.bound`): the lazy term in each of the K rounds,
#: or once, as eq. (6) prints it.
VARIANTS: tuple[str, ...] = ("per-round", "printed")

#: The paper's Section 5.1 settings, the defaults of both packages.
SYSTEM_DEFAULTS: dict[str, Any] = {"N": 20, "M": 0, "sigma2": 0.01, "alpha": 1.0, "beta": 10.0, "t_sum": 100.0,
                                   "eta": 0.01}


class ParameterError(InputError):
    """A parameter breaks one of the rules; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


def _default(name: str) -> Any:
    return field(default=_DEFAULT_CONSTANTS[name])


@dataclass(frozen=True)
class Params:
    """N clients, M of them lazy, noise variance sigma2, the time model and the learning constants.

    Defaults are the paper's Section 5.1 settings and the shipped ``default`` profile.
    Every rule is checked on construction and on :meth:`replace`.
    """

    N: int = SYSTEM_DEFAULTS["N"]
    M: int = SYSTEM_DEFAULTS["M"]
    sigma2: float = SYSTEM_DEFAULTS["sigma2"]
    alpha: float = SYSTEM_DEFAULTS["alpha"]
    beta: float = SYSTEM_DEFAULTS["beta"]
    t_sum: float = SYSTEM_DEFAULTS["t_sum"]
    eta: float = SYSTEM_DEFAULTS["eta"]
    L: float = _default("L")
    xi: float = _default("xi")
    delta: float = _default("delta")
    epsilon: float = _default("epsilon")
    phi: float = _default("phi")
    theta: float = _default("theta")

    def __post_init__(self) -> None:
        check_system(self.N, self.M, self.sigma2, self.alpha, self.beta, self.t_sum, self.eta)
        km = k_max(self.t_sum, self.alpha, self.beta)
        if km > MAX_K:
            raise ParameterError(
                "t_sum",
                f"t_sum/(alpha+beta) must be at most {MAX_K}: it is K_max, the number of K the integer search "
                f"and the per-K table cover (got K_max={km})",
            )
        value = _check_real(self.theta, "theta")
        if value < 0:
            raise ParameterError("theta", f"theta must be >= 0 (got {value:g})")
        for name in ("L", "xi", "delta", "epsilon", "phi"):
            value = _check_real(getattr(self, name), name)
            if value <= 0:
                raise ParameterError(name, f"{name} must be > 0 (got {value:g})")
        if self.eta * self.L >= 1:
            raise ParameterError(
                "eta",
                f"eta*L must be < 1, Lemma 1's condition (got eta={self.eta:g}, L={self.L:g}, "
                f"eta*L={self.eta * self.L:g})",
            )

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


def check_system(N: Any, M: Any, sigma2: Any, alpha: Any, beta: Any, t_sum: Any, eta: Any) -> None:
    """Check the deployment parameters (the rules shared by the theory and the simulator)."""
    _check_int(N, "N")
    if N < 2:
        raise ParameterError("N", f"N must be an integer >= 2 (got {N})")
    if N > MAX_N:
        raise ParameterError("N", f"N must be at most 2**53 = {MAX_N}, the integers a float holds exactly "
                                  f"(got {_short(N)})")
    _check_int(M, "M")
    if not 0 <= M <= N - 1:
        raise ParameterError(
            "M",
            f"M must satisfy 0 <= M <= N-1 = {N - 1}, since a lazy client needs an honest one to copy "
            f"(got M={_short(M)})",
        )
    value = _check_real(sigma2, "sigma2")
    if value < 0:
        raise ParameterError("sigma2", f"sigma2 must be >= 0 (got {value:g})")
    for name, v in (("alpha", alpha), ("beta", beta), ("t_sum", t_sum), ("eta", eta)):
        value = _check_real(v, name)
        if value <= 0:
            raise ParameterError(name, f"{name} must be > 0 (got {value:g})")
    if k_max(t_sum, alpha, beta) < 1:
        raise ParameterError(
            "t_sum",
            f"t_sum must be >= alpha + beta = {alpha + beta:g}, room for one block with one local epoch "
            f"(got t_sum={t_sum:g})",
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _check_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(name, f"{name} must be an integer (got {_short(value)})")


def _check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(name, f"{name} must be a number (got {_short(value)})")
    if not math.isfinite(value):
        raise ParameterError(name, f"{name} must be finite (got {value!r})")
    return float(value)
