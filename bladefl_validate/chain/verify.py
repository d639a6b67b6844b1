"""Audit a finished run: recompute the whole chain and every model blob it refers to from the files alone.

The ledger is held to what the run committed to outside it: the manifest (``chain.json``: number
of blocks, difficulty, last block), ``config.json`` (K, N, difficulty) and the block columns of
``metrics.csv``. This catches a ledger that was truncated, emptied, extended or re-mined at another
difficulty. In format 2 every file the run reports is held to the chain's commitments too (see ``anchor``):
block 1 to config.json and partition.csv, each block to its metrics row, the manifest to summary.json, the
wall-clock column and detection.csv. None of this can catch a forger who rewrites all of it consistently
(records cost nothing, re-mining at low difficulty little): only a tip kept outside the folder (``tip=``)
anchors a run, and in format 2 it anchors every reported number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .anchor import (CONFIG_NAME, DETECTION_NAME, METRICS_NAME, PARTITION_NAME, SUMMARY_NAME, genesis_commits,
                     mismatch, read_table, report_commits, round_commits)
from .ledger import (LEDGER_NAME, MANIFEST_NAME, Block, LedgerError, Manifest, record_fault, iter_blocks, parse_json,
                     verify_block)
from .mining import GENESIS_PREV
from .pool import BlobError, CachePool, is_digest

__all__ = ["ChainReport", "verify_run", "BLOB_DIR", "CONFIG_NAME", "METRICS_NAME", "UNANCHORED_FORMAT_1"]

#: The cache pool's folder inside a run folder.
BLOB_DIR = "blobs"

# metrics.csv columns that restate a block's header, checked against the ledger.
_METRIC_BLOCK_COLUMNS = ("block_hash", "miner", "nonce")
#: What a format 1 folder cannot prove: files its chain does not commit to (beyond the checks named).
UNANCHORED_FORMAT_1 = (f"{CONFIG_NAME} (beyond K, N and the difficulty)",
                       f"{METRICS_NAME} (beyond block_hash, miner and nonce)", SUMMARY_NAME, PARTITION_NAME)


@dataclass(frozen=True)
class ChainReport:
    """Whether the run checks out, how many blocks and distinct blobs passed, the first problem found, and the tip.

    A format 1 folder is never ``ok``: ``unproven`` lists what its chain does not anchor, ``error`` says so."""

    ok: bool
    blocks: int
    blobs: int
    error: str | None
    tip: str | None = None  # the run's tip when ok; else the last good block's hash
    format: int | None = None  # the ledger format of the folder, once chain.json was read
    unproven: tuple[str, ...] = ()


class _Failed(Exception):
    """An audit finding: the message names the file or block and what is wrong."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _Failed(f"{path.name}: missing from the run folder") from None
    except OSError as exc:
        raise _Failed(f"{path.name}: cannot be read: {exc.strerror or exc}") from None


def _read_manifest(run_dir: Path) -> Manifest:
    try:
        return Manifest.from_json(_read(run_dir / MANIFEST_NAME))
    except ValueError as exc:
        raise _Failed(f"{MANIFEST_NAME}: malformed: {exc}") from None


def _read_config(run_dir: Path) -> tuple[dict[str, int], bytes]:
    """K, N and difficulty_bits from config.json (read as plain JSON: an audit needs no working set-up), and its
    bytes."""
    data = _read(run_dir / CONFIG_NAME)
    try:
        record: Any = parse_json(data)
    except ValueError as exc:
        raise _Failed(f"{CONFIG_NAME}: malformed: {exc}") from None
    if not isinstance(record, dict):
        raise _Failed(f"{CONFIG_NAME}: malformed: not a JSON object")
    out = {}
    for name, least in (("K", 1), ("N", 1), ("difficulty_bits", 0)):
        v = record.get(name)
        if type(v) is not int or v < least:
            raise _Failed(f"{CONFIG_NAME}: malformed: {name} is {v!r}, not an integer >= {least}")
        out[name] = v
    return out, data


def _check_config(config: dict[str, int], manifest: Manifest, difficulty_bits: int | None) -> None:
    if config["K"] != manifest.blocks:
        raise _Failed(f"{CONFIG_NAME} says K = {config['K']}, {MANIFEST_NAME} commits to {manifest.blocks} blocks")
    if config["difficulty_bits"] != manifest.difficulty_bits:
        raise _Failed(f"{CONFIG_NAME} says {config['difficulty_bits']} difficulty bits, {MANIFEST_NAME} "
                      f"commits to {manifest.difficulty_bits} bits")
    if difficulty_bits is not None and difficulty_bits != manifest.difficulty_bits:
        raise _Failed(f"the run's difficulty is {manifest.difficulty_bits} bits ({MANIFEST_NAME}), "
                      f"not the required {difficulty_bits}")


@dataclass(frozen=True)
class _Metrics:
    """metrics.csv as read: its columns and its rows of text cells."""

    columns: list[str]
    rows: list[list[str]]

    def row(self, i: int) -> dict[str, str]:
        return dict(zip(self.columns, self.rows[i]))


def _read_metrics(run_dir: Path) -> _Metrics:
    try:
        columns, rows = read_table(_read(run_dir / METRICS_NAME))
    except ValueError as exc:
        raise _Failed(f"{METRICS_NAME}: malformed: {exc}") from None
    missing = [c for c in ("round", *_METRIC_BLOCK_COLUMNS) if c not in columns]
    if missing:
        raise _Failed(f"{METRICS_NAME}: malformed: no column {', '.join(missing)}")
    return _Metrics(columns, rows)


def _check_metrics_row(metrics: _Metrics, block: Block, where: str) -> None:
    h = block.header
    i = h.index - 1
    if i >= len(metrics.rows):
        raise _Failed(f"{where}: {METRICS_NAME} has no row for it ({len(metrics.rows)} rows)")
    row = metrics.row(i)
    if row.get("round") != str(h.index):
        raise _Failed(f"{where}: {METRICS_NAME} row {h.index} is round {row.get('round')!r}")
    for column, value in (("block_hash", block.hash), ("miner", str(h.miner)), ("nonce", str(h.nonce))):
        if row.get(column) != value:
            raise _Failed(f"{where}: {METRICS_NAME} round {h.index} records {column} {row.get(column)!r}, "
                          f"the ledger {value}")


def _check_commits(run_dir: Path, config: bytes, metrics: _Metrics, block: Block, where: str) -> None:
    """Hold a format 2 block's commitments to the files: its metrics row, and for block 1 config and partition."""
    k = block.header.index
    expected = round_commits(metrics.columns, metrics.rows[k - 1])
    if k == 1:
        try:
            expected.update(genesis_commits(config, _read(run_dir / PARTITION_NAME)))
        except ValueError as exc:
            raise _Failed(str(exc)) from None
    why = mismatch(expected, block.commits or {}, f"block {k}", {"metrics": f"{METRICS_NAME} round {k}"})
    if why:
        raise _Failed(f"{where}: {why}")


def verify_run(run_dir: str | os.PathLike[str], difficulty_bits: int | None = None,
               tip: str | None = None) -> ChainReport:
    """Audit ``run_dir`` against its manifest, config and metrics, block by block, stopping at the first error.

    ``difficulty_bits`` additionally requires that difficulty; ``tip`` (the run's tip, kept outside the folder)
    requires the folder to be the one that tip anchors, the one check a consistently rewritten folder cannot pass.
    """
    if tip is not None and not is_digest(tip):
        raise ValueError(f"tip must be 64 lowercase hex characters, got {tip!r}")
    run_dir = Path(run_dir)
    good: list[Block] = []
    seen: set[str] = set()
    form = None
    try:
        if not run_dir.is_dir():
            raise _Failed(f"{run_dir} is not a folder")
        manifest = _read_manifest(run_dir)
        form = manifest.format
        config, config_bytes = _read_config(run_dir)
        _check_config(config, manifest, difficulty_bits)
        metrics = _read_metrics(run_dir)
        _check_chain(run_dir, manifest, config["N"], config_bytes, metrics, good, seen)
        _check_end(run_dir, manifest, metrics, good)
        if tip is not None and manifest.tip != tip:
            raise _Failed(f"the run's tip is {manifest.tip}, not the tip {tip} you kept: the run folder was "
                          "rewritten (or the kept hash belongs to another run)")
    except _Failed as exc:
        return ChainReport(ok=False, blocks=len(good), blobs=len(seen), error=str(exc),
                           tip=good[-1].hash if good else None, format=form)
    if manifest.format == 1:
        held = " and end at the tip you kept" if tip else ""
        return ChainReport(ok=False, blocks=len(good), blobs=len(seen), tip=manifest.tip, format=1,
                           unproven=UNANCHORED_FORMAT_1,
                           error=f"a format 1 run folder: its ledger and blobs check out{held}, but format 1 "
                                 f"anchors none of {', '.join(UNANCHORED_FORMAT_1)}: they cannot be proven (runs "
                                 "of this version write format 2)")
    return ChainReport(ok=True, blocks=len(good), blobs=len(seen), error=None, tip=manifest.tip, format=2)


def _check_end(run_dir: Path, manifest: Manifest, metrics: _Metrics, good: list[Block]) -> None:
    """The chain as a whole against the manifest, and in format 2 the closing reports against its commitments."""
    if len(good) != manifest.blocks:
        raise _Failed(f"the ledger holds {len(good)} blocks, the run committed to {manifest.blocks} "
                      f"({MANIFEST_NAME})")
    if len(metrics.rows) != len(good):
        raise _Failed(f"{METRICS_NAME} has {len(metrics.rows)} rows for {len(good)} blocks")
    last = good[-1].hash if good else GENESIS_PREV
    if last != manifest.last_block:
        raise _Failed(f"the chain's last block is {last}, the run committed to {manifest.last_block} "
                      f"({MANIFEST_NAME})")
    if manifest.format == 1:
        return
    if good[-1].record != manifest.record:
        raise _Failed(f"the ledger's last record is {good[-1].record}, the run committed to {manifest.record} "
                      f"({MANIFEST_NAME})")
    detection = run_dir / DETECTION_NAME
    try:
        expected = report_commits(_read(run_dir / SUMMARY_NAME), _read(run_dir / METRICS_NAME),
                                  _read(detection) if detection.exists() else None)
    except ValueError as exc:
        raise _Failed(str(exc)) from None
    why = mismatch(expected, manifest.commits or {}, MANIFEST_NAME)
    if why:
        raise _Failed(why)


def _check_chain(run_dir: Path, manifest: Manifest, n_clients: int, config: bytes, metrics: _Metrics,
                 good: list[Block], seen: set[str]) -> None:
    """Check the ledger's blocks and their blobs in file order, appending each good block to ``good``."""
    pool = CachePool(run_dir / BLOB_DIR)
    data = _read(run_dir / LEDGER_NAME)
    try:
        for lineno, block in iter_blocks(data):
            h = block.header
            where = f"block {h.index} (line {lineno})"
            _check_place(block, lineno, manifest, where)
            # The client's own check; against itself the digest comparison is trivially true.
            ok, why = verify_block(block, good[-1].hash if good else GENESIS_PREV, block.digests)
            if not ok:
                raise _Failed(f"{where}: {why}")
            # The Merkle root cannot tell [a, b, c] from [a, b, c, c]; the number of clients can.
            if len(block.digests) != n_clients:
                raise _Failed(f"{where}: {len(block.digests)} model digests, the run had N = {n_clients} clients")
            _check_metrics_row(metrics, block, where)
            fault = record_fault(block, good[-1] if good else None)
            if fault:
                raise _Failed(f"{where}: {fault}")
            if block.format == 2:
                _check_commits(run_dir, config, metrics, block, where)
            for digest in block.digests:
                if digest not in seen:
                    _check_blob(pool, digest, where)
                    seen.add(digest)
            good.append(block)
    except LedgerError as exc:
        raise _Failed(str(exc)) from None


def _check_place(block: Block, lineno: int, manifest: Manifest, where: str) -> None:
    """The block's place in the run: its line, within the committed blocks, difficulty and format."""
    h = block.header
    if h.index != lineno:
        raise _Failed(f"{where}: out of order: line {lineno} should hold block {lineno}")
    if lineno > manifest.blocks:
        raise _Failed(f"{where}: beyond the {manifest.blocks} blocks the run committed to ({MANIFEST_NAME})")
    if h.difficulty_bits != manifest.difficulty_bits:
        raise _Failed(f"{where}: difficulty is {h.difficulty_bits} bits, the run requires "
                      f"{manifest.difficulty_bits} ({MANIFEST_NAME})")
    if block.format != manifest.format:
        raise _Failed(f"{where}: in ledger format {block.format}, {MANIFEST_NAME} in format {manifest.format}")


def _check_blob(pool: CachePool, digest: str, where: str) -> None:
    try:
        pool.get(digest)  # reads the blob and checks that its content hashes to its name
    except BlobError as exc:
        raise _Failed(f"{exc} (named in {where})") from None
