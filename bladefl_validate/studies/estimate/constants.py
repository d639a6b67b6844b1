"""The six constants and their spread, from the rows every seed of an estimate recorded.

A round's L and xi are the |D_i|-weighted means over its honest clients, its delta the weighted mean of
delta_i over all; L, xi and delta are the medians of the clean runs' (M = 0) rounds over rounds and seeds
(with lazy clients the noisy copies enter the global model w, ‖w_i − w‖ is dominated by that noise, and
the ratios measure the loss along a random direction: on MNIST's MLP, L about ten times too small).
theta is the median over lazy clients, rounds and seeds of the runs with lazy clients. Per seed,
``phi = (1 − eta·L/2) / ‖w0 − w*‖²`` (Wang et al.'s omega = 1/‖w0 − w*‖²; the paper's Lemma 1 prints no
square) and ``epsilon`` = the minimum over rounds of F(w^k) − F(w*) in the run with lazy clients (Wang et
al.'s proof needs F(w) − F(w*) ≥ epsilon along the run); each the median over seeds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bladefl_platform.errors import InputError
from bladefl_platform.execution import Execution, run_tasks
from bladefl_platform.store import ResultStore
from bladefl_theory.profiles import CONSTANT_NAMES

from ...config import RunConfig
from ...optimum import OptimumOptions
from ...tasks import task_context
from .observer import ESTIMATE, SAMPLE_COLUMNS, estimate_seed

__all__ = ["EstimateResult", "spread", "estimate_configs", "estimate_result", "estimate_constants"]


def spread(values: Sequence[float] | pd.Series | np.ndarray) -> dict[str, float | int | None]:
    """Median, quartiles, IQR, min, max and count of the finite values (None where there are none)."""
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"median": None, "q1": None, "q3": None, "iqr": None, "min": None, "max": None, "n": 0}
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {
        "median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
        "min": float(a.min()), "max": float(a.max()), "n": int(a.size),
    }


def _weighted(df: pd.DataFrame, column: str) -> float:
    ok = np.isfinite(df[column].to_numpy(dtype=float))
    if not ok.any():
        return float("nan")
    return float(np.average(df[column].to_numpy(dtype=float)[ok], weights=df["samples"].to_numpy(dtype=float)[ok]))


@dataclass(frozen=True)
class EstimateResult:
    """Raw samples, per-round and per-seed values, and the six constants with their spread."""

    config: RunConfig  # the run settings (its seed is the first seed's)
    seeds: list[int]
    samples: pd.DataFrame  # one row per (seed, round, client): SAMPLE_COLUMNS
    rounds: pd.DataFrame  # one row per (seed, round): weighted L, xi, delta; median theta; F(w^k) and the gap
    per_seed: pd.DataFrame  # one row per seed: w*, ‖w0 − w*‖, F(w*), epsilon, phi
    constants: dict[str, float]
    spreads: dict[str, dict[str, Any]]
    optimum_options: OptimumOptions
    wall_seconds: float

    @property
    def eta_L(self) -> float:
        return self.config.eta * self.constants["L"]

    @property
    def f_star(self) -> float:
        """Median over seeds of F(w*)."""
        return float(self.per_seed["F_w_star"].median())

    def summary(self) -> pd.DataFrame:
        """A row per constant: the estimate (median) and its spread."""
        rows = []
        for name in CONSTANT_NAMES:
            s = self.spreads[name]
            rows.append({"constant": name, "estimate": self.constants[name],
                         **{k: s[k] for k in ("q1", "q3", "iqr", "min", "max", "n")}, "over": s["over"]})
        return pd.DataFrame(rows).set_index("constant")


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    out = list(seeds)
    if not out:
        raise InputError("need at least one seed")
    for s in out:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise InputError(f"seeds must be non-negative integers (got {s!r})")
    if len(set(out)) != len(out):
        raise InputError(f"seeds must be distinct (got {out})")
    return [int(s) for s in out]


def estimate_constants(
    config: RunConfig,
    seeds: Sequence[int],
    data_dir: str | Path | None = None,
    *,
    optimum: OptimumOptions = OptimumOptions(),
    dtype: torch.dtype = torch.float64,
    progress: Callable[[str], None] | None = None,
    execution: Execution | None = None,
    store: ResultStore | None = None,
) -> EstimateResult:
    """Run ``config`` and its clean twin (M = 0) once per seed, observe every round, find w* per seed, and
    estimate the six constants: L, xi, delta and phi from the clean runs, theta and epsilon from ``config``'s.

    With ``execution`` the seeds run as tasks through dask.distributed, each recorded in ``store`` (a seed
    already there is not run again); without, in this process.

    ``config.seed`` is replaced by each seed in turn. Each run's ledger and blobs live in memory, as long as
    the run. ``progress`` receives one-line messages (in this process only).
    """
    t_start = time.perf_counter()
    configs = estimate_configs(config, seeds, optimum, dtype)
    context = task_context(data_dir)
    if execution is None:
        outcomes = [estimate_seed(c, {**context, "progress": progress}) for c in configs]
    else:
        outcomes = run_tasks(ESTIMATE, configs, store, context, execution, "estimate").results
    return estimate_result(config, seeds, optimum, outcomes, time.perf_counter() - t_start)


def estimate_configs(config: RunConfig, seeds: Sequence[int], optimum: OptimumOptions = OptimumOptions(),
                     dtype: torch.dtype = torch.float64) -> list[dict[str, Any]]:
    """The tasks of an estimate (:data:`~bladefl_validate.studies.estimate.observer.ESTIMATE`), one per seed:
    everything that decides a seed's result, so that the store keys it."""
    if not isinstance(config, RunConfig):
        raise InputError(f"config must be a RunConfig (got {type(config).__name__})")
    return [{"run": config.replace(seed=seed).as_dict(), "optimum": dataclasses.asdict(optimum),
             "dtype": str(dtype).removeprefix("torch.")} for seed in _check_seeds(seeds)]


def estimate_result(config: RunConfig, seeds: Sequence[int], optimum: OptimumOptions, outcomes: Sequence[dict],
                    wall_seconds: float) -> EstimateResult:
    """The six constants and their spread from the seeds' tasks' results (:func:`estimate_seed`), in seed order."""
    seed_list = _check_seeds(seeds)
    rows = [r for o in outcomes for r in o["rows"]]
    seed_rows = [o["seed_row"] for o in outcomes]

    samples = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    round_rows = []
    for (seed, M, k), g in samples.groupby(["seed", "M", "round"], sort=True):
        honest = g[~g["lazy"]]
        lazy = g[g["lazy"]]
        round_rows.append({
            "seed": seed, "M": M, "round": k, "L": _weighted(honest, "L"), "xi": _weighted(honest, "xi"),
            "delta": _weighted(g, "delta"), "xi_grad_norm": _weighted(honest, "grad_norm"),
            "theta": float(lazy["theta"].median()) if len(lazy) else float("nan"),
            "theta_submitted": float(lazy["theta_submitted"].median()) if len(lazy) else float("nan"),
            "global_train_loss": float(g["global_train_loss"].iloc[0]), "gap": float(g["gap"].iloc[0]),
        })
    rounds = pd.DataFrame(round_rows)
    per_seed = pd.DataFrame(seed_rows)

    clean = rounds[rounds["M"] == 0]
    over_rounds = f"{len(clean)} rounds of the clean runs, M=0 ({config.K} per seed x {len(seed_list)} seeds)"
    spreads: dict[str, dict[str, Any]] = {
        "L": {**spread(clean["L"]), "over": over_rounds},
        "xi": {**spread(clean["xi"]), "over": over_rounds},
        "delta": {**spread(clean["delta"]), "over": over_rounds},
        "theta": {**spread(samples.loc[samples["lazy"], "theta"]),
                  "over": f"lazy clients x rounds x seeds of the runs with M={config.M}"},
    }
    constants = {n: (spreads[n]["median"] if spreads[n]["median"] is not None else float("nan"))
                 for n in ("L", "xi", "delta", "theta")}
    L = constants["L"]
    per_seed["phi"] = [(1 - config.eta * L / 2) / d**2 if d > 0 else float("nan") for d in per_seed["distance"]]
    spreads["phi"] = {**spread(per_seed["phi"]), "over": f"{len(seed_list)} seeds"}
    spreads["epsilon"] = {**spread(per_seed["epsilon"]),
                          "over": f"{len(seed_list)} seeds "
                                  f"(each the minimum over the rounds of its run with M={config.M})"}
    for n in ("phi", "epsilon"):
        constants[n] = spreads[n]["median"] if spreads[n]["median"] is not None else float("nan")
    return EstimateResult(
        config=config.replace(seed=seed_list[0]),
        seeds=seed_list,
        samples=samples,
        rounds=rounds,
        per_seed=per_seed,
        constants={n: float(constants[n]) for n in CONSTANT_NAMES},
        spreads=spreads,
        optimum_options=optimum,
        wall_seconds=wall_seconds,
    )
