"""Proof of work: block headers, their SHA-256 hash, and a nonce race among the clients.

The header hash is a single SHA-256 over a fixed big-endian layout (``header_prefix``) followed
by the 8-byte nonce. Bitcoin hashes twice to guard against length extension; nothing here
relies on a hash being a secret-keyed MAC, so one pass is enough and halves the work.

The race (``mine``) models ``n_miners`` clients with equal hash power. Every miner puts its own
id in its header, so the miners search different spaces even though all count nonces from 0.
Mining proceeds in steps s = 0, 1, 2, …: in step s, miners 0, 1, …, n-1 in turn each hash their
header with nonce s. The first hash that meets the difficulty wins: lowest step first, then the
lowest miner id within that step. The draw is a pure function of the inputs (deterministic,
reproducible runs), and ``hashes`` counts every hash all miners computed until the winner's,
i.e. ``n * s + i + 1``.

At 0 bits every hash meets the target, so all n miners succeed in step 0 at once and the lowest
id would win every block. There the tie goes to the lowest hash instead: each miner is equally
likely to hold it, and settling it takes all n hashes of the step (``hashes = n``, nonce 0).
At b >= 1 bits ties within a step are rare when n·2^-b is small (1 block in 6,900 at n = 20,
b = 16) and keep the lowest-id rule, so mined chains stay as they were; at a few bits that rule
favours low ids, miner i winning in proportion to (1 - 2^-b)^i (at b = 8, miner 19 wins 7% less
often than miner 0; at b = 1, almost never).
"""

from __future__ import annotations

import hashlib
import math
import numbers
import struct
from dataclasses import dataclass

from bladefl_platform.errors import InputError

from .pool import is_digest

__all__ = [
    "BlockHeader",
    "MiningResult",
    "MiningError",
    "GENESIS_PREV",
    "MAX_DIFFICULTY_BITS",
    "MAX_RUN_DIFFICULTY_BITS",
    "header_prefix",
    "header_bytes",
    "block_hash",
    "leading_zero_bits",
    "meets_difficulty",
    "mine",
]

#: ``prev_hash`` of the first block.
GENESIS_PREV = "0" * 64
#: The nonce is 64 bits, so no miner could search a harder target than 64 leading zero bits.
MAX_DIFFICULTY_BITS = 64
#: The hardest difficulty a run may ask for. A block takes 2**bits hashes on average and this miner
#: (pure Python, one core) computes about 1.3 million a second: at 28 bits a block takes 3 to 4
#: minutes, a 9-block run half an hour; each further bit doubles that (64 bits: about 400,000 years).
MAX_RUN_DIFFICULTY_BITS = 28

# magic, index, prev_hash, merkle_root, timestamp, difficulty_bits, miner; then the nonce.
# The magic tags the layout version so a header can never be mistaken for other hashed data.
_MAGIC = b"BLADEFL\x01"
_PREFIX = struct.Struct(">8sQ32s32sdBI")
_NONCE = struct.Struct(">Q")
_MAX_NONCE = 2**64 - 1
_MAX_MINER = 2**32 - 1


class MiningError(RuntimeError):
    """No miner found a block within the allowed number of hashes."""


def _as_int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, got {value}")
    return value


@dataclass(frozen=True)
class BlockHeader:
    """What a miner hashes: the round, the link to the previous block, the models' Merkle root and the nonce.

    Fields are checked on construction; hex fields must be lowercase so each header has one encoding.
    """

    index: int
    prev_hash: str
    merkle_root: str
    timestamp: float
    difficulty_bits: int
    miner: int
    nonce: int

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "index", _as_int(self.index, "index", 0, 2**64 - 1))
        setattr_(self, "difficulty_bits", _as_int(self.difficulty_bits, "difficulty_bits", 0, MAX_DIFFICULTY_BITS))
        setattr_(self, "miner", _as_int(self.miner, "miner", 0, _MAX_MINER))
        setattr_(self, "nonce", _as_int(self.nonce, "nonce", 0, _MAX_NONCE))
        for name in ("prev_hash", "merkle_root"):
            if not is_digest(getattr(self, name)):
                raise ValueError(f"{name} must be 64 lowercase hex characters, got {getattr(self, name)!r}")
        ts = self.timestamp
        if isinstance(ts, bool) or not isinstance(ts, numbers.Real) or not math.isfinite(ts):
            raise ValueError(f"timestamp must be a finite number, got {ts!r}")
        setattr_(self, "timestamp", float(ts))


def header_prefix(header: BlockHeader) -> bytes:
    """The header's canonical bytes without the nonce: hash these once, then only the nonce per try."""
    return _PREFIX.pack(
        _MAGIC,
        header.index,
        bytes.fromhex(header.prev_hash),
        bytes.fromhex(header.merkle_root),
        header.timestamp,
        header.difficulty_bits,
        header.miner,
    )


def header_bytes(header: BlockHeader) -> bytes:
    """The full bytes that are hashed: ``header_prefix`` followed by the nonce as 8 big-endian bytes."""
    return header_prefix(header) + _NONCE.pack(header.nonce)


def block_hash(header: BlockHeader) -> str:
    """The header's hex hash (single SHA-256 of ``header_bytes``)."""
    return hashlib.sha256(header_bytes(header)).hexdigest()


def leading_zero_bits(digest: bytes) -> int:
    """How many leading bits of ``digest`` are zero (all of them if it is all zeros)."""
    return 8 * len(digest) - int.from_bytes(digest, "big").bit_length()


def meets_difficulty(hash_hex: str, bits: int) -> bool:
    """True if the hex hash starts with at least ``bits`` zero bits."""
    if bits < 0:
        raise ValueError(f"difficulty bits must be non-negative, got {bits}")
    return leading_zero_bits(bytes.fromhex(hash_hex)) >= bits


@dataclass(frozen=True)
class MiningResult:
    """The winning header and its hash, the total hashes computed by all miners, and the winner's id."""

    header: BlockHeader
    hash: str
    hashes: int
    winner: int


def _check_race(n_miners: int, difficulty_bits: int, max_hashes: int | None) -> None:
    """InputError unless ``n_miners``, ``difficulty_bits`` and ``max_hashes`` make a race :func:`mine` can run."""
    if isinstance(difficulty_bits, bool) or not isinstance(difficulty_bits, numbers.Integral) or not (
        0 <= difficulty_bits <= MAX_DIFFICULTY_BITS
    ):
        raise InputError(f"difficulty_bits must be an integer in 0..{MAX_DIFFICULTY_BITS}, got {difficulty_bits!r}")
    if isinstance(n_miners, bool) or not isinstance(n_miners, numbers.Integral) or not 1 <= n_miners <= _MAX_MINER + 1:
        raise InputError(f"n_miners must be a positive integer, got {n_miners!r}")
    if max_hashes is not None and (
        isinstance(max_hashes, bool) or not isinstance(max_hashes, numbers.Integral) or max_hashes < 0
    ):
        raise InputError(f"max_hashes must be a non-negative integer or None, got {max_hashes!r}")
    if int(difficulty_bits) > MAX_RUN_DIFFICULTY_BITS and max_hashes is None:
        raise InputError(f"difficulty_bits above {MAX_RUN_DIFFICULTY_BITS} needs a max_hashes budget: a block takes "
                         f"2**{difficulty_bits} hashes on average")


def mine(
    index: int,
    prev_hash: str,
    merkle_root: str,
    timestamp: float,
    n_miners: int,
    difficulty_bits: int,
    max_hashes: int | None = None,
) -> MiningResult:
    """Race ``n_miners`` equal miners for a block (see the module docstring); raise MiningError past ``max_hashes``."""
    _check_race(n_miners, difficulty_bits, max_hashes)
    difficulty_bits, n_miners = int(difficulty_bits), int(n_miners)
    budget = math.inf if max_hashes is None else int(max_hashes)

    headers = [BlockHeader(index, prev_hash, merkle_root, timestamp, difficulty_bits, i, 0) for i in range(n_miners)]
    # Each miner's prefix is hashed once; per try only a copy of that midstate absorbs the nonce.
    copies = [hashlib.sha256(header_prefix(h)).copy for h in headers]
    pack = _NONCE.pack
    if difficulty_bits == 0:
        if budget < n_miners:
            raise MiningError(f"no block found within {max_hashes} hashes at difficulty 0 bits: the {n_miners} "
                              f"miners' tie in step 0 takes {n_miners} hashes to settle")
        digests = []
        for fresh in copies:
            h = fresh()
            h.update(pack(0))
            digests.append(h.digest())
        miner = min(range(n_miners), key=digests.__getitem__)
        header = BlockHeader(index, prev_hash, merkle_root, timestamp, 0, miner, 0)
        return MiningResult(header=header, hash=digests[miner].hex(), hashes=n_miners, winner=miner)
    # A hash meets the target iff, read as a big-endian integer, it is below 2**(256 - bits); for
    # equal-length byte strings that is the bytewise order, so digests are compared as bytes.
    target = (1 << (256 - difficulty_bits)).to_bytes(32, "big")
    hashes = 0  # all miners' hashes in the steps before this one
    for step in range(_MAX_NONCE + 1):
        if hashes + n_miners > budget:  # the budget ends inside this step: only the first miners try
            copies = copies[: max(0, int(budget - hashes))]
            if not copies:
                raise MiningError(f"no block found within {max_hashes} hashes at difficulty {difficulty_bits} bits")
        nonce = pack(step)
        for fresh in copies:
            h = fresh()
            h.update(nonce)
            digest = h.digest()
            if digest < target:
                miner = next(i for i, c in enumerate(copies) if c is fresh)
                header = BlockHeader(index, prev_hash, merkle_root, timestamp, difficulty_bits, miner, step)
                return MiningResult(header=header, hash=digest.hex(), hashes=hashes + miner + 1, winner=miner)
        hashes += n_miners
    raise MiningError("nonce space exhausted")  # pragma: no cover - 2**64 steps
