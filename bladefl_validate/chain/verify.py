"""Audit a finished run: recompute the whole chain and every model blob it refers to from the files alone.

The ledger is held to what the run committed to outside it: the manifest (``chain.json``: number
of blocks, difficulty, tip hash), ``config.json`` (K, N, difficulty) and the block columns of
``metrics.csv``. This catches a ledger that was truncated, emptied, extended or re-mined at another
difficulty. It cannot catch a forger who rewrites all of these consistently (re-mining a chain at
low difficulty is cheap): only a tip hash kept outside the folder (``tip=``) anchors a run.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ledger import LEDGER_NAME, MANIFEST_NAME, Block, LedgerError, Manifest, iter_blocks, parse_json, verify_block
from .mining import GENESIS_PREV
from .pool import BlobError, CachePool, is_digest

__all__ = ["ChainReport", "verify_run", "BLOB_DIR", "CONFIG_NAME", "METRICS_NAME"]

#: The cache pool's folder inside a run folder.
BLOB_DIR = "blobs"
#: The run's configuration and per-round metrics inside a run folder.
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.csv"

# metrics.csv columns that restate a block's header, checked against the ledger.
_METRIC_BLOCK_COLUMNS = ("block_hash", "miner", "nonce")


@dataclass(frozen=True)
class ChainReport:
    """Whether the run checks out, how many blocks and distinct blobs passed, the first problem found, and the tip."""

    ok: bool
    blocks: int
    blobs: int
    error: str | None
    tip: str | None = None  # the last good block's hash


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


def _read_config(run_dir: Path) -> dict[str, int]:
    """K, N and difficulty_bits from config.json (read as plain JSON: an audit needs no working set-up)."""
    try:
        record: Any = parse_json(_read(run_dir / CONFIG_NAME))
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
    return out


def _read_metrics(run_dir: Path) -> list[dict[str, str]]:
    try:
        reader = csv.DictReader(io.StringIO(_read(run_dir / METRICS_NAME).decode("utf-8"), newline=""))
        rows = list(reader)
        columns = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _Failed(f"{METRICS_NAME}: malformed: {exc}") from None
    missing = [c for c in ("round", *_METRIC_BLOCK_COLUMNS) if c not in columns]
    if missing:
        raise _Failed(f"{METRICS_NAME}: malformed: no column {', '.join(missing)}")
    return rows


def _check_metrics_row(rows: list[dict[str, str]], block: Block, where: str) -> None:
    h = block.header
    i = h.index - 1
    if i >= len(rows):
        raise _Failed(f"{where}: {METRICS_NAME} has no row for it ({len(rows)} rows)")
    row = rows[i]
    if row.get("round") != str(h.index):
        raise _Failed(f"{where}: {METRICS_NAME} row {h.index} is round {row.get('round')!r}")
    for column, value in (("block_hash", block.hash), ("miner", str(h.miner)), ("nonce", str(h.nonce))):
        if row.get(column) != value:
            raise _Failed(f"{where}: {METRICS_NAME} round {h.index} records {column} {row.get(column)!r}, "
                          f"the ledger {value}")


def verify_run(run_dir: str | os.PathLike[str], difficulty_bits: int | None = None,
               tip: str | None = None) -> ChainReport:
    """Audit ``run_dir`` against its manifest, config and metrics, block by block, stopping at the first error.

    ``difficulty_bits`` additionally requires that difficulty; ``tip`` (a hash kept outside the folder)
    requires the chain to end there, the one check a consistently rewritten folder cannot pass.
    """
    if tip is not None and not is_digest(tip):
        raise ValueError(f"tip must be 64 lowercase hex characters, got {tip!r}")
    run_dir = Path(run_dir)
    pool = CachePool(run_dir / BLOB_DIR)
    good: list[Block] = []
    seen: set[str] = set()
    try:
        if not run_dir.is_dir():
            raise _Failed(f"{run_dir} is not a folder")
        manifest = _read_manifest(run_dir)
        config = _read_config(run_dir)
        if config["K"] != manifest.blocks:
            raise _Failed(f"{CONFIG_NAME} says K = {config['K']}, {MANIFEST_NAME} commits to {manifest.blocks} blocks")
        if config["difficulty_bits"] != manifest.difficulty_bits:
            raise _Failed(f"{CONFIG_NAME} says {config['difficulty_bits']} difficulty bits, {MANIFEST_NAME} "
                          f"commits to {manifest.difficulty_bits} bits")
        if difficulty_bits is not None and difficulty_bits != manifest.difficulty_bits:
            raise _Failed(f"the run's difficulty is {manifest.difficulty_bits} bits ({MANIFEST_NAME}), "
                          f"not the required {difficulty_bits}")
        rows = _read_metrics(run_dir)
        _check_chain(run_dir, pool, manifest, config["N"], rows, good, seen)
        tip_now = good[-1].hash if good else GENESIS_PREV
        if len(good) != manifest.blocks:
            raise _Failed(f"the ledger holds {len(good)} blocks, the run committed to {manifest.blocks} "
                          f"({MANIFEST_NAME})")
        if len(rows) != len(good):
            raise _Failed(f"{METRICS_NAME} has {len(rows)} rows for {len(good)} blocks")
        if tip_now != manifest.tip_hash:
            raise _Failed(f"the chain's tip is {tip_now}, the run committed to {manifest.tip_hash} ({MANIFEST_NAME})")
        if tip is not None and tip_now != tip:
            raise _Failed(f"the chain's tip is {tip_now}, not the tip {tip} you kept: the run folder was rewritten "
                          "(or the kept hash belongs to another run)")
    except _Failed as exc:
        return ChainReport(ok=False, blocks=len(good), blobs=len(seen), error=str(exc),
                           tip=good[-1].hash if good else None)
    return ChainReport(ok=True, blocks=len(good), blobs=len(seen), error=None, tip=tip_now)


def _check_chain(run_dir: Path, pool: CachePool, manifest: Manifest, n_clients: int, rows: list[dict[str, str]],
                 good: list[Block], seen: set[str]) -> None:
    """Check the ledger's blocks and their blobs in file order, appending each good block to ``good``."""
    data = _read(run_dir / LEDGER_NAME)
    try:
        for lineno, block in iter_blocks(data):
            h = block.header
            where = f"block {h.index} (line {lineno})"
            if h.index != lineno:
                raise _Failed(f"{where}: out of order: line {lineno} should hold block {lineno}")
            if lineno > manifest.blocks:
                raise _Failed(f"{where}: beyond the {manifest.blocks} blocks the run committed to ({MANIFEST_NAME})")
            if h.difficulty_bits != manifest.difficulty_bits:
                raise _Failed(f"{where}: difficulty is {h.difficulty_bits} bits, the run requires "
                              f"{manifest.difficulty_bits} ({MANIFEST_NAME})")
            # The client's own check; against itself the digest comparison is trivially true.
            ok, why = verify_block(block, good[-1].hash if good else GENESIS_PREV, block.digests)
            if not ok:
                raise _Failed(f"{where}: {why}")
            # The Merkle root cannot tell [a, b, c] from [a, b, c, c]; the number of clients can.
            if len(block.digests) != n_clients:
                raise _Failed(f"{where}: {len(block.digests)} model digests, the run had N = {n_clients} clients")
            _check_metrics_row(rows, block, where)
            for digest in block.digests:
                if digest not in seen:
                    _check_blob(pool, digest, where)
                    seen.add(digest)
            good.append(block)
    except LedgerError as exc:
        raise _Failed(str(exc)) from None


def _check_blob(pool: CachePool, digest: str, where: str) -> None:
    try:
        pool.get(digest)  # reads the blob and checks that its content hashes to its name
    except BlobError as exc:
        raise _Failed(f"{exc} (named in {where})") from None
