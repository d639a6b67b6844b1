"""Verify a profile's K* on the real system: ``bladefl-validate kstar-verify`` (:class:`KStarVerifyStudy`).

The profile narrows the question to its K* band; the band, widened by one K on each side, is measured on paired
seeds, added sequentially until the test of :mod:`.sequential` settles the best K at the stated confidence (or the
CPU budget, the looks or the seeds run out). Every run is a stored task, so a verification resumes, and a second
call with the same options reads every run from the store and runs nothing.

Verification seeds (:data:`VERIFY_SEEDS`) are disjoint from every seed the calibration and the K* studies use
(:func:`study_seeds`), so that the check does not share their noise: a seed fixes the partition, w0 and the lazy set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bladefl_platform.cli import MAX_SEEDS
from bladefl_platform.errors import InputError
from bladefl_platform.execution import TaskOutcome
from bladefl_platform.report import markdown_table, regenerate
from bladefl_platform.study import Runner, StudyRun, Tasks
from bladefl_theory.params import SYSTEM_PARAMETERS
from bladefl_theory.profiles import Profile, available_profiles, load_profile
from bladefl_theory.question import KStar, kstar

from ...config import RunConfig
from ...tasks import RUN
from ..base import RunStudy
from .sequential import Verdict, VerifyDesign, prediction_offset, verify

__all__ = ["KStarVerifyStudy", "VerifyResult", "VERIFY_SEEDS", "VERIFY_FILES", "study_seeds", "profile_answer",
           "measured_band", "summary_line"]

log = logging.getLogger("bladefl_validate")

#: The seeds a verification runs, in order: far above any seed the calibration or a study draws.
VERIFY_SEEDS = range(1_000_000_000, 1_000_000_000 + 100_000)
#: The report files of a verification.
VERIFY_FILES = ("README.md", "paired.csv", "looks.csv", "runs.csv")


def study_seeds() -> range:
    """Every run seed the calibration and the K* studies draw: their designs' seeds, and any count ``--seeds`` takes."""
    from .design import CONFIRMATION, DESIGN

    return range(max(DESIGN.max_seeds, CONFIRMATION.max_seeds, MAX_SEEDS))


def _check_seeds(design: VerifyDesign) -> None:
    used = study_seeds()
    if not (VERIFY_SEEDS.start >= used.stop and design.max_seeds <= len(VERIFY_SEEDS)):
        raise RuntimeError("the verification's seeds overlap the calibration's or the studies'")  # a bug, not input


def profile_answer(profile: Profile, system: dict[str, float], base: RunConfig | None = None) -> KStar:
    """The profile's answer at ``system`` (K*, band, domain warnings): the one call into bladefl_theory's K* entry,
    the same as ``bladefl-theory kstar`` gives."""
    yours: dict[str, Any] = {"model": base.model, "samples_per_client": base.samples_per_client} if base else {}
    question: dict[str, Any] = {**system, **yours}
    answer = kstar(profile, **question)
    if answer.k_star is None:
        raise InputError(f"profile {profile.name} predicts no finite loss at any K of this setting: nothing to verify")
    return answer


def measured_band(band: Sequence[int], k_max: int) -> list[int]:
    """The K to measure first: the band's range widened by one K on each side, within 1..K_max."""
    return list(range(max(1, min(band) - 1), min(k_max, max(band) + 1) + 1))


@dataclass
class VerifyResult:
    """A verification: what the profile predicted, what the measurement verified, and how far apart they are."""

    base: RunConfig
    profile: str
    form: str
    predicted: int
    band: tuple[int, ...]
    measured: list[int]
    verdict: Verdict
    design: VerifyDesign
    warnings: list[str] = field(default_factory=list)

    @property
    def offset(self) -> dict[str, Any]:
        return prediction_offset(self.verdict, self.predicted)

    @property
    def seeds(self) -> list[int]:
        return list(VERIFY_SEEDS[: self.verdict.seeds])


def summary_line(r: VerifyResult) -> str:
    """The verification in one line, in the style of ``bladefl-theory kstar``'s record line."""
    v, off = r.verdict, r.offset
    cost = f"{v.seeds} seeds, {v.runs} runs, {v.cpu_seconds / 3600:.2g} CPU h"
    predicted = f"profile {r.profile} ({r.form}) predicted K* = {r.predicted}"
    if not v.seeds:
        ks = ", ".join(map(str, r.measured))
        return (f"nothing verified: {r.design.max_cpu_hours:g} CPU h does not pay for one seed at each of K = {ks} "
                f"(the first run cost {v.cpu_seconds:.0f} CPU s); {predicted}; {cost}")
    how = f"confirmed at {r.design.confidence:.0%}, {v.reason}" if v.confirmed else \
        f"not confirmed: stopped by the {v.reason}, best so far"
    others = ", ".join(map(str, v.indistinguishable)) or "none"
    loss = "loss not measured" if off["relative_loss"] is None else f"{off['relative_loss']:+.1%} loss"
    edge = "; K* at the edge of the K measured" if v.at_edge else ""
    return (f"verified K* = {v.k_star} ({how}, tolerance {r.design.tolerance:.1%}; confidence reached "
            f"{v.confidence:.0%}); indistinguishable: {others}; {predicted}: off by {off['blocks']:+d} blocks, {loss}; "
            f"{cost}{edge}")


class KStarVerifyStudy(RunStudy[VerifyResult]):
    """Measure the profile's widened K* band of ``base`` on paired verification seeds until :mod:`.sequential`'s
    test settles it; ``strict`` refuses a setting outside the profile's domain."""

    command = "kstar-verify"
    unit = "runs"

    def __init__(self, base: RunConfig, profile: str | None, design: VerifyDesign, strict: bool = False):
        _check_seeds(design)
        self.base, self.design = base.replace(K=1), design
        name = profile or _default_profile(base)
        self.profile = load_profile(name)
        system = {n: getattr(base, n) for n in SYSTEM_PARAMETERS}
        answer = profile_answer(self.profile, system, base)
        self.warnings = _domain(answer, strict)
        assert answer.k_star is not None  # profile_answer refuses an answer without one
        self.predicted, self.band = answer.k_star, answer.band
        self.measured = measured_band(self.band, base.k_max)

    def outputs(self, out: Path) -> Sequence[str]:
        return VERIFY_FILES

    def run_configs(self) -> list[RunConfig]:
        return [self.base]

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> VerifyResult:
        # Sequential: what runs next depends on what is measured, so measuring is part of the analysis.
        def measure(runs: Sequence[tuple[int, int]]) -> list[tuple[float, float]]:
            configs = [self.base.replace(K=k, seed=VERIFY_SEEDS[i]).as_dict() for k, i in runs]
            results = run(Tasks(RUN, configs, "kstar-verify")).results
            return [(r["final_global_train_loss"], r.get("cpu_seconds", r["wall_seconds"])) for r in results]

        verdict = verify(measure, self.measured, self.base.k_max, self.design)
        return VerifyResult(self.base, self.profile.name, self.profile.form, self.predicted, self.band, self.measured,
                            verdict, self.design, self.warnings)

    def report(self, result: VerifyResult, target: Path, command: str) -> None:
        write_verify_report(result, target, command)

    def summary(self, run: StudyRun[VerifyResult]) -> dict[str, Any]:
        r, v = run.result, run.result.verdict
        return {
            "out": run.out, "summary": summary_line(r), "k_star": v.k_star if v.seeds else None,
            "indistinguishable": list(v.indistinguishable), "confirmed": v.confirmed, "reason": v.reason,
            "confidence_reached": v.confidence, "at_edge": v.at_edge,
            "confidence": r.design.confidence, "tolerance": r.design.tolerance, "max_cpu_hours": r.design.max_cpu_hours,
            "seeds": v.seeds, "seed_range": [r.seeds[0], r.seeds[-1]] if r.seeds else [], "runs": v.runs,
            "cpu_hours": v.cpu_seconds / 3600, "ran": run.ran, "skipped": run.skipped,
            "prediction": {"profile": r.profile, "form": r.form, "k_star": r.predicted, "band": list(r.band),
                           "measured_first": r.measured, "off": r.offset if v.seeds else None},
            "eliminated": {str(k): by for k, by in v.eliminated.items()}, "paired": v.table,
            "looks": [vars(look) for look in v.looks], "warnings": r.warnings,
        }

    def text(self, run: StudyRun[VerifyResult]) -> str:
        return f"{run.out}: {summary_line(run.result)}"


def _default_profile(base: RunConfig) -> str:
    """The shipped calibrated profile of the data set and model (InputError if none is shipped)."""
    from .report import profile_name

    name = profile_name(base.dataset, base.model)
    if name not in available_profiles():
        raise InputError(f"no calibrated profile ships for {base.dataset} and {base.model} ({name}): give --profile")
    return name


def _domain(answer: KStar, strict: bool) -> list[str]:
    """Where the target lies outside the profile's domain, one line each: an error with ``strict``, else warnings."""
    notes = list(answer.warnings)
    if notes and strict:
        raise InputError(f"{notes[0]} (--strict)")
    for line in notes:
        log.warning(line)
    return notes


def write_verify_report(result: VerifyResult, folder: Path, command: str) -> None:
    """README.md (the verdict, the paired table and the command that regenerates it), paired.csv, looks.csv and
    runs.csv into ``folder``."""
    v, b = result.verdict, result.base
    paired = pd.DataFrame(v.table)
    paired.to_csv(folder / "paired.csv", index=False)
    looks = pd.DataFrame([{**vars(look), "in_play": " ".join(map(str, look.in_play))} for look in v.looks])
    looks.to_csv(folder / "looks.csv", index=False)
    runs = pd.DataFrame([{"K": k, "seed": VERIFY_SEEDS[i], "final_global_train_loss": loss}
                         for (k, i), loss in sorted(v.losses.items())])
    runs.to_csv(folder / "runs.csv", index=False)
    d = result.design
    lines = [
        f"# kstar-verify: {b.dataset}, N={b.N}, M={b.M}, sigma2={b.sigma2:g}, t_sum={b.t_sum:g}, beta={b.beta:g}",
        "",
        *regenerate(command),
        summary_line(result) + ".",
        "",
        f"Profile {result.profile} predicted K* = {result.predicted} with band {', '.join(map(str, result.band))}; "
        f"measured first: K = {', '.join(map(str, result.measured))} (the band widened by one K on each side). "
        f"Paired seeds {VERIFY_SEEDS.start}.. (the same partition, w0 and lazy set at every K), added in looks until "
        f"the best K is within {d.tolerance:.1%} of every K still in play, or beats them all, at {d.confidence:.0%} "
        f"confidence (t intervals on paired differences, Bonferroni over {d.max_looks} looks and every pair of K); "
        f"budget {d.max_cpu_hours:g} CPU h.",
        "",
        "Paired differences to K* (mean over the seeds both were measured on; half-width at the test's level):",
        "",
        markdown_table(paired),
        "",
        markdown_table(looks),
        "",
    ]
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")
