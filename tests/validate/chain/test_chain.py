"""The cache pool, Merkle roots, proof-of-work mining, the ledger, and the audit of a persisted run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bladefl_validate.chain.anchor import (genesis_commits, json_digest, read_table, report_commits, round_commits,
                                          table_digest)
from bladefl_validate.chain.ledger import (
    LEDGER_NAME,
    MANIFEST_NAME,
    Block,
    Ledger,
    LedgerError,
    Manifest,
    block_from_json,
    block_to_json,
    record_hash,
    verify_block,
)
from bladefl_validate.chain.merkle import EMPTY_ROOT, merkle_root
from bladefl_validate.chain.mining import (
    GENESIS_PREV,
    BlockHeader,
    MiningError,
    block_hash,
    header_bytes,
    header_prefix,
    leading_zero_bits,
    meets_difficulty,
    mine,
)
from bladefl_validate.chain.pool import BlobError, CachePool, bytes_to_weights, weights_to_bytes
from bladefl_validate.chain.verify import BLOB_DIR, verify_run

BITS = 8


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def digest_of(i: int) -> str:
    return hashlib.sha256(f"model {i}".encode()).hexdigest()


# --- cache pool -------------------------------------------------------------------------------


def test_pool_put_get_fanout_and_idempotence(tmp_path: Path) -> None:
    pool = CachePool(tmp_path / "blobs")
    d = pool.put(b"hello")
    assert d == hashlib.sha256(b"hello").hexdigest()
    assert pool.path(d) == tmp_path / "blobs" / d[:2] / d
    assert pool.has(d) and pool.get(d) == b"hello"
    assert pool.put(b"hello") == d
    pool.put(b"world")
    assert sorted(pool.digests()) == sorted([d, hashlib.sha256(b"world").hexdigest()])
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "blobs").rglob("*"))


def test_pool_get_rejects_missing_and_corrupt(tmp_path: Path) -> None:
    pool = CachePool(tmp_path)
    with pytest.raises(BlobError, match="missing"):
        pool.get(digest_of(0))
    d = pool.put(b"abc")
    pool.path(d).write_bytes(b"abd")
    with pytest.raises(BlobError, match="corrupt"):
        pool.get(d)
    assert pool.put(b"abc") == d and pool.get(d) == b"abc"  # put repairs a corrupt copy


def test_weights_round_trip() -> None:
    w = np.array([1.5, -2.25, 3e-8, 0.0], dtype=np.float64)
    b = weights_to_bytes(w)
    assert b == np.array(w, dtype="<f4").tobytes() and len(b) == 16
    back = bytes_to_weights(b)
    assert back.dtype == np.float32 and np.array_equal(back, w.astype(np.float32))
    back[0] = 7.0  # writable copy
    with pytest.raises(ValueError):
        weights_to_bytes(np.zeros((2, 2)))


# --- Merkle -----------------------------------------------------------------------------------


def leaf(d: str) -> bytes:
    return sha(b"\x00" + bytes.fromhex(d))


def node(a: bytes, b: bytes) -> bytes:
    return sha(b"\x01" + a + b)


def test_merkle_small_cases() -> None:
    a, b, c, d, e = (digest_of(i) for i in range(5))
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").hexdigest()
    assert merkle_root([a]) == leaf(a).hex()
    assert merkle_root([a, b]) == node(leaf(a), leaf(b)).hex()
    assert merkle_root([a, b, c]) == node(node(leaf(a), leaf(b)), node(leaf(c), leaf(c))).hex()
    ab, cd, ee = node(leaf(a), leaf(b)), node(leaf(c), leaf(d)), node(leaf(e), leaf(e))
    assert merkle_root([a, b, c, d, e]) == node(node(ab, cd), node(ee, ee)).hex()
    assert merkle_root([b, a]) != merkle_root([a, b])


def test_merkle_prefixes_defend_second_preimage() -> None:
    a, b = digest_of(0), digest_of(1)
    # Without prefixes, the inner node of [a, b] presented as a single leaf would give the same root.
    inner = node(leaf(a), leaf(b)).hex()
    assert merkle_root([inner]) != merkle_root([a, b])
    with pytest.raises(ValueError):
        merkle_root(["xyz"])


# --- mining -----------------------------------------------------------------------------------


def test_leading_zero_bits_and_difficulty() -> None:
    assert leading_zero_bits(b"\x00\x00") == 16
    assert leading_zero_bits(b"\x00\x80") == 8
    assert leading_zero_bits(b"\x01\xff") == 7
    assert meets_difficulty("00ff" + "0" * 60, 8) and not meets_difficulty("00ff" + "0" * 60, 9)
    assert meets_difficulty("f" * 64, 0)


def test_mine_meets_difficulty_and_is_deterministic() -> None:
    root = merkle_root([digest_of(0), digest_of(1)])
    r1 = mine(1, GENESIS_PREV, root, 12.5, n_miners=5, difficulty_bits=BITS)
    r2 = mine(1, GENESIS_PREV, root, 12.5, n_miners=5, difficulty_bits=BITS)
    assert r1 == r2
    assert meets_difficulty(r1.hash, BITS) and r1.hash == block_hash(r1.header)
    assert r1.winner == r1.header.miner
    assert r1.header.difficulty_bits == BITS and r1.header.timestamp == 12.5
    assert r1.hashes == 5 * r1.header.nonce + r1.winner + 1


def test_mine_winner_rule() -> None:
    # Brute force: the winner is the first (step, miner) whose hash meets the target.
    n = 3
    r = mine(2, digest_of(7), digest_of(6), 1.0, n_miners=n, difficulty_bits=6)
    first = None
    for step in range(10_000):
        for i in range(n):
            h = BlockHeader(2, digest_of(7), digest_of(6), 1.0, 6, i, step)
            if meets_difficulty(block_hash(h), 6):
                first = (step, i)
                break
        if first:
            break
    assert (r.header.nonce, r.winner) == first
    assert r.hashes == n * first[0] + first[1] + 1


def reference_race(index: int, prev: str, root: str, t: float, n: int, bits: int) -> tuple[int, int, int, str]:
    """The race as mined before difficulty 0 got its own tie rule: (winner, nonce, hashes, hash), brute force."""
    for step in range(1 << 20):
        for i in range(n):
            h = block_hash(BlockHeader(index, prev, root, t, bits, i, step))
            if leading_zero_bits(bytes.fromhex(h)) >= bits:
                return i, step, n * step + i + 1, h
    raise AssertionError("no block")


def test_mine_matches_the_reference_race_at_every_positive_difficulty() -> None:
    rng = np.random.default_rng(2024)
    for trial in range(400):
        bits = int(rng.integers(1, 11))
        n = int(rng.integers(1, 21))
        index, t = int(rng.integers(1, 1000)), float(rng.integers(0, 10_000)) / 4
        prev, root = digest_of(int(rng.integers(1 << 30))), digest_of(int(rng.integers(1 << 30)))
        r = mine(index, prev, root, t, n_miners=n, difficulty_bits=bits)
        assert (r.winner, r.header.nonce, r.hashes, r.hash) == reference_race(index, prev, root, t, n, bits), trial
        assert r.header.miner == r.winner


def test_mine_at_difficulty_0_draws_every_miner_equally() -> None:
    n, races = 4, 4000
    wins = np.zeros(n, dtype=int)
    for k in range(races):
        r = mine(k + 1, digest_of(k), digest_of(k + races), 0.0, n_miners=n, difficulty_bits=0)
        step0 = [block_hash(BlockHeader(k + 1, digest_of(k), digest_of(k + races), 0.0, 0, i, 0)) for i in range(n)]
        assert (r.header.nonce, r.hashes, r.hash) == (0, n, min(step0))
        assert r.winner == step0.index(min(step0)) == r.header.miner
        wins[r.winner] += 1
    # Binomial(4000, 1/4): standard deviation about 27, so 850..1150 is more than 5 of them either side.
    assert ((850 < wins) & (wins < 1150)).all(), wins
    single = mine(1, GENESIS_PREV, digest_of(1), 0.0, n_miners=1, difficulty_bits=0)
    assert (single.winner, single.hashes) == (0, 1)


def test_mine_budget_within_a_step() -> None:
    # Budgets ending anywhere inside a step: success exactly when the winner's hash is within budget.
    n = 3
    r = mine(4, digest_of(2), digest_of(3), 2.0, n_miners=n, difficulty_bits=BITS)
    assert r.hashes > 2 * n
    for budget in range(r.hashes - 2 * n, r.hashes + n):
        if budget >= r.hashes:
            assert mine(4, digest_of(2), digest_of(3), 2.0, n, BITS, max_hashes=budget) == r
        else:
            with pytest.raises(MiningError, match=f"within {budget} hashes"):
                mine(4, digest_of(2), digest_of(3), 2.0, n, BITS, max_hashes=budget)
    # At 0 bits the step-0 tie is settled by all n hashes, so a smaller budget finds no block.
    for budget in range(n):
        with pytest.raises(MiningError, match=f"within {budget} hashes"):
            mine(4, digest_of(2), digest_of(3), 2.0, n, 0, max_hashes=budget)
    assert mine(4, digest_of(2), digest_of(3), 2.0, n, 0, max_hashes=n).hashes == n


def test_midstate_hash_equals_plain_hash() -> None:
    r = mine(1, GENESIS_PREV, digest_of(1), 3.0, n_miners=2, difficulty_bits=BITS)
    full = header_prefix(r.header) + r.header.nonce.to_bytes(8, "big")
    assert full == header_bytes(r.header)
    assert r.hash == hashlib.sha256(full).hexdigest()
    # Every field but the nonce is in the prefix.
    other = BlockHeader(1, GENESIS_PREV, digest_of(1), 3.0, BITS, r.header.miner + 1, r.header.nonce)
    assert header_prefix(other) != header_prefix(r.header)


def test_mine_budget_and_validation() -> None:
    with pytest.raises(MiningError):
        mine(1, GENESIS_PREV, digest_of(1), 0.0, n_miners=4, difficulty_bits=40, max_hashes=100)
    r = mine(1, GENESIS_PREV, digest_of(1), 0.0, n_miners=4, difficulty_bits=BITS)
    assert mine(1, GENESIS_PREV, digest_of(1), 0.0, 4, BITS, max_hashes=r.hashes) == r
    with pytest.raises(MiningError):
        mine(1, GENESIS_PREV, digest_of(1), 0.0, 4, BITS, max_hashes=r.hashes - 1)
    for bad in (-1, 65, 2.0):
        with pytest.raises(ValueError, match="difficulty_bits"):
            mine(1, GENESIS_PREV, digest_of(1), 0.0, n_miners=2, difficulty_bits=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mine(1, GENESIS_PREV, digest_of(1), 0.0, n_miners=0, difficulty_bits=1)


def test_run_difficulty_is_limited_to_what_can_be_mined() -> None:
    from bladefl_platform.errors import InputError
    from bladefl_validate.config import RunConfig
    from bladefl_validate.chain.mining import MAX_RUN_DIFFICULTY_BITS

    assert MAX_RUN_DIFFICULTY_BITS == 28
    assert RunConfig(difficulty_bits=MAX_RUN_DIFFICULTY_BITS).difficulty_bits == 28
    for bad in (29, 64, 65, -1, 2.5, True):
        with pytest.raises(InputError, match="difficulty_bits must be an integer in 0..28"):
            RunConfig(difficulty_bits=bad)  # type: ignore[arg-type]
    # Beyond the limit, mine() needs a hash budget to be called at all.
    with pytest.raises(InputError, match="max_hashes"):
        mine(1, GENESIS_PREV, digest_of(1), 0.0, n_miners=2, difficulty_bits=29)


def test_cli_refuses_an_unmineable_difficulty(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bladefl_validate.cli import cli

    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["run", "--difficulty-bits", "64", "--data-dir", str(tmp_path / "no-data"),
                                 "--quiet", "--out", str(out)])
    lines = [x for x in r.output.splitlines() if x]
    assert r.exit_code == 2 and len(lines) == 1 and "0..28" in lines[0], r.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


# --- ledger and client checks -----------------------------------------------------------------


def make_run(run_dir: Path, k: int = 3, n: int = 4, bits: int = BITS) -> list[Block]:
    """Simulate k rounds of n clients (upload models, mine, verify, append) and write what a run commits to."""
    pool = CachePool(run_dir / BLOB_DIR)
    ledger = Ledger(None)
    rng = np.random.default_rng(0)
    t = 0.0
    for index in range(1, k + 1):
        digests = [pool.put(weights_to_bytes(rng.normal(size=16).astype(np.float32))) for _ in range(n)]
        t += 10.0
        res = mine(index, ledger.tip_hash(), merkle_root(digests), t, n_miners=n, difficulty_bits=bits)
        block = Block(res.header, tuple(digests), res.hash)
        assert verify_block(block, ledger.tip_hash(), digests) == (True, "ok")
        ledger.append(block)
    return commit(run_dir, ledger.blocks(), n, bits)


METRICS = ("round", "miner", "nonce", "block_hash", "wall_seconds")


def commit(run_dir: Path, blocks: list[Block], n: int, bits: int, detection: str | None = None) -> list[Block]:
    """Write what a run writes for the mined ``blocks`` (only what an audit reads): config.json, partition.csv,
    metrics.csv, the ledger recording each block's commitments, summary.json, detection.csv if given, and the
    manifest."""
    config = json.dumps({"K": len(blocks), "N": n, "difficulty_bits": bits})
    partition = "client,0,1\n" + "".join(f"{i},{i},1\n" for i in range(n))
    rows = [[str(b.header.index), str(b.header.miner), str(b.header.nonce), b.hash, f"0.{i}"]
            for i, b in enumerate(blocks)]
    (run_dir / LEDGER_NAME).unlink(missing_ok=True)
    ledger = Ledger(run_dir / LEDGER_NAME)
    for b, row in zip(blocks, rows):
        commits = round_commits(METRICS, row)
        if b.header.index == 1:
            commits.update(genesis_commits(config, partition))
        ledger.append(Block(b.header, b.digests, b.hash), commits)
    metrics = "".join(",".join(row) + "\n" for row in [METRICS, *rows])
    summary = json.dumps({"rounds": len(blocks)})
    for name, text in (("config.json", config), ("partition.csv", partition), ("metrics.csv", metrics),
                       ("summary.json", summary), ("detection.csv", detection)):
        if text is not None:
            (run_dir / name).write_text(text)
    last = blocks[-1].hash if blocks else GENESIS_PREV
    manifest = Manifest(len(blocks), bits, last, ledger.tip_record(), report_commits(summary, metrics, detection))
    (run_dir / MANIFEST_NAME).write_text(manifest.to_json())
    return ledger.blocks()


def tip_of(run_dir: Path) -> str:
    """The run's tip, as its owner would have kept it."""
    return Manifest.from_json((run_dir / MANIFEST_NAME).read_text()).tip


def test_run_of_three_blocks_verifies(tmp_path: Path) -> None:
    blocks = make_run(tmp_path)
    assert [b.header.index for b in blocks] == [1, 2, 3]
    assert blocks[0].header.prev_hash == GENESIS_PREV and blocks[1].header.prev_hash == blocks[0].hash
    report = verify_run(tmp_path, difficulty_bits=BITS)
    assert report.ok and report.error is None
    assert (report.blocks, report.blobs) == (3, 12)
    reopened = Ledger(tmp_path / LEDGER_NAME)
    assert reopened.blocks() == blocks and len(reopened) == 3 and reopened.tip_hash() == blocks[-1].hash
    lines = (tmp_path / LEDGER_NAME).read_text().splitlines()
    assert list(json.loads(lines[0])) == sorted(json.loads(lines[0]))
    assert block_from_json(lines[1]) == blocks[1] and block_to_json(blocks[1]) == lines[1]


def test_missing_run_folder_fails(tmp_path: Path) -> None:
    report = verify_run(tmp_path / "nowhere")
    assert not report.ok and report.blocks == 0 and "nowhere" in str(report.error)


def test_ledger_refuses_broken_continuation(tmp_path: Path) -> None:
    blocks = make_run(tmp_path, k=2)
    ledger = Ledger(tmp_path / LEDGER_NAME)
    with pytest.raises(LedgerError, match="index"):
        ledger.append(blocks[1])
    res = mine(3, blocks[0].hash, EMPTY_ROOT, 99.0, n_miners=2, difficulty_bits=BITS)
    with pytest.raises(LedgerError, match="prev_hash"):
        ledger.append(Block(res.header, (), res.hash))
    assert len(Ledger(tmp_path / LEDGER_NAME)) == 2


@pytest.fixture
def good_block() -> tuple[Block, list[str]]:
    digests = [digest_of(i) for i in range(3)]
    res = mine(1, GENESIS_PREV, merkle_root(digests), 5.0, n_miners=3, difficulty_bits=BITS)
    return Block(res.header, tuple(digests), res.hash), digests


def remine(header: BlockHeader, **changes: object) -> Block:
    """A block whose header is changed and re-mined honestly, with digests left to the caller."""
    fields = {f: getattr(header, f) for f in ("index", "prev_hash", "merkle_root", "timestamp")}
    fields.update(changes)
    res = mine(**fields, n_miners=2, difficulty_bits=header.difficulty_bits)  # type: ignore[arg-type]
    return Block(res.header, (), res.hash)


def weak_header(h: BlockHeader) -> BlockHeader:
    """``h`` with the first nonce whose hash misses ``h``'s difficulty: a consistent header without proof of work."""
    candidates = (dataclasses.replace(h, nonce=n) for n in range(1000))
    return next(c for c in candidates if not meets_difficulty(block_hash(c), h.difficulty_bits))


def test_verify_block_accepts_good(good_block: tuple[Block, list[str]]) -> None:
    block, digests = good_block
    assert verify_block(block, GENESIS_PREV, digests) == (True, "ok")


def test_verify_block_rejects_wrong_merkle_root(good_block: tuple[Block, list[str]]) -> None:
    block, digests = good_block
    forged = remine(block.header, merkle_root=digest_of(42))
    forged = Block(forged.header, block.digests, forged.hash)
    ok, why = verify_block(forged, GENESIS_PREV, digests)
    assert not ok and "merkle_root" in why


def test_verify_block_rejects_wrong_prev(good_block: tuple[Block, list[str]]) -> None:
    block, digests = good_block
    ok, why = verify_block(block, digest_of(5), digests)
    assert not ok and "prev_hash" in why


def test_verify_block_rejects_bad_nonce(good_block: tuple[Block, list[str]]) -> None:
    block, digests = good_block
    h = block.header
    # Same stored hash, different nonce: the hash no longer matches.
    bumped = BlockHeader(h.index, h.prev_hash, h.merkle_root, h.timestamp, h.difficulty_bits, h.miner, h.nonce + 1)
    ok, why = verify_block(Block(bumped, block.digests, block.hash), GENESIS_PREV, digests)
    assert not ok and "stored hash" in why
    # Consistent hash but no proof of work.
    weak = weak_header(h)
    ok, why = verify_block(Block(weak, block.digests, block_hash(weak)), GENESIS_PREV, digests)
    assert not ok and "difficulty" in why


def test_verify_block_rejects_digests_differing_from_download(good_block: tuple[Block, list[str]]) -> None:
    block, digests = good_block
    for downloaded in (digests[:2], [digests[1], digests[0], digests[2]], digests + [digest_of(9)]):
        ok, why = verify_block(block, GENESIS_PREV, downloaded)
        assert not ok and "downloaded" in why


# --- tampering with a persisted run -----------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, list[Block]]:
    return tmp_path, make_run(tmp_path)


def edit_line(run_dir: Path, lineno: int, change: Callable[[dict[str, Any]], object]) -> None:
    path = run_dir / LEDGER_NAME
    lines = path.read_text().splitlines()
    record = json.loads(lines[lineno - 1])
    change(record)
    lines[lineno - 1] = json.dumps(record, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")


def assert_caught(run_dir: Path, *needles: str) -> str:
    report = verify_run(run_dir)
    assert not report.ok and report.error is not None and "\n" not in report.error
    for needle in needles:
        assert needle in report.error, report.error
    return report.error


def test_tamper_flip_blob_byte(run: tuple[Path, list[Block]]) -> None:
    run_dir, blocks = run
    d = blocks[1].digests[2]
    path = CachePool(run_dir / BLOB_DIR).path(d)
    data = bytearray(path.read_bytes())
    data[5] ^= 0x01
    path.write_bytes(bytes(data))
    assert_caught(run_dir, f"blob {d}", "block 2", "corrupt")
    assert verify_run(run_dir).blocks == 1


def test_tamper_delete_blob(run: tuple[Path, list[Block]]) -> None:
    run_dir, blocks = run
    d = blocks[2].digests[0]
    CachePool(run_dir / BLOB_DIR).path(d).unlink()
    assert_caught(run_dir, f"blob {d}", "block 3", "missing")


@pytest.mark.parametrize("line, field, change", [(2, "nonce", 1), (3, "timestamp", 0.5)])
def test_tamper_a_hashed_field(run: tuple[Path, list[Block]], line: int, field: str, change: float) -> None:
    run_dir, _ = run
    edit_line(run_dir, line, lambda r: r.update({field: r[field] + change}))
    assert_caught(run_dir, f"block {line} (line {line})", "hash")


def test_tamper_change_nonce_and_rehash(run: tuple[Path, list[Block]]) -> None:
    run_dir, blocks = run
    weak = weak_header(blocks[2].header)
    edit_line(run_dir, 3, lambda r: r.update(nonce=weak.nonce, hash=block_hash(weak)))
    assert_caught(run_dir, "block 3 (line 3)", "difficulty")


def test_tamper_change_digest_in_body(run: tuple[Path, list[Block]]) -> None:
    run_dir, blocks = run
    # Point block 2 at a model that is genuinely in the pool (block 1's), so only the root can tell.
    edit_line(run_dir, 2, lambda r: r["digests"].__setitem__(0, blocks[0].digests[0]))
    assert_caught(run_dir, "block 2 (line 2)", "merkle_root")


def test_tamper_change_digest_and_remine(run: tuple[Path, list[Block]]) -> None:
    run_dir, blocks = run
    digests = list(blocks[1].digests)
    digests[0] = blocks[0].digests[0]
    forged = remine(blocks[1].header, merkle_root=merkle_root(digests))
    edit_line(run_dir, 2, lambda r: r.update(
        digests=digests, merkle_root=forged.header.merkle_root, nonce=forged.header.nonce,
        miner=forged.header.miner, hash=forged.hash))
    assert_caught(run_dir, "block 2 (line 2)", "metrics.csv", "block_hash")
    # With metrics.csv rewritten too, the next block's link still gives it away.
    path = run_dir / "metrics.csv"
    path.write_text(path.read_text().replace(blocks[1].hash, forged.hash).replace(
        f"2,{blocks[1].header.miner},{blocks[1].header.nonce},", f"2,{forged.header.miner},{forged.header.nonce},"))
    assert_caught(run_dir, "block 2 (line 2)", "record")
    # With block 2's record rewritten too (its commitment to the new row), the next block's link still tells.
    commits = round_commits(METRICS, [r.split(",") for r in path.read_text().splitlines()][2])
    edit_line(run_dir, 2, lambda r: r.update(commits=commits, record=record_hash(blocks[0].record, forged.hash,
                                                                                 commits)))
    assert_caught(run_dir, "block 3 (line 3)", "prev_hash")


def test_tamper_change_merkle_root(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    edit_line(run_dir, 1, lambda r: r.update(merkle_root=digest_of(77)))
    assert_caught(run_dir, "block 1 (line 1)", "hash")


def test_tamper_swap_lines(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    path = run_dir / LEDGER_NAME
    lines = path.read_text().splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("".join(lines))
    assert_caught(run_dir, "block 3 (line 2)", "out of order")


def test_tamper_truncate_mid_line(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    path = run_dir / LEDGER_NAME
    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last_start + 40])
    assert_caught(run_dir, "line 3", "truncated")
    assert verify_run(run_dir).blocks == 2
    with pytest.raises(LedgerError, match="line 3"):
        Ledger(path)
    # A cut that leaves a whole line but loses its newline is still a torn append.
    path.write_bytes(data[:-1])
    assert_caught(run_dir, "line 3", "truncated")


def test_tamper_corrupt_middle_line(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    path = run_dir / LEDGER_NAME
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:30] + "\n"
    path.write_text("".join(lines))
    assert_caught(run_dir, "line 2", "corrupt")


def test_tamper_delete_middle_block(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    path = run_dir / LEDGER_NAME
    lines = path.read_text().splitlines(keepends=True)
    del lines[1]
    path.write_text("".join(lines))
    assert_caught(run_dir, "block 3 (line 2)", "out of order")


def test_tamper_lower_difficulty(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    edit_line(run_dir, 2, lambda r: r.update(difficulty_bits=r["difficulty_bits"] - 4))
    assert_caught(run_dir, "block 2 (line 2)", f"difficulty is {BITS - 4} bits")


def test_tamper_lower_difficulty_and_remine_tip(run: tuple[Path, list[Block]]) -> None:
    run_dir, blocks = run
    h = blocks[2].header
    res = mine(h.index, h.prev_hash, h.merkle_root, h.timestamp, n_miners=2, difficulty_bits=0)
    edit_line(run_dir, 3, lambda r: r.update(
        difficulty_bits=0, nonce=res.header.nonce, miner=res.header.miner, hash=res.hash))
    # The tip re-mined at a self-declared easier target is consistent on its own, but not with the
    # difficulty the run committed to in its manifest.
    assert_caught(run_dir, "block 3 (line 3)", "difficulty is 0 bits", f"{BITS}")


def test_tamper_bad_field_value(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    # Upper-case hex is the same bytes, so the hash would not change: it is refused as non-canonical.
    edit_line(run_dir, 3, lambda r: r.update(prev_hash=r["prev_hash"].upper()))
    assert_caught(run_dir, "line 3", "prev_hash")
    edit_line(run_dir, 2, lambda r: r.update(difficulty_bits=200))
    assert_caught(run_dir, "line 2", "difficulty_bits")


def test_tamper_deeply_nested_line(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    path = run_dir / LEDGER_NAME
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = "[" * 100_000 + "]" * 100_000 + "\n"
    path.write_text("".join(lines))
    assert_caught(run_dir, "line 2", "nested")
    with pytest.raises(LedgerError, match="line 2"):
        Ledger(path)


# --- what the run committed to outside the ledger ---------------------------------------------


def remine_chain(run_dir: Path, bits: int, first: int = 1, recommit: bool = False) -> list[Block]:
    """Re-mine blocks ``first``.. at ``bits`` (keeping their digests) and rewrite the ledger; with
    ``recommit``, config, metrics and manifest too, as a forger who rewrites every file would."""
    old = Ledger(run_dir / LEDGER_NAME).blocks()
    blocks = old[: first - 1]
    for b in old[first - 1 :]:
        h = b.header
        prev = blocks[-1].hash if blocks else GENESIS_PREV
        res = mine(h.index, prev, h.merkle_root, h.timestamp, n_miners=len(b.digests), difficulty_bits=bits)
        blocks.append(Block(res.header, b.digests, res.hash))
    (run_dir / LEDGER_NAME).write_text("".join(block_to_json(b) + "\n" for b in blocks))
    if recommit:
        commit(run_dir, blocks, len(blocks[0].digests), bits)
    return blocks


def test_manifest_round_trip_and_validation() -> None:
    m = Manifest(blocks=3, difficulty_bits=BITS, last_block=digest_of(1), record=digest_of(2),
                 commits={"summary": digest_of(3)})
    assert Manifest.from_json(m.to_json()) == m and m.format == 2
    written = json.loads(m.to_json())
    assert written == {"format": 2, "blocks": 3, "difficulty_bits": BITS, "last_block": digest_of(1),
                       "record": digest_of(2), "commits": {"summary": digest_of(3)}, "tip": m.tip}
    old = '{"format": 1, "blocks": 3, "difficulty_bits": 8, "tip_hash": "' + digest_of(1) + '"}'
    assert Manifest.from_json(old) == Manifest(3, 8, digest_of(1)) and Manifest(3, 8, digest_of(1)).tip == digest_of(1)
    edited = json.dumps({**written, "blocks": 4})
    for bad, why in [
        ("{", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested"),
        ("[]", "not a JSON object"),
        ('{"format": 1, "blocks": 3, "difficulty_bits": 8}', "tip_hash"),
        ('{"format": 3, "blocks": 3, "difficulty_bits": 8, "tip_hash": "' + digest_of(1) + '"}', "format"),
        (old.replace('"format": 1', '"format": 2'), "missing field"),
        (old.replace('"blocks": 3', '"blocks": "3"'), "blocks"),
        (old.replace(digest_of(1), "XYZ"), "last_block"),
        (edited, "edited"),
        (json.dumps({**written, "commits": {"summary": "x"}}), "summary"),
    ]:
        with pytest.raises(ValueError, match=why):
            Manifest.from_json(bad)


def test_audit_last_block_deleted(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    path = run_dir / LEDGER_NAME
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    assert_caught(run_dir, "ledger holds 2 blocks", "3", MANIFEST_NAME)


def test_audit_ledger_emptied(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    (run_dir / LEDGER_NAME).write_bytes(b"")
    assert_caught(run_dir, "ledger holds 0 blocks", "3")


def test_audit_extra_block_beyond_the_manifest(run: tuple[Path, list[Block]]) -> None:
    run_dir, blocks = run
    res = mine(4, blocks[-1].hash, merkle_root(blocks[-1].digests), 40.0, n_miners=4, difficulty_bits=BITS)
    Ledger(run_dir / LEDGER_NAME).append(Block(res.header, blocks[-1].digests, res.hash), {})
    assert_caught(run_dir, "block 4 (line 4)", "beyond the 3 blocks")


def test_audit_needs_the_manifest(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    (run_dir / MANIFEST_NAME).write_text('{"format": 1, "blocks": 3}')
    assert_caught(run_dir, MANIFEST_NAME, "tip_hash")
    (run_dir / MANIFEST_NAME).unlink()
    assert_caught(run_dir, MANIFEST_NAME, "missing")


@pytest.mark.parametrize("damage", ["delete", "garble", "drop-difficulty", "deep"])
def test_audit_config_missing_or_malformed_and_chain_remined_at_0_bits(run: tuple[Path, list[Block]],
                                                                       damage: str) -> None:
    run_dir, _ = run
    remine_chain(run_dir, bits=0)
    config = run_dir / "config.json"
    if damage == "delete":
        config.unlink()
    elif damage == "garble":
        config.write_text("{not json")
    elif damage == "deep":
        config.write_text("[" * 100_000 + "]" * 100_000)
    else:
        config.write_text(json.dumps({"K": 3, "N": 4}))
    assert_caught(run_dir, "config.json")


def test_audit_chain_remined_at_0_bits_against_the_manifest(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    remine_chain(run_dir, bits=0)
    assert_caught(run_dir, "block 1 (line 1)", "difficulty is 0 bits", f"requires {BITS}")


def test_audit_config_and_manifest_must_agree(run: tuple[Path, list[Block]]) -> None:
    run_dir, blocks = run
    (run_dir / "config.json").write_text(json.dumps({"K": 4, "N": 4, "difficulty_bits": BITS}))
    assert_caught(run_dir, "config.json", "K = 4", "3 blocks")
    (run_dir / "config.json").write_text(json.dumps({"K": 3, "N": 4, "difficulty_bits": BITS + 1}))
    assert_caught(run_dir, "config.json", f"{BITS + 1}", f"{BITS} bits")
    assert not verify_run(run_dir.parent / "elsewhere").ok
    (run_dir / "config.json").write_text(json.dumps({"K": 3, "N": 4, "difficulty_bits": BITS}))
    report = verify_run(run_dir, difficulty_bits=BITS + 2)
    assert not report.ok and f"{BITS + 2}" in str(report.error)
    assert verify_run(run_dir).tip == tip_of(run_dir)


@pytest.mark.parametrize("column, value", [("block_hash", digest_of(5)), ("miner", "3"), ("nonce", "12345678")])
def test_audit_metrics_cross_check(run: tuple[Path, list[Block]], column: str, value: str) -> None:
    run_dir, _ = run
    path = run_dir / "metrics.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index(column)] = value
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    assert_caught(run_dir, "block 2 (line 2)", "metrics.csv", column)


def test_audit_metrics_rows_and_file(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    path = run_dir / "metrics.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    assert_caught(run_dir, "metrics.csv", "block 3")
    path.write_text("\n".join(lines + [lines[-1]]) + "\n")
    assert_caught(run_dir, "metrics.csv", "4 rows")
    path.write_text("round,miner\n1,0\n")
    assert_caught(run_dir, "metrics.csv", "block_hash")
    path.unlink()
    assert_caught(run_dir, "metrics.csv", "missing")


def test_audit_duplicated_digest_keeps_the_root_but_not_the_count(tmp_path: Path) -> None:
    blocks = make_run(tmp_path, n=3)
    # Bitcoin's odd-level rule: [a, b, c] and [a, b, c, c] share a Merkle root, so the hash holds.
    assert merkle_root(list(blocks[1].digests) + [blocks[1].digests[-1]]) == blocks[1].header.merkle_root
    edit_line(tmp_path, 2, lambda r: r["digests"].append(r["digests"][-1]))
    assert_caught(tmp_path, "block 2 (line 2)", "4 model digests", "N = 3")


def test_rewritten_run_passes_only_without_its_tip(run: tuple[Path, list[Block]]) -> None:
    run_dir, blocks = run
    # A forger who rewrites every file consistently (here: the whole chain at 0 bits) cannot be caught
    # from the folder alone; only a tip hash kept elsewhere tells.
    kept = tip_of(run_dir)
    remine_chain(run_dir, bits=0, recommit=True)
    assert verify_run(run_dir).ok
    report = verify_run(run_dir, tip=kept)
    assert not report.ok and kept in str(report.error) and "tip" in str(report.error)
    assert "\n" not in str(report.error)


def test_tip_anchor_accepts_the_true_tip(run: tuple[Path, list[Block]]) -> None:
    run_dir, blocks = run
    report = verify_run(run_dir, tip=tip_of(run_dir))
    assert report.ok and report.tip == tip_of(run_dir) and report.format == 2
    assert not verify_run(run_dir, tip=blocks[-1].hash).ok  # the last block's hash anchors less: not the tip
    with pytest.raises(ValueError, match="tip"):
        verify_run(run_dir, tip="abc")


def test_audit_refuses_a_run_of_no_blocks(run: tuple[Path, list[Block]]) -> None:
    run_dir, _ = run
    # Emptied consistently: ledger, metrics, manifest and config all say 0 blocks. A run has K >= 1.
    (run_dir / LEDGER_NAME).write_bytes(b"")
    commit(run_dir, [], 4, BITS)
    assert_caught(run_dir, "config.json", "K is 0")


def test_detection_csv_is_anchored_when_the_run_screened(run: tuple[Path, list[Block]]) -> None:
    run_dir, blocks = run
    detection = run_dir / "detection.csv"
    detection.write_text("round,client,flagged\n1,0,1\n")
    assert_caught(run_dir, "detection.csv is not among what chain.json committed to")
    commit(run_dir, blocks, 4, BITS, detection="round,client,flagged\n1,0,1\n")
    assert verify_run(run_dir).ok
    detection.write_text("round,client,flagged\n1,0,0\n")
    assert_caught(run_dir, "detection.csv does not match what chain.json committed to")
    detection.unlink()
    assert_caught(run_dir, "detection.csv is missing, yet chain.json committed to it")


@pytest.mark.parametrize("text, why", [
    ("round,a,a\n1,2,3\n", "'a' appears more than once"),
    ("round,a\n1,2,3\n", "line 2 has 3 cells, the header 2"),
    ("", "no header row"),
    (b"round,\xff\n", "utf-8"),
])
def test_the_table_reader_refuses_what_it_cannot_read_one_way(text: str | bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why) as exc:
        read_table(text)
    assert "\n" not in str(exc.value)


def test_commitments_depend_on_content_not_layout() -> None:
    assert json_digest('{"a": 1, "b": [1, 2]}') == json_digest('{"b":[1,2],\n "a":1}')
    assert json_digest('{"a": 1}') != json_digest('{"a": 2}')
    assert table_digest("a,b\r\n1,2\r\n") == table_digest('"a",b\n1,"2"\n') != table_digest("a,b\n1,3\n")
    row = round_commits(("round", "loss", "wall_seconds"), ("1", "0.5", "3.2"))
    assert row == round_commits(("round", "loss", "wall_seconds"), ("1", "0.5", "9.9"))  # the clock is not a block's
    assert row != round_commits(("round", "loss", "wall_seconds"), ("1", "0.6", "3.2"))
