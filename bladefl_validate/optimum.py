"""F(w*): the loss of the centralized optimum on the union of a run's clients' data, as stored tasks.

The partition is the run's (same data set, N, |D_i|, scheme and seed), so the union is the data
F(w^K) is measured on; w* comes from :func:`bladefl_validate.estimate.find_optimum` (the task is
:func:`bladefl_validate.tasks.optimum_task`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bladefl_platform.execution import Execution, TaskOutcome, run_tasks
from bladefl_platform.store import ResultStore
from bladefl_platform.study import Tasks

from .config import RunConfig
from .tasks import OPTIMUM, task_context

__all__ = ["optimum_configs", "optimum_tasks", "optima"]


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
