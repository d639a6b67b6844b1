"""The result store and the executor refuse bad paths and addresses at once, in one line, changing nothing."""

from __future__ import annotations

import socket
import sqlite3

import pytest

from bladefl_platform.errors import InputError
from bladefl_platform.execution import (
    CONNECT_TIMEOUT,
    MAX_LOCAL_WORKERS,
    Execution,
    TaskKind,
    one_by_one,
    run_tasks,
)
from bladefl_platform.store import ResultStore, check_store, opened_store, task_key


@pytest.mark.parametrize("content, message", [
    (b"hello, this is a text file and not a database at all" * 20, "not a result store"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "not a result store"),
])
def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path, content, message):
    path = tmp_path / "results.sqlite"
    path.write_bytes(content)
    for attempt in (lambda: check_store(path), lambda: ResultStore(path)):
        with pytest.raises(InputError, match=message):
            attempt()
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.sqlite"]


def test_an_sqlite_database_of_something_else_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(InputError, match="SQLite database but not a result store .*notes"):
        ResultStore(path)
    assert path.read_bytes() == before
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE results (x)")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match="results table has columns x"):
        check_store(path)


def test_paths_where_no_store_can_be(tmp_path):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "folder").mkdir()
    for path, message in ((tmp_path / "folder", "is a folder"), (tmp_path / "a-file" / "s.sqlite", "not a folder")):
        with pytest.raises(InputError, match=message):
            check_store(path)
        with pytest.raises(InputError, match=message):
            ResultStore(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "folder"]


def test_check_store_creates_nothing_and_accepts_stores_and_empty_files(tmp_path):
    check_store(tmp_path / "new" / "s.sqlite")
    assert list(tmp_path.iterdir()) == []
    with ResultStore(tmp_path / "s.sqlite") as store:
        store.put(task_key("k", {}, "1"), "k", {}, {"v": 1}, "1")
    check_store(tmp_path / "s.sqlite")
    (tmp_path / "empty.sqlite").write_bytes(b"")
    check_store(tmp_path / "empty.sqlite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite", "s.sqlite"]


def test_opened_store_removes_what_it_created_if_nothing_was_recorded(tmp_path):
    path = tmp_path / "out" / "deeper" / "results.sqlite"
    with pytest.raises(RuntimeError):
        with opened_store(path):
            raise RuntimeError("bad input found late")
    assert list(tmp_path.iterdir()) == []
    # With a result recorded, the store stays: the next run resumes from it.
    with pytest.raises(RuntimeError):
        with opened_store(path) as store:
            store.put(task_key("k", {}, "1"), "k", {}, {"v": 1}, "1")
            raise RuntimeError("killed")
    with ResultStore(path) as store:
        assert store.count() == 1
    # A store it did not create is never removed, empty or not.
    other = tmp_path / "other.sqlite"
    ResultStore(other).close()
    with pytest.raises(RuntimeError):
        with opened_store(other):
            raise RuntimeError("boom")
    assert other.is_file()


@pytest.mark.parametrize("address", ["localhost:8786", "tcp://", "tcp://host", "tcp://host:99999", "tcp://h:0",
                                     "tcp://h:1/path", " tcp://h:1", "http://h:1", "tcp://h:port", "", "tcp://:8786"])
def test_malformed_scheduler_addresses(address):
    with pytest.raises(InputError, match="--scheduler must be an address such as tcp://HOST:PORT"):
        Execution(scheduler=address)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_connect_timeout() -> float:
    """Dask's own connect timeout (what a refused connection would cost without the pre-check), in seconds."""
    import dask
    from dask.utils import parse_timedelta

    return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect")))


def _spy_connections(monkeypatch) -> list[dict]:
    """Record every connection attempt's address and timeout, then make it as usual."""
    calls: list[dict] = []
    connect = socket.create_connection

    def spy(address, timeout=None, *args, **kwargs):
        calls.append({"address": address, "timeout": timeout})
        return connect(address, timeout, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    return calls


def test_an_unreachable_scheduler_is_said_at_once(tmp_path, monkeypatch):
    # "At once": the refusal comes from one connection attempt with the short timeout, never from Dask's Client,
    # whose connect would wait out its own, longer timeout.
    import distributed

    port = _free_port()
    execution = Execution(scheduler=f"tcp://127.0.0.1:{port}", progress=False)
    calls = _spy_connections(monkeypatch)
    monkeypatch.setattr(distributed, "Client", lambda *a, **k: pytest.fail("Dask's Client tried to connect"))
    with pytest.raises(InputError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:.* refused"):
        execution.check_reachable()
    kind = TaskKind("t", "1", one_by_one(lambda c, ctx: {"v": 1}))
    with ResultStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(InputError, match="cannot reach"):
            run_tasks(kind, [{"i": 1}], store, execution=execution)
    assert calls == [{"address": ("127.0.0.1", port), "timeout": CONNECT_TIMEOUT}] * 2
    assert CONNECT_TIMEOUT < _dask_connect_timeout()


def test_a_scheduler_that_accepts_but_does_not_answer_costs_a_short_timeout(tmp_path, monkeypatch):
    # Past the pre-check, Dask's Client is given a timeout well below its default, and its failure is one line.
    import distributed

    given: list[dict] = []

    def client(*args, **kwargs):
        given.append({"args": args, **kwargs})
        raise OSError("Timed out trying to connect")

    monkeypatch.setattr(Execution, "check_reachable", lambda self, timeout=CONNECT_TIMEOUT: None)
    monkeypatch.setattr(distributed, "Client", client)
    execution = Execution(scheduler="tcp://127.0.0.1:8786", progress=False)
    kind = TaskKind("t", "1", one_by_one(lambda c, ctx: {"v": 1}))
    with pytest.raises(InputError, match="cannot connect to the Dask scheduler at tcp://127.0.0.1:8786 .*Timed out"):
        run_tasks(kind, [{"i": 1}], None, execution=execution)
    assert [(g["args"], g["timeout"]) for g in given] == [(("tcp://127.0.0.1:8786",), f"{CONNECT_TIMEOUT * 2}s")]
    assert CONNECT_TIMEOUT * 2 < _dask_connect_timeout()


@pytest.mark.parametrize("workers", [0, -1, MAX_LOCAL_WORKERS + 1, 10**9, 1.5, True])
def test_worker_counts_a_local_cluster_cannot_have(workers):
    with pytest.raises(InputError, match="--workers"):
        Execution(workers=workers)


def test_task_keys_hash_canonical_json() -> None:
    """Task keys are the SHA-256 of canonical JSON (bladefl_platform.canonical): the stored stores' keys stay valid."""
    import hashlib

    from bladefl_platform.canonical import canonical_json
    from bladefl_platform.store import task_key

    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"\\u00e9"],"b":1}'
    payload = '{"config":{"K":3,"N":20},"kind":"bladefl-run","version":"2"}'
    assert task_key("bladefl-run", {"N": 20, "K": 3}, "2") == hashlib.sha256(payload.encode()).hexdigest()
