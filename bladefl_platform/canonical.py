"""Canonical JSON and its SHA-256: one encoding per value, so equal content always hashes equal.

Keys sorted, no spaces, ASCII escapes: what the result store's task keys and the ledger's commitments hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_json", "canonical_digest"]


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON text (sorted keys, no whitespace)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def canonical_digest(value: Any) -> str:
    """The hex SHA-256 of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
