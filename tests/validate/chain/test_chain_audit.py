"""`chain verify` on real run folders: the manifest a run writes, and the tampering it must catch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import small_run

from bladefl_validate.cli import cli
from bladefl_validate.config import RunConfig
from bladefl_validate.chain.ledger import LEDGER_NAME, MANIFEST_NAME, Block, Ledger, Manifest, block_to_json
from bladefl_validate.chain.mining import GENESIS_PREV, mine
from bladefl_validate.simulation import run_to_folder

BITS = 6
SMALL = small_run(difficulty_bits=BITS)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_root) -> tuple[Path, list[Block]]:
    out = tmp_path_factory.mktemp("runs") / "run"
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BLADEFL_CACHE", str(cache))
        run_to_folder(RunConfig(**SMALL), out, data_root)
    return out, Ledger(out / LEDGER_NAME).blocks()


@pytest.fixture
def run_dir(finished, tmp_path) -> Path:
    """A private copy of the finished run folder, free to tamper with."""
    return Path(shutil.copytree(finished[0], tmp_path / "run"))


def verify(run_dir: Path, *extra: str):
    return CliRunner().invoke(cli, ["chain", "verify", str(run_dir), *extra])


def assert_invalid(run_dir: Path, *needles: str, extra: tuple[str, ...] = ()) -> None:
    r = verify(run_dir, *extra)
    lines = [x for x in r.output.splitlines() if x]
    assert r.exit_code == 1 and len(lines) == 1 and "INVALID" in lines[0], r.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def remine_all(run_dir: Path, bits: int) -> None:
    """Re-mine every block at ``bits`` (same digests) and rewrite ledger.jsonl only."""
    blocks: list[Block] = []
    for b in Ledger(run_dir / LEDGER_NAME).blocks():
        h = b.header
        res = mine(h.index, blocks[-1].hash if blocks else GENESIS_PREV, h.merkle_root, h.timestamp,
                   n_miners=len(b.digests), difficulty_bits=bits)
        blocks.append(Block(res.header, b.digests, res.hash))
    (run_dir / LEDGER_NAME).write_text("".join(block_to_json(b) + "\n" for b in blocks))


def test_run_writes_the_manifest_and_records_the_tip(finished) -> None:
    out, blocks = finished
    manifest = Manifest.from_json((out / MANIFEST_NAME).read_text())
    assert manifest == Manifest(blocks=SMALL["K"], difficulty_bits=BITS, tip_hash=blocks[-1].hash)
    assert blocks[-1].hash in (out / "summary.md").read_text()
    r = verify(out)
    assert r.exit_code == 0 and "ok, 2 blocks" in r.output and blocks[-1].hash in r.output
    as_json = json.loads(verify(out, "--json").output)
    assert as_json == {"status": 0, "ok": True, "blocks": 2, "blobs": 8, "error": None, "tip": blocks[-1].hash}


def test_last_block_deleted(run_dir: Path) -> None:
    path = run_dir / LEDGER_NAME
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    assert_invalid(run_dir, "ledger holds 1 blocks", "committed to 2")


def test_ledger_truncated_to_nothing(run_dir: Path) -> None:
    (run_dir / LEDGER_NAME).write_bytes(b"")
    assert_invalid(run_dir, "ledger holds 0 blocks")


@pytest.mark.parametrize("damage", ["delete", "garble"])
def test_config_gone_and_blocks_remined_at_0_bits(run_dir: Path, damage: str) -> None:
    remine_all(run_dir, 0)
    if damage == "delete":
        (run_dir / "config.json").unlink()
    else:
        (run_dir / "config.json").write_text('{"difficulty_bits": ')
    assert_invalid(run_dir, "config.json")


def test_blocks_remined_at_0_bits(run_dir: Path) -> None:
    remine_all(run_dir, 0)
    assert_invalid(run_dir, "block 1 (line 1)", "difficulty is 0 bits", f"requires {BITS}")


def test_metrics_block_hash_edited(run_dir: Path, finished) -> None:
    _, blocks = finished
    path = run_dir / "metrics.csv"
    path.write_text(path.read_text().replace(blocks[1].hash, blocks[0].hash))
    assert_invalid(run_dir, "block 2 (line 2)", "metrics.csv", "block_hash")


def test_tip_anchor(run_dir: Path, finished) -> None:
    _, blocks = finished
    r = verify(run_dir, "--tip", blocks[-1].hash.upper())
    assert r.exit_code == 0 and "matches --tip" in r.output, r.output
    assert_invalid(run_dir, "tip", blocks[0].hash, extra=("--tip", blocks[0].hash))
    for bad in ("abc", "g" * 64):
        r = verify(run_dir, "--tip", bad)
        lines = [x for x in r.output.splitlines() if x]
        assert r.exit_code == 2 and len(lines) == 1 and "--tip" in lines[0], r.output
