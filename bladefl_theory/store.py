"""A durable result store for sweeps: SQLite in WAL mode, one row per finished task.

A task is keyed by the SHA-256 of its kind, its complete configuration and the version of the
code that computes it (see :class:`~bladefl_theory.execution.TaskKind`), so
re-running a sweep skips what is done, a sweep killed part-way resumes with nothing lost, and
a result is never counted twice (the key is the primary key; a second insert is ignored).
Several processes may write to one store at once: WAL lets readers run beside the one writer,
and every insert is its own short transaction, retried while the database is busy.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["ResultStore", "task_key"]

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
    payload = json.dumps({"kind": kind, "config": config, "version": version}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResultStore:
    """Finished tasks in an SQLite file; safe for concurrent writers."""

    def __init__(self, path: str | Path, timeout: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)

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
