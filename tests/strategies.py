"""Hypothesis strategies for valid BLADE-FL parameters."""

from __future__ import annotations

from hypothesis import strategies as st

from bladefl_theory import Params


@st.composite
def params(draw, lazy: bool = True) -> Params:
    """Valid parameters over wide but realistic ranges (eta·L < 1, t_sum >= alpha + beta)."""
    N = draw(st.integers(2, 100))
    M = draw(st.integers(0, N - 1)) if lazy else 0
    alpha = draw(st.floats(0.1, 5))
    beta = draw(st.floats(0.1, 50))
    t_sum = (alpha + beta) * draw(st.floats(1.000001, 40))
    eta = draw(st.floats(1e-3, 0.5))
    L = draw(st.floats(0.01, 0.99)) / eta
    return Params(
        N=N,
        M=M,
        sigma2=draw(st.floats(0, 1)),
        alpha=alpha,
        beta=beta,
        t_sum=t_sum,
        eta=eta,
        L=L,
        xi=draw(st.floats(0.05, 20)),
        delta=draw(st.floats(0.05, 20)),
        epsilon=draw(st.floats(0.1, 10)),
        phi=draw(st.floats(0.01, 50)),
        theta=draw(st.floats(0, 1)),
    )
