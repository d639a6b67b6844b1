"""Each stored result carries the digest of its canonical form: a row edited by hand is named, counts as not done and
is replaced when its task runs again, or is refused in a strict store; stores of schema 0 are migrated on open."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from bladefl_platform.store import SCHEMA_VERSION, ResultStore, TamperedResult, check_store, row_digest, task_key

KEY = task_key("run", {"K": 1}, "1")
OTHER = task_key("run", {"K": 2}, "1")


def _stored(path: Path) -> Path:
    with ResultStore(path) as store:
        store.put(KEY, "run", {"K": 1}, {"loss": 0.5, "accuracy": 0.8}, "1")
        store.put(OTHER, "run", {"K": 2}, {"loss": 0.4, "accuracy": 0.85}, "1")
    return path


def _edit(path: Path, sql: str, *args) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql, args)
    conn.commit()
    conn.close()


FORGED = json.dumps({"loss": 0.001, "accuracy": 0.999}, sort_keys=True)


@pytest.mark.parametrize("sql, args", [
    ("UPDATE results SET result = ? WHERE key = ?", (FORGED, KEY)),
    ("UPDATE results SET config = ? WHERE key = ?", ('{"K": 9}', KEY)),
    ("UPDATE results SET result = ? WHERE key = ?", ("not json", KEY)),
    ("UPDATE results SET digest = ? WHERE key = ?", ("0" * 64, KEY)),
    ("UPDATE results SET digest = '' WHERE key = ?", (KEY,)),
])
def test_a_row_edited_by_hand_is_named_and_not_done(tmp_path, caplog, sql, args):
    path = _stored(tmp_path / "s.sqlite")
    _edit(path, sql, *args)
    with caplog.at_level(logging.WARNING, logger="bladefl_platform"), ResultStore(path) as store:
        assert store.get(KEY) is None
        assert store.done([KEY, OTHER]) == {OTHER}
        assert [r["key"] for r in store.rows("run")] == [OTHER]
        assert store.get(OTHER) == {"loss": 0.4, "accuracy": 0.85}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once per key, however often it is read
    assert KEY in warnings[0] and str(path) in warnings[0] and "does not match its digest" in warnings[0]


def test_the_task_run_again_replaces_the_edited_row(tmp_path):
    path = _stored(tmp_path / "s.sqlite")
    _edit(path, "UPDATE results SET result = ? WHERE key = ?", FORGED, KEY)
    with ResultStore(path) as store:
        assert store.put(KEY, "run", {"K": 1}, {"loss": 0.5, "accuracy": 0.8}, "1")
        assert store.get(KEY) == {"loss": 0.5, "accuracy": 0.8} and store.done([KEY]) == {KEY}
        assert not store.put(KEY, "run", {"K": 1}, {"loss": 0.6}, "1")  # a sound row is never replaced
        assert store.count() == 2


def test_a_strict_store_refuses_the_edited_row_in_one_line(tmp_path):
    path = _stored(tmp_path / "s.sqlite")
    _edit(path, "UPDATE results SET result = ? WHERE key = ?", FORGED, KEY)
    before = path.read_bytes()
    with ResultStore(path, strict=True) as store:
        assert store.get(OTHER) is not None
        for read in (lambda: store.get(KEY), lambda: store.done([KEY]), lambda: store.rows()):
            with pytest.raises(TamperedResult, match=f"{KEY} .*does not match its digest.*--strict") as info:
                read()
            assert "\n" not in str(info.value)
    assert path.read_bytes() == before


def _schema0(path: Path, rows: list[tuple]) -> None:
    """A store as the code before digests wrote it."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE results (key TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL, "
                 "result TEXT NOT NULL, version TEXT NOT NULL, created REAL NOT NULL)")
    conn.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


def test_a_store_of_schema_0_is_migrated_on_open(tmp_path, caplog):
    path = tmp_path / "old.sqlite"
    _schema0(path, [(KEY, "run", '{"K": 1}', '{"loss": 0.5}', "1", 1.0),
                    (OTHER, "run", '{"K": 2}', '{"loss": 0.4}', "1", 2.0)])
    check_store(path)  # accepted as it is, and left alone
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 0
    with caplog.at_level(logging.INFO, logger="bladefl_platform"), ResultStore(path) as store:
        assert store.done([KEY, OTHER]) == {KEY, OTHER} and store.get(KEY) == {"loss": 0.5}
    assert any("migrated to schema 1" in r.getMessage() and "2 results" in r.getMessage() for r in caplog.records)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    digest = conn.execute("SELECT digest FROM results WHERE key = ?", (KEY,)).fetchone()[0]
    assert digest == row_digest(KEY, "run", {"K": 1}, {"loss": 0.5}, "1")
    conn.close()
    # Once migrated, an edit is caught as in any store.
    _edit(path, "UPDATE results SET result = ? WHERE key = ?", FORGED, KEY)
    with ResultStore(path) as store:
        assert store.done([KEY, OTHER]) == {OTHER}


def test_migrating_a_copy_changes_nothing_it_reads(tmp_path):
    path = tmp_path / "old.sqlite"
    _schema0(path, [(task_key("t", {"i": i}, "1"), "t", json.dumps({"i": i}), json.dumps({"v": i / 3}), "1", i)
                    for i in range(50)])
    shutil.copy(path, tmp_path / "copy.sqlite")
    conn = sqlite3.connect(tmp_path / "copy.sqlite")
    before = [(k, json.loads(c), json.loads(r)) for k, c, r in conn.execute("SELECT key, config, result FROM results")]
    conn.close()
    with ResultStore(tmp_path / "copy.sqlite") as store:
        assert [(r["key"], r["config"], r["result"]) for r in store.rows()] == before
