"""The profile an estimate writes: ``NAME.json`` for ``bladefl-theory --profile``, its raw samples beside it.

The profile holds the six constants (6 significant digits) and, in its provenance, what a reader needs
to judge them: the runs (``run``, which :attr:`bladefl_theory.profiles.Profile.system` reads), the
command that regenerates them, eta·L against Lemma 1's condition, each constant's spread, w*'s search
seed by seed, one line per estimator, and notes on what went wrong or depends on a threshold.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from bladefl_platform.atomic import atomic_write_text, check_writable
from bladefl_platform.errors import InputError
from bladefl_theory.profiles import CONSTANT_NAMES

from ...learning.model import make_spec
from .constants import EstimateResult, spread

__all__ = ["ESTIMATORS", "profile_document", "samples_path_for", "check_profile_path", "write_estimate"]

#: How each constant is estimated, as the profile records it (the package's docstrings say why).
ESTIMATORS = {
    "L": "median over the clean runs' (M=0) rounds and seeds of sum_i |D_i| L_i / sum_i |D_i|, "
         "L_i = ||grad F_i(w_i) - grad F_i(w)|| / ||w_i - w||",
    "xi": "same, xi_i = |F_i(w_i) - F_i(w)| / ||w_i - w||",
    "delta": "median over the clean runs' rounds and seeds of sum_i |D_i| ||grad F_i(w) - grad F(w)|| / sum_i |D_i|",
    "theta": "median over lazy clients, rounds and seeds of ||own training - copied model||, the noise excluded "
             "(runs with lazy clients)",
    "phi": "median over seeds of (1 - eta*L/2)/||w0 - w*||^2 (Wang et al.'s square; the paper's Lemma 1 prints none)",
    "epsilon": "median over seeds of min over rounds k of F(w^k) - F(w*) (runs with lazy clients)",
    "when": "after each round's aggregation (the start of the next): w_i = client i's submitted model, "
            "w = the new global model, on client i's data",
}


def profile_document(result: EstimateResult, name: str, command: str | None = None,
                     samples_file: str | None = None) -> dict[str, Any]:
    """The profile JSON content that :func:`bladefl_theory.profiles.load_profile` reads; InputError if a constant
    has no estimate."""
    bad = [n for n in CONSTANT_NAMES if not math.isfinite(result.constants[n])]
    if bad:
        raise InputError(
            f"cannot write a profile: no estimate of {', '.join(bad)}"
            + (" (theta needs lazy clients: M >= 1)" if "theta" in bad and result.config.M == 0 else "")
        )
    c = result.config
    holds = result.eta_L < 1
    provenance: dict[str, Any] = {
        "method": "estimated",
        "command": command,
        "package": "bladefl",
        "version": _package_version(),
        "torch": torch.__version__,
        "dataset": c.dataset,
        "model": c.model if c.model != "mlp" else f"mlp (784-{c.hidden}-10, ReLU)",
        "seeds": list(result.seeds),
        "run": {k: v for k, v in c.as_dict().items() if k != "seed"},
        "eta": c.eta,
        "eta_L": _num(result.eta_L),
        "lemma1_condition_eta_L_lt_1": holds,
        "F_w_star": _num(result.f_star),
        "spread": _spreads(result),
        "optimum": _optimum(result),
        "estimators": ESTIMATORS,
        "notes": _notes(result),
        "wall_seconds": round(result.wall_seconds, 1),
    }
    if samples_file is not None:
        provenance["samples_csv"] = samples_file
    verdict = ("< 1 (Lemma 1's condition holds)." if holds
               else ">= 1: VIOLATES Lemma 1's condition eta*L < 1, so bladefl-theory rejects it at this eta.")
    description = (
        f"Estimated from real runs ({c.dataset}, {c.model}, N={c.N}, K={c.K}, tau={c.tau}, "
        f"|D_i|={c.samples_per_client}, {len(result.seeds)} seed(s)) after Wang et al. 2019: L, xi, delta, phi from "
        f"clean runs (M=0), theta and epsilon from runs with M={c.M}, sigma2={c.sigma2:g}; medians over rounds "
        f"and seeds. eta*L = {result.eta_L:.3g} {verdict}"
    )
    return {"name": name, "description": description,
            "constants": {n: _sig(result.constants[n]) for n in CONSTANT_NAMES}, "provenance": provenance}


def _spreads(result: EstimateResult) -> dict[str, dict[str, Any]]:
    """Each constant's spread, and three more the bound does not use."""
    extra = {
        "theta_with_noise": {**spread(result.samples["theta_submitted"]), "over": result.spreads["theta"]["over"],
                             "note": "distance to the submitted (noisy) model; not used"},
        "epsilon_clean": {**spread(result.per_seed["epsilon_clean"]), "over": f"{len(result.seeds)} seeds",
                          "note": "epsilon of the clean runs (M=0); not used"},
        "xi_grad_norm": {**spread(result.rounds.loc[result.rounds["M"] == 0, "xi_grad_norm"]),
                         "over": result.spreads["xi"]["over"],
                         "note": "weighted mean over honest clients of ||grad F_i(w)||, a pointwise lower bound "
                                 "on the Lipschitz constant; not used"},
    }
    return {n: {k: _num(v) if isinstance(v, float) else v for k, v in s.items()}
            for n, s in {**result.spreads, **extra}.items()}


def _optimum(result: EstimateResult) -> dict[str, Any]:
    """How w* was searched, and what each seed's search reached."""
    opt, c = result.optimum_options, result.config
    spec = make_spec(c.model, c.hidden)
    per_seed = [{
        "seed": int(r["seed"]), "F_w_star": _num(r["F_w_star"]), "distance_w0_w_star": _num(r["distance"]),
        "grad_norm": _num(r["grad_norm"]), "iterations": int(r["iterations"]), "evaluations": int(r["evaluations"]),
        "restarts": int(r["restarts"]), "stopped_by": r["reason"], "converged": bool(r["converged"]),
        "epsilon": _num(r["epsilon"]), "epsilon_clean": _num(r["epsilon_clean"]), "phi": _num(r["phi"]),
        "path": [[int(i), _num(f), _num(d)] for i, f, d in r["path"]],
    } for _, r in result.per_seed.iterrows()]
    return {"method": opt.describe(spec), "options": {**dataclasses.asdict(opt), "dtype": opt.dtype_for(spec)},
            "F_w_star_median": _num(result.f_star), "interpolates": _interpolates(result), "per_seed": per_seed}


def _interpolates(result: EstimateResult) -> bool:
    return bool(result.per_seed["interpolates"].all())


def _notes(result: EstimateResult) -> list[str]:
    """What a reader of these constants must know beyond how they are estimated: each only where it applies."""
    notes = []
    if _interpolates(result):
        notes.append(
            "The union of the clients' data is interpolated (training loss -> 0: separable for logreg): "
            "cross-entropy has no finite minimizer, and w* is the first L-BFGS iterate with "
            f"F <= {result.optimum_options.loss_floor:g}; ||w0 - w*|| and so phi depend on that threshold "
            "(see optimum.per_seed[].path)."
        )
    unconverged = [int(s) for s, ok in zip(result.per_seed["seed"], result.per_seed["converged"]) if not ok]
    if unconverged:
        notes.append(
            f"The search for w* did not converge for seed(s) {unconverged} (see optimum.per_seed[].stopped_by): "
            "there F(w*) over-estimates inf F, so epsilon is under-estimated, and ||w0 - w*|| is a lower bound."
        )
    if result.constants["phi"] <= 0:
        notes.append("phi <= 0 because eta*L >= 2: the bound cannot be finite.")
    return notes


def _package_version() -> str:
    """The toolkit's ``__version__`` (defined once, in bladefl_theory; the distribution's version if the package is
    imported as a namespace, as a stale editable install does)."""
    import bladefl_theory

    found = getattr(bladefl_theory, "__version__", None)
    if found is None:
        from importlib.metadata import version

        found = version("bladefl")
    return str(found)


def _sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def _num(x: Any) -> float | None:
    """A JSON-safe number: None for NaN or infinity, 6 significant digits otherwise."""
    x = float(x)
    return _sig(x) if math.isfinite(x) else None


def samples_path_for(profile_path: str | Path) -> Path:
    """``NAME.samples.csv`` beside ``NAME.json``."""
    p = Path(profile_path)
    stem = p.name[: -len(".json")] if p.name.endswith(".json") else p.name
    return p.with_name(stem + ".samples.csv")


def check_profile_path(out: str | Path) -> Path:
    """``out`` as a Path if a profile JSON file (``NAME.json``, not a folder) and its samples CSV can be written
    there; InputError otherwise. Checked before anything is computed; creates nothing."""
    out = Path(out)
    if not out.name.endswith(".json") or out.name == ".json":
        raise InputError(f"--out must name a .json file (got {str(out)!r})")
    if out.is_dir():
        raise InputError(f"--out {str(out)!r} is a folder; give a .json file path")
    samples = samples_path_for(out)
    if samples.is_dir():
        raise InputError(f"{samples} is a folder, and --out {str(out)!r} writes its samples there")
    folder = Path(os.path.abspath(out)).parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"--out {str(out)!r}: cannot write there ({folder} is not a folder)")
    check_writable(folder, out)
    return out


def write_estimate(
    result: EstimateResult, out: str | Path, name: str | None = None, command: str | None = None
) -> tuple[Path, Path]:
    """Write the profile JSON at ``out`` (a ``.json`` path) and the raw samples CSV beside it, each atomically.

    Returns ``(profile_path, samples_path)``. The CSV is written first, so a profile never names a missing file.
    """
    out = check_profile_path(out)
    samples_path = samples_path_for(out)
    profile = profile_document(result, name or out.name[: -len(".json")], command, samples_path.name)
    text = json.dumps(profile, indent=2, allow_nan=False) + "\n"
    atomic_write_text(samples_path, result.samples.to_csv(index=False, float_format="%.9g"))
    atomic_write_text(out, text)
    return out, samples_path
