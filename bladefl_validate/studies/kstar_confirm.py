"""The K* confirmation (``bladefl-validate kstar-confirm``): a form chosen on every held-out setting of the K* study,
tested on fresh off-grid points that nothing was chosen on.

On the first study's test the form its rule did not choose scored better than the one it did. Switching on that
evidence would make the test a second validation set, so :data:`~.kstar_design.CONFIRMATION` (declared before any
of its runs) draws twelve fresh off-grid points per data set from the same box; the choice is made again, by the
same rule, on all of the first study's held-out settings (arms and off-grid points pooled), and scored on the fresh
points alone. Pilots, seeds and measurement rules are the first study's; its runs are reused from the same store.

The confirmation is the procedure's last word, so the calibrated profiles the package ships are written here: the
chosen form fitted on the pilots, with the fresh points' scores as their validation record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bladefl_platform.errors import InputError
from bladefl_platform.execution import TaskOutcome
from bladefl_platform.report import markdown_table, regenerate
from bladefl_platform.study import Runner, StudyRun

from ..config import RunConfig
from . import kstar_prediction as kp
from .base import RunStudy
from .kstar_design import CONFIRMATION, DESIGN, Design, Setting
from .kstar_report import forms_table, score_line, score_table, split_table, summary_text, verdict

__all__ = ["confirm_files", "calibrated_profile", "profile_name", "Confirmation", "ConfirmStudy", "REPORT"]

#: Where the project keeps the confirmation's report (the shipped profiles' validation record points there).
REPORT = "reports/kstar-confirmation"
#: The confirmation's test, as its tables and profiles call it.
FRESH = "fresh off-grid points"
#: The settings the confirmation chooses the form on, in words.
CHOSEN_ON = "every held-out setting of the K* study"


def profile_name(dataset: str, model: str) -> str:
    """The name of the calibrated profile of ``dataset`` and ``model`` (``mnist-mlp-calibrated``)."""
    return f"{dataset}-{model}-calibrated"


def confirm_files(design: Design | None) -> list[str]:
    """The files the confirmation's report consists of, for the data sets of ``design`` (None: the profiles'
    names in general, ``DATASET-MODEL-calibrated.json``)."""
    profiles = ([profile_name(d, design.base.model) for d in design.datasets] if design is not None
                else [profile_name("DATASET", "MODEL")])
    return ["README.md", "summary.md", "held_out.csv", "scores.csv", "choice.csv", "split_half.csv",
            *(f"{name}.json" for name in profiles)]


@dataclass
class Confirmation:
    """The choice made on the first study's held-out settings, and every predictor's scores on the fresh points."""

    choice: kp.FormChoice
    analyses: list[kp.DatasetAnalysis]  # of the confirmation's design: its off-grid points are the fresh ones
    frame: pd.DataFrame  # the confirmation design's runs
    split_half: pd.DataFrame
    progress: dict[Setting, str] | None  # each setting's state, when the report covers a campaign cut short

    @property
    def fresh(self) -> dict[str, list[Setting]]:
        """Per data set, the fresh points scored (all of them, unless the campaign was cut short)."""
        return {a.dataset: [s for s in a.held_out if kp.part_of(s.role) == kp.TEST] for a in self.analyses}

    def held_out(self) -> pd.DataFrame:
        """One row per fresh point and predictor."""
        f = pd.concat([a.frame() for a in self.analyses], ignore_index=True)
        return f[f.role.map(kp.part_of) == kp.TEST].reset_index(drop=True)

    def scores(self) -> pd.DataFrame:
        """Per data set and predictor: hit rate, median and worst regret on the fresh points."""
        return pd.concat([a.scores(kp.TEST) for a in self.analyses], ignore_index=True)


class ConfirmStudy(RunStudy[Confirmation]):
    """Measure :data:`CONFIRMATION`'s fresh points (reusing the K* study's runs in the same store), choose the form on
    the first study's held-out settings, and score every predictor on the fresh points."""

    command = "kstar-confirm"

    def __init__(self, first: Design = DESIGN, confirmation: Design = CONFIRMATION, measured_only: bool = False,
                 bootstrap: int = 100, report: str = REPORT):
        if first.off_grid_points() == confirmation.off_grid_points() or first.pilots != confirmation.pilots:
            raise InputError("a confirmation needs the first study's pilots and off-grid points of its own")
        self.first, self.confirmation, self.measured_only = first, confirmation, measured_only
        self.bootstrap = bootstrap  # resamples of each calibration's spread
        self.report_path = report  # where the profiles say their validation record is

    def outputs(self, out: Path) -> Sequence[str]:
        return confirm_files(self.confirmation)

    def default_store(self, out: Path) -> Path | None:
        return None

    def check(self, out: Path, store: Path | None) -> None:
        if store is None:
            raise InputError("--store: the K* study's store is required (its runs choose the form)")
        if self.measured_only and not store.is_file():
            raise InputError(f"--measured-only reports on a store, and {store} does not exist")

    def run_configs(self) -> list[RunConfig]:
        return [] if self.measured_only else [self.first.base.replace(dataset=d) for d in self.first.datasets]

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> Confirmation:
        # The first study is analysed as it stands (measured to completion unless measured_only); the choice
        # pools its arms and off-grid points, which is all the confirmation's rule may see. It depends on the
        # predictions alone, not on the constants' bootstrap spread, so the first study's fits skip the bootstrap.
        if self.measured_only:
            first, _, _ = kp.analyse_measured(run.store, self.first, bootstrap=0)
            analyses, frame, progress = kp.analyse_measured(run.store, self.confirmation, self.bootstrap)
        else:
            data_dir = run.context.get("data_dir")
            first, _ = kp.run_study(run.store, self.first, data_dir, run.execution, bootstrap=0)
            analyses, frame = kp.run_study(run.store, self.confirmation, data_dir, run.execution, self.bootstrap)
            progress = None
        choice = kp.select_form(first, parts=(kp.VALIDATION, kp.TEST),
                                on=f"{CHOSEN_ON} (its arms and off-grid points)")
        halves = kp.split_half_scores(analyses, frame, self.confirmation, choice.form)
        halves = halves[halves.part == kp.TEST].reset_index(drop=True) if len(halves) else halves
        return Confirmation(choice, analyses, frame, halves, progress)

    def report(self, result: Confirmation, target: Path, command: str) -> None:
        result.held_out().to_csv(target / "held_out.csv", index=False)
        result.scores().to_csv(target / "scores.csv", index=False)
        result.choice.scores.to_csv(target / "choice.csv", index=False)
        result.split_half.to_csv(target / "split_half.csv", index=False)
        summary = kp.split_half_summary(result.split_half)
        for a in result.analyses:
            profile = calibrated_profile(a, result, self.confirmation, command, self.report_path)
            name = profile_name(a.dataset, self.confirmation.base.model)
            (target / f"{name}.json").write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
        (target / "summary.md").write_text(
            summary_text(result.analyses, result.choice, summary, parts=((kp.TEST, FRESH),),
                         chosen_on=CHOSEN_ON), encoding="utf-8")
        (target / "README.md").write_text(_readme(result, self.confirmation, command, summary), encoding="utf-8")

    def summary(self, run: StudyRun[Confirmation]) -> dict[str, Any]:
        r = run.result
        return {"out": run.out, "measured_only": self.measured_only, "form": r.choice.form,
                "fresh": {d: len(s) for d, s in r.fresh.items()}, "scores": r.scores()}

    def text(self, run: StudyRun[Confirmation]) -> str:
        r = run.result
        lines = [f"chosen form: {r.choice.form} (on {CHOSEN_ON}); on the fresh points:"]
        lines += [score_line(row) for row in r.scores().to_dict(orient="records")]
        return "\n".join(lines)


def _figures_of(g: pd.DataFrame) -> dict:
    """Hit rate, median and worst regret of one predictor's rows."""
    r = g.regret.dropna()
    return {"held_out": len(g), "hits": int(g.hit.sum()), "hit_rate": round(float(g.hit.mean()), 4),
            "median_regret": round(float(r.median()), 5) if len(r) else None,
            "worst_regret": round(float(r.max()), 5) if len(r) else None}


def calibrated_profile(a: kp.DatasetAnalysis, r: Confirmation, design: Design, command: str,
                       report: str = REPORT) -> dict:
    """The shipped profile of one data set: the chosen form calibrated on the pilots, with its scores on the fresh
    points (``validation``), on the settings it was chosen on, and a fresh measurement's against the same noise."""
    f = a.frame()
    mine = f[f.predictor == kp.calibrated(r.choice.form)]
    box = {name: [min(float(s.system()[name]) for s in a.pilots + a.held_out),
                  max(float(s.system()[name]) for s in a.pilots + a.held_out)]
           for name in ("t_sum", "beta", "M", "sigma2")}
    halves = r.split_half[r.split_half.dataset == a.dataset] if len(r.split_half) else r.split_half
    chosen_on = r.choice.scores.set_index("form").loc[r.choice.form]
    mean_regret = float(chosen_on.mean_regret)
    validation = {
        **_figures_of(mine[mine.role.map(kp.part_of) == kp.TEST]), "settings": FRESH,
        "fresh_measurement": None if halves.empty else {
            "held_out": len(halves), "hit_rate": round(float(halves.replicate_hit.mean()), 4),
            "median_regret": round(float(halves.replicate_regret.median()), 5),
            "worst_regret": round(float(halves.replicate_regret.max()), 5)},
        "chosen_on": {"settings": r.choice.on, "held_out": int(chosen_on.settings),
                      "mean_regret": None if math.isnan(mean_regret) else round(mean_regret, 5),
                      "rule": r.choice.rule},
        "report": report,
    }
    seeds = {s.label: int(kp._runs_of(r.frame, s).seed.nunique()) for s in a.pilots}
    return kp.profile_document(a.calibrations[r.choice.form], profile_name(a.dataset, design.base.model), a.dataset,
                               design.base, seeds, command, validation=validation, box=box)


def _readme(r: Confirmation, design: Design, command: str, summary: pd.DataFrame) -> str:
    lines = [
        "# K* confirmed on fresh settings",
        "",
        *regenerate(command, "Generated by `bladefl-validate kstar-confirm`; regenerate with:"),
        "It reads the K* study's result store and runs only what it lacks: the fresh points, and every K a "
        "predictor chose there.",
        "",
        "## Verdict",
        "",
        f"Chosen form: **{r.choice.form}**. The rule, declared before the fresh points were drawn: {r.choice.rule} "
        f"({r.choice.compared} settings):",
        "",
        markdown_table(forms_table(r.choice, "settings")),
        "",
        *(verdict(r.analyses, r.choice, summary, parts=((kp.TEST, FRESH),))
          or ["No fresh point measured yet."]),
    ]
    if r.progress is not None:
        states = list(r.progress.values())
        lines += ["", "**A campaign cut short** (`--measured-only`): settings by state: "
                  + ", ".join(f"{s} {states.count(s)}" for s in dict.fromkeys(states))
                  + "; the fresh points not measured yet are not scored."]
    lines += [
        "",
        f"The profiles `{profile_name(design.datasets[0], design.base.model)}.json` and the like here are the "
        "chosen form fitted on the pilots, with these scores as their validation record; the package ships them "
        "(`bladefl_theory/profile_data/`).",
        "",
        "## Every predictor on the fresh points",
        "",
        "Hit: the predicted K* is in the measured plausible set; regret: measured mean loss at the predicted K* / "
        "at the measured K* − 1 (as in the K* study's report).",
        "",
        markdown_table(score_table(r.analyses, kp.TEST)),
        "",
        "## The measurement's own noise",
        "",
        "Each fresh point's seeds split in halves, 20 times: the chosen form and a fresh measurement (the other "
        "half's argmin), each held against one half.",
        "",
        markdown_table(split_table(summary[summary.settings == kp.TEST])) if len(summary)
        else "No fresh point has the seeds for it yet.",
    ]
    runs = [kp._runs_of(r.frame, s) for points in r.fresh.values() for s in points]
    cpu_hours = sum(float(x.cpu_seconds.sum()) for x in runs) / 3600
    lines += ["", f"Cost of the fresh points (drawn with seed {design.off_grid_seed}; the first study's runs are "
              f"reused): {sum(len(x) for x in runs)} runs, {cpu_hours:.1f} CPU hours.", ""]
    return "\n".join(lines)
