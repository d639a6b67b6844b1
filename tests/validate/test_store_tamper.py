"""A result edited by hand in a sweep's store (``UPDATE results SET result = ...``) never reaches its report: the
sweep names it in a warning and runs its task again; with --strict it refuses the read, in one line, status 2."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd

from validate_cli_helpers import SMALL, assert_bad_input, invoke

FORGED = {"final_global_train_loss": 0.001, "final_test_accuracy": 0.999}


def _forge_one(store) -> str:
    conn = sqlite3.connect(store)
    key, text = conn.execute("SELECT key, result FROM results ORDER BY key LIMIT 1").fetchone()
    conn.execute("UPDATE results SET result = ? WHERE key = ?", (json.dumps({**json.loads(text), **FORGED}), key))
    conn.commit()
    conn.close()
    return key


def _measured(out) -> pd.DataFrame:
    """The report's numbers that a run determines (not its wall time)."""
    return pd.read_csv(out / "runs.csv").drop(columns="wall_seconds")


def test_an_edited_result_is_run_again_or_refused_with_strict(tmp_path, data_root):
    out, store = tmp_path / "out", tmp_path / "out" / "results.sqlite"
    args = ["sweep-k", *SMALL, "--data-dir", str(data_root), "--out", str(out)]
    first = invoke(args)
    assert first.exit_code == 0, first.stderr
    report = _measured(out)

    key = _forge_one(store)
    again = invoke(args)
    assert again.exit_code == 0, again.stderr
    warnings = [line for line in again.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and key in warnings[0] and "running it again" in warnings[0], again.stderr
    pd.testing.assert_frame_equal(_measured(out), report)  # the run again, not the forgery

    _forge_one(store)
    before = store.read_bytes(), (out / "runs.csv").read_bytes()
    refused = invoke([*args, "--strict", "--json"])
    assert_bad_input(refused, "does not match its digest")
    assert key in refused.stderr and refused.stdout == ""
    assert (store.read_bytes(), (out / "runs.csv").read_bytes()) == before
