"""The cache pool: a content-addressed store of model blobs, keyed by their SHA-256 digest.

With a folder, a blob with digest ``abcdef…`` lives at ``root/ab/abcdef…``; the two-character
fan-out keeps folders small. Blobs are written to a temporary file beside their target and
renamed into place, so a reader never sees half a blob under a digest's name. Without a folder
(a run whose blobs nobody will audit, such as a sweep's) the blobs live in memory; digests are
computed and checked on every read the same way.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bladefl_platform.atomic import atomic_write_bytes

__all__ = ["CachePool", "BlobError", "is_digest", "sha256_hex", "weights_to_bytes", "bytes_to_weights"]

_DIGEST = re.compile(r"[0-9a-f]{64}")


class BlobError(Exception):
    """A blob is missing from the pool, or its content no longer hashes to its digest."""


def is_digest(value: object) -> bool:
    """True for a SHA-256 digest in canonical form: 64 lowercase hex characters."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of ``data``: the name a blob gets in the pool."""
    return hashlib.sha256(data).hexdigest()


class CachePool:
    """Blobs named by the SHA-256 of their content: in a folder (created on first put) or, with
    ``root=None``, in memory."""

    def __init__(self, root: str | os.PathLike[str] | None):
        self.root = None if root is None else Path(root)
        self._memory: dict[str, bytes] = {}

    def path(self, digest: str) -> Path:
        """Where the blob named ``digest`` is (or would be) stored."""
        if not is_digest(digest):
            raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
        if self.root is None:
            raise ValueError("an in-memory pool has no files")
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        """True if a blob is stored under ``digest`` (its content is not checked)."""
        if self.root is None:
            return digest in self._memory
        return self.path(digest).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its hex digest; storing the same bytes again is a no-op."""
        data = bytes(data)
        digest = sha256_hex(data)
        if self.root is None:
            self._memory.setdefault(digest, data)
            return digest
        target = self.path(digest)
        if target.is_file():
            try:
                if sha256_hex(target.read_bytes()) == digest:
                    return digest
            except OSError:
                pass  # unreadable: fall through and rewrite it
        atomic_write_bytes(target, data, sync=True)
        return digest

    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``; raises BlobError if missing or if they hash to something else."""
        if self.root is None:
            if not is_digest(digest):
                raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
            if digest not in self._memory:
                raise BlobError(f"blob {digest} is missing from the pool")
            data = self._memory[digest]
        else:
            try:
                data = self.path(digest).read_bytes()
            except FileNotFoundError:
                raise BlobError(f"blob {digest} is missing from {self.root}") from None
            except OSError as exc:
                raise BlobError(f"blob {digest} cannot be read: {exc}") from None
        actual = sha256_hex(data)
        if actual != digest:
            raise BlobError(f"blob {digest} is corrupt: its content hashes to {actual}")
        return data

    def forget(self) -> None:
        """Drop every blob an in-memory pool holds (a run's past rounds, once aggregated); a folder keeps its files."""
        self._memory.clear()

    def digests(self) -> Iterator[str]:
        """Every digest stored in the pool, in sorted order (temporary files are skipped)."""
        if self.root is None:
            yield from sorted(self._memory)
            return
        if not self.root.is_dir():
            return
        for sub in sorted(p for p in self.root.iterdir() if p.is_dir() and len(p.name) == 2):
            for entry in sorted(sub.iterdir()):
                name = entry.name
                if is_digest(name) and name[:2] == sub.name and entry.is_file():
                    yield name


def weights_to_bytes(vec: np.ndarray) -> bytes:
    """Serialise a 1-D weight vector as contiguous little-endian float32 (the bytes a client uploads)."""
    arr = np.asarray(vec)
    if arr.ndim != 1:
        raise ValueError(f"model weights must be a 1-D vector, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"model weights must be numeric, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype="<f4").tobytes()


def bytes_to_weights(data: bytes) -> np.ndarray:
    """Read back a weight vector written by weights_to_bytes, as a writable native float32 array."""
    if len(data) % 4:
        raise ValueError(f"{len(data)} bytes is not a whole number of float32 values")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)

