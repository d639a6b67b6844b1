"""bladefl-validate's report commands that succeed: partition, gap, reproduce and detection-report on tiny data.

Each runs the command in-process on the IDX data of conftest.data_root and checks what a user gets: status 0,
the files the command owns (and its marker), and numbers that agree with the runs it made (read back from its
store or its CSV files). Tasks go to an in-process Dask cluster (``--scheduler inproc://…``), so no worker
process has to start and import torch; where they run does not change what they compute.
"""

from __future__ import annotations

import functools
import io
import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from validate_cli_helpers import SMALL, invoke

import bladefl_validate.cli as cli_module
from bladefl_platform.atomic import MARKER, read_marker
from bladefl_platform.store import ResultStore
from bladefl_validate.config import RunConfig
from bladefl_validate.studies.detection import DETECTION_FILES, SETTING
from bladefl_validate.studies.gap import GAP_FILES
from bladefl_validate.studies.reproduce import reproduce_files

pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a Dask cluster in this process: one worker thread."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def run_json(args: list[str]) -> dict:
    """Run ``bladefl-validate ARGS --json``; status 0 and the JSON object it printed."""
    result = invoke([*args, "--json"])
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == 0
    return answer


def as_read_back(records: list[dict]) -> pd.DataFrame:
    """JSON rows as a data frame typed as pandas reads the same table back from CSV."""
    return pd.read_csv(io.StringIO(pd.DataFrame(records).to_csv(index=False)))


def regenerate_with(readme: Path, command: str) -> dict[str, str]:
    """The options (each with its value) of the one line of ``readme`` that runs ``bladefl-validate COMMAND``."""
    lines = [line.strip() for line in readme.read_text().splitlines()]
    (line,) = [line for line in lines if line.startswith(f"bladefl-validate {command} ")]
    words = shlex.split(line)[2:]
    assert all(w.startswith("--") for w in words[::2]) and len(words) % 2 == 0, line
    return dict(zip(words[::2], words[1::2]))


def owned(out: Path, owner: str, files: list[str], *others: str) -> None:
    """``out`` holds exactly ``files`` (listed in a marker naming ``owner``), the marker and ``others``."""
    assert read_marker(out) == {"owner": owner, "files": sorted(files)}
    assert sorted(p.name for p in out.iterdir()) == sorted([*files, MARKER, *others])
    for name in files:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


# ---------------------------------------------------------------------------------------------
# partition


@pytest.mark.parametrize("scheme", ["classes", "iid"])
def test_partition_writes_the_label_counts_of_the_partition_it_draws(tmp_path, data_root, scheme):
    from bladefl_validate.data import load_dataset
    from bladefl_validate.partition import label_counts, make_partitioner

    out = tmp_path / "part"
    r = invoke(["partition", "--N", "5", "--samples-per-client", "64", "--partition", scheme, "--seed", "3",
                "--data-dir", str(data_root), "--out", str(out)])
    assert r.exit_code == 0, r.stderr
    owned(out, cli_module.PARTITION_OWNER, ["partition.csv", "partition.png"])
    counts = pd.read_csv(out / "partition.csv", index_col="client")
    assert list(counts.index) == [0, 1, 2, 3, 4] and list(counts.columns) == [str(c) for c in range(10)]
    assert (counts.sum(axis=1) == 64).all()
    if scheme == "classes":  # k = 4 classes per client, 64 / 4 = 16 samples of each
        assert all(sorted(row[row > 0].tolist()) == [16] * 4 for _, row in counts.iterrows())
    # The same partition as the library draws for this seed, and no more of a class than the data hold.
    labels = load_dataset("mnist", data_root).labels.numpy()
    options = {"k": 4} if scheme == "classes" else {}
    expected = label_counts(labels, make_partitioner(scheme, 5, 64, 3, **options).partition(labels))
    assert np.array_equal(counts.to_numpy(), expected.to_numpy())
    assert (counts.sum(axis=0).to_numpy() <= np.bincount(labels, minlength=10)).all()
    # The table on stdout is the CSV's.
    printed = [line.split() for line in r.stdout.splitlines()[2:]]
    assert [[int(x) for x in row] for row in printed] == [[i, *row] for i, row in enumerate(counts.to_numpy())]


# ---------------------------------------------------------------------------------------------
# gap


#: What the store keeps of one simulation run (as in the committed reports' stores).
RUN_RESULT_KEYS = {"rounds", "tau", "lazy_clients", "initial_train_loss", "initial_test_accuracy",
                   "final_global_train_loss", "final_test_loss", "final_test_accuracy", "virtual_time", "wall_seconds",
                   "hashes", "cpu_seconds"}


def test_gap_reports_the_measured_gap_of_the_runs_in_its_store(tmp_path, data_root, scheduler):
    out = tmp_path / "gap"
    answer = run_json(["gap", *SMALL, "--seeds", "1", "--scheduler", scheduler, "--data-dir", str(data_root),
                       "--out", str(out)])
    owned(out, "bladefl-validate gap", list(GAP_FILES), "results.sqlite")
    with ResultStore(out / "results.sqlite") as store:
        store_rows = [r["result"] for r in store.rows("bladefl-run")]
        runs = {r["config"]["K"]: r["result"]["final_global_train_loss"] for r in store.rows("bladefl-run")}
        (optimum,) = [r["result"] for r in store.rows("bladefl-optimum")]
    assert sorted(runs) == [1, 2]  # K_max = 2, one seed
    # A stored run is its summary and CPU time: nothing per round, which no report reads.
    assert {key for r in store_rows for key in r} == RUN_RESULT_KEYS
    assert answer["f_star"] == pytest.approx(optimum["f_star"], rel=1e-12)
    table = pd.read_csv(out / "gap.csv", index_col="K")
    assert list(table.index) == [1, 2] and list(table.tau) == [14, 2]
    for k, loss in runs.items():
        assert table.loc[k, "measured_gap_mean"] == pytest.approx(loss - optimum["f_star"], rel=1e-12)
    assert answer["k_star_measured"] == min(runs, key=runs.get)
    assert [row["measured_gap_mean"] for row in answer["table"]] == pytest.approx(list(table.measured_gap_mean))
    command = regenerate_with(out / "README.md", "gap")
    assert command["--seeds"] == "1" and command["--out"] == str(out) and command["--N"] == "4"
    assert "--scheduler" not in command  # where the runs happen does not change them


# ---------------------------------------------------------------------------------------------
# reproduce

#: The reproduction's deployment shrunk to the test data: N=8 (M up to 6), K_max = 2, 32 samples per client.
TINY_PAPER = dict(N=8, K=1, t_sum=24.0, alpha=1.0, beta=10.0, samples_per_client=32, model="logreg", batch_size=32,
                  eta=0.05)


#: The settings (M, sigma2) of the paper's Figs. 2 to 4 for one data set.
FIGURES_2_TO_4 = [(0, 0.01), (2, 0.01), (4, 0.01), (6, 0.01), (4, 0.1), (4, 0.2), (4, 0.3)]


def test_reproduce_writes_every_figure_and_table(tmp_path, data_root, scheduler, monkeypatch):
    # reproduce runs the paper's deployment (N=20, |D_i|=512); only that base is shrunk here, the rest is the command.
    monkeypatch.setattr(cli_module, "RunConfig", functools.partial(RunConfig, **TINY_PAPER))
    out = tmp_path / "repro"
    # Resuming from the store is tested on the library (test_reproduce.py) and through sweep-k (test_sweeps.py).
    answer = run_json(["reproduce", "--datasets", "mnist", "--seeds", "1", "--difficulty-bits", "2", "--quiet",
                       "--scheduler", scheduler, "--data-dir", str(data_root), "--out", str(out)])
    files = list(reproduce_files(["mnist"]))
    owned(out, "bladefl-validate reproduce", files, "results.sqlite")
    # 7 settings (Figs. 2-4) x K = 1, 2, and F(w*) of the one seed's partition.
    assert (answer["ran"], answer["skipped"]) == (7 * 2 + 1, 0)
    with ResultStore(out / "results.sqlite") as store:
        assert store.count("bladefl-run") == 14 and store.count("bladefl-optimum") == 1
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(zip(runs.M, runs.sigma2, runs.K)) == sorted((M, s2, K) for M, s2 in FIGURES_2_TO_4 for K in (1, 2))
    kstar = pd.read_csv(out / "kstar.csv")
    assert len(kstar) == 7
    pd.testing.assert_frame_equal(kstar, as_read_back(answer["kstar"]))
    for row in kstar.itertuples():
        mine = runs[(runs.M == row.M) & (runs.sigma2 == row.sigma2)]
        assert row.k_star_measured == mine.loc[mine.final_global_train_loss.idxmin(), "K"], row
    assert regenerate_with(out / "README.md", "reproduce") == {"--seeds": "1", "--datasets": "mnist",
                                                               "--difficulty-bits": "2", "--data-dir": str(data_root),
                                                               "--out": str(out)}


# ---------------------------------------------------------------------------------------------
# detection-report


def test_detection_report_tabulates_the_runs_it_made(tmp_path, data_root, scheduler, monkeypatch):
    # The report's deployment (N=20, |D_i|=512) shrunk to the test data: the command builds it from SETTING.
    for name, value in dict(N=6, samples_per_client=64, hidden=16, batch_size=32, eta=0.05,
                            difficulty_bits=2).items():
        monkeypatch.setitem(SETTING, name, value)
    out = tmp_path / "det"
    answer = run_json(["detection-report", "--datasets", "mnist", "--M", "1", "--sigma2", "0.1", "--seeds", "1",
                       "--quiet", "--scheduler", scheduler, "--data-dir", str(data_root), "--out", str(out)])
    owned(out, "bladefl-validate detection-report", list(DETECTION_FILES))
    runs = pd.read_csv(out / "runs.csv")
    # M = 0 and M = 1, each screened by both detectors, once reporting only and once excluding: 8 runs.
    assert answer["runs"] == len(runs) == 8
    assert sorted(zip(runs.M, runs.detector, runs.exclude_flagged)) == sorted(
        (M, d, e) for M in (0, 1) for d in ("nn", "noise") for e in (False, True))
    # Every screening is counted: K = 2 rounds of M lazy and N - M honest clients.
    assert (runs.lazy_screenings == 2 * runs.M).all() and (runs.honest_screenings == 2 * (6 - runs.M)).all()
    # Screening alone changes nothing in training: both detectors' report-only runs end in the same model.
    passive = runs[~runs.exclude_flagged]
    for M in (0, 1):
        assert passive[passive.M == M].final_global_train_loss.nunique() == 1
    # Precision and recall pooled from the report-only runs, as cells.csv and the JSON say.
    cells = pd.read_csv(out / "cells.csv")
    pd.testing.assert_frame_equal(cells, as_read_back(answer["cells"]))
    for cell in cells[cells.M == 1].itertuples():
        mine = passive[(passive.M == 1) & (passive.detector == cell.detector)]
        tp, flagged = mine.true_positives.sum(), mine.flagged.sum()
        assert cell.recall == pytest.approx(tp / mine.lazy_screenings.sum())
        if flagged:
            assert cell.precision == pytest.approx(tp / flagged)
        else:  # nothing flagged: precision is undefined
            assert np.isnan(cell.precision)
    assert len(pd.read_csv(out / "breakdown.csv")) == 2  # one row per detector at M = 1
    assert regenerate_with(out / "README.md", "detection-report") == {
        "--datasets": "mnist", "--M": "1", "--sigma2": "0.1", "--seeds": "1", "--out": str(out)}
    assert "N=6 clients, |D_i|=64" in (out / "README.md").read_text()
