"""What the validator adds to a :class:`~bladefl_platform.study.Study`: the runs to check before any starts.

:func:`run` runs a study of the simulator through :func:`~bladefl_platform.study.run_study`, with the
validator's pre-check (:func:`check_runs`: device, memory, data, partitions) and its task
context (the absolute data folder every task reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from bladefl_platform.execution import Execution
from bladefl_platform.study import Study, StudyRun, run_study

from ..config import RunConfig, check_device

__all__ = ["RunStudy", "check_runs", "run"]

R = TypeVar("R")


class RunStudy(Study[R]):
    """A study of the simulator (a ``bladefl-validate`` command)."""

    prog = "bladefl-validate"

    def run_configs(self) -> Sequence[RunConfig]:
        """The runs to check before any starts: one per data set and partition suffices (none: nothing to check)."""
        return []

    def prepared(self, data_dir: str | Path | None) -> None:
        """What the study checks once its runs passed :func:`check_runs`, before any runs (nothing by default)."""


def check_runs(configs: Sequence[RunConfig], data_dir: str | Path | None, execution: Execution | None = None) -> None:
    """Everything about ``configs`` that can fail before a run starts: one run fits in this machine's memory (if the
    runs are local; ``execution`` None means this process), the data sets load, each partition can be drawn; a cuda
    device exists (if the runs are local); each model fits its data set. (Whether the scheduler answers, run_study
    checks for every study.)"""
    from ..data import load_dataset
    from ..partition import make_partitioner
    from ..simulation import run_spec

    local = execution is None or execution.scheduler is None
    if local:
        for device in dict.fromkeys(c.device for c in configs):
            check_device(device)
    seen: set[tuple] = set()
    for c in configs:
        key = (c.N, c.model, c.hidden, c.samples_per_client)
        if local and key not in seen:
            c.check_memory()
        seen.add(key)
    for d in dict.fromkeys(c.dataset for c in configs):
        load_dataset(d, data_dir, train=True)
        load_dataset(d, data_dir, train=False)
    for c in {(c.dataset, c.model, c.hidden): c for c in configs}.values():
        run_spec(c, load_dataset(c.dataset, data_dir, train=True))  # a module that does not fit its data: one line
    seen = set()
    for c in configs:
        split = (c.dataset, c.N, c.samples_per_client, c.partition, tuple(sorted(c.partition_options().items())))
        if split in seen:
            continue
        seen.add(split)
        labels = load_dataset(c.dataset, data_dir, train=True).labels.numpy()
        make_partitioner(c.partition, num_clients=c.N, samples_per_client=c.samples_per_client, seed=c.seed,
                         **c.partition_options()).partition(labels)


def run(study: RunStudy[R], out: Path, *, store: Path | None = None, execution: Execution = Execution(),
        data_dir: str | Path | None = None, command: str = "", strict: bool = False) -> StudyRun[R]:
    """Run ``study`` (:func:`~bladefl_platform.study.run_study`) with the validator's pre-check and task context."""
    from ..tasks import task_context

    def prepare() -> None:
        configs = study.run_configs()
        if configs:
            check_runs(configs, data_dir, execution)
        study.prepared(data_dir)

    return run_study(study, out, store=store, execution=execution, prepare=prepare,
                     context=lambda: task_context(data_dir), command=command, strict=strict)
