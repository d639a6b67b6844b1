"""What one seed of an estimate records: its runs observed every round, and its w*.

:func:`~bladefl_validate.simulation.simulate` runs unchanged; an :class:`Observer` receives each round's
state and keeps one row per client (:data:`SAMPLE_COLUMNS`), so the estimates come from exactly the
runs ``bladefl-validate run`` makes with the same seeds. Every seed runs twice, with the same partition,
initial model w0 and w*: once *clean* (M = 0), for Lemma 1's constants, and once as configured (M lazy
clients at sigma2), for theta and epsilon. :func:`estimate_seed` is one seed's stored task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from bladefl_platform.execution import TaskKind, one_by_one

from ...config import SIMULATION_VERSION, RunConfig
from ...optimum import OptimumOptions, find_optimum
from ...simulation import RoundState, simulate
from ...tasks import torch_threads
from .estimators import client_estimates, lazy_theta

__all__ = ["SAMPLE_COLUMNS", "Observer", "estimate_seed", "ESTIMATE"]

#: The columns of a seed's rows (and of :attr:`EstimateResult.samples`), one row per (seed, round, client);
#: ``gap`` is F(w^k) − F(w*), filled in once w* is found.
SAMPLE_COLUMNS = ("seed", "M", "round", "client", "lazy", "source", "samples", "distance", "L", "xi", "delta",
                  "grad_norm", "theta", "theta_submitted", "loss_local", "loss_global", "global_train_loss", "gap")


def _theta_generator(seed: int, round_: int) -> torch.Generator:
    """A generator for the lazy clients' counterfactual training, apart from the run's own stream."""
    state = np.random.SeedSequence([seed, round_, 0x7E7A]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


class Observer:
    """Receives every round's state of one run and keeps the per-client samples."""

    def __init__(self, seed: int, M: int, dtype: torch.dtype, progress: Callable[[str], None] | None):
        self.seed = seed
        self.M = M
        self.dtype = dtype
        self.progress = progress
        self.rows: list[dict[str, Any]] = []
        self.w0: torch.Tensor | None = None
        self.state: RoundState | None = None

    def __call__(self, s: RoundState) -> None:
        if s.round == 1:
            self.w0 = s.w_start.detach().clone()
        self.state = s
        c = s.config
        est = client_estimates(s.spec, s.W, s.w, s.X, s.Y, dtype=self.dtype)
        theta = torch.full((c.N,), float("nan"), dtype=torch.float64)
        theta_sub = theta.clone()
        source = torch.full((c.N,), -1, dtype=torch.int64)
        if len(s.lazy):
            lazy_ids = s.lazy.to(s.W.device)
            t, ts = lazy_theta(
                s.spec, s.w_start, s.W[s.sources.to(s.W.device)], s.W[lazy_ids], s.X[lazy_ids], s.Y[lazy_ids],
                c.tau, c.eta, c.batch_size, _theta_generator(self.seed, s.round),
            )
            theta[s.lazy] = t.cpu()
            theta_sub[s.lazy] = ts.cpu()
            source[s.lazy] = s.sources.cpu()
        lazy_mask = torch.zeros(c.N, dtype=torch.bool)
        lazy_mask[s.lazy] = True
        cols = {name: getattr(est, name).detach().cpu().numpy() for name in
                ("distance", "L", "xi", "delta", "grad_norm", "loss_local", "loss_global")}
        m = int(s.X.shape[1])
        for i in range(c.N):
            self.rows.append({
                "seed": self.seed, "M": self.M, "round": s.round, "client": i, "lazy": bool(lazy_mask[i]),
                "source": int(source[i]),
                "samples": m, **{k: float(v[i]) for k, v in cols.items()},
                "theta": float(theta[i]), "theta_submitted": float(theta_sub[i]),
                "global_train_loss": float(s.global_train_loss),
            })
        if self.progress is not None:
            honest = ~lazy_mask.numpy()
            lazy_part = f", theta {np.nanmedian(theta.numpy()):.4g}" if len(s.lazy) else ""
            self.progress(
                f"seed {self.seed} M={self.M} round {s.round}/{c.K}: F(w) {s.global_train_loss:.4f}, "
                f"L {np.average(cols['L'][honest]):.4g}, xi {np.average(cols['xi'][honest]):.4g}, "
                f"delta {np.average(cols['delta']):.4g}{lazy_part}"
            )


def _observed_run(config: RunConfig, dtype: torch.dtype, context: Mapping[str, Any]) -> Observer:
    """Run ``config`` (ledger and blobs in memory) with an observer on every round; return the observer."""
    observer = Observer(config.seed, config.M, dtype, context.get("progress"))
    simulate(config, None, context.get("data_dir"), observer=observer)
    return observer


def estimate_seed(config: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """One seed's clean and lazy runs, observed every round, and its w* (a task for a Dask worker, or inline).

    ``config`` holds everything that decides the result (so the store keys it): ``run``, a RunConfig dict;
    ``optimum``, the w* search's options; ``dtype``, the estimators' float type.
    """
    from ...plugins import load_plugins

    load_plugins()
    run_config = RunConfig.from_dict(dict(config["run"]))
    optimum = OptimumOptions(**config["optimum"])
    dtype = getattr(torch, config["dtype"])
    seed, progress = run_config.seed, context.get("progress")
    clean = _observed_run(run_config.replace(M=0), dtype, context)
    lazy = _observed_run(run_config, dtype, context) if run_config.M else clean
    s, w0, lazy_state, lazy_w0 = clean.state, clean.w0, lazy.state, lazy.w0
    assert s is not None and w0 is not None and lazy_state is not None and lazy_w0 is not None  # every run has rounds
    # The seed alone draws the partition and w0 (the lazy draw takes the same random numbers for any M).
    if not torch.equal(w0, lazy_w0) or not torch.equal(s.X, lazy_state.X):
        raise RuntimeError(f"seed {seed}: the clean and the lazy run differ in w0 or data")
    X_union = s.X.reshape(-1, *s.X.shape[2:])
    Y_union = s.Y.reshape(-1)
    if progress is not None:
        progress(f"seed {seed}: centralized training for w* ({optimum.dtype_for(s.spec)} L-BFGS)")
    opt = find_optimum(s.spec, w0, X_union, Y_union, optimum)
    if progress is not None:
        progress(f"seed {seed}: w* after {opt.iterations} iterations ({opt.reason}), F(w*) {opt.loss:.4g}, "
                 f"||w0 - w*|| {opt.distance:.4g}")
    observers = [clean] if lazy is clean else [clean, lazy]
    rows = [r for o in observers for r in o.rows]
    for r in rows:
        r["gap"] = r["global_train_loss"] - opt.loss

    def smallest_gap(observer: Observer) -> float:
        return float(min(r["gap"] for r in observer.rows if r["client"] == 0))

    seed_row = {
        "seed": seed, "F_w_star": opt.loss, "distance": opt.distance, "grad_norm": opt.grad_norm,
        "iterations": opt.iterations, "evaluations": opt.evaluations, "restarts": opt.restarts, "reason": opt.reason,
        "converged": opt.converged, "interpolates": opt.interpolates, "path": opt.path,
        "epsilon": smallest_gap(lazy), "epsilon_clean": smallest_gap(clean),
    }
    return {"rows": rows, "seed_row": seed_row}


#: One seed of an estimate, a stored task (the simulator's version, then the estimators').
ESTIMATE = TaskKind("bladefl-estimate", f"{SIMULATION_VERSION}.1", one_by_one(estimate_seed),
                    worker_setup=torch_threads)
