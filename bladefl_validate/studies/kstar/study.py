"""The K* study's three commands as studies: ``kstar-report``, ``kstar-confirm`` and ``calibrate``.

The work is :mod:`.design` (what is measured), :mod:`.scoring` (the rule), :mod:`.analysis` (calibration,
prediction and the choice) and :mod:`.report` (the report); these classes only say what each command runs and
writes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bladefl_platform.atomic import atomic_write_text
from bladefl_platform.errors import InputError
from bladefl_platform.execution import Execution, TaskOutcome
from bladefl_platform.report import fmt
from bladefl_platform.store import ResultStore
from bladefl_platform.study import Layout, Runner, StudyRun, Tasks
from bladefl_theory.calibration import Calibration
from bladefl_theory.profiles import load_profile

from ...config import RunConfig
from ...tasks import RUN, task_context
from ..base import RunStudy, check_runs
from . import analysis, budget
from .analysis import CHOSEN_ON, FormChoice, KStarResult
from .design import CONFIRMATION, DESIGN, Design, Setting
from .report import (
    REPORT,
    confirm_files,
    profile_document,
    profile_name,
    report_files,
    score_line,
    write_confirmation,
    write_report,
)
from .scoring import TEST, VALIDATION

__all__ = ["KStarStudy", "KStarReportStudy", "PilotCalibration", "CalibrateStudy", "ConfirmStudy", "calibrate",
           "save_profile"]

log = logging.getLogger("bladefl_validate")


def _store(run: Runner) -> ResultStore:
    """The runner's result store, which the K* studies read their runs from."""
    if run.store is None:
        raise InputError("the K* studies read their runs from a result store: give one")
    return run.store


class KStarStudy(RunStudy[KStarResult]):
    """A K* study: measure ``chosen_on`` and ``tested_on`` to completion through one store (or, ``measured_only``,
    read what it holds), choose the form on the held-out settings of ``parts`` of ``chosen_on``, and score every
    predictor on ``tested_on``. A subclass names its command and writes its report."""

    def __init__(self, chosen_on: Design, tested_on: Design, parts: Collection[str], on: str,
                 measured_only: bool = False, bootstrap: int = 100):
        self.chosen_on, self.tested_on, self.parts, self.on = chosen_on, tested_on, tuple(parts), on
        self.measured_only = measured_only
        self.bootstrap = bootstrap  # resamples of each calibration's spread

    def check(self, out: Path, store: Path | None) -> None:
        if self.measured_only and (store is None or not store.is_file()):
            raise InputError(f"--measured-only reports on a store, and {store} does not exist")

    def run_configs(self) -> list[RunConfig]:
        d = self.chosen_on
        return [] if self.measured_only else [d.base.replace(dataset=x) for x in d.datasets]

    def measure(self, run: Runner) -> list[TaskOutcome]:
        # The designs are adaptive (what runs next depends on what is measured): their batches follow one another
        # through the runner, which records each; the result is read from the store.
        if not self.measured_only:
            analysis.measure_study(run, self.chosen_on)
            if self.tested_on != self.chosen_on:
                analysis.measure_study(run, self.tested_on)
        return []

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> KStarResult:
        return analysis.study_result(_store(run), self.chosen_on, self.tested_on, self.parts, self.on,
                                     self.bootstrap, self.measured_only)


class KStarReportStudy(KStarStudy):
    """``kstar-report``: measure the design to completion (or, ``measured_only``, report on what the store holds),
    calibrate on its pilots, choose the form on the arms and score every predictor at every held-out setting."""

    command = "kstar-report"

    def __init__(self, design: Design = DESIGN, measured_only: bool = False):
        super().__init__(design, design, (VALIDATION,), FormChoice.on, measured_only)
        self.design = design

    def outputs(self, out: Path) -> Sequence[str]:
        return report_files(self.design)

    def report(self, result: KStarResult, target: Path, command: str) -> None:
        write_report(result, self.design, target, command)

    def summary(self, run: StudyRun[KStarResult]) -> dict[str, Any]:
        r = run.result
        states = list(r.progress.values()) if r.progress else []
        campaign = {**r.campaign, "progress": {s: states.count(s) for s in dict.fromkeys(states)} if states else None}
        return {"out": run.out, "measured_only": self.measured_only, "campaign": campaign, "form": r.choice.form,
                "scores": r.part_scores()}

    def text(self, run: StudyRun[KStarResult]) -> str:
        lines = [f"chosen form: {run.result.choice.form} (on the arms; the off-grid points are the test)"]
        lines += [score_line(row) for row in run.result.part_scores()]
        return "\n".join(lines)


@dataclass
class PilotCalibration:
    """A calibration of a form on pilot sweeps, what it cost, and the profile written from it."""

    calibration: Calibration
    settings: list[Setting]
    profile: dict[str, Any] | None = None
    estimate: budget.Cost | None = None  # stated before the runs
    cost: budget.Cost | None = None  # what the runs did cost


class CalibrateStudy(RunStudy[PilotCalibration]):
    """Sweep every K at 1 to 4 pilot settings of the system ``base`` describes (the pilots named, else four spanning
    ``box``, else the K* study's four pilots), fit ``form`` to them, and write the calibrated profile ``out`` (named
    ``name``, by default the file's). Before any run it checks the pilots, states the cost and keeps it within
    ``max_cpu_hours``."""

    command = "calibrate"
    layout = Layout.FILE
    unit = "runs"

    def __init__(self, base: RunConfig, pilots: Sequence[str] = (), form: str | None = None,
                 seeds: Sequence[int] = range(8), name: str | None = None, design: Design = DESIGN,
                 box: str | None = None, max_cpu_hours: float | None = None):
        if pilots and box:
            raise InputError("--pilot and --box both name the pilots: give one of them")
        if max_cpu_hours is not None and not max_cpu_hours > 0:
            raise InputError(f"--max-cpu-hours must be a positive number of hours (got {max_cpu_hours!r})")
        self.base, dataset = base.replace(K=1), base.dataset
        self.design, self.dataset, self.seeds, self.name = design, dataset, list(seeds), name
        self.form = form or _default_form(dataset, self.base.model)
        self.box, self.max_cpu_hours = box, max_cpu_hours
        self.estimate: budget.Cost | None = None  # stated once the runs passed their checks
        if box:
            points = budget.box_pilots(budget.parse_box(box))
        elif pilots or dataset not in design.datasets:
            points = [analysis.parse_pilot(p, dict(design.centre)) for p in pilots or ("",)]
        else:
            points = [s.system() for s in analysis.pilot_settings(design, dataset)]
        analysis.check_pilots(design, dataset, self.base, points)
        for p in points:
            self.base.replace(t_sum=float(p["t_sum"]), beta=float(p["beta"]), M=int(p["M"]),
                              sigma2=float(p["sigma2"]))  # each pilot is a valid deployment
        budget.check_points(self.base, points, self.form)
        self.points = points
        self.settings, self.configs = analysis.pilot_configs(self.base, dataset, points, self.seeds)
        # The bound's form fits ratios to epsilon only: epsilon stays the estimated profile's.
        self.fixed = None if self.form not in ("per-round", "printed") else {
            "epsilon": _shipped(f"{dataset}-{self.base.model}", self.form).constants["epsilon"]}

    def outputs(self, out: Path) -> Sequence[str]:
        return (out.name,)

    def default_store(self, out: Path) -> Path | None:
        return out.with_suffix(".sqlite")

    def check(self, out: Path, store: Path | None) -> None:
        from ..estimate import check_profile_path

        check_profile_path(out)

    def run_configs(self) -> list[RunConfig]:
        return self.configs

    def prepared(self, data_dir: str | Path | None) -> None:
        """State the cost (timed here) and refuse it, before any run, if it exceeds --max-cpu-hours."""
        self.estimate = estimate = budget.estimate_cost(self.configs, data_dir)
        log.info("calibrate: %d pilot(s) x %d seed(s): %s (estimated from three short runs timed here)",
                 len(self.points), len(self.seeds), estimate.line())
        if self.max_cpu_hours is not None and estimate.cpu_hours > self.max_cpu_hours:
            raise InputError(f"the calibration would cost about {estimate.line()}, more than --max-cpu-hours "
                             f"{self.max_cpu_hours:g}: fewer seeds, a smaller box (lower t_sum, higher beta) or a "
                             "larger budget")

    def tasks(self) -> list[Tasks]:
        return [Tasks(RUN, [c.as_dict() for c in self.configs], "pilots")]

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> PilotCalibration:
        cal = analysis.fit_pilots(self.configs, outcomes[0].results, self.form, self.fixed)
        if not cal.success:
            raise InputError(f"calibration failed: {cal.message}")
        return PilotCalibration(cal, self.settings, estimate=self.estimate,
                                cost=budget.spent(self.configs, outcomes[0].results))

    def profile(self, result: PilotCalibration, name: str, command: str) -> dict[str, Any]:
        """The profile document of ``result``: the constants, the domain (what was fixed, the box the pilots span)
        and what the calibration cost."""
        cost = {"estimated": result.estimate.as_dict() if result.estimate else None,
                "spent": result.cost.as_dict() if result.cost else None, "box_asked": self.box}
        return profile_document(result.calibration, name, self.dataset, self.base,
                                         {s.label: len(self.seeds) for s in result.settings}, command, cost=cost)

    def report(self, result: PilotCalibration, target: Path, command: str) -> None:
        result.profile = self.profile(result, self.name or target.stem, command)
        save_profile(result.profile, target)
        log.info("wrote %s", target)

    def spread(self, cal: Any) -> dict[str, float | None]:
        """Each constant's bootstrap spread as a relative error, exp(std of its log) - 1 (None where there is none)."""
        return {k: math.expm1(s) if math.isfinite(s) else None for k, s in cal.spread.items()}

    def summary(self, run: StudyRun[PilotCalibration]) -> dict[str, Any]:
        r, cal = run.result, run.result.calibration
        return {"profile": run.out, "name": (r.profile or {}).get("name", self.name or run.out.stem),
                "form": self.form, "dataset": self.dataset, "pilots": self.points, "seeds": self.seeds,
                "constants": cal.constants, "relative_spread": self.spread(cal), "rms_log_error": cal.rms_log_error,
                "tolerance": cal.tolerance, "estimated_cost": r.estimate.as_dict() if r.estimate else None,
                "cost": r.cost.as_dict() if r.cost else None}

    def text(self, run: StudyRun[PilotCalibration]) -> str:
        cal = run.result.calibration
        spread = self.spread(cal)
        lines = [f"{'constant':>8} {'value':>11} {'spread':>8}"]
        for k, v in cal.constants.items():
            lines.append(f"{k:>8} {fmt(v):>11} {fmt(spread.get(k), spec='.1%', missing='—'):>8}")
        lines.append(f"rms log error on the pilots {cal.rms_log_error:.4f}; K* band tolerance {cal.tolerance:.2%}")
        if run.result.cost is not None:
            lines.append(f"cost: {run.result.cost.line()}"
                         + (f" (estimated {run.result.estimate.line()})" if run.result.estimate else ""))
        return "\n".join(lines)


def calibrate(base: RunConfig, *, box: str | None = None, pilots: Sequence[str] = (), form: str | None = None,
              seeds: Sequence[int] = range(8), name: str = "calibrated", store: ResultStore | None = None,
              execution: Execution = Execution(), data_dir: str | Path | None = None,
              max_cpu_hours: float | None = None) -> PilotCalibration:
    """Calibrate ``form`` on pilot sweeps of the system ``base`` describes, as ``bladefl-validate calibrate`` does
    (the same checks and cost statement first); ``result.profile`` is the profile, which :func:`save_profile` writes
    and :func:`bladefl_theory.profiles.load_profile` reads."""
    study = CalibrateStudy(base, pilots, form, seeds, name, box=box, max_cpu_hours=max_cpu_hours)
    check_runs(study.configs, data_dir, execution)
    study.prepared(data_dir)
    result = study.compute(store, execution, task_context(data_dir))
    result.profile = study.profile(result, name, "python: bladefl_validate.calibrate")
    return result


def _shipped(name: str, form: str):
    """The shipped profile ``name``; InputError, one line, if there is none for this system."""
    try:
        return load_profile(name)
    except InputError:
        raise InputError(f"form {form!r} takes epsilon from the estimated profile {name!r}, and none ships for this "
                         "system: run `bladefl-validate estimate` first, or calibrate a form of the loss (drift, "
                         "saturating)") from None


def _default_form(dataset: str, model: str) -> str:
    """The form of the shipped calibrated profile of ``dataset`` and ``model``, else of MNIST's MLP (the K*
    confirmation's choice)."""
    for name in (profile_name(dataset, model), profile_name("mnist", "mlp")):
        try:
            return load_profile(name).form
        except InputError:
            continue
    return "drift"


def save_profile(profile: Mapping[str, Any], path: str | Path) -> Path:
    """Write a profile document as JSON at ``path`` (atomically); :func:`bladefl_theory.profiles.load_profile`
    reads it back."""
    path = Path(path)
    atomic_write_text(path, json.dumps(profile, indent=2) + "\n")
    return path


class ConfirmStudy(KStarStudy):
    """``kstar-confirm``: measure :data:`CONFIRMATION`'s fresh points (reusing the K* study's runs in the same store),
    choose the form on every held-out setting of the first study, and score every predictor on the fresh points."""

    command = "kstar-confirm"

    def __init__(self, first: Design = DESIGN, confirmation: Design = CONFIRMATION, measured_only: bool = False,
                 bootstrap: int = 100, report: str = REPORT):
        if first.off_grid_points() == confirmation.off_grid_points() or first.pilots != confirmation.pilots:
            raise InputError("a confirmation needs the first study's pilots and off-grid points of its own")
        super().__init__(first, confirmation, (VALIDATION, TEST), f"{CHOSEN_ON} (its arms and off-grid points)",
                         measured_only, bootstrap)
        self.first, self.confirmation = first, confirmation
        self.report_path = report  # where the profiles say their validation record is

    def outputs(self, out: Path) -> Sequence[str]:
        return confirm_files(self.confirmation)

    def default_store(self, out: Path) -> Path | None:
        return None

    def check(self, out: Path, store: Path | None) -> None:
        if store is None:
            raise InputError("--store: the K* study's store is required (its runs choose the form)")
        super().check(out, store)

    def report(self, result: KStarResult, target: Path, command: str) -> None:
        write_confirmation(result, self.confirmation, target, command, self.report_path)

    def summary(self, run: StudyRun[KStarResult]) -> dict[str, Any]:
        r = run.result
        return {"out": run.out, "measured_only": self.measured_only, "form": r.choice.form,
                "fresh": {d: len(s) for d, s in r.test_settings.items()}, "scores": r.test_scores()}

    def text(self, run: StudyRun[KStarResult]) -> str:
        r = run.result
        lines = [f"chosen form: {r.choice.form} (on {CHOSEN_ON}); on the fresh points:"]
        lines += [score_line(row) for row in r.test_scores().to_dict(orient="records")]
        return "\n".join(lines)
