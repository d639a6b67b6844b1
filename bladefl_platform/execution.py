"""Run many independent tasks through dask.distributed, recording each in a :class:`ResultStore`.

By default a LocalCluster of worker processes on this machine, one thread each, every worker given
its share of the cores (``cores // workers``) through the worker setup of the kind it runs
(:attr:`TaskKind.worker_setup`: the validator's sets torch's threads; this module knows no
torch); ``scheduler="tcp://HOST:PORT"`` sends the same tasks to an existing Dask cluster. Finished
tasks are recorded as they complete, by this process alone, so an interrupted sweep resumes where it
stopped.
"""

from __future__ import annotations

import functools
import logging
import numbers
import os
import re
import socket
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .checks import shown
from .errors import InputError
from .store import ResultStore, task_key

__all__ = ["Execution", "MAX_LOCAL_WORKERS", "TaskKind", "one_by_one", "run_tasks", "TaskOutcome"]

#: Most worker processes of a local cluster: more would only compete for the cores (and each holds its own
#: copy of the libraries).
MAX_LOCAL_WORKERS = 4 * (os.cpu_count() or 1)
log = logging.getLogger("bladefl_platform")

#: Schemes of a Dask scheduler address that name a host and port.
_NETWORK_SCHEMES = ("tcp", "tls", "ws", "wss")
#: An in-process scheduler's address (Dask's inproc://IP/PID/N): reachable only from the process that runs it.
_INPROC = re.compile(r"inproc://[^/\s]+/[0-9]+/[0-9]+")
#: Seconds to wait for a scheduler to accept a connection before calling it unreachable.
CONNECT_TIMEOUT = 5.0

BatchFn = Callable[[list[Mapping[str, Any]], Mapping[str, Any]], list[dict]]


@dataclass(frozen=True)
class TaskKind:
    """A kind of stored task: its name and code version in the store, and how a worker runs a batch.

    ``run(configs, context)`` returns one JSON-ready result per config, in order. Configs with equal
    ``batch_key`` may run together, up to ``batch_size`` per task (the simulator trains such runs in
    one batched computation). ``version`` names the semantics of the code that computes a result: a
    stored result is reused only under the same version, so it changes whenever results would.
    ``worker_setup(threads)``, if given, makes the ``distributed.WorkerPlugin`` every worker of a local cluster
    made for this kind gets, ``threads`` its share of this machine's cores (``cores // workers``, at least 1): a
    kind whose tasks use a threaded library (the validator's: torch) sets its threads, so that workers × threads =
    cores. Workers of a cluster given by ``--scheduler`` are set up by whoever started them.
    """

    name: str
    version: str
    run: BatchFn
    batch_key: Callable[[Mapping[str, Any]], Hashable] | None = None
    batch_size: int = 1
    worker_setup: Callable[[int], Any] | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InputError(f"a batch holds at least one task (got {self.batch_size})")

    def key(self, config: Mapping[str, Any]) -> str:
        """The store key of one task of this kind."""
        return task_key(self.name, config, self.version)


def one_by_one(fn: Callable[[Mapping[str, Any], Mapping[str, Any]], dict]) -> BatchFn:
    """A batch runner from a function of one config (for task kinds that do not batch)."""
    return functools.partial(_map_each, fn)


def _map_each(fn, configs: list[Mapping[str, Any]], context: Mapping[str, Any]) -> list[dict]:
    return [fn(c, context) for c in configs]


@dataclass(frozen=True)
class Execution:
    """Where and how tasks run: ``scheduler`` address (None: a new LocalCluster), ``workers``, progress bar."""

    scheduler: str | None = None
    workers: int | None = None
    progress: bool | None = None  # None: a bar only when stderr is a terminal

    def __post_init__(self) -> None:
        if self.scheduler is not None:
            self._host_port()
        w = self.workers
        if w is not None and (isinstance(w, bool) or not isinstance(w, numbers.Integral)
                              or not 1 <= w <= MAX_LOCAL_WORKERS):
            raise InputError(f"--workers must be an integer in 1..{MAX_LOCAL_WORKERS} (4 per core of this machine; "
                             f"got {w!r})")

    def _host_port(self) -> tuple[str, int] | None:
        """The scheduler's host and port (None for an in-process address); InputError if it is malformed."""
        text = self.scheduler
        wrong = InputError(f"--scheduler must be an address such as tcp://HOST:PORT, of scheme "
                           f"{', '.join(_NETWORK_SCHEMES)} (got {shown(text)})")
        if not isinstance(text, str) or text != text.strip():
            raise wrong
        if text.startswith("inproc://"):
            if not _INPROC.fullmatch(text):
                raise wrong
            return None
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise wrong from None
        if parts.scheme not in _NETWORK_SCHEMES or not parts.hostname or port is None or port == 0 \
                or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise wrong
        return parts.hostname, port

    def check_reachable(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """InputError, within ``timeout`` seconds, unless the scheduler (if any) accepts a connection."""
        if self.scheduler is None:
            return
        where = self._host_port()
        if where is None:
            _check_inproc(self.scheduler)
            return
        try:
            socket.create_connection(where, timeout=timeout).close()
        except OSError as exc:
            reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc) or type(exc).__name__)
            raise InputError(f"cannot reach the Dask scheduler at {self.scheduler} ({reason})") from None

    def show_progress(self) -> bool:
        return sys.stderr.isatty() if self.progress is None else self.progress


def _check_inproc(address: str) -> None:
    """InputError unless an in-process scheduler of ``address`` runs in this process."""
    from distributed.comm.inproc import global_manager

    try:
        listening = global_manager.get_listener_for(address.removeprefix("inproc://")) is not None
    except ValueError:  # another process's address
        listening = False
    if not listening:
        raise InputError(f"cannot reach the Dask scheduler at {address} (no in-process scheduler of that address "
                         "runs here: inproc:// addresses serve only the process that started them)")


@dataclass
class TaskOutcome:
    """Results in task order, and how many were already in the store."""

    results: list[dict]
    skipped: int
    ran: int
    keys: list[str] = field(default_factory=list)


def _local_client(workers: int | None, worker_setup: Callable[[int], Any] | None = None):
    """A local cluster of ``workers`` processes (default: one per core), each set up by ``worker_setup``."""
    import dask
    from distributed import Client, LocalCluster

    cores = os.cpu_count() or 1
    n = workers or cores
    threads = max(1, cores // n)
    log.debug("starting a local Dask cluster: %d worker process(es), %d thread(s) each", n, threads)
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536: glibc then returns every large
    # tensor's memory to the system at once, and each new one page-faults in afresh (13x more minor
    # faults, a fifth of the training threads' CPU in the kernel; benchmarks/README.md).
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # No dashboard, but the scheduler still serves HTTP; a free port avoids a warning when 8787 is taken.
            scheduler_kwargs={"dashboard_address": ":0"},
            # Workers shut down with the cluster log heartbeat errors at ERROR; task errors reach the client anyway.
            silence_logs=logging.CRITICAL,
        )
    client = Client(cluster)
    if worker_setup is not None:
        client.register_plugin(worker_setup(threads))
    return client, cluster


def _batches(kind: TaskKind, configs: Sequence[Mapping[str, Any]], todo: list[int]) -> list[list[int]]:
    """The tasks to submit: indices of configs, grouped by the kind's batch key, in first-seen order."""
    if kind.batch_key is None or kind.batch_size == 1:
        return [[i] for i in todo]
    groups: dict[Hashable, list[int]] = {}
    for i in todo:
        groups.setdefault(kind.batch_key(configs[i]), []).append(i)
    return [g[j : j + kind.batch_size] for g in groups.values() for j in range(0, len(g), kind.batch_size)]


def _stored(store: ResultStore | None, keys: list[str]) -> dict[int, dict]:
    """The results ``store`` already holds, by the index of their key in ``keys``."""
    if store is None:
        return {}
    done = store.done(keys)
    results = {}
    for i, k in enumerate(keys):
        if k in done:
            result = store.get(k)
            assert result is not None  # done() has just found it
            results[i] = result
    return results


def run_tasks(
    kind: TaskKind,
    configs: Sequence[Mapping[str, Any]],
    store: ResultStore | None = None,
    context: Mapping[str, Any] | None = None,
    execution: Execution = Execution(),
    desc: str = "",
) -> TaskOutcome:
    """Run every config of ``kind`` not already in ``store``; return all results in order.

    ``configs`` are keyed (with the kind's version) for the store, and each result is recorded as
    soon as its task finishes; ``context`` (data folders and the like) is passed to every task but is
    not part of the key.
    """
    context = dict(context or {})
    keys = [kind.key(c) for c in configs]
    results = _stored(store, keys)
    todo = [i for i in range(len(keys)) if i not in results]
    log.debug("%s: %d task(s), %d already in the store, %d to run%s", desc or kind.name, len(keys),
              len(keys) - len(todo), len(todo), f" on {execution.scheduler}" if execution.scheduler and todo else "")
    if todo:
        from distributed import as_completed
        from tqdm.auto import tqdm

        if execution.scheduler:
            from distributed import Client

            execution.check_reachable()  # a refused connection otherwise takes Dask's 30 s connect timeout
            try:
                client, cluster = Client(execution.scheduler, timeout=f"{CONNECT_TIMEOUT * 2}s"), None
            except OSError as exc:
                raise InputError(f"cannot connect to the Dask scheduler at {execution.scheduler} "
                                 f"({' '.join(str(exc).split()) or type(exc).__name__})") from None
        else:
            client, cluster = _local_client(execution.workers, kind.worker_setup)
        bar = tqdm(total=len(keys), initial=len(keys) - len(todo), desc=desc or kind.name, unit="run",
                   disable=not execution.show_progress(), file=sys.stderr)
        try:
            batches = _batches(kind, configs, todo)
            futures = client.map(kind.run, [[configs[i] for i in b] for b in batches], context=context,
                                 key=[f"{kind.name}-{keys[b[0]]}-{len(b)}" for b in batches])
            index = {f.key: b for f, b in zip(futures, batches)}
            for future in as_completed(futures):
                batch = index[future.key]
                for i, result in zip(batch, future.result(), strict=True):
                    results[i] = result
                    if store is not None:
                        store.put(keys[i], kind.name, configs[i], result, kind.version)
                bar.update(len(batch))
        except BaseException:
            if "futures" in locals():
                client.cancel(futures)
            raise
        finally:
            bar.close()
            client.close()
            if cluster is not None:
                cluster.close()
    return TaskOutcome(results=[results[i] for i in range(len(keys))], skipped=len(keys) - len(todo), ran=len(todo),
                       keys=keys)
