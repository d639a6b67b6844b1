"""The bound's constants estimated from real runs after Wang et al. (2019), written as a profile
(``bladefl-validate estimate``).

Every seed runs twice from the same partition and initial model w0: once clean (M = 0), for Lemma 1's
constants L, xi, delta and phi, and once as configured (M lazy clients at sigma2), for theta and
epsilon; its w* is found once. Each seed is one stored task (:data:`ESTIMATE`),
so an estimate resumes. The parts, one job each:

- :mod:`.estimators`: L_i, xi_i, delta_i and theta on one round's models, batched over clients;
- :mod:`.observer`: what a seed records, every round of its runs, and its w*
  (:func:`bladefl_validate.optimum.find_optimum`);
- :mod:`.constants`: the six constants and their spread from the seeds' records;
- :mod:`.profile`: the profile JSON and its raw samples CSV.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bladefl_platform.errors import InputError
from bladefl_platform.execution import TaskOutcome
from bladefl_platform.report import fmt
from bladefl_platform.study import Layout, Runner, StudyRun, Tasks

from ...config import RunConfig
from ...optimum import OptimumOptions
from ..base import RunStudy
from .constants import EstimateResult, estimate_configs, estimate_constants, estimate_result, spread
from .estimators import ClientEstimates, client_estimates, lazy_theta
from .observer import ESTIMATE, SAMPLE_COLUMNS, estimate_seed
from .profile import check_profile_path, profile_document, samples_path_for, write_estimate

__all__ = ["EstimateStudy", "ESTIMATE", "EstimateResult", "estimate_constants", "estimate_configs", "estimate_result",
           "estimate_seed", "spread", "SAMPLE_COLUMNS", "ClientEstimates", "client_estimates", "lazy_theta",
           "profile_document", "write_estimate", "check_profile_path", "samples_path_for"]

log = logging.getLogger("bladefl_validate")


class EstimateStudy(RunStudy[EstimateResult]):
    """L, xi, delta, phi (clean M = 0 runs) and theta, epsilon (runs with ``config``'s lazy clients), per seed;
    the profile ``NAME.json`` with its raw samples ``NAME.samples.csv`` beside it (``name``: NAME by default)."""

    command = "estimate"
    layout = Layout.FILE
    unit = "seeds"

    def __init__(self, config: RunConfig, seeds: Sequence[int], optimum: OptimumOptions | None = None,
                 name: str | None = None):
        if config.M < 1:
            raise InputError(f"--M must be >= 1: theta is measured on lazy clients (got M={config.M})")
        self.config, self.seeds, self.name = config, list(seeds), name
        self.optimum = optimum if optimum is not None else OptimumOptions()
        self.configs = estimate_configs(config, self.seeds, self.optimum)

    def outputs(self, out: Path) -> Sequence[str]:
        return out.name, samples_path_for(out).name

    def default_store(self, out: Path) -> Path:
        return out.with_name(out.name.removesuffix(".json") + ".results.sqlite")

    def check(self, out: Path, store: Path | None) -> None:
        check_profile_path(out)

    def run_configs(self) -> list[RunConfig]:
        return [self.config.replace(seed=s) for s in self.seeds]

    def tasks(self) -> list[Tasks]:
        return [Tasks(ESTIMATE, self.configs, "estimate")]

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> EstimateResult:
        return estimate_result(self.config, self.seeds, self.optimum, outcomes[0].results, run.elapsed())

    def report(self, result: EstimateResult, target: Path, command: str) -> None:
        profile, samples = write_estimate(result, target, name=self.name, command=command)
        log.info("wrote %s and %s", profile, samples)

    def summary(self, run: StudyRun[EstimateResult]) -> dict[str, Any]:
        r = run.result
        return {"profile": run.out, "samples": samples_path_for(run.out), "seeds": self.seeds, "constants": r.constants,
                "summary": r.summary().reset_index(), "eta_L": r.eta_L, "lemma1_condition_holds": bool(r.eta_L < 1),
                "f_star": r.f_star}

    def text(self, run: StudyRun[EstimateResult]) -> str:
        r = run.result
        lines = [f"{'constant':>8} {'median':>11} {'q1':>11} {'q3':>11} {'min':>11} {'max':>11}  over"]
        for constant, row in r.summary().iterrows():
            cells = " ".join(f"{fmt(row[k], missing='—'):>11}" for k in ("estimate", "q1", "q3", "min", "max"))
            lines.append(f"{constant:>8} {cells}  {row['over']}")
        verdict = "< 1, Lemma 1's condition holds" if r.eta_L < 1 else ">= 1, VIOLATES Lemma 1's condition"
        lines.append(f"eta*L = {fmt(r.eta_L)} ({verdict}); F(w*) = {fmt(r.f_star)}")
        return "\n".join(lines)
