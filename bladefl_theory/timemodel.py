"""The paper's time model (eq. 4): K blocks share t_sum between training and mining.

K·tau·alpha + K·beta = t_sum. This module is the one definition of K_max, tau and gamma;
the simulator (``bladefl_validate``) uses it too.
"""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = ["k_max", "k_max_continuous", "tau", "gamma", "virtual_round_time"]


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


def gamma(K, t_sum, alpha, beta):
    """Total local iterations gamma = (t_sum − K·beta)/alpha, as printed in Lemma 1 (K may be an array)."""
    return (t_sum - K * beta) / alpha


def virtual_round_time(tau_: int, alpha: float, beta: float) -> float:
    """Virtual time one round takes: tau local epochs then one mined block."""
    return tau_ * alpha + beta
