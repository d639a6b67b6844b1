"""Every kind of task the validator records in a result store, and what each is given besides its config.

A kind's name and version are part of every stored result's key (:class:`~bladefl_platform.execution.TaskKind`),
so neither changes unless its results would: a stored result is reused only by the same kind at the same version.

- ``RUN`` (``bladefl-run``): a simulation run, :func:`run_task` (runs that share a batch key train together);
- ``OPTIMUM`` (``bladefl-optimum``): F(w*) on the union of a run's clients' data, :func:`optimum_task`;
- ``DETECTION`` (``bladefl-detection-run``): a run screened by a detector, :func:`detection_task`;
- ``ESTIMATE`` (``bladefl-estimate``): one seed of an estimate, :func:`estimate_task`.

Importing this module needs no torch: each task imports the simulator when it runs (on a worker). It registers the
worker plugin that gives each worker of a local Dask cluster its share of torch's threads
(:mod:`bladefl_validate.workers`).

Paths in a task's context are resolved on the machine that submits the tasks: a worker of a separately started Dask
cluster has its own working directory and environment (no ``BLADEFL_DATA``), so it must receive absolute paths,
never relative ones or an environment variable to look up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bladefl_platform.execution import TaskKind, one_by_one, register_local_worker_plugin

from .config import RunConfig
from .plugins import load_plugins

__all__ = ["SIMULATION_VERSION", "BATCH_SIZE", "RUN", "OPTIMUM", "DETECTION", "ESTIMATE", "KINDS", "run_task",
           "optimum_task", "detection_task", "estimate_task", "task_context"]

#: The semantics of a run's results. Bump it whenever a change to the simulator changes any result of
#: the same config: stored results are reused only under the same version (tests/validate/test_golden.py pins a
#: small run's numbers, so such a change fails there first). "2": the first version keyed this way.
SIMULATION_VERSION = "2"
#: Runs trained together in one task, at most (see :func:`bladefl_validate.simulation.simulate_many`).
BATCH_SIZE = 8


def torch_threads(threads: int):
    """The worker plugin that sets torch's threads (imported here, when a local cluster starts)."""
    from .workers import TorchThreads

    return TorchThreads(threads)


register_local_worker_plugin(torch_threads)


def task_context(data_dir: str | Path | None, runs_dir: str | Path | None = None) -> dict[str, str | None]:
    """The context of a batch of tasks: the absolute data root (``--data-dir``, else ``$BLADEFL_DATA``, else the
    user cache folder, as resolved here) and, if runs are kept, the absolute folder for them."""
    from .data import resolve_data_root

    return {
        "data_dir": str(resolve_data_root(data_dir).resolve()),
        "runs_dir": str(Path(runs_dir).resolve()) if runs_dir else None,
    }


def run_task(configs: list[Mapping[str, Any]], context: Mapping[str, Any]) -> list[dict]:
    """Runs that share a batch key, simulated together: each run's summary, JSON-ready.

    With ``context["runs_dir"]``, each run's folder (ledger and blobs) is kept there; otherwise the
    ledger and blobs live in memory only as long as the run.
    """
    from .simulation import run_to_folder, simulate_many

    load_plugins()
    rcs = [RunConfig.from_dict(dict(c)) for c in configs]
    data_dir = context.get("data_dir")
    runs_dir = context.get("runs_dir")
    start = time.process_time()
    if runs_dir:
        results = [run_to_folder(rc, Path(runs_dir) / f"K{rc.K:02d}-seed{rc.seed}", data_dir, overwrite=True)
                   for rc in rcs]
    else:
        results = simulate_many(rcs, None, data_dir, evaluate_rounds="final")
    # The batch's CPU time (every thread of this process), shared evenly: what a campaign costs.
    cpu = (time.process_time() - start) / len(rcs)
    return [{**r.summary(), "cpu_seconds": cpu} for r in results]


def _run_batch_key(config: Mapping[str, Any]) -> tuple:
    from .simulation import batch_key

    load_plugins()
    return batch_key(RunConfig.from_dict(dict(config)))


def optimum_task(config: Mapping[str, Any], context: Mapping[str, Any]) -> dict:
    """F(w*) on the union of the clients' data of ``config``'s partition (M, sigma2 and K do not matter)."""
    import torch

    from .data import load_dataset
    from .optimum import find_optimum
    from .simulation import client_data, run_spec

    load_plugins()
    rc = RunConfig.from_dict(dict(config))
    train = load_dataset(rc.dataset, context.get("data_dir"), train=True)
    X, Y, _ = client_data(rc, train, torch.device("cpu"))
    spec = run_spec(rc, train)
    w0 = spec.init(torch.Generator().manual_seed(rc.seed))
    opt = find_optimum(spec, w0, X.reshape(-1, *spec.input_shape), Y.reshape(-1))
    return {"f_star": opt.loss, "distance": opt.distance, "reason": opt.reason, "iterations": opt.iterations}


def detection_task(config: Mapping[str, Any], context: Mapping[str, Any]) -> dict:
    """One run screened by its detector: how many screenings flagged whom, and the final loss and accuracy."""
    from .simulation import simulate

    load_plugins()
    rc = RunConfig.from_dict(dict(config))
    start = time.perf_counter()
    result = simulate(rc, None, context.get("data_dir"))
    lazy = set(result.lazy)
    return {
        "flagged": sum(len(r.flagged) for r in result.rounds),
        "true_positives": sum(len(lazy.intersection(r.flagged)) for r in result.rounds),
        "lazy_screenings": len(lazy) * len(result.rounds),
        "honest_screenings": (rc.N - len(lazy)) * len(result.rounds),
        "final_global_train_loss": result.final.global_train_loss,
        "final_test_accuracy": result.final.test_accuracy,
        "seconds": time.perf_counter() - start,
    }


def estimate_task(config: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """One seed of an estimate (:func:`bladefl_validate.studies.estimate.observer.estimate_seed`): its clean and
    lazy runs, observed every round, and its w*. ``config`` holds ``run`` (a RunConfig dict), ``optimum`` (the w*
    search's options) and ``dtype`` (the estimators' float type)."""
    from .studies.estimate.observer import estimate_seed

    load_plugins()
    return estimate_seed(config, context)


#: A simulation run.
RUN = TaskKind("bladefl-run", SIMULATION_VERSION, run_task, _run_batch_key, BATCH_SIZE)
#: F(w*) of a run's partition ("1": the first version keyed this way).
OPTIMUM = TaskKind("bladefl-optimum", "1", one_by_one(optimum_task))
#: A run of the detection report (its results are a run's, so the simulator's version).
DETECTION = TaskKind("bladefl-detection-run", SIMULATION_VERSION, one_by_one(detection_task))
#: One seed of an estimate (the simulator's version, then the estimators').
ESTIMATE = TaskKind("bladefl-estimate", f"{SIMULATION_VERSION}.1", one_by_one(estimate_task))
#: Every stored kind, by the name the store knows it by.
KINDS = {kind.name: kind for kind in (RUN, OPTIMUM, DETECTION, ESTIMATE)}
