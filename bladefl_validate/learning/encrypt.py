"""CKKS-encrypted model uploads (``--encrypt ckks``), with TenSEAL, an optional dependency.

Each client encrypts its model before it enters the cache pool: the float vector is cut into
chunks of 4096 values (the slots of one CKKS ciphertext at poly modulus 8192) and the pool stores
the serialized ciphertexts as one blob, so block digests and ``chain verify`` cover ciphertext
bytes. The aggregate of an accepted block is computed on ciphertexts (their sum times 1/n) and
then decrypted by the clients.

Trust model: all clients share one CKKS context, secret key included, made at the start of a
run and discarded at its end unless the run keeps it (``run --keep-key`` writes it to the run
folder as ``ckks-secret.key``, mode 0600; ``CKKSCodec.load_key`` reads it back). Without it the
pool's blobs can never be decrypted again. The encryption protects the pool and the chain against
outsiders, who see only ciphertexts; it does not protect clients from each other, since any
client can decrypt any model. For the same reason lazy-client screening (``--detect``) stays
possible: each client decrypts the pool's models and screens them, learning nothing it could not
already learn. CKKS is approximate (errors about 1e-7 here) and its encryption is randomized, so
an encrypted run's blobs and block hashes differ from run to run. Its range is bounded too: the
mean of weights of magnitude 2^19 or more wraps around to garbage, so ``encrypt`` refuses a model
with any weight of magnitude 2^18 (262,144) or more, or not finite.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bladefl_platform.atomic import atomic_write_bytes
from bladefl_platform.errors import InputError

__all__ = ["ENCRYPTIONS", "KEY_NAME", "CKKSCodec", "EncryptionOverhead", "measure_overhead",
           "require_tenseal"]

#: Values accepted by ``--encrypt``.
ENCRYPTIONS = ("none", "ckks")
#: The file ``run --keep-key`` writes into the run folder: the clients' shared context with its secret key.
KEY_NAME = "ckks-secret.key"

_MAGIC = b"BLADEFL-CKKS1\n"
_KEY_MAGIC = b"BLADEFL-CKKS-KEY1\n"
_HEAD = struct.Struct("<QI")  # model dimension, number of ciphertexts
_LEN = struct.Struct("<Q")


def require_tenseal() -> Any:
    """The ``tenseal`` module, or InputError saying how to install it."""
    try:
        import tenseal
    except ImportError:
        raise InputError("--encrypt ckks needs TenSEAL: pip install 'bladefl[encrypt]'") from None
    return tenseal


class CKKSCodec:
    """One CKKS context shared by all clients: encrypt a model to a blob, average blobs, decrypt."""

    def __init__(self, poly_modulus_degree: int = 8192, coeff_mod_bit_sizes: Sequence[int] = (60, 40, 60),
                 scale_bits: int = 40):
        ts = require_tenseal()
        # One 40-bit level between the 60-bit primes: room for the single rescale after "times 1/n".
        context = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=poly_modulus_degree,
                             coeff_mod_bit_sizes=list(coeff_mod_bit_sizes), n_threads=1)
        context.global_scale = 2.0**scale_bits
        self._adopt(ts, context, {"poly_modulus_degree": int(poly_modulus_degree),
                                  "coeff_mod_bit_sizes": [int(b) for b in coeff_mod_bit_sizes],
                                  "scale_bits": int(scale_bits)})

    def _adopt(self, ts: Any, context: Any, params: dict[str, Any]) -> None:
        self._ts = ts
        self.context = context
        self.params = params
        self.slots = params["poly_modulus_degree"] // 2
        # The mean is decrypted after one rescale, under the first prime alone: a slot value times the
        # scale must stay below half that prime, |w| < 2^(60 - 40 - 1); beyond it the result wraps
        # around silently. One bit of margin for primes below their nominal size.
        self.max_abs = 2.0 ** (params["coeff_mod_bit_sizes"][0] - params["scale_bits"] - 2)

    def key_bytes(self) -> bytes:
        """The shared context with its secret key, as :meth:`load_key` reads it: it decrypts every blob."""
        params = json.dumps(self.params, sort_keys=True).encode("ascii")
        return _KEY_MAGIC + _LEN.pack(len(params)) + params + self.context.serialize(save_secret_key=True)

    def write_key(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`key_bytes` to ``path`` whole, readable and writable by its owner only (0600)."""
        atomic_write_bytes(path, self.key_bytes(), mode=0o600, sync=True)

    @classmethod
    def load_key(cls, path: str | os.PathLike[str]) -> CKKSCodec:
        """The codec whose key :meth:`write_key` wrote to ``path`` (a run's ``ckks-secret.key``): decrypts its blobs."""
        ts = require_tenseal()
        data = Path(path).read_bytes()
        if not data.startswith(_KEY_MAGIC) or len(data) < len(_KEY_MAGIC) + _LEN.size:
            raise ValueError(f"{path} is not a CKKS key written by --keep-key (bad magic)")
        pos = len(_KEY_MAGIC)
        (n,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        try:
            params = json.loads(data[pos : pos + n])
            context = ts.context_from(data[pos + n :])
        except Exception as exc:  # TenSEAL raises bare exceptions on bad input
            raise ValueError(f"{path}: corrupt CKKS key: {exc}") from None
        codec = cls.__new__(cls)
        codec._adopt(ts, context, params)
        return codec

    def encrypt(self, w: np.ndarray) -> bytes:
        """A 1-D model as one blob: a header, then its chunks' serialized ciphertexts."""
        arr = np.asarray(w, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise InputError(f"a model to encrypt must be a non-empty 1-D vector, got shape {arr.shape}")
        largest = float(np.max(np.abs(arr)))
        if not largest < self.max_abs:  # also catches NaN
            raise InputError(
                f"a model with weights of magnitude {largest:.3g} is outside CKKS's safe range |w| < {self.max_abs:g} "
                "(its encrypted mean would decrypt to garbage): training diverged (lower --eta) or run without "
                "--encrypt"
            )
        chunks = [self._ts.ckks_vector(self.context, arr[i : i + self.slots]).serialize()
                  for i in range(0, arr.size, self.slots)]
        parts = [_MAGIC, _HEAD.pack(arr.size, len(chunks))]
        for c in chunks:
            parts += [_LEN.pack(len(c)), c]
        return b"".join(parts)

    def _load(self, blob: bytes) -> tuple[int, list[Any]]:
        """The dimension and the ciphertext vectors of a blob."""
        view = memoryview(blob)
        if bytes(view[: len(_MAGIC)]) != _MAGIC:
            raise ValueError("not an encrypted model blob (bad magic)")
        pos = len(_MAGIC)
        d, count = _HEAD.unpack_from(view, pos)
        pos += _HEAD.size
        vectors = []
        for _ in range(count):
            (n,) = _LEN.unpack_from(view, pos)
            pos += _LEN.size
            if pos + n > len(view):
                raise ValueError("encrypted model blob is truncated")
            vectors.append(self._ts.ckks_vector_from(self.context, bytes(view[pos : pos + n])))
            pos += n
        if pos != len(view) or count != -(-d // self.slots):
            raise ValueError(f"encrypted model blob does not hold {d} values in {count} ciphertexts")
        return d, vectors

    def _decrypt(self, d: int, vectors: Sequence[Any]) -> np.ndarray:
        out = np.concatenate([np.asarray(v.decrypt(), dtype=np.float64) for v in vectors])
        if out.size != d:
            raise ValueError(f"decrypted {out.size} values, expected {d}")
        return out.astype(np.float32)

    def decrypt(self, blob: bytes) -> np.ndarray:
        """The float32 model in ``blob``."""
        return self._decrypt(*self._load(blob))

    def encrypted_mean(self, blobs: Sequence[bytes]) -> tuple[int, list[Any]]:
        """The dimension and the ciphertexts of the blobs' mean: their sum times 1/n, never decrypted."""
        if not blobs:
            raise InputError("the encrypted mean needs at least one model")
        d, acc = self._load(blobs[0])
        for blob in blobs[1:]:
            d_other, vectors = self._load(blob)
            if d_other != d:
                raise ValueError(f"cannot average models of dimensions {d} and {d_other}")
            for a, v in zip(acc, vectors):
                a.add_(v)
        return d, [a.mul(1.0 / len(blobs)) for a in acc]

    def mean(self, blobs: Sequence[bytes]) -> np.ndarray:
        """Equal-weight FedAvg computed on ciphertexts, decrypted to float32."""
        return self._decrypt(*self.encrypted_mean(blobs))


@dataclass(frozen=True)
class EncryptionOverhead:
    """Seconds to encrypt N models of dimension d, average them on ciphertexts and decrypt the mean."""

    d: int
    n_clients: int
    ciphertexts_per_model: int
    blob_bytes: int
    encrypt_seconds: float
    aggregate_seconds: float
    decrypt_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.encrypt_seconds + self.aggregate_seconds + self.decrypt_seconds


def measure_overhead(d: int, n_clients: int, seed: int = 0) -> EncryptionOverhead:
    """Time one round's encryption work for ``n_clients`` random models of dimension ``d`` (for benchmarks).

    Encrypt counts encryption and serialization by every client; aggregate, deserialization, the
    homomorphic sum and the 1/n product; decrypt, the decryption of the mean (one client's share).
    """
    for name, v in (("d", d), ("n_clients", n_clients)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{name} must be a positive integer (got {v!r})")
    codec = CKKSCodec()
    models = np.random.default_rng(seed).normal(0.0, 0.05, size=(n_clients, d)).astype(np.float32)
    t0 = time.perf_counter()
    blobs = [codec.encrypt(m) for m in models]
    t1 = time.perf_counter()
    dim, mean = codec.encrypted_mean(blobs)
    t2 = time.perf_counter()
    codec._decrypt(dim, mean)
    t3 = time.perf_counter()
    return EncryptionOverhead(d, n_clients, len(mean), len(blobs[0]), t1 - t0, t2 - t1, t3 - t2)
