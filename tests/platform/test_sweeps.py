"""Sweeps that scale and survive: the result store, the Dask executor, and resuming after SIGKILL."""

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from helpers import write_idx_dataset

from bladefl_theory import Params
from bladefl_platform.errors import InputError
from bladefl_platform.execution import Execution, TaskKind, one_by_one, run_tasks
from bladefl_theory.sensitivity import _solve_chunk, sweep
from bladefl_platform.store import ResultStore, task_key


def test_store_records_each_key_once(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        key = task_key("run", {"K": 1}, "1")
        assert store.put(key, "run", {"K": 1}, {"loss": 0.5}, "1")
        assert not store.put(key, "run", {"K": 1}, {"loss": 0.7}, "1")
        assert store.get(key) == {"loss": 0.5}
        assert store.count() == 1 and store.done([key, "x"]) == {key}
        assert store.integrity_ok()
    assert sqlite3.connect(tmp_path / "s.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_key_covers_the_whole_configuration_and_the_version():
    a = task_key("run", {"K": 1, "seed": 0}, "1")
    assert a == task_key("run", {"seed": 0, "K": 1}, "1")
    assert a != task_key("run", {"K": 1, "seed": 1}, "1")
    assert a != task_key("run", {"K": 1, "seed": 0}, "2")
    assert a != task_key("other", {"K": 1, "seed": 0}, "1")


def _writer(path, start, count, barrier):
    store = ResultStore(path)
    barrier.wait()
    for i in range(start, start + count):
        store.put(task_key("t", {"i": i}, "1"), "t", {"i": i}, {"value": i}, "1")
    store.close()


def test_two_writers_at_once_do_not_corrupt_the_store(tmp_path):
    path = tmp_path / "s.sqlite"
    ResultStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(path, start, 300, barrier)) for start in (0, 150)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with ResultStore(path) as store:
        assert store.integrity_ok()
        assert store.count() == 450  # 0..449, the overlap 150..299 counted once
        assert {r["result"]["value"] for r in store.rows()} == set(range(450))


@pytest.fixture(scope="module")
def cluster_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as c:
        yield c.scheduler_address


def test_tasks_run_on_a_real_two_worker_cluster_and_resume(tmp_path, cluster_address):
    base = Params().as_dict()
    configs = [{"base": base, "variant": "per-round", "points": [{"M": m}]} for m in range(6)]
    execution = Execution(scheduler=cluster_address, progress=False)
    with ResultStore(tmp_path / "s.sqlite") as store:
        first = run_tasks(_CHUNK, configs, store, execution=execution)
        assert first.ran == 6 and first.skipped == 0
        assert [r["rows"][0]["M"] for r in first.results] == list(range(6))
        again = run_tasks(_CHUNK, configs, store, execution=execution)
        assert again.ran == 0 and again.skipped == 6 and again.results == first.results
        assert store.count("chunk") == 6
        assert {r["version"] for r in store.rows("chunk")} == {"1"}
        # Another version of the code computes them again.
        newer = run_tasks(TaskKind("chunk", "2", one_by_one(_solve_chunk)), configs, store, execution=execution)
        assert newer.ran == 6 and store.count("chunk") == 12


def _batched_sums(configs, context):
    # Every task of a batch sees the whole batch: record its size beside the value.
    return [{"value": c["i"] * 10, "batch": len(configs)} for c in configs]


def test_batched_tasks_group_by_key_and_record_each_config(tmp_path, cluster_address):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
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


def test_large_sensitivity_grid_goes_through_dask(cluster_address):
    result = sweep(Params(), {"M": list(range(20)), "sigma2": [i / 100 for i in range(60)]}, ("per-round", "printed"),
                   Execution(scheduler=cluster_address, progress=False))
    assert len(result.frame) == 2 * 20 * 60
    small = sweep(Params(), {"M": [0, 5]}, ("per-round",))
    row = result.frame[(result.frame.variant == "per-round") & (result.frame.M == 5) & (result.frame.sigma2 == 0.01)]
    assert float(row.k_star_continuous.iloc[0]) == pytest.approx(float(small.frame.k_star_continuous.iloc[1]))


_CHUNK = TaskKind("chunk", "1", one_by_one(_solve_chunk))


def test_bad_execution_options():
    with pytest.raises(InputError, match="--scheduler"):
        Execution(scheduler="localhost:8786")
    with pytest.raises(InputError, match="--workers"):
        Execution(workers=0)


def test_sigkill_mid_sweep_resumes_with_nothing_lost_or_counted_twice(tmp_path):
    data = tmp_path / "data"
    write_idx_dataset(data / "mnist", n_train=600, n_test=100, seed=0)
    out = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "bladefl_validate.cli", "sweep-k", "--N", "3", "--M", "1", "--t-sum", "24",
        "--samples-per-client", "32", "--hidden", "8", "--difficulty-bits", "17", "--seeds", "5",
        "--workers", "1", "--quiet", "--data-dir", str(data), "--out", str(out),
    ]
    env = {**os.environ, "BLADEFL_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store_path = out / "results.sqlite"
    deadline = time.monotonic() + 120
    done_before = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if store_path.exists():
            try:
                with ResultStore(store_path) as s:
                    done_before = s.count()
            except sqlite3.OperationalError:
                done_before = 0
            if done_before >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    with ResultStore(store_path) as s:
        assert s.integrity_ok()
        killed_at = s.count()
        before = {r["key"]: r["result"] for r in s.rows()}
    assert 2 <= killed_at < 10
    assert not (out / "README.md").exists()

    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{killed_at} of 10 runs were already in the store" in resumed.stderr
    with ResultStore(store_path) as s:
        assert s.count() == 10 and s.integrity_ok()
        after = {r["key"]: r["result"] for r in s.rows()}
    assert all(after[k] == v for k, v in before.items())
    assert (out / "README.md").is_file() and (out / "per_k.csv").is_file()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sweep_on_a_separately_started_cluster_resolves_paths_on_the_client(tmp_path):
    """A scheduler and a worker started as their own processes, elsewhere, without BLADEFL_DATA: relative
    --data-dir and --out work because the paths are resolved where the command runs."""
    client_dir, worker_dir = tmp_path / "client", tmp_path / "worker"
    client_dir.mkdir()
    worker_dir.mkdir()
    write_idx_dataset(client_dir / "data" / "mnist", n_train=600, n_test=100, seed=0)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    bindir = os.path.dirname(sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in ("BLADEFL_DATA",)}
    env["BLADEFL_CACHE"] = str(tmp_path / "cache")
    procs = [subprocess.Popen([os.path.join(bindir, "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], cwd=worker_dir, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen([os.path.join(bindir, "dask"), "worker", address, "--nworkers", "1",
                                       "--nthreads", "1", "--no-dashboard"], cwd=worker_dir, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cmd = [sys.executable, "-m", "bladefl_validate.cli", "sweep-k", "--N", "3", "--M", "1", "--t-sum", "24",
               "--samples-per-client", "32", "--hidden", "8", "--difficulty-bits", "2", "--seeds", "1",
               "--keep-runs", "--quiet", "--scheduler", address, "--data-dir", "data", "--out", "out"]
        r = subprocess.run(cmd, cwd=client_dir, env=env, capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr
        assert (client_dir / "out" / "README.md").is_file()
        assert sorted(p.name for p in (client_dir / "out" / "runs").iterdir()) == ["K01-seed0", "K02-seed0"]
        assert not (worker_dir / "out").exists() and not (worker_dir / "data").exists()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
