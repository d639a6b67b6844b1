"""A durable result store for sweeps: SQLite in WAL mode, one row per finished task.

A task is keyed by the SHA-256 of its kind, its complete configuration and the version of the
code that computes it (see :class:`~bladefl_platform.execution.TaskKind`), so
re-running a sweep skips what is done, a sweep killed part-way resumes with nothing lost, and
a result is never counted twice (the key is the primary key; a second insert is ignored).
Several processes may write to one store at once: WAL lets readers run beside the one writer,
and every insert is its own short transaction, retried while the database is busy.

A path that is not a store (a folder, a file that is not SQLite, an SQLite database of something
else) is refused with :class:`~bladefl_platform.errors.InputError` (exit status 2), before and
without changing it: :func:`check_store` tells before a command computes anything, and
:func:`opened_store` removes a store it created if the command fails before recording anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .atomic import _make_parents, _nearest_existing, _remove_created, canonical, check_writable
from .errors import InputError
from .canonical import canonical_digest

__all__ = ["ResultStore", "check_store", "opened_store", "task_key"]

_COLUMNS = ("key", "kind", "config", "result", "version", "created")
# SQLite keeps these beside a database in WAL mode while it is open.
_SIDE_FILES = ("-wal", "-shm", "-journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    result TEXT NOT NULL,
    version TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def task_key(kind: str, config: Mapping[str, Any], version: str) -> str:
    """SHA-256 of the task kind, its complete configuration (canonical JSON) and the code's version."""
    return canonical_digest({"kind": kind, "config": config, "version": version})


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """InputError unless the database at ``path`` is empty or holds a results table of this schema."""
    tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if "results" not in tables:
        if tables:
            shown = ", ".join(sorted(tables)[:3]) + (" ..." if len(tables) > 3 else "")
            raise InputError(f"{path} is an SQLite database but not a result store (its tables: {shown})")
        return
    columns = tuple(row[1] for row in conn.execute("PRAGMA table_info(results)"))
    if columns != _COLUMNS:
        raise InputError(f"{path} is an SQLite database but not a result store (its results table has columns "
                         f"{', '.join(columns)})")


def check_store(path: str | os.PathLike) -> None:
    """InputError unless a result store can be opened or created at ``path``; changes nothing."""
    path = canonical(path)
    if path.is_dir():
        raise InputError(f"{path}: the result store is a folder; give a file path")
    if not path.exists():
        parent = _nearest_existing(path.parent)
        if not parent.is_dir():
            raise InputError(f"{path}: cannot create the result store ({parent} is not a folder)")
        check_writable(parent, path)
        return
    try:
        # mode=rw opens without creating; unlike mode=ro it removes the WAL side files again on close.
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=60.0)
    except sqlite3.Error as exc:
        raise InputError(f"{path}: cannot open the result store ({_one_line(exc)})") from None
    try:
        _check_schema(conn, path)
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{path} is not a result store ({_one_line(exc)})") from None
    finally:
        conn.close()
    if not os.access(path, os.W_OK):
        raise InputError(f"{path}: the result store is not writable")


class ResultStore:
    """Finished tasks in an SQLite file; safe for concurrent writers.

    Opening a path that is not a store raises InputError and leaves the file as it was.
    """

    def __init__(self, path: str | Path, timeout: float = 60.0):
        self.path = Path(path)
        check_store(self.path)  # before anything is written to it
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot create the result store ({exc.strerror or exc})") from None
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise InputError(f"{self.path}: cannot open the result store ({_one_line(exc)})") from None
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise InputError(f"{self.path} is not a result store, or cannot be written ({_one_line(exc)})") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put(self, key: str, kind: str, config: Mapping[str, Any], result: Mapping[str, Any], version: str) -> bool:
        """Record a finished task computed by code of ``version``; False if it was recorded already
        (nothing is counted twice)."""
        row = (key, kind, json.dumps(config, sort_keys=True), json.dumps(result, sort_keys=True), version, time.time())
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO results (key, kind, config, result, version, created) VALUES (?, ?, ?, ?, ?, ?)", row
        )
        return cur.rowcount == 1

    def get(self, key: str) -> dict[str, Any] | None:
        """The result of a finished task, or None."""
        row = self._conn.execute("SELECT result FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def done(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` are finished."""
        keys = list(keys)
        found: set[str] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(k for (k,) in self._conn.execute(f"SELECT key FROM results WHERE key IN ({marks})", chunk))
        return found

    def count(self, kind: str | None = None) -> int:
        """How many tasks are recorded (of one kind, if given)."""
        if kind is None:
            return self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self._conn.execute("SELECT COUNT(*) FROM results WHERE kind = ?", (kind,)).fetchone()[0]

    def rows(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every recorded task as {key, kind, config, result, version}."""
        query = "SELECT key, kind, config, result, version FROM results" + (" WHERE kind = ?" if kind else "")
        cur = self._conn.execute(query + " ORDER BY created", (kind,) if kind else ())
        return [{"key": k, "kind": t, "config": json.loads(c), "result": json.loads(r), "version": v}
                for k, t, c, r, v in cur]

    def integrity_ok(self) -> bool:
        """SQLite's own integrity check."""
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@contextlib.contextmanager
def opened_store(path: str | os.PathLike) -> Iterator[ResultStore]:
    """The store at ``path`` for one command; if the block fails before the store this call created holds any
    result, the store and the folders created for it are removed again (a store with results is kept: the
    next run resumes from it)."""
    path = canonical(path)
    check_store(path)
    created_dirs = _make_parents(path.parent)
    created = not path.exists()
    store = ResultStore(path)
    try:
        yield store
    except BaseException:
        empty = created and store.count() == 0
        store.close()
        if empty:
            for suffix in ("", *_SIDE_FILES):
                with contextlib.suppress(OSError):
                    Path(f"{path}{suffix}").unlink()
            _remove_created(created_dirs)
        raise
    store.close()
