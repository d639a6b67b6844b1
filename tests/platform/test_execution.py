"""The Dask executor: tasks on a real cluster, recorded as they finish and resumed; batches; a kind's worker setup."""

import os
import sys

import cloudpickle
import pytest
from distributed import WorkerPlugin

from bladefl_platform.errors import InputError
from bladefl_platform.execution import Execution, TaskKind, one_by_one, run_tasks
from bladefl_platform.store import ResultStore

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module


def _square(config, context):
    return {"value": config["i"] * config["i"]}


_CHUNK = TaskKind("chunk", "1", one_by_one(_square))


def test_tasks_run_on_a_real_two_worker_cluster_and_resume(tmp_path, cluster_address):
    configs = [{"i": i} for i in range(6)]
    execution = Execution(scheduler=cluster_address, progress=False)
    with ResultStore(tmp_path / "s.sqlite") as store:
        first = run_tasks(_CHUNK, configs, store, execution=execution)
        assert first.ran == 6 and first.skipped == 0
        assert [r["value"] for r in first.results] == [i * i for i in range(6)]
        again = run_tasks(_CHUNK, configs, store, execution=execution)
        assert again.ran == 0 and again.skipped == 6 and again.results == first.results
        assert store.count("chunk") == 6
        assert {r["version"] for r in store.rows("chunk")} == {"1"}
        # Another version of the code computes them again.
        newer = run_tasks(TaskKind("chunk", "2", one_by_one(_square)), configs, store, execution=execution)
        assert newer.ran == 6 and store.count("chunk") == 12


def _batched_sums(configs, context):
    # Every task of a batch sees the whole batch: record its size beside the value.
    return [{"value": c["i"] * 10, "batch": len(configs)} for c in configs]


def test_batched_tasks_group_by_key_and_record_each_config(tmp_path, cluster_address):
    kind = TaskKind("sum", "1", _batched_sums, batch_key=lambda c: c["i"] % 2, batch_size=2)
    configs = [{"i": i} for i in range(7)]
    execution = Execution(scheduler=cluster_address, progress=False)
    with ResultStore(tmp_path / "s.sqlite") as store:
        out = run_tasks(kind, configs, store, execution=execution)
        assert [r["value"] for r in out.results] == [i * 10 for i in range(7)]
        # evens 0,2,4,6 in batches of two; odds 1,3 then 5 alone
        assert [r["batch"] for r in out.results] == [2, 2, 2, 2, 2, 1, 2]
        assert store.count("sum") == 7
        assert run_tasks(kind, configs, store, execution=execution).ran == 0


class _SetsAVariable(WorkerPlugin):
    """A worker plugin that records the threads it was given where the worker's tasks can read them."""

    name = "test-threads"

    def __init__(self, threads):
        self.threads = threads

    def setup(self, worker):
        os.environ["BLADEFL_TEST_THREADS"] = str(self.threads)


def _threads_seen(config, context):
    return {"threads": os.environ.get("BLADEFL_TEST_THREADS")}


def test_a_local_cluster_sets_its_workers_up_as_the_kind_says():
    assert "BLADEFL_TEST_THREADS" not in os.environ  # only the plugin sets it, on the worker
    kind = TaskKind("setup", "1", one_by_one(_threads_seen), worker_setup=_SetsAVariable)
    out = run_tasks(kind, [{"i": 0}], execution=Execution(workers=1, progress=False))
    assert out.results == [{"threads": str(max(1, os.cpu_count() or 1))}]


def test_bad_execution_options():
    with pytest.raises(InputError, match="--scheduler"):
        Execution(scheduler="localhost:8786")
    with pytest.raises(InputError, match="--workers"):
        Execution(workers=0)
