"""A durable result store for sweeps: SQLite in WAL mode, one row per finished task.

A task is keyed by the SHA-256 of its kind, its complete configuration and the version of the
code that computes it (see :class:`~bladefl_platform.execution.TaskKind`), so
re-running a sweep skips what is done, a sweep killed part-way resumes with nothing lost, and
a result is never counted twice (the key is the primary key; a second insert is ignored).
Several processes may write to one store at once: WAL lets readers run beside the one writer,
and every insert is its own short transaction, retried while the database is busy.

Each row carries the SHA-256 of its canonical form (:func:`row_digest`: key, kind, configuration, result
and version as canonical JSON), checked on every read: a row edited by hand (``UPDATE results SET result
= ...``) or corrupted is named in one warning line and counts as not done, so its task runs again and its
new result replaces it; a store opened with ``strict=True`` refuses it instead (InputError, exit status 2).
The digest detects edits and corruption, not a forger who recomputes it (that would take a secret key).
Stores of schema 0 (no digests) are migrated when opened: the digests of the rows they hold are added
(whatever those rows say then is what the digests vouch for), and ``PRAGMA user_version`` becomes
:data:`SCHEMA_VERSION`.

A path that is not a store (a folder, a file that is not SQLite, an SQLite database of something
else) is refused with :class:`~bladefl_platform.errors.InputError` (exit status 2), before and
without changing it: :func:`check_store` tells before a command computes anything, and
:func:`opened_store` removes a store it created if the command fails before recording anything.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .atomic import _make_parents, _nearest_existing, _remove_created, canonical, check_writable
from .errors import InputError
from .canonical import canonical_digest

__all__ = ["SCHEMA_VERSION", "ResultStore", "TamperedResult", "check_store", "opened_store", "row_digest", "task_key"]

log = logging.getLogger("bladefl_platform")

#: The store's schema, as ``PRAGMA user_version`` records it: 1 added each row's digest (0: none, migrated on open).
SCHEMA_VERSION = 1
_COLUMNS = ("key", "kind", "config", "result", "version", "created", "digest")
_OLD_COLUMNS = _COLUMNS[:-1]
# SQLite keeps these beside a database in WAL mode while it is open.
_SIDE_FILES = ("-wal", "-shm", "-journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    result TEXT NOT NULL,
    version TEXT NOT NULL,
    created REAL NOT NULL,
    digest TEXT NOT NULL
)
"""


def task_key(kind: str, config: Mapping[str, Any], version: str) -> str:
    """SHA-256 of the task kind, its complete configuration (canonical JSON) and the code's version."""
    return canonical_digest({"kind": kind, "config": config, "version": version})


def row_digest(key: str, kind: str, config: Any, result: Any, version: str) -> str:
    """SHA-256 of a stored row's canonical form (canonical JSON of its key, kind, config, result and version)."""
    return canonical_digest({"key": key, "kind": kind, "config": config, "result": result, "version": version})


class TamperedResult(InputError):
    """A stored row does not match its digest, and the store is strict: the read is refused."""


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
    if columns not in (_COLUMNS, _OLD_COLUMNS):
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

    Opening a path that is not a store raises InputError and leaves the file as it was. A row that does not match
    its digest is never returned: it is named in a warning and counts as not done (``strict``: TamperedResult).
    """

    def __init__(self, path: str | Path, timeout: float = 60.0, strict: bool = False):
        self.path = Path(path)
        self.strict = strict
        self._warned: set[str] = set()
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
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise InputError(f"{self.path} is not a result store, or cannot be written ({_one_line(exc)})") from None

    def _migrate(self) -> None:
        """Bring a store of an older schema to :data:`SCHEMA_VERSION` in one transaction (schema 0: add the digests)."""
        if self._conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            columns = [row[1] for row in self._conn.execute("PRAGMA table_info(results)")]
            if "digest" not in columns:
                self._conn.execute("ALTER TABLE results ADD COLUMN digest TEXT NOT NULL DEFAULT ''")
                rows = self._conn.execute("SELECT key, kind, config, result, version FROM results").fetchall()
                self._conn.executemany("UPDATE results SET digest = ? WHERE key = ?",
                                       [(_digest_of_row(row), row[0]) for row in rows])
                if rows:
                    log.info("%s: result store migrated to schema %d (a digest added to each of its %d results)",
                             self.path, SCHEMA_VERSION, len(rows))
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _holds(self, row: Sequence[Any]) -> bool:
        """Whether a row (key, kind, config, result, version, digest) matches its digest; if not, warn (once per
        key) or, if strict, raise TamperedResult."""
        if _matches(row):
            return True
        key, kind = row[0], row[1]
        what = (f"{self.path}: the stored result of task {key} ({kind}) does not match its digest (edited by hand, "
                "or corrupt)")
        if self.strict:
            raise TamperedResult(f"{what}; refused (--strict)")
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s; running it again", what)
        return False

    def put(self, key: str, kind: str, config: Mapping[str, Any], result: Mapping[str, Any], version: str) -> bool:
        """Record a finished task computed by code of ``version``; False if it was recorded already (nothing is
        counted twice). A recorded row that does not match its digest is replaced."""
        config_text, result_text = json.dumps(config, sort_keys=True), json.dumps(result, sort_keys=True)
        digest = row_digest(key, kind, json.loads(config_text), json.loads(result_text), version)
        row = (key, kind, config_text, result_text, version, time.time(), digest)
        cur = self._conn.execute(f"INSERT OR IGNORE INTO results ({', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 row)
        if cur.rowcount == 1:
            return True
        old = self._conn.execute(f"SELECT {_READ} FROM results WHERE key = ?", (key,)).fetchone()
        if old is None or _matches(old):
            return False
        cur = self._conn.execute("UPDATE results SET kind = ?, config = ?, result = ?, version = ?, created = ?, "
                                 "digest = ? WHERE key = ? AND digest = ?", (*row[1:], key, old[5]))
        return cur.rowcount == 1

    def get(self, key: str) -> dict[str, Any] | None:
        """The result of a finished task, or None (also for a row that does not match its digest)."""
        row = self._conn.execute(f"SELECT {_READ} FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None or not self._holds(row) else json.loads(row[3])

    def done(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` are finished (with a row that matches its digest)."""
        keys = list(keys)
        found: set[str] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(row[0] for row in self._conn.execute(f"SELECT {_READ} FROM results WHERE key IN ({marks})",
                                                              chunk) if self._holds(row))
        return found

    def count(self, kind: str | None = None) -> int:
        """How many tasks are recorded (of one kind, if given)."""
        if kind is None:
            return self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self._conn.execute("SELECT COUNT(*) FROM results WHERE kind = ?", (kind,)).fetchone()[0]

    def rows(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every recorded task that matches its digest as {key, kind, config, result, version}."""
        query = f"SELECT {_READ} FROM results" + (" WHERE kind = ?" if kind else "")
        cur = self._conn.execute(query + " ORDER BY created", (kind,) if kind else ())
        return [{"key": k, "kind": t, "config": json.loads(c), "result": json.loads(r), "version": v}
                for k, t, c, r, v, d in cur if self._holds((k, t, c, r, v, d))]

    def integrity_ok(self) -> bool:
        """SQLite's own integrity check."""
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


#: The columns a read checks: the row's canonical form, then its digest.
_READ = "key, kind, config, result, version, digest"


def _matches(row: Sequence[Any]) -> bool:
    """Whether a row (key, kind, config text, result text, version, digest) as read matches its digest."""
    digest = _digest_of_row(row[:5])
    return bool(digest) and digest == row[5]


def _digest_of_row(row: Sequence[Any]) -> str:
    """:func:`row_digest` of a row (key, kind, config text, result text, version) as stored; '' if its JSON is bad."""
    key, kind, config, result, version = row
    try:
        return row_digest(key, kind, json.loads(config), json.loads(result), version)
    except (TypeError, ValueError):
        return ""


@contextlib.contextmanager
def opened_store(path: str | os.PathLike, strict: bool = False) -> Iterator[ResultStore]:
    """The store at ``path`` for one command; if the block fails before the store this call created holds any
    result, the store and the folders created for it are removed again (a store with results is kept: the
    next run resumes from it). ``strict``: see :class:`ResultStore`."""
    path = canonical(path)
    check_store(path)
    created_dirs = _make_parents(path.parent)
    created = not path.exists()
    store = ResultStore(path, strict=strict)
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
