"""Run many independent tasks through dask.distributed, recording each in a :class:`ResultStore`.

By default a LocalCluster of worker processes on this machine, with torch threads per worker
set so that workers × threads = cores; ``scheduler="tcp://HOST:PORT"`` sends the same tasks to
an existing Dask cluster. Finished tasks are recorded as they complete, by this process alone,
so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError
from .store import ResultStore, task_key

__all__ = ["Execution", "run_tasks", "TaskOutcome"]

TaskFn = Callable[[Mapping[str, Any], Mapping[str, Any]], dict]


@dataclass(frozen=True)
class Execution:
    """Where and how tasks run: ``scheduler`` address (None: a new LocalCluster), ``workers``, progress bar."""

    scheduler: str | None = None
    workers: int | None = None
    progress: bool | None = None  # None: a bar only when stderr is a terminal

    def __post_init__(self) -> None:
        if self.scheduler is not None and not self.scheduler.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
            raise InputError(f"--scheduler must be an address such as tcp://HOST:PORT (got {self.scheduler!r})")
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers must be at least 1 (got {self.workers})")

    def show_progress(self) -> bool:
        return sys.stderr.isatty() if self.progress is None else self.progress


@dataclass
class TaskOutcome:
    """Results in task order, and how many were already in the store."""

    results: list[dict]
    skipped: int
    ran: int
    keys: list[str] = field(default_factory=list)


def _set_torch_threads(threads: int) -> int:
    try:
        import torch
    except ImportError:  # the theory alone does not need torch
        return 0
    torch.set_num_threads(threads)
    return threads


def _local_client(workers: int | None):
    from distributed import Client, LocalCluster

    cores = os.cpu_count() or 1
    n = workers or cores
    threads = max(1, cores // n)
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        # No dashboard, but the scheduler still serves HTTP; a free port avoids a warning when 8787 is taken.
        scheduler_kwargs={"dashboard_address": ":0"},
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    client.run(_set_torch_threads, threads)
    return client, cluster


def run_tasks(
    fn: TaskFn,
    configs: Sequence[Mapping[str, Any]],
    kind: str,
    store: ResultStore | None = None,
    context: Mapping[str, Any] | None = None,
    execution: Execution = Execution(),
    desc: str = "",
) -> TaskOutcome:
    """Run ``fn(config, context)`` for every config not already in ``store``; return all results in order.

    ``configs`` are keyed (with the package version) for the store; ``context`` (data folders and
    the like) is passed to every task but is not part of the key.
    """
    context = dict(context or {})
    keys = [task_key(kind, c) for c in configs]
    done = store.done(keys) if store is not None else set()
    todo = [i for i, k in enumerate(keys) if k not in done]
    results: dict[int, dict] = {}
    for i, k in enumerate(keys):
        if k in done:
            results[i] = store.get(k)  # type: ignore[union-attr]
    if todo:
        from distributed import as_completed
        from tqdm.auto import tqdm

        if execution.scheduler:
            from distributed import Client

            client, cluster = Client(execution.scheduler), None
        else:
            client, cluster = _local_client(execution.workers)
        bar = tqdm(total=len(keys), initial=len(keys) - len(todo), desc=desc or kind, unit="run",
                   disable=not execution.show_progress(), file=sys.stderr)
        try:
            futures = client.map(fn, [configs[i] for i in todo], context=context, key=[f"{kind}-{keys[i]}" for i in todo])
            index = {f.key: i for f, i in zip(futures, todo)}
            for future in as_completed(futures):
                i = index[future.key]
                result = future.result()
                results[i] = result
                if store is not None:
                    store.put(keys[i], kind, configs[i], result)
                bar.update(1)
        except BaseException:
            if "futures" in locals():
                client.cancel(futures)
            raise
        finally:
            bar.close()
            client.close()
            if cluster is not None:
                cluster.close()
    return TaskOutcome(results=[results[i] for i in range(len(keys))], skipped=len(keys) - len(todo), ran=len(todo), keys=keys)
