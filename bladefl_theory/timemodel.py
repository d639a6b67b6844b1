"""The paper's time model (eq. 4): K blocks share t_sum between training and mining; Lemma 1's shorthands.

K·tau·alpha + K·beta = t_sum. This module is the one definition of K_max, tau, gamma and lambda: the
bound's sympy expressions and its numeric evaluation (:mod:`bladefl_theory.bound`) and the simulator
(``bladefl_validate``) use it.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["k_max", "k_max_continuous", "tau", "taus", "gamma", "lam", "virtual_round_time"]


def _exact(x: float) -> Fraction:
    # Users type decimals: 0.3/0.1 must floor to 3, not to 2 as binary floats would.
    return Fraction(repr(float(x)))


def _floor_div(num: Fraction, den: Fraction) -> int:
    return math.floor(num / den)


def k_max(t_sum: float, alpha: float, beta: float) -> int:
    """Largest number of blocks that leaves at least one local epoch per block."""
    return _floor_div(_exact(t_sum), _exact(alpha) + _exact(beta))


def k_max_continuous(t_sum: float, alpha: float, beta: float) -> float:
    """Right end of the continuous K range: t_sum/(alpha+beta), where tau = 1."""
    return float(_exact(t_sum) / (_exact(alpha) + _exact(beta)))


def tau(K: int, t_sum: float, alpha: float, beta: float) -> int:
    """Whole local epochs per block when K blocks are generated: floor((t_sum − K·beta)/(K·alpha))."""
    if K < 1:
        raise ValueError(f"K must be at least 1 (got {K})")
    return _floor_div(_exact(t_sum) - K * _exact(beta), K * _exact(alpha))


def taus(ks: "np.ndarray", t_sum: float, alpha: float, beta: float) -> "np.ndarray":
    """:func:`tau` at many K at once, as floats (exact: K whose quotient lies near a whole number are redone exactly).

    A quotient beyond float range is ``inf``.
    """
    import numpy as np  # light to import otherwise: the command line reads K_max before it needs numpy

    ks = np.asarray(ks, dtype=float)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        q = (float(t_sum) - ks * float(beta)) / (ks * float(alpha))
        near = np.flatnonzero(~np.isfinite(q) | (np.abs(q - np.round(q)) <= 1e-9 * np.maximum(1.0, np.abs(q))))
    out = np.floor(q)
    for i in near:
        exact = tau(int(ks[i]), t_sum, alpha, beta)
        out[i] = float(exact) if exact.bit_length() <= 1023 else math.inf
    return out


def gamma(K, t_sum, alpha, beta):
    """Total local iterations gamma = (t_sum − K·beta)/alpha, as printed in Lemma 1.

    Arithmetic only, so the arguments may be numbers, numpy arrays or sympy symbols.
    """
    return (t_sum - K * beta) / alpha


def lam(eta, L):
    """Lemma 1's lambda = eta·L + 1, the growth of the divergence per local epoch (numbers or sympy symbols)."""
    return eta * L + 1


def virtual_round_time(tau_: int, alpha: float, beta: float) -> float:
    """Virtual time one round takes: tau local epochs then one mined block."""
    return tau_ * alpha + beta
