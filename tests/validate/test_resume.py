"""A validator sweep survives: SIGKILL mid-sweep resumes with nothing lost, and a separately started cluster gets
paths resolved where the command runs."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

from helpers import write_idx_dataset

from bladefl_platform.store import ResultStore


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
