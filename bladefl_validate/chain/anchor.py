"""What a run's chain commits to besides the models: canonical digests of the files the run reports.

Block 1 commits to ``config.json`` and ``partition.csv``; every block to its round's row of ``metrics.csv``,
all of it but the wall-clock column (no two runs share it, and the same seed must give the same ledger);
``chain.json``, whose digest is the run's tip, to ``summary.json``, that wall-clock column and, when the run
screened for lazy clients, ``detection.csv``. A digest is of the parsed content in canonical form, so it
depends on what a file says, not on its layout (key order, quoting, line ends).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence

from bladefl_platform.canonical import canonical_digest

from .ledger import parse_json

__all__ = [
    "CONFIG_NAME", "METRICS_NAME", "PARTITION_NAME", "SUMMARY_NAME", "DETECTION_NAME", "CLOCK_COLUMNS", "COMMITTED",
    "json_digest", "read_table", "table_digest", "genesis_commits", "round_commits", "report_commits", "mismatch",
]

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.csv"
PARTITION_NAME = "partition.csv"
SUMMARY_NAME = "summary.json"
DETECTION_NAME = "detection.csv"
#: metrics.csv columns that differ from run to run of one seed: committed by chain.json, not by the blocks.
CLOCK_COLUMNS = ("wall_seconds",)
#: What each commitment's name stands for, as an audit names it.
COMMITTED = {
    "config": CONFIG_NAME,
    "partition": PARTITION_NAME,
    "metrics": METRICS_NAME,
    "summary": SUMMARY_NAME,
    "clock": f"{METRICS_NAME} column {', '.join(CLOCK_COLUMNS)}",
    "detection": DETECTION_NAME,
}


def json_digest(data: str | bytes) -> str:
    """The canonical digest of a JSON document; ValueError (one line) if it is not JSON."""
    return canonical_digest(parse_json(data))


def read_table(data: str | bytes) -> tuple[list[str], list[list[str]]]:
    """A CSV table's column names and rows of cells; ValueError (one line) for a repeated column name, a row of
    another width than the header, or text that is not UTF-8 CSV."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(str(exc)) from None
    if not rows:
        raise ValueError("empty: no header row")
    columns, body = rows[0], rows[1:]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ValueError(f"column {', '.join(map(repr, repeated))} appears more than once")
    for i, row in enumerate(body, start=2):
        if len(row) != len(columns):
            raise ValueError(f"line {i} has {len(row)} cells, the header {len(columns)}")
    return columns, body


def table_digest(data: str | bytes) -> str:
    """The canonical digest of a CSV table (its header and every row, as text cells)."""
    columns, rows = read_table(data)
    return canonical_digest([columns, *rows])


def _digest(name: str, digest: Callable[[str | bytes], str], data: str | bytes) -> str:
    """``digest(data)``, its ValueError naming the file ``name``."""
    try:
        return digest(data)
    except ValueError as exc:
        raise ValueError(f"{name}: malformed: {exc}") from None


def genesis_commits(config: str | bytes, partition: str | bytes) -> dict[str, str]:
    """What block 1 commits to besides its round: the run's configuration and its partition."""
    return {"config": _digest(CONFIG_NAME, json_digest, config),
            "partition": _digest(PARTITION_NAME, table_digest, partition)}


def round_commits(columns: Sequence[str], cells: Sequence[str]) -> dict[str, str]:
    """What a block commits to for its round: the round's metrics row, by column, but the wall-clock cells."""
    row = {c: v for c, v in zip(columns, cells) if c not in CLOCK_COLUMNS}
    return {"metrics": canonical_digest(row)}


def report_commits(summary: str | bytes, metrics: str | bytes, detection: str | bytes | None) -> dict[str, str]:
    """What chain.json commits to: the summary, the metrics' wall-clock column and detection.csv if there is one."""
    commits = {"summary": _digest(SUMMARY_NAME, json_digest, summary),
               "clock": _digest(METRICS_NAME, _clock_digest, metrics)}
    if detection is not None:
        commits["detection"] = _digest(DETECTION_NAME, table_digest, detection)
    return commits


def _clock_digest(metrics: str | bytes) -> str:
    columns, rows = read_table(metrics)
    return canonical_digest({c: [row[columns.index(c)] for row in rows] if c in columns else None
                             for c in CLOCK_COLUMNS})


def mismatch(expected: Mapping[str, str], committed: Mapping[str, str], where: str,
             labels: Mapping[str, str] | None = None) -> str | None:
    """The first file whose digest differs from what ``where`` committed to, as one line, or None.

    ``labels`` names a commitment more closely than :data:`COMMITTED` (a metrics row by its round)."""
    names = {**COMMITTED, **(labels or {})}
    for name in sorted(expected.keys() | committed.keys()):
        what = names.get(name, name)
        if name not in committed:
            return f"{what} is not among what {where} committed to"
        if name not in expected:
            return f"{what} is missing, yet {where} committed to it"
        if expected[name] != committed[name]:
            return f"{what} does not match what {where} committed to: it was changed after the run"
    return None
