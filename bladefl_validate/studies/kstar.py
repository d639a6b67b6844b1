"""The K* prediction study's two commands as studies: ``kstar-report`` and ``calibrate``.

The work is :mod:`.kstar_design` (what is measured), :mod:`.kstar_prediction` (calibration and scores)
and :mod:`.kstar_report` (the report); these classes only say what each command runs and writes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bladefl_platform.atomic import atomic_write_text
from bladefl_platform.errors import InputError
from bladefl_platform.execution import TaskOutcome
from bladefl_platform.report import fmt
from bladefl_platform.study import Layout, Runner, StudyRun, Tasks
from bladefl_theory.profiles import load_profile

from ..config import RunConfig
from ..tasks import RUN
from . import kstar_confirm, kstar_prediction, kstar_report
from .base import RunStudy
from .kstar_design import DESIGN, Design, Setting

__all__ = ["KStarReport", "KStarReportStudy", "Calibration", "CalibrateStudy"]

log = logging.getLogger("bladefl_validate")


@dataclass
class KStarReport:
    """The analyses of every data set, the measured runs, and what the report chose (once written)."""

    analyses: list
    frame: pd.DataFrame
    progress: dict[Setting, str] | None  # each setting's state, when the report covers a campaign cut short
    choice: Any = None  # the form chosen on the arms (kstar_prediction.FormChoice), set by the report

    @property
    def campaign(self) -> dict[str, Any]:
        return {"runs": len(self.frame), "cpu_hours": float(self.frame.cpu_seconds.sum()) / 3600,
                "progress": self.progress}

    def scores(self) -> list[dict[str, Any]]:
        return [{**row, "part": part or "all"} for part in (None, "off-grid") for a in self.analyses
                for row in a.scores(part).to_dict(orient="records")]


class KStarReportStudy(RunStudy[KStarReport]):
    """Measure the design to completion (or, ``measured_only``, report on what the store holds), calibrate on its
    pilots and score every predictor at every held-out setting."""

    command = "kstar-report"

    def __init__(self, design: Design = DESIGN, measured_only: bool = False):
        self.design, self.measured_only = design, measured_only

    def outputs(self, out: Path) -> Sequence[str]:
        return kstar_report.report_files(self.design)

    def check(self, out: Path, store: Path | None) -> None:
        if self.measured_only and (store is None or not store.is_file()):
            raise InputError(f"--measured-only reports on a store, and {store} does not exist")

    def run_configs(self) -> list[RunConfig]:
        return [] if self.measured_only else [self.design.base.replace(dataset=d) for d in self.design.datasets]

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> KStarReport:
        # The design is adaptive (what runs next depends on what is measured), so measuring and analysing are
        # one step of kstar_prediction's, through the same store and execution.
        if self.measured_only:
            analyses, frame, progress = kstar_prediction.analyse_measured(run.store, self.design)
            return KStarReport(analyses, frame, progress)
        analyses, frame = kstar_prediction.run_study(run.store, self.design, run.context.get("data_dir"),
                                                     run.execution)
        return KStarReport(analyses, frame, None)

    def report(self, result: KStarReport, target: Path, command: str) -> None:
        result.choice = kstar_report.write_report(result.analyses, result.frame, self.design, target, command,
                                                  result.campaign)

    def summary(self, run: StudyRun[KStarReport]) -> dict[str, Any]:
        r = run.result
        states = list(r.progress.values()) if r.progress else []
        campaign = {**r.campaign, "progress": {s: states.count(s) for s in dict.fromkeys(states)} if states else None}
        return {"out": run.out, "measured_only": self.measured_only, "campaign": campaign, "form": r.choice.form,
                "scores": r.scores()}

    def text(self, run: StudyRun[KStarReport]) -> str:
        lines = [f"chosen form: {run.result.choice.form} (on the arms; the off-grid points are the test)"]
        lines += [kstar_report.score_line(row) for row in run.result.scores()]
        return "\n".join(lines)


@dataclass
class Calibration:
    """A calibration of a form on pilot sweeps, and the profile written from it."""

    calibration: Any  # bladefl_theory.calibration.Calibration
    settings: list[Setting]
    profile: dict[str, Any] | None = None


class CalibrateStudy(RunStudy[Calibration]):
    """Sweep every K at 1 to 4 pilot settings of ``dataset`` (default: the K* study's four pilots), fit ``form`` to
    them, and write the calibrated profile ``out`` (named ``name``, by default the file's)."""

    command = "calibrate"
    layout = Layout.FILE
    unit = "runs"

    def __init__(self, dataset: str, pilots: Sequence[str], form: str | None, seeds: Sequence[int],
                 name: str | None = None, design: Design = DESIGN, allow_long: bool = False):
        self.base = design.base.replace(dataset=dataset, allow_long=allow_long)
        # By default the form of the shipped calibrated profile (the K* confirmation's choice).
        form = form or load_profile(kstar_confirm.profile_name(dataset, self.base.model)).form
        self.design, self.dataset, self.form, self.seeds, self.name = design, dataset, form, list(seeds), name
        points = ([kstar_prediction.parse_pilot(p, dict(design.centre)) for p in pilots]
                  or [s.system() for s in kstar_prediction.pilot_settings(design, dataset)])
        kstar_prediction.check_pilots(design, dataset, self.base, points)
        for p in points:
            self.base.replace(t_sum=float(p["t_sum"]), beta=float(p["beta"]), M=int(p["M"]),
                              sigma2=float(p["sigma2"]))  # each pilot is a valid deployment
        self.points = points
        self.settings, self.configs = kstar_prediction.pilot_configs(self.base, dataset, points, self.seeds)
        # The bound's form fits ratios to epsilon only: epsilon stays the estimated profile's.
        self.fixed = None if form not in ("per-round", "printed") else {
            "epsilon": load_profile(f"{dataset}-{self.base.model}").constants["epsilon"]}

    def outputs(self, out: Path) -> Sequence[str]:
        return (out.name,)

    def default_store(self, out: Path) -> Path | None:
        return None

    def check(self, out: Path, store: Path | None) -> None:
        from .estimate import check_profile_path

        check_profile_path(out)

    def run_configs(self) -> list[RunConfig]:
        return self.configs

    def tasks(self) -> list[Tasks]:
        return [Tasks(RUN, [c.as_dict() for c in self.configs], "pilots")]

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> Calibration:
        cal = kstar_prediction.fit_pilots(self.configs, outcomes[0].results, self.form, self.fixed)
        if not cal.success:
            raise InputError(f"calibration failed: {cal.message}")
        return Calibration(cal, self.settings)

    def report(self, result: Calibration, target: Path, command: str) -> None:
        result.profile = kstar_prediction.profile_document(
            result.calibration, self.name or target.stem, self.dataset, self.design.base,
            {s.label: len(self.seeds) for s in result.settings}, command)
        atomic_write_text(target, json.dumps(result.profile, indent=2) + "\n")
        log.info("wrote %s", target)

    def spread(self, cal: Any) -> dict[str, float | None]:
        """Each constant's bootstrap spread as a relative error, exp(std of its log) - 1 (None where there is none)."""
        return {k: math.expm1(s) if math.isfinite(s) else None for k, s in cal.spread.items()}

    def summary(self, run: StudyRun[Calibration]) -> dict[str, Any]:
        cal = run.result.calibration
        return {"profile": run.out, "name": (run.result.profile or {}).get("name", self.name or run.out.stem),
                "form": self.form, "dataset": self.dataset, "pilots": self.points, "seeds": self.seeds,
                "constants": cal.constants, "relative_spread": self.spread(cal), "rms_log_error": cal.rms_log_error,
                "tolerance": cal.tolerance}

    def text(self, run: StudyRun[Calibration]) -> str:
        cal = run.result.calibration
        spread = self.spread(cal)
        lines = [f"{'constant':>8} {'value':>11} {'spread':>8}"]
        for k, v in cal.constants.items():
            lines.append(f"{k:>8} {fmt(v):>11} {fmt(spread.get(k), spec='.1%', missing='—'):>8}")
        lines.append(f"rms log error on the pilots {cal.rms_log_error:.4f}; K* band tolerance {cal.tolerance:.2%}")
        return "\n".join(lines)
