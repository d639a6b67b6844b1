"""Lazy-client detectors on synthetic stacked weights, in tiny runs, and through the CLI."""

import csv
import math

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from helpers import cli_args, small_run

import bladefl_validate.simulation as simulate_module
from bladefl_platform.errors import InputError
from bladefl_validate.cli import cli
from bladefl_validate.config import RunConfig
from bladefl_validate.learning.detect import (
    NearestNeighbourDetector,
    NoiseDetector,
    make_detector,
    pairwise_distances,
    precision_recall,
)
from bladefl_validate.studies.detection import DetectionReport, _cells, write_detection_report
from bladefl_validate.studies.detection import detection_task
from bladefl_validate.chain.ledger import Ledger
from bladefl_validate.chain.pool import CachePool, bytes_to_weights
from bladefl_validate.simulation import run_to_folder

N, D, LAZY, SOURCES = 12, 16384, [2, 5, 9], [0, 0, 7]


def synthetic(sigma2: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Honest updates with block-wise varying scales (structure) around a shared start; lazy rows are noisy copies."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(D, generator=g)
    scale = torch.logspace(-4, -2, D // 64).repeat_interleave(64)  # per-block scale, like layers and pixels
    W = start + scale * torch.randn(N, D, generator=g)
    W[LAZY] = W[SOURCES] + math.sqrt(sigma2) * torch.randn(len(LAZY), D, generator=g)
    return W, start


def truth() -> torch.Tensor:
    t = torch.zeros(N, dtype=torch.bool)
    t[LAZY] = True
    return t


# The copy is told from its source by its extra distance d·sigma2 from the start, which must beat the
# cross term 2·sqrt(sigma2)·|update|: here from about sigma2 = 1e-7 on.
@pytest.mark.parametrize("sigma2", [1e-7, 1e-6])
def test_both_detectors_flag_exactly_the_copies_with_small_noise(sigma2):
    W, start = synthetic(sigma2)
    for detector in (NearestNeighbourDetector(), NoiseDetector()):
        det = detector(W, start)
        assert det.flagged_clients() == LAZY, detector.name
        assert det.scores.shape == (N,) and det.neighbours.shape == (N,)
        assert det.neighbours[LAZY].tolist() == SOURCES


@pytest.mark.parametrize("sigma2", [1e-4, 1e-2, 1.0])
def test_noise_detector_still_flags_loud_copies_where_nn_stops(sigma2):
    W, start = synthetic(sigma2)
    assert NoiseDetector()(W, start).flagged_clients() == LAZY
    assert NearestNeighbourDetector()(W, start).flagged_clients() == []  # copies are far from everyone now


def test_honest_clients_are_not_flagged():
    g = torch.Generator().manual_seed(1)
    start = torch.randn(D, generator=g)
    scale = torch.logspace(-4, -2, D // 64).repeat_interleave(64)
    W = start + scale * torch.randn(N, D, generator=g)
    for name in ("nn", "noise"):
        det = make_detector(name)(W, start)
        assert not det.flagged.any(), name
    assert (NoiseDetector()(W, start).scores > 10).all()  # structured differences: far from 1


def test_noise_score_is_about_one_for_pure_noise_and_reference_defaults_to_mean():
    W, _ = synthetic(1e-4)
    det = NoiseDetector()(W)  # no reference: the mean model
    assert det.flagged_clients() == LAZY
    assert torch.allclose(det.scores[LAZY], torch.ones(len(LAZY), dtype=torch.float64), atol=0.3)


def test_exact_duplicates_are_both_flagged():
    W, start = synthetic(0.0)
    flagged = set(NoiseDetector()(W, start).flagged_clients())
    assert set(LAZY) | set(SOURCES) == flagged


def test_pairwise_distances_match_cdist():
    W, _ = synthetic(1e-3)
    D_ = pairwise_distances(W.double())
    ref = torch.cdist(W.double(), W.double())
    off = ~torch.eye(N, dtype=torch.bool)
    assert torch.allclose(D_[off], ref[off], rtol=1e-6, atol=1e-6)
    assert torch.isinf(D_.diagonal()).all()


def test_precision_recall():
    flagged = torch.tensor([True, True, False, False])
    lazy = torch.tensor([True, False, True, False])
    assert precision_recall(flagged, lazy) == (0.5, 0.5)
    p, r = precision_recall(torch.zeros(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool))
    assert math.isnan(p) and math.isnan(r)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: make_detector("cosine"), "detector must be one of nn, noise"),
        (lambda: make_detector("nn", threshold=0.0), "threshold must be positive"),
        (lambda: NoiseDetector(block_size=1), "block_size"),
        (lambda: NearestNeighbourDetector()(torch.zeros(2, 10)), "N >= 3"),
        (lambda: NoiseDetector()(torch.zeros(4, 100)), "d >= 2·block_size"),
        (lambda: NoiseDetector()(torch.zeros(4, 256), torch.zeros(3)), "reference must have shape"),
    ],
)
def test_bad_input_raises_input_error(call, fragment):
    with pytest.raises(InputError, match=fragment):
        call()


# --- tiny runs ---------------------------------------------------------------------------------

#: The tiny deployment with eight clients, two of them lazy, and an easier proof of work.
CHANGES = dict(N=8, M=2, difficulty_bits=4)
SMALL = small_run(**CHANGES)


# data_root and private_cache come from conftest.py.
pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.mark.parametrize("detect, changes", [("noise", dict(sigma2=1e-6)), ("noise", dict(sigma2=0.1)),
                                            ("nn", dict(sigma2=1e-7, partition="iid"))])
def test_tiny_run_detects_the_lazy_clients(tmp_path, data_root, detect, changes):
    out = tmp_path / "run"
    result = run_to_folder(RunConfig(**{**SMALL, **changes}, detect=detect), out, data_root)
    s = result.summary()
    assert s["detection_precision"] == 1.0 and s["detection_recall"] == 1.0
    with open(out / "detection.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == SMALL["N"] * SMALL["K"]
    assert {int(r["client"]) for r in rows if r["flagged"] == "1"} == set(result.lazy)
    assert all(r["truly_lazy"] == str(int(int(r["client"]) in result.lazy)) for r in rows)
    with open(out / "metrics.csv", newline="") as fh:
        flagged = [r["flagged"] for r in csv.DictReader(fh)]
    assert flagged == [";".join(map(str, result.lazy))] * SMALL["K"]


def test_exclusion_aggregates_only_the_unflagged_models(tmp_path, data_root, monkeypatch):
    seen = []
    real = simulate_module.fedavg
    monkeypatch.setattr(simulate_module, "fedavg", lambda W: seen.append(W.clone()) or real(W))
    config = RunConfig(**SMALL, sigma2=0.1, detect="noise", exclude_flagged=True)
    result = run_to_folder(config, tmp_path / "ex", data_root)
    honest = [i for i in range(SMALL["N"]) if i not in result.lazy]
    pool = CachePool(tmp_path / "ex" / "blobs")
    for block, W in zip(Ledger(tmp_path / "ex" / "ledger.jsonl").blocks(), seen):
        assert len(block.digests) == SMALL["N"]  # the block still records every client's model
        expected = np.stack([bytes_to_weights(pool.get(block.digests[i])) for i in honest])
        assert torch.equal(W, torch.from_numpy(expected))
    kept = run_to_folder(config.replace(exclude_flagged=False), tmp_path / "in", data_root)
    assert result.final.global_train_loss < kept.final.global_train_loss  # loud copies hurt; leaving them out helps
    assert [r.flagged for r in result.rounds] == [r.flagged for r in kept.rounds]


def test_detection_task_and_report_writer(tmp_path, data_root):
    config = RunConfig(**SMALL, sigma2=1e-6, detect="noise")
    r = detection_task(config.as_dict(), {"data_dir": str(data_root)})
    assert (r["flagged"], r["true_positives"], r["lazy_screenings"]) == (4, 4, 4)
    rows = []
    for M in (0, 2):
        for s2 in ((0.0,) if M == 0 else (1e-6, 0.1)):
            for detector, tp in (("nn", 4 if s2 < 1e-3 else 0), ("noise", 4)):
                for exclude in (False, True):
                    rows.append({"dataset": "mnist", "M": M, "sigma2": s2, "seed": 0, "detector": detector,
                                 "exclude_flagged": exclude, "flagged": tp if M else 0,
                                 "true_positives": tp if M else 0, "lazy_screenings": 2 * M,
                                 "honest_screenings": 2 * (8 - M), "final_global_train_loss": 1.0 - 0.1 * exclude,
                                 "final_test_accuracy": 0.5 + 0.1 * exclude, "seconds": 1.0})
    runs = pd.DataFrame(rows)
    report = DetectionReport(config, [0], runs, _cells(runs), 60.0)
    bd = report.breakdown().set_index("detector")
    assert bd.loc["nn", "breaks_down_at"] == 0.1 and math.isnan(bd.loc["noise", "breaks_down_at"])
    write_detection_report(report, tmp_path, "bladefl-validate detection-report --out X")
    for name in ("README.md", "runs.csv", "cells.csv", "breakdown.csv", "detection.png", "accuracy.png"):
        assert (tmp_path / name).is_file(), name
    text = (tmp_path / "README.md").read_text()
    assert "bladefl-validate detection-report --out X" in text and "| mnist | nn | 2 | 0.1 |" in text


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_run_with_detection(tmp_path, data_root):
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["run", *cli_args(data_root, "--sigma2", "0.01", "--detect", "noise",
                                                  "--exclude-flagged", "--out", str(out), **CHANGES)])
    assert r.exit_code == 0, r.output
    assert (out / "detection.csv").is_file()
    assert "detection `noise`: precision 1.000, recall 1.000" in (out / "summary.md").read_text()
    assert CliRunner().invoke(cli, ["chain", "verify", str(out)]).exit_code == 0


@pytest.mark.parametrize(
    "command, extra, fragment",
    [
        ("run", ["--exclude-flagged"], "need a detector"),
        ("run", ["--detect-threshold", "0.5"], "need a detector"),
        ("run", ["--detect", "nn", "--detect-threshold", "-1"], "detect_threshold must be positive"),
        ("run", ["--detect", "cosine"], "--detect"),
        ("run", ["--N", "2", "--M", "1", "--detect", "nn"], "detection needs N >= 3"),
        ("detection-report", ["--M", "0"], "every M must be >= 1"),
        ("detection-report", ["--sigma2", "abc"], "--sigma2"),
        ("detection-report", ["--datasets", "cifar"], "--datasets"),
    ],
)
def test_cli_invalid_detection_input_exits_2_with_one_line(tmp_path, data_root, command, extra, fragment):
    out = tmp_path / "out"
    args = cli_args(data_root, *extra, "--out", str(out), **CHANGES) if command == "run" else \
        ["--data-dir", str(data_root), "--quiet", *extra, "--out", str(out)]
    r = CliRunner().invoke(cli, [command, *args])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("bladefl-validate: error:"), r.output
    assert fragment in lines[0]
    assert not out.exists()
