"""The chain of blocks, stored as an append-only JSON Lines file, and the checks a client runs on a block.

Why JSON Lines: each block is one human-readable line that ``grep``, ``jq`` or pandas can read;
appending a block writes one line and never rewrites earlier ones; and since every line the
writer produces ends in a newline, a crash mid-append leaves a last line without one (or one
that does not parse), so a truncated tail is detected rather than silently read.

Each line holds every header field, the round's model digests in client order, and the block
hash, with sorted keys. The stored hash is redundant with the header by design: recomputing it
is how tampering with any header field is caught.

Format 2 (this version writes it) adds to each line ``commits``, digests of what the run reports for the round
(see ``anchor``), and ``record``, a hash over those commitments, the block's hash and the record before it. The
records form a second chain beside the mined one: mining is unchanged (the same seed gives the same blocks),
and the last record, sealed in the manifest, anchors every reported number. Format 1 lines have neither.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bladefl_platform.canonical import canonical_digest

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
    "record_hash",
    "record_fault",
]

#: The ledger's file name inside a run folder.
LEDGER_NAME = "ledger.jsonl"
#: The manifest's file name inside a run folder: what the run committed to outside the ledger.
MANIFEST_NAME = "chain.json"

_HEADER_FIELDS = ("index", "prev_hash", "merkle_root", "timestamp", "difficulty_bits", "miner", "nonce")
_FIELDS = frozenset(_HEADER_FIELDS) | {"digests", "hash"}
_RECORD_FIELDS = frozenset({"commits", "record"})


class LedgerError(Exception):
    """The ledger file is corrupt, or a block does not continue the chain."""


@dataclass(frozen=True)
class Block:
    """A sealed round: the mined header, the round's model digests in client order, and the header hash."""

    header: BlockHeader
    digests: tuple[str, ...]
    hash: str
    commits: Mapping[str, str] | None = None  # format 2: digests of what the run reports, by name (see anchor)
    record: str | None = None  # format 2: record_hash of the commits, this block's hash and the record before

    @property
    def format(self) -> int:
        """The ledger format the block is in: 2 with commitments, 1 without."""
        return 1 if self.record is None else 2

    def __hash__(self) -> int:  # commits is a dict; equal blocks still hash equal without it
        return hash((self.header, self.digests, self.hash, self.record))

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
        if (self.commits is None) != (self.record is None):
            raise ValueError("a block has both commits and a record (format 2) or neither (format 1)")
        if self.commits is not None:
            object.__setattr__(self, "commits", _commitments(self.commits))
            if not is_digest(self.record):
                raise ValueError(f"record must be 64 lowercase hex characters, got {self.record!r}")


def _commitments(commits: object) -> dict[str, str]:
    """``commits`` as a dict of names to digests, sorted by name; ValueError if it is not one."""
    if not isinstance(commits, Mapping):
        raise ValueError("commits is not a mapping of names to digests")
    for name, digest in commits.items():
        if not isinstance(name, str) or not is_digest(digest):
            raise ValueError(f"commits[{name!r}] must be 64 lowercase hex characters, got {digest!r}")
    return dict(sorted(commits.items()))


def record_hash(prev_record: str, block_hash: str, commits: Mapping[str, str]) -> str:
    """The record of a format 2 block: a hash over its commitments, its hash and the record before it."""
    return canonical_digest({"block": block_hash, "commits": dict(commits), "prev": prev_record})


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
    if block.commits is not None:
        record["commits"], record["record"] = dict(block.commits), block.record
    return json.dumps(record, sort_keys=True, allow_nan=False, separators=(",", ":"))


def block_from_json(text: str | bytes) -> Block:
    """Parse one ledger line back into a Block; raises ValueError saying what is wrong."""
    record = parse_json(text)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    fields = _FIELDS | _RECORD_FIELDS if record.keys() & _RECORD_FIELDS else _FIELDS
    _check_fields(record, fields)
    if not isinstance(record["digests"], list):
        raise ValueError("digests is not a list")
    try:
        header = BlockHeader(**{name: record[name] for name in _HEADER_FIELDS})
        return Block(header=header, digests=tuple(record["digests"]), hash=record["hash"],
                     commits=record.get("commits"), record=record.get("record"))
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


def _check_fields(record: dict, fields: frozenset[str] | set[str]) -> None:
    """ValueError naming the fields ``record`` lacks or has beyond ``fields``."""
    missing, extra = sorted(fields - record.keys()), sorted(record.keys() - fields)
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    if extra:
        raise ValueError(f"unexpected field(s) {', '.join(extra)}")


@dataclass(frozen=True)
class Manifest:
    """What a finished run committed to outside its ledger (``chain.json``); its digest is the run's tip.

    The number of blocks, their difficulty and the last block: truncating, emptying or extending the ledger, or
    re-mining it at another difficulty, contradicts them. Format 2 adds the last record of the ledger and the
    commitments of the run's closing reports (see ``anchor``), so the tip anchors everything the run reports.
    Format 1 (read, no longer written) had no records: its tip was the last block's hash.
    """

    blocks: int
    difficulty_bits: int
    last_block: str
    record: str | None = None  # format 2: the last block's record
    commits: Mapping[str, str] | None = None  # format 2: digests of the closing reports, by name

    FORMAT = 2  # the format written
    _FORMAT_FIELDS = {1: frozenset({"format", "blocks", "difficulty_bits", "tip_hash"}),
                      2: frozenset({"format", "blocks", "difficulty_bits", "last_block", "record", "commits", "tip"})}

    def __post_init__(self) -> None:
        for name in ("blocks", "difficulty_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if (self.record is None) != (self.commits is None):
            raise ValueError("a manifest has both a record and commits (format 2) or neither (format 1)")
        for name in ("last_block", "record"):
            v = getattr(self, name)
            if not is_digest(v) and not (name == "record" and v is None):
                raise ValueError(f"{name} must be 64 lowercase hex characters, got {v!r}")
        if self.commits is not None:
            object.__setattr__(self, "commits", _commitments(self.commits))

    @property
    def format(self) -> int:
        return 1 if self.record is None else 2

    def _fields(self) -> dict[str, Any]:
        if self.format == 1:
            return {"format": 1, "blocks": self.blocks, "difficulty_bits": self.difficulty_bits,
                    "tip_hash": self.last_block}
        return {"format": 2, "blocks": self.blocks, "difficulty_bits": self.difficulty_bits,
                "last_block": self.last_block, "record": self.record, "commits": dict(self.commits or {})}

    @property
    def tip(self) -> str:
        """The hash to keep outside the run folder: the digest of this manifest (format 1: the last block's hash)."""
        return self.last_block if self.format == 1 else canonical_digest(self._fields())

    def to_json(self) -> str:
        record = self._fields()
        if self.format == 2:
            record["tip"] = self.tip
        return json.dumps(record, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        """Parse a manifest of either format; raises ValueError saying what is wrong."""
        record = parse_json(text)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        form = record.get("format")
        if type(form) is not int or form not in cls._FORMAT_FIELDS:
            raise ValueError(f"format {form!r} is not one this version reads (1 or 2)")
        _check_fields(record, cls._FORMAT_FIELDS[form])
        if form == 1:
            return cls(blocks=record["blocks"], difficulty_bits=record["difficulty_bits"],
                       last_block=record["tip_hash"])
        manifest = cls(blocks=record["blocks"], difficulty_bits=record["difficulty_bits"],
                       last_block=record["last_block"], record=record["record"], commits=record["commits"])
        if record["tip"] != manifest.tip:
            raise ValueError(f"tip {record['tip']!r} is not the digest of the rest of it ({manifest.tip}): "
                             "it was edited")
        return manifest


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
    return record_fault(block, prev)


def record_fault(block: Block, prev: Block | None) -> str | None:
    """Why ``block``'s record (format 2) does not follow ``prev``'s, or None if it does."""
    if prev is not None and prev.format != block.format:
        return f"block {block.header.index} is in ledger format {block.format}, the block before in {prev.format}"
    if block.commits is None:
        return None
    want = record_hash(GENESIS_PREV if prev is None else prev.record or GENESIS_PREV, block.hash, block.commits)
    if block.record != want:
        return (f"block {block.header.index} record is not the hash of its commits, its hash and the record "
                "before it")
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

    def append(self, block: Block, commits: Mapping[str, str] | None = None) -> Block:
        """Write ``block`` as the next line and fsync, and return it; refuses a block that does not continue the
        chain. With ``commits`` (format 2), the block is recorded with them after the record before it."""
        if commits is not None:
            block = replace(block, commits=commits, record=record_hash(self.tip_record(), block.hash, commits))
        why = _continues(block, self._blocks[-1] if self._blocks else None)
        if why:
            raise LedgerError(f"refused: {why}")
        line = (block_to_json(block) + "\n").encode("utf-8")
        if self.path is None:
            self.lines.append(line)
            self._blocks.append(block)
            return block
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
        return block

    def blocks(self) -> list[Block]:
        """All blocks, first to last."""
        return list(self._blocks)

    def tip_hash(self) -> str:
        """The hash the next block must link to (64 zeros for an empty ledger)."""
        return self._blocks[-1].hash if self._blocks else GENESIS_PREV

    def tip_record(self) -> str:
        """The record the next format 2 block follows (64 zeros for an empty ledger)."""
        last = self._blocks[-1].record if self._blocks else None
        return last or GENESIS_PREV

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
