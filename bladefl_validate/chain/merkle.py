"""The Merkle root of a round's model digests, as a block header commits to it.

A Bitcoin-style binary tree: leaves are the raw 32-byte digests, each parent is the SHA-256 of
its two children concatenated, and a level with an odd number of nodes pairs its last node
with itself. Unlike Bitcoin, leaves and inner nodes are hashed under different one-byte
prefixes (see ``merkle_root``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .pool import is_digest

__all__ = ["merkle_root", "EMPTY_ROOT"]

#: The root of a round with no models: SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()

# Domain separation (RFC 6962 style) is the second-preimage defence: without it, an inner
# node's 64-byte preimage could be presented as a leaf, so a different, shorter list of
# "digests" would have the same root.
_LEAF = b"\x00"
_NODE = b"\x01"


def merkle_root(digests: Sequence[str]) -> str:
    """The hex Merkle root over hex SHA-256 digests, in the given order."""
    if isinstance(digests, (str, bytes)):
        raise TypeError("merkle_root takes a sequence of hex digests, not a single string")
    if not digests:
        return EMPTY_ROOT
    for d in digests:
        if not is_digest(d):
            raise ValueError(f"not a SHA-256 hex digest: {d!r}")
    level = [hashlib.sha256(_LEAF + bytes.fromhex(d)).digest() for d in digests]
    while len(level) > 1:
        if len(level) % 2:
            # Bitcoin's rule, kept as specified. It means [a, b, c] and [a, b, c, c] share a
            # root; a block stores its digest list explicitly, so verifiers compare lists too.
            level.append(level[-1])
        level = [hashlib.sha256(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0].hex()
