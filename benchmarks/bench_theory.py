"""Speed of the theory: K* per call for each solver, and bound evaluations per second on a grid.

Run: python benchmarks/bench_theory.py [--json]. Warm-up first, then the median of several repetitions.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

from bladefl_theory import Params
from bladefl_theory import bound as B
from bladefl_theory.solvers import solve_kstar


def per_call(fn, calls: int, repeats: int = 5) -> float:
    """Median seconds per call over ``repeats`` batches of ``calls`` calls, after a warm-up batch."""
    for _ in range(max(1, calls // 10)):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times)


def kstar_per_call(p: Params, method: str, calls: int, repeats: int = 5) -> float:
    """Median seconds per ``solve_kstar(p, method=method)`` call (see :func:`per_call`)."""
    return per_call(lambda: solve_kstar(p, method=method), calls, repeats)


def grid_rate(points: int = 1_000_000, repeats: int = 5) -> float:
    """Bound evaluations per second over a (K, M, sigma2) grid of about ``points`` points."""
    base = Params().as_dict()
    K = np.linspace(1, 9, 100)[:, None, None]
    M = np.arange(0, 20, dtype=float)[None, :, None]
    s2 = np.linspace(0, 0.5, points // (100 * 20))[None, None, :]
    grid = {**base, "M": M, "sigma2": s2}
    n = np.broadcast_shapes(K.shape, M.shape, s2.shape)
    B.bound_value(K, grid)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        B.bound_value(K, grid)
        times.append(time.perf_counter() - t0)
    return int(np.prod(n)) / statistics.median(times)


def run() -> dict:
    p = Params(M=4, sigma2=0.1)
    return {
        "kstar_closed_form_us": kstar_per_call(p, "closed-form", 2000) * 1e6,
        "kstar_integer_us": kstar_per_call(p, "integer", 500) * 1e6,
        "kstar_cvxpy_ms": kstar_per_call(p, "cvxpy", 20, repeats=3) * 1e3,
        "grid_points_per_s": grid_rate(),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run()
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:24s} {v:.4g}" if isinstance(v, float) else f"{k:24s} {v}")


if __name__ == "__main__":
    main()
