"""`chain verify` on real run folders: the manifest a run writes, and the tampering it must catch."""

from __future__ import annotations

import csv
import io
import json
import re
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


def kept_tip(run_dir: Path) -> str:
    """The tip as the run's owner kept it: the one summary.md shows."""
    found = re.findall(r"`([0-9a-f]{64})`", (run_dir / "summary.md").read_text())
    assert len(found) == 1, found
    return found[0]


def test_run_writes_the_manifest_and_records_the_tip(finished) -> None:
    out, blocks = finished
    manifest = Manifest.from_json((out / MANIFEST_NAME).read_text())
    assert (manifest.format, manifest.blocks, manifest.difficulty_bits) == (2, SMALL["K"], BITS)
    assert (manifest.last_block, manifest.record) == (blocks[-1].hash, blocks[-1].record)
    assert set(manifest.commits or {}) == {"summary", "clock"}
    assert set(blocks[0].commits or {}) == {"config", "partition", "metrics"} and set(blocks[1].commits or {}) == {
        "metrics"}
    assert kept_tip(out) == manifest.tip
    r = verify(out)
    assert r.exit_code == 0 and "ok, 2 blocks" in r.output and manifest.tip in r.output
    as_json = json.loads(verify(out, "--json").output)
    assert as_json == {"status": 0, "ok": True, "blocks": 2, "blobs": 8, "error": None, "tip": manifest.tip,
                       "format": 2, "unproven": []}


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
    r = verify(run_dir, "--tip", kept_tip(run_dir).upper())
    assert r.exit_code == 0 and "matches --tip" in r.output, r.output
    assert_invalid(run_dir, "tip", blocks[0].hash, extra=("--tip", blocks[0].hash))
    for bad in ("abc", "g" * 64):
        r = verify(run_dir, "--tip", bad)
        lines = [x for x in r.output.splitlines() if x]
        assert r.exit_code == 2 and len(lines) == 1 and "--tip" in lines[0], r.output


# --- a kept tip anchors every file the run reports -------------------------------------------------


def assert_tip_refuses(run_dir: Path, *needles: str) -> None:
    """``chain verify --tip`` with the tip kept before the edit fails, in one line naming what does not match."""
    assert_invalid(run_dir, *needles, extra=("--tip", kept_tip(run_dir)))


def edit_json(path: Path, **changes: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}, indent=2) + "\n")


def edit_cell(path: Path, round_: int, column: str, value: str) -> None:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    rows[round_][rows[0].index(column)] = value
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


@pytest.mark.parametrize("field, value", [("M", 0), ("sigma2", 0.5), ("seed", 1), ("dataset", "fashion-mnist")])
def test_config_edit_is_caught(run_dir: Path, field: str, value: object) -> None:
    assert json.loads((run_dir / "config.json").read_text())[field] != value
    edit_json(run_dir / "config.json", **{field: value})
    assert_tip_refuses(run_dir, "config.json", "block 1")


@pytest.mark.parametrize("round_, column", [(1, "global_train_loss"), (2, "global_train_loss"), (1, "test_accuracy"),
                                            (2, "test_accuracy"), (2, "tau"), (1, "flagged")])
def test_metrics_edit_is_caught(run_dir: Path, round_: int, column: str) -> None:
    edit_cell(run_dir / "metrics.csv", round_, column, "0.999")
    assert_tip_refuses(run_dir, f"metrics.csv round {round_}", f"block {round_}")


def test_wall_clock_edit_is_caught(run_dir: Path) -> None:
    edit_cell(run_dir / "metrics.csv", 2, "wall_seconds", "0.001")
    assert_tip_refuses(run_dir, "metrics.csv column wall_seconds", MANIFEST_NAME)


@pytest.mark.parametrize("field, value", [("final_test_accuracy", 0.999), ("initial_train_loss", 0.1),
                                          ("lazy_clients", [])])
def test_summary_edit_is_caught(run_dir: Path, field: str, value: object) -> None:
    edit_json(run_dir / "summary.json", **{field: value})
    assert_tip_refuses(run_dir, "summary.json", MANIFEST_NAME)


def test_partition_replaced_is_caught(run_dir: Path) -> None:
    rows = list(csv.reader(io.StringIO((run_dir / "partition.csv").read_text())))
    rows[1:] = [rows[2], rows[1], *rows[3:]]  # the same counts, given to other clients
    rows[1][0], rows[2][0] = rows[2][0], rows[1][0]
    replaced = "".join(",".join(r) + "\n" for r in rows)
    assert replaced != (run_dir / "partition.csv").read_text()
    (run_dir / "partition.csv").write_text(replaced)
    assert_tip_refuses(run_dir, "partition.csv", "block 1")
    (run_dir / "partition.csv").unlink()
    assert_tip_refuses(run_dir, "partition.csv", "missing")


def test_a_duplicated_column_is_refused(run_dir: Path) -> None:
    path = run_dir / "metrics.csv"
    rows = list(csv.reader(io.StringIO(path.read_text())))
    at = rows[0].index("block_hash")
    # The block hashes moved to a second column, the first one forged: a reader keeping the last sees no change.
    rows = [rows[0] + ["block_hash"]] + [r[:at] + ["0" * 64] + r[at + 1:] + [r[at]] for r in rows[1:]]
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    assert_tip_refuses(run_dir, "metrics.csv", "'block_hash' appears more than once")


def as_format_1(run_dir: Path) -> Block:
    """Rewrite ``run_dir`` as this toolkit wrote runs before format 2: no commitments, a manifest of format 1."""
    blocks = [Block(b.header, b.digests, b.hash) for b in Ledger(run_dir / LEDGER_NAME).blocks()]
    (run_dir / LEDGER_NAME).write_text("".join(block_to_json(b) + "\n" for b in blocks))
    (run_dir / MANIFEST_NAME).write_text(json.dumps({"format": 1, "blocks": len(blocks), "difficulty_bits": BITS,
                                                     "tip_hash": blocks[-1].hash}))
    return blocks[-1]


def test_an_old_format_folder_says_what_it_cannot_prove(run_dir: Path) -> None:
    last = as_format_1(run_dir)
    for extra in ((), ("--tip", last.hash)):
        r = verify(run_dir, *extra)
        lines = [x for x in r.output.splitlines() if x]
        assert r.exit_code == 1 and len(lines) == 1 and "NOT PROVEN" in lines[0] and "INVALID" not in lines[0]
        for name in ("format 1", "config.json", "metrics.csv", "summary.json", "partition.csv", "cannot be proven"):
            assert name in lines[0], lines[0]
        assert ("end at the tip you kept" in lines[0]) == bool(extra)
    as_json = json.loads(verify(run_dir, "--json").output)
    assert as_json["status"] == 1 and as_json["ok"] is False and as_json["format"] == 1
    assert len(as_json["unproven"]) == 4
    # What format 1 does anchor is still checked: its ledger against the kept tip.
    assert_invalid(run_dir, "tip", extra=("--tip", "0" * 64))
    # A format 2 folder rewritten as format 1 (to shed its commitments) does not end at the tip kept from it.
    assert_invalid(run_dir, "not the tip", kept_tip(run_dir), extra=("--tip", kept_tip(run_dir)))
    edit_cell(run_dir / "metrics.csv", 1, "nonce", "7")
    assert_invalid(run_dir, "block 1", "nonce")
