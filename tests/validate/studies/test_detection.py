"""The detection report's writer: the committed report is what it writes from the report's own runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bladefl_validate.config import RunConfig
from bladefl_validate.studies.detection import SETTING, DetectionReport, _cells, write_detection_report

COMMITTED = Path(__file__).resolve().parents[3] / "reports" / "lazy-detection"


def test_the_committed_report_is_rewritten_byte_identical_from_its_runs(tmp_path):
    runs = pd.read_csv(COMMITTED / "runs.csv")
    report = DetectionReport(RunConfig(**SETTING), [0], runs, _cells(runs), float(runs["seconds"].sum()))
    command = (COMMITTED / "README.md").read_text(encoding="utf-8").splitlines()[4].strip()
    assert command.startswith("bladefl-validate detection-report ")
    write_detection_report(report, tmp_path, command)
    for name in ("README.md", "runs.csv", "cells.csv", "breakdown.csv"):  # the PNGs as each matplotlib draws them
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), name
