"""F(w*): the loss of the centralized optimum on the union of a run's clients' data, as a stored task.

The partition is the run's (same data set, N, |D_i|, scheme and seed), so the union is the data
F(w^K) is measured on; w* comes from :func:`bladefl_validate.estimate.find_optimum`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bladefl_platform.execution import Execution, TaskKind, TaskOutcome, one_by_one, run_tasks
from bladefl_platform.store import ResultStore

from .config import RunConfig
from .tasks import task_context

__all__ = ["OPTIMUM", "optimum_task", "optima"]


def optimum_task(config: Mapping[str, Any], context: Mapping[str, Any]) -> dict:
    """F(w*) on the union of the clients' data of ``config`` (a task for a worker)."""
    import torch

    from .data import load_dataset
    from .estimate import find_optimum
    from .model import make_spec
    from .simulation import client_data

    rc = RunConfig.from_dict(dict(config))
    X, Y, _ = client_data(rc, load_dataset(rc.dataset, context.get("data_dir"), train=True), torch.device("cpu"))
    spec = make_spec(rc.model, rc.hidden)
    w0 = spec.init(torch.Generator().manual_seed(rc.seed))
    opt = find_optimum(spec, w0, X.reshape(-1, X.shape[-1]), Y.reshape(-1))
    return {"f_star": opt.loss, "distance": opt.distance, "reason": opt.reason, "iterations": opt.iterations}


#: F(w*) of a run's partition, as the result store knows it ("1": the first version keyed this way).
OPTIMUM = TaskKind("bladefl-optimum", "1", one_by_one(optimum_task))


def optima(base: RunConfig, seeds: Sequence[int], data_dir: str | Path | None = None,
           store: ResultStore | None = None, execution: Execution = Execution()) -> TaskOutcome:
    """F(w*) and its search's facts for each seed's partition of ``base``, in seed order.

    M, sigma2 and K do not matter.
    """
    configs = [base.replace(M=0, K=1, seed=s).as_dict() for s in seeds]
    return run_tasks(OPTIMUM, configs, store, task_context(data_dir), execution, "w*")
