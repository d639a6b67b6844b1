"""The result store: each key recorded once, a key covering the whole configuration, concurrent writers."""

import multiprocessing
import sqlite3

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
