"""The chain of blocks, stored as an append-only JSON Lines file, and the checks a client runs on a block.

Why JSON Lines: each block is one human-readable line that ``grep``, ``jq`` or pandas can read;
appending a block writes one line and never rewrites earlier ones; and since every line the
writer produces ends in a newline, a crash mid-append leaves a last line without one (or one
that does not parse), so a truncated tail is detected rather than silently read.

Each line holds every header field, the round's model digests in client order, and the block
hash, with sorted keys. The stored hash is redundant with the header by design: recomputing it
is how tampering with any header field is caught.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .merkle import merkle_root
from .mining import GENESIS_PREV, BlockHeader, block_hash, meets_difficulty
from .pool import is_digest

__all__ = [
    "Block",
    "Ledger",
    "LedgerError",
    "LEDGER_NAME",
    "MANIFEST_NAME",
    "Manifest",
    "block_to_json",
    "block_from_json",
    "parse_json",
    "iter_blocks",
    "verify_block",
]

#: The ledger's file name inside a run folder.
LEDGER_NAME = "ledger.jsonl"
#: The manifest's file name inside a run folder: what the run committed to outside the ledger.
MANIFEST_NAME = "chain.json"

_HEADER_FIELDS = ("index", "prev_hash", "merkle_root", "timestamp", "difficulty_bits", "miner", "nonce")
_FIELDS = frozenset(_HEADER_FIELDS) | {"digests", "hash"}


class LedgerError(Exception):
    """The ledger file is corrupt, or a block does not continue the chain."""


@dataclass(frozen=True)
class Block:
    """A sealed round: the mined header, the round's model digests in client order, and the header hash."""

    header: BlockHeader
    digests: tuple[str, ...]
    hash: str

    def __post_init__(self) -> None:
        if not isinstance(self.header, BlockHeader):
            raise TypeError(f"header must be a BlockHeader, got {type(self.header).__name__}")
        if isinstance(self.digests, (str, bytes)):
            raise TypeError("digests must be a sequence of hex digests, not a single string")
        digests = tuple(self.digests)
        for d in digests:
            if not is_digest(d):
                raise ValueError(f"model digest must be 64 lowercase hex characters, got {d!r}")
        object.__setattr__(self, "digests", digests)
        if not is_digest(self.hash):
            raise ValueError(f"block hash must be 64 lowercase hex characters, got {self.hash!r}")


def parse_json(text: str | bytes) -> Any:
    """json.loads with every failure as a one-line ValueError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    except UnicodeDecodeError:
        raise ValueError("not valid UTF-8") from None
    except RecursionError:
        # json's parser recurses once per nesting level; our records nest at most two deep.
        raise ValueError("nested too deeply") from None


def block_to_json(block: Block) -> str:
    """The block as one JSON object (sorted keys, no newline), as stored in the ledger."""
    record: dict[str, Any] = {name: getattr(block.header, name) for name in _HEADER_FIELDS}
    record["digests"] = list(block.digests)
    record["hash"] = block.hash
    return json.dumps(record, sort_keys=True, allow_nan=False, separators=(",", ":"))


def block_from_json(text: str | bytes) -> Block:
    """Parse one ledger line back into a Block; raises ValueError saying what is wrong."""
    record = parse_json(text)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    missing = sorted(_FIELDS - record.keys())
    extra = sorted(record.keys() - _FIELDS)
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    if extra:
        raise ValueError(f"unexpected field(s) {', '.join(extra)}")
    if not isinstance(record["digests"], list):
        raise ValueError("digests is not a list")
    try:
        header = BlockHeader(**{name: record[name] for name in _HEADER_FIELDS})
        return Block(header=header, digests=tuple(record["digests"]), hash=record["hash"])
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class Manifest:
    """What a finished run committed to outside its ledger: the number of blocks, their difficulty, the tip.

    Truncating, emptying or extending the ledger, or re-mining it at another difficulty, contradicts it.
    """

    blocks: int
    difficulty_bits: int
    tip_hash: str

    FORMAT = 1

    def __post_init__(self) -> None:
        for name in ("blocks", "difficulty_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if not is_digest(self.tip_hash):
            raise ValueError(f"tip_hash must be 64 lowercase hex characters, got {self.tip_hash!r}")

    def to_json(self) -> str:
        record = {"format": self.FORMAT, "blocks": self.blocks, "difficulty_bits": self.difficulty_bits,
                  "tip_hash": self.tip_hash}
        return json.dumps(record, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        """Parse a manifest; raises ValueError saying what is wrong."""
        record = parse_json(text)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        fields = {"format", "blocks", "difficulty_bits", "tip_hash"}
        missing, extra = sorted(fields - record.keys()), sorted(record.keys() - fields)
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        if extra:
            raise ValueError(f"unexpected field(s) {', '.join(extra)}")
        if type(record["format"]) is not int or record["format"] != cls.FORMAT:
            raise ValueError(f"format {record['format']!r} is not {cls.FORMAT}, the one this version reads")
        return cls(blocks=record["blocks"], difficulty_bits=record["difficulty_bits"], tip_hash=record["tip_hash"])


def iter_blocks(data: bytes) -> Iterator[tuple[int, Block]]:
    """Yield (line number, block) for ledger file content, raising LedgerError at the first bad line.

    Lazy, so a caller checking blocks as they come reports problems in file order.
    """
    lines = data.split(b"\n")
    # Content ending in "\n" splits into a final empty piece; anything else there is a torn line.
    tail = lines.pop()
    for lineno, raw in enumerate(lines, start=1):
        try:
            yield lineno, block_from_json(raw)
        except ValueError as exc:
            raise LedgerError(f"line {lineno}: corrupt block: {exc}") from None
    if tail:
        raise LedgerError(f"line {len(lines) + 1}: truncated (no final newline; an append was cut off)")


def _continues(block: Block, prev: Block | None) -> str | None:
    """Why ``block`` cannot follow ``prev`` (None for the first block), or None if it can."""
    want_index = 1 if prev is None else prev.header.index + 1
    want_prev = GENESIS_PREV if prev is None else prev.hash
    if block.header.index != want_index:
        return f"block index {block.header.index}, expected {want_index}"
    if block.header.prev_hash != want_prev:
        return f"block {block.header.index} prev_hash {block.header.prev_hash} does not match the tip {want_prev}"
    if block.hash != block_hash(block.header):
        return f"block {block.header.index} stored hash is not the hash of its header"
    return None


class Ledger:
    """The chain as an append-only JSON Lines file at ``path``; one writer at a time.

    An existing file is read and checked on opening (LedgerError if it is corrupt or broken).
    With ``path=None`` the lines are kept in memory (:attr:`lines`), checked the same way.
    """

    def __init__(self, path: str | os.PathLike[str] | None):
        self.path = None if path is None else Path(path)
        self._blocks: list[Block] = []
        self.lines: list[bytes] = []
        if self.path is not None and self.path.exists():
            for lineno, block in iter_blocks(self.path.read_bytes()):
                why = _continues(block, self._blocks[-1] if self._blocks else None)
                if why:
                    raise LedgerError(f"{self.path} line {lineno}: {why}")
                self._blocks.append(block)

    def append(self, block: Block) -> None:
        """Write ``block`` as the next line and fsync; refuses a block that does not continue the chain."""
        why = _continues(block, self._blocks[-1] if self._blocks else None)
        if why:
            raise LedgerError(f"refused: {why}")
        line = (block_to_json(block) + "\n").encode("utf-8")
        if self.path is None:
            self.lines.append(line)
            self._blocks.append(block)
            return
        created = not self.path.exists()
        if created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            start = f.tell()
            try:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            except BaseException:
                # Leave no torn line behind for the next append to build on.
                f.truncate(start)
                raise
        if created:
            _fsync_dir(self.path.parent)
        self._blocks.append(block)

    def blocks(self) -> list[Block]:
        """All blocks, first to last."""
        return list(self._blocks)

    def tip_hash(self) -> str:
        """The hash the next block must link to (64 zeros for an empty ledger)."""
        return self._blocks[-1].hash if self._blocks else GENESIS_PREV

    def __len__(self) -> int:
        return len(self._blocks)


def _fsync_dir(folder: Path) -> None:
    # Makes the new file's directory entry durable; not possible on every platform.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def verify_block(block: Block, prev_hash: str, downloaded_digests: Sequence[str]) -> tuple[bool, str]:
    """A client's check of a mined block against the chain tip and the models it downloaded: (accept, reason)."""
    h = block.header
    actual = block_hash(h)
    if block.hash != actual:
        return False, f"stored hash {block.hash} is not the header's hash {actual}"
    if not meets_difficulty(actual, h.difficulty_bits):
        return False, f"hash {actual} does not meet the difficulty of {h.difficulty_bits} leading zero bits"
    if h.prev_hash != prev_hash:
        return False, f"prev_hash {h.prev_hash} does not link to the tip {prev_hash}"
    root = merkle_root(block.digests)
    if h.merkle_root != root:
        return False, f"merkle_root {h.merkle_root} does not match the block's digests (root {root})"
    if tuple(block.digests) != tuple(downloaded_digests):
        return False, "the block's model digests differ from the models downloaded from the pool"
    return True, "ok"
