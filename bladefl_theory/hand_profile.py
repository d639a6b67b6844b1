"""The hand-calibrated ``default`` profile: constants set by hand, phi solved so that the per-round K* is 7.

It reproduces the paper's Fig. 3 value of K* and nothing measured: the profiles estimated from runs
(``mnist-mlp`` ...) and calibrated on measured sweeps (``mnist-mlp-calibrated`` ...) are the measured ones.
``python -m bladefl_theory.hand_profile --out DIR`` writes ``DIR/default.json`` (the shipped copy is
``bladefl_theory/profile_data/default.json``; a test checks that it is what this module computes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from scipy.optimize import brentq

from .params import Params
from .solvers import solve_kstar

#: Hand-set constants: eta·L = 0.1 at the paper's eta, and theta of the order of the paper's sigma2 (Remark 2).
HAND_SET = {"L": 10.0, "xi": 1.0, "delta": 10.0, "epsilon": 1.0, "theta": 0.1}
#: The paper's Fig. 3 value of K* at its defaults (N=20, M=0, alpha=1, beta=10, t_sum=100, eta=0.01).
TARGET_K = 7.0


def calibrate_phi(target_k: float = TARGET_K, **fixed: Any) -> float:
    """phi that puts the continuous per-round K* at ``target_k`` (paper defaults, M = 0)."""

    def gap(phi: float) -> float:
        r = solve_kstar(Params(M=0, phi=phi, **fixed), "per-round", method="closed-form")
        return (r.k_star_continuous if r.k_star_continuous is not None else 0.0) - target_k

    # K* falls as phi grows (more weight on gamma, i.e. on training): bracket and bisect.
    return brentq(gap, 1e-3, 1e3, xtol=1e-12)


def default_profile() -> dict:
    """The ``default`` profile's JSON content."""
    phi = float(f"{calibrate_phi(**HAND_SET):.6g}")
    return {
        "name": "default",
        "description": "Hand-set constants with phi calibrated, not estimated from data: the per-round K* at "
        "the paper's defaults (N=20, M=0, alpha=1, beta=10, t_sum=100, eta=0.01) is 7, the paper's Fig. 3 value.",
        "constants": {**HAND_SET, "phi": phi},
        "provenance": {
            "method": "calibrated",
            "hand_set": sorted(HAND_SET),
            "calibrated": {"phi": f"continuous per-round K* = {TARGET_K:g} at the paper's defaults "
                                  "(brentq on the closed form)"},
            "command": "python -m bladefl_theory.hand_profile --out bladefl_theory/profile_data",
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the hand-calibrated default profile as DIR/default.json.")
    parser.add_argument("--out", type=Path, required=True, help="folder to write default.json into")
    args = parser.parse_args(argv)
    from bladefl_platform.atomic import atomic_write_text

    target = args.out / "default.json"
    atomic_write_text(target, json.dumps(default_profile(), indent=2) + "\n")
    sys.stdout.write(f"wrote {target}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
