"""CKKS-encrypted uploads: the codec, encrypted runs against plaintext ones, and chain verification."""

import sys

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import cli_args, small_run

from bladefl_platform.errors import InputError
from bladefl_validate.cli import cli
from bladefl_validate.config import RunConfig
from bladefl_validate.learning.encrypt import KEY_NAME, require_tenseal
from bladefl_validate.chain.ledger import Ledger
from bladefl_validate.chain.pool import CachePool
from bladefl_validate.simulation import run_to_folder
from bladefl_validate.chain.verify import verify_run

try:
    import tenseal  # noqa: F401

    HAVE_TENSEAL = True
except ImportError:
    HAVE_TENSEAL = False

needs_tenseal = pytest.mark.skipif(not HAVE_TENSEAL, reason="TenSEAL is not installed (pip install -e '.[encrypt]')")

#: The tiny deployment with six clients, an easier proof of work and some lazy noise.
CHANGES = dict(N=6, difficulty_bits=4, sigma2=0.01)
SMALL = small_run(**CHANGES)


@pytest.fixture(scope="module")
def codec():
    if not HAVE_TENSEAL:
        pytest.skip("TenSEAL is not installed (pip install -e '.[encrypt]')")
    from bladefl_validate.learning.encrypt import CKKSCodec

    return CKKSCodec()


# data_root and private_cache come from conftest.py.
pytestmark = pytest.mark.usefixtures("private_cache")


@needs_tenseal
def test_round_trip_and_homomorphic_mean_match_plaintext(codec):
    rng = np.random.default_rng(0)
    W = rng.normal(0.0, 0.1, size=(5, 2 * codec.slots + 123)).astype(np.float32)  # 3 ciphertexts, last partial
    blobs = [codec.encrypt(w) for w in W]
    assert np.abs(codec.decrypt(blobs[0]) - W[0]).max() < 1e-5
    assert np.abs(codec.mean(blobs) - W.mean(axis=0)).max() < 1e-5  # FedAvg within CKKS precision
    assert np.abs(codec.mean(blobs[:2]) - W[:2].mean(axis=0)).max() < 1e-5
    d, mean = codec.encrypted_mean(blobs)
    assert d == W.shape[1] and len(mean) == 3


@needs_tenseal
def test_corrupt_blobs_are_refused(codec):
    blob = codec.encrypt(np.ones(10, dtype=np.float32))
    with pytest.raises(ValueError, match="bad magic"):
        codec.decrypt(b"x" + blob[1:])
    with pytest.raises(ValueError, match="truncated"):
        codec.decrypt(blob[:-10])
    with pytest.raises(ValueError, match="dimensions"):
        codec.mean([blob, codec.encrypt(np.ones(11, dtype=np.float32))])
    with pytest.raises(InputError, match="non-empty 1-D"):
        codec.encrypt(np.ones((2, 2)))


@needs_tenseal
def test_measure_overhead_reports_positive_times():
    from bladefl_validate.learning.encrypt import measure_overhead

    m = measure_overhead(5000, 3)
    assert (m.d, m.n_clients, m.ciphertexts_per_model) == (5000, 3, 2)
    assert m.encrypt_seconds > 0 and m.aggregate_seconds > 0 and m.decrypt_seconds > 0
    assert m.total_seconds == pytest.approx(m.encrypt_seconds + m.aggregate_seconds + m.decrypt_seconds)
    assert m.blob_bytes > 5000 * 4
    with pytest.raises(InputError, match="n_clients"):
        measure_overhead(10, 0)


@needs_tenseal
def test_encrypted_run_matches_plaintext_and_verifies(tmp_path, data_root):
    plain = run_to_folder(RunConfig(**SMALL), tmp_path / "plain", data_root)
    enc = run_to_folder(RunConfig(**SMALL, encrypt="ckks"), tmp_path / "enc", data_root)
    for a, b in zip(plain.rounds, enc.rounds):
        assert abs(a.global_train_loss - b.global_train_loss) < 1e-4
        assert abs(a.test_accuracy - b.test_accuracy) <= 0.01
    pool = CachePool(tmp_path / "enc" / "blobs")
    block = Ledger(tmp_path / "enc" / "ledger.jsonl").blocks()[0]
    assert all(pool.get(d).startswith(b"BLADEFL-CKKS1") for d in block.digests)  # ciphertexts in the pool
    report = verify_run(tmp_path / "enc")
    assert report.ok and report.blocks == 2 and report.blobs == 2 * SMALL["N"]
    ok = CliRunner().invoke(cli, ["chain", "verify", str(tmp_path / "enc")])
    assert ok.exit_code == 0, ok.output
    target = pool.path(block.digests[0])
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 1
    target.write_bytes(bytes(data))
    bad = CliRunner().invoke(cli, ["chain", "verify", str(tmp_path / "enc")])
    assert bad.exit_code == 1 and block.digests[0] in bad.output


@needs_tenseal
def test_detection_on_decrypted_pool_flags_the_same_clients(tmp_path, data_root):
    plain = run_to_folder(RunConfig(**SMALL, detect="noise", exclude_flagged=True), tmp_path / "p", data_root)
    enc = run_to_folder(RunConfig(**SMALL, detect="noise", exclude_flagged=True, encrypt="ckks"), tmp_path / "e",
                        data_root)
    assert [r.flagged for r in enc.rounds] == [r.flagged for r in plain.rounds] == [tuple(plain.lazy)] * 2
    assert abs(enc.final.global_train_loss - plain.final.global_train_loss) < 1e-4
    # Without --keep-key the key is gone with the run, and the summary says so.
    assert not (tmp_path / "e" / KEY_NAME).exists()
    assert "discarded" in (tmp_path / "e" / "summary.md").read_text()


def test_missing_tenseal_is_one_line_input_error(tmp_path, data_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "tenseal", None)  # makes "import tenseal" raise ImportError
    with pytest.raises(InputError, match=r"pip install 'bladefl\[encrypt\]'"):
        require_tenseal()
    with pytest.raises(InputError, match="TenSEAL"):
        RunConfig(**SMALL, encrypt="ckks")
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["run", *cli_args(data_root, "--encrypt", "ckks", "--out", str(out), **CHANGES)])
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x]
    assert len(lines) == 1 and "needs TenSEAL" in lines[0]
    assert not out.exists()


def test_unknown_encryption_is_rejected():
    with pytest.raises(InputError, match="encrypt must be one of none, ckks"):
        RunConfig(**SMALL, encrypt="paillier")


@needs_tenseal
def test_weights_beyond_the_safe_range_are_refused(codec):
    # The mean is decrypted under the 60-bit first prime alone: |w| * 2^40 must stay below 2^59.
    assert codec.max_abs == 2.0**18
    inside = np.full(codec.slots, 0.99 * codec.max_abs, dtype=np.float32)
    mean = codec.mean([codec.encrypt(inside), codec.encrypt(-inside / 2)])
    assert np.abs(mean - inside.astype(np.float64) / 4).max() <= 1e-6 * codec.max_abs
    for bad in (np.full(10, 1e9), np.r_[np.zeros(9), -2.0**19], np.r_[np.zeros(9), np.nan], np.r_[1.0, np.inf]):
        with pytest.raises(InputError, match="safe range") as info:
            codec.encrypt(bad.astype(np.float32))
        assert "\n" not in str(info.value)


@needs_tenseal
def test_diverging_encrypted_run_fails_in_one_line(tmp_path, data_root):
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["run", *cli_args(data_root, "--encrypt", "ckks", "--out", str(out), **CHANGES,
                                                  eta=300.0)])
    lines = [x for x in r.output.splitlines() if x]
    assert r.exit_code == 2 and len(lines) == 1 and "safe range" in lines[0], r.output
    assert not out.exists()


@needs_tenseal
def test_keep_key_writes_a_private_key_that_decrypts_the_blobs(tmp_path, data_root):
    from bladefl_validate.learning.encrypt import CKKSCodec

    plain = tmp_path / "plain"
    run_to_folder(RunConfig(**SMALL), plain, data_root)
    out = tmp_path / "enc"
    r = CliRunner().invoke(cli, ["run", *cli_args(data_root, "--encrypt", "ckks", "--keep-key", "--out", str(out),
                                                  **CHANGES)])
    assert r.exit_code == 0, r.output
    key = out / KEY_NAME
    assert key.stat().st_mode & 0o777 == 0o600
    assert KEY_NAME in (out / "summary.md").read_text()
    codec = CKKSCodec.load_key(key)
    assert codec.max_abs == 2.0**18 and codec.slots == 4096
    # Round 1 trains from the same w0 either way: client 0's ciphertext decrypts to its plaintext model.
    first = Ledger(out / "ledger.jsonl").blocks()[0].digests[0]
    first_plain = Ledger(plain / "ledger.jsonl").blocks()[0].digests[0]
    w = codec.decrypt(CachePool(out / "blobs").get(first))
    w_plain = np.frombuffer(CachePool(plain / "blobs").get(first_plain), dtype="<f4")
    assert np.abs(w - w_plain).max() < 1e-5
    with pytest.raises(ValueError, match="bad magic"):
        CKKSCodec.load_key(out / "config.json")


def test_keep_key_needs_ckks(tmp_path, data_root):
    with pytest.raises(InputError, match="--keep-key needs --encrypt ckks"):
        run_to_folder(RunConfig(**SMALL), tmp_path / "run", data_root, keep_key=True)
    r = CliRunner().invoke(cli, ["run", *cli_args(data_root, "--keep-key", "--out", str(tmp_path / "run"), **CHANGES)])
    lines = [x for x in r.output.splitlines() if x]
    assert r.exit_code == 2 and len(lines) == 1 and "--keep-key" in lines[0], r.output
    assert not (tmp_path / "run").exists()
