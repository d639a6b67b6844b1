"""Audit a finished run: recompute the whole chain and every model blob it refers to from the files alone."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .ledger import LEDGER_NAME, Block, LedgerError, iter_blocks, verify_block
from .mining import GENESIS_PREV
from .pool import CachePool, sha256_hex

__all__ = ["ChainReport", "verify_run", "BLOB_DIR"]

#: The cache pool's folder inside a run folder.
BLOB_DIR = "blobs"


@dataclass(frozen=True)
class ChainReport:
    """Whether the run checks out, how many blocks and distinct blobs passed, and the first problem found."""

    ok: bool
    blocks: int
    blobs: int
    error: str | None


def verify_run(run_dir: str | os.PathLike[str], difficulty_bits: int | None = None) -> ChainReport:
    """Check ``run_dir/ledger.jsonl`` and ``run_dir/blobs`` block by block, stopping at the first error.

    With ``difficulty_bits``, every block must also declare exactly that difficulty (otherwise each
    block's own declared difficulty is the only target its proof of work is held to).
    """
    run_dir = Path(run_dir)
    ledger_path = run_dir / LEDGER_NAME
    pool = CachePool(run_dir / BLOB_DIR)
    good_blocks = 0
    seen: set[str] = set()

    def report(error: str) -> ChainReport:
        return ChainReport(ok=False, blocks=good_blocks, blobs=len(seen), error=error)

    try:
        data = ledger_path.read_bytes()
    except OSError as exc:
        return report(f"cannot read {ledger_path}: {exc.strerror or exc}")

    prev: Block | None = None
    try:
        for lineno, block in iter_blocks(data):
            h = block.header
            where = f"block {h.index} (line {lineno})"
            if h.index != lineno:
                return report(f"{where}: out of order: line {lineno} should hold block {lineno}")
            expected_prev = GENESIS_PREV if prev is None else prev.hash
            if difficulty_bits is not None and h.difficulty_bits != difficulty_bits:
                return report(f"{where}: difficulty is {h.difficulty_bits} bits, the run requires {difficulty_bits}")
            # The client's own check; against itself the digest comparison is trivially true.
            ok, why = verify_block(block, expected_prev, block.digests)
            if not ok:
                return report(f"{where}: {why}")
            for digest in block.digests:
                if digest in seen:
                    continue
                try:
                    content = pool.path(digest).read_bytes()
                except FileNotFoundError:
                    return report(f"blob {digest} in {where}: missing from the pool")
                except OSError as exc:
                    return report(f"blob {digest} in {where}: cannot be read: {exc.strerror or exc}")
                actual = sha256_hex(content)
                if actual != digest:
                    return report(f"blob {digest} in {where}: corrupt, its content hashes to {actual}")
                seen.add(digest)
            good_blocks += 1
            prev = block
    except LedgerError as exc:
        return report(str(exc))
    return ChainReport(ok=True, blocks=good_blocks, blobs=len(seen), error=None)

