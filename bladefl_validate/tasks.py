"""The validator's shared kinds of stored task, and what each is given besides its config.

A kind's name and version are part of every stored result's key (:class:`~bladefl_platform.execution.TaskKind`),
so neither changes unless its results would: a stored result is reused only by the same kind at the same version.

- ``RUN`` (``bladefl-run``): a simulation run, :func:`run_task` (runs that share a batch key train together);
- ``OPTIMUM`` (``bladefl-optimum``): F(w*) on the union of a run's clients' data, :func:`optimum_task`
  (:func:`optimum_tasks` for a study's batch of them).

A kind that one study alone uses lives with its study (``bladefl-detection-run`` in
:mod:`bladefl_validate.studies.detection`, ``bladefl-estimate`` in :mod:`bladefl_validate.studies.estimate`).

Importing this module needs no torch: each task imports the simulator when it runs (on a worker). Every kind that
trains names :func:`torch_threads` as its worker setup: a local Dask cluster made for it gives each worker its share
of torch's threads (:mod:`bladefl_validate.workers`).

Paths in a task's context are resolved on the machine that submits the tasks: a worker of a separately started Dask
cluster has its own working directory and environment (no ``BLADEFL_DATA``), so it must receive absolute paths,
never relative ones or an environment variable to look up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bladefl_platform.execution import Execution, TaskKind, TaskOutcome, one_by_one, run_tasks
from bladefl_platform.store import ResultStore
from bladefl_platform.study import Tasks

from .config import SIMULATION_VERSION, RunConfig
from .plugins import load_plugins

__all__ = ["SIMULATION_VERSION", "BATCH_SIZE", "RUN", "OPTIMUM", "run_task", "optimum_task", "task_context",
           "torch_threads", "optimum_configs", "optimum_tasks", "optima"]

#: Runs trained together in one task, at most (see :func:`bladefl_validate.simulation.simulate_many`).
BATCH_SIZE = 8


def torch_threads(threads: int):
    """The worker plugin that sets torch's threads (imported here, when a local cluster starts)."""
    from .workers import TorchThreads

    return TorchThreads(threads)


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


def optimum_configs(base: RunConfig, seeds: Sequence[int]) -> list[RunConfig]:
    """The configs whose partitions F(w*) is found on, one per seed (M, sigma2 and K do not matter: M=0, K=1)."""
    return [base.replace(M=0, K=1, seed=s) for s in seeds]


def optimum_tasks(base: RunConfig, seeds: Sequence[int]) -> Tasks:
    """F(w*) of each seed's partition of ``base``, as a batch of a study's tasks."""
    return Tasks(OPTIMUM, [c.as_dict() for c in optimum_configs(base, seeds)], "w*")


def optima(base: RunConfig, seeds: Sequence[int], data_dir: str | Path | None = None,
           store: ResultStore | None = None, execution: Execution = Execution()) -> TaskOutcome:
    """F(w*) and its search's facts for each seed's partition of ``base``, in seed order."""
    tasks = optimum_tasks(base, seeds)
    return run_tasks(tasks.kind, tasks.configs, store, task_context(data_dir), execution, tasks.desc)


#: A simulation run.
RUN = TaskKind("bladefl-run", SIMULATION_VERSION, run_task, _run_batch_key, BATCH_SIZE, torch_threads)
#: F(w*) of a run's partition ("1": the first version keyed this way).
OPTIMUM = TaskKind("bladefl-optimum", "1", one_by_one(optimum_task), worker_setup=torch_threads)
