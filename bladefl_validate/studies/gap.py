"""The bound against measurement: F(w^K) − F(w*) over K beside the bound of each variant.

Given the measured final loss per K (mean ± std over seeds, from a sweep) and F(w*), this
module reports, per variant: the empirical K* against the bound's K*, the Spearman correlation
of bound and measurement over K, the ratio bound/measured per K and, labelled as a calibration,
the affine fit measured ≈ a·bound + b with its R².

Each variant is evaluated in two forms: with the profile's epsilon (the bound as printed, finite
only where D(K) > 0) and with epsilon eliminated by setting it to the bound itself (``+sc``, the
self-consistent bound of :func:`bladefl_theory.bound.bound_self_consistent`, finite wherever phi > 0).

A study (:class:`GapStudy`, the command ``bladefl-validate gap``): the sweep's runs and each seed's F(w*)
are stored tasks; :func:`measure_gap` is the same from Python.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bladefl_platform.execution import TaskOutcome
from bladefl_platform.report import fmt, k_axis, legend, markdown_table, mean_std_label, new_figure, regenerate
from bladefl_platform.report import save_figure
from bladefl_platform.study import Runner, StudyRun, Tasks
from bladefl_theory import bound as B
from bladefl_theory.forms import BOUND_FORMS, bound_values
from bladefl_theory.params import Params
from bladefl_theory.profiles import Profile, ProfileError, load_profile
from bladefl_theory.solvers import kstar

from ..config import RunConfig
from ..tasks import RUN, optimum_configs, optimum_tasks
from .base import RunStudy
from .sweep_k import sweep_configs, sweep_result

__all__ = ["GapResult", "GapStudy", "VariantFit", "analyse_gap", "measure_gap", "k_star_of", "profile_for",
           "write_gap_report", "GAP_FILES", "FORMS"]

#: The report files of a gap analysis.
GAP_FILES = ("README.md", "gap.csv", "gap.png")

#: The forms of the bound compared with measurement (bladefl_theory.forms).
FORMS = BOUND_FORMS


def k_star_of(ks: np.ndarray, bounds: np.ndarray) -> int | None:
    """The K of ``ks`` with the smallest finite bound (None if none is finite)."""
    ok = np.isfinite(bounds)
    return int(np.asarray(ks)[ok][np.argmin(bounds[ok])]) if ok.any() else None


@dataclass(frozen=True)
class VariantFit:
    """How one form of the bound (:data:`FORMS`) tracks the measured gap over K."""

    variant: str  # the form: a variant, or a variant with "+sc"
    k_star_bound: int | None
    spearman: float | None
    spearman_p: float | None
    slope: float | None
    intercept: float | None
    r2: float | None
    finite_points: int


@dataclass(frozen=True)
class GapResult:
    """Per-K table (measured gap, bounds, ratios) and one fit per form of the bound."""

    params: Params
    f_star: float
    table: pd.DataFrame
    fits: dict[str, VariantFit]

    @property
    def k_star_measured(self) -> int:
        return int(self.table["measured_gap_mean"].idxmin())


def analyse_gap(per_k: pd.DataFrame, f_star: float, params: Params) -> GapResult:
    """Compare ``per_k`` (index K; columns ``final_global_train_loss_mean``/``_std``) with the bound."""
    ks = per_k.index.to_numpy()
    table = pd.DataFrame(index=pd.Index(ks, name="K"))
    table["tau"] = per_k["tau"].to_numpy() if "tau" in per_k else np.nan
    table["measured_gap_mean"] = per_k["final_global_train_loss_mean"].to_numpy() - f_star
    table["measured_gap_std"] = per_k["final_global_train_loss_std"].to_numpy()
    fits = {}
    for form in FORMS:
        b = bound_values(form, ks, params)
        table[f"bound_{form}"] = np.where(np.isfinite(b), b, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            table[f"ratio_{form}"] = table[f"bound_{form}"] / table["measured_gap_mean"]
        # The printed forms' K* is the solvers' (over every K up to K_max); the +sc forms' the integer search here.
        k_star = kstar(params, form, cross_check=False).k_star if form in B.VARIANTS else k_star_of(ks, b)
        fits[form] = _fit(form, k_star, b, table["measured_gap_mean"].to_numpy())
    return GapResult(params=params, f_star=f_star, table=table, fits=fits)


def profile_for(dataset: str, model: str) -> Profile:
    """The shipped estimated profile DATASET-MODEL, or the default profile if there is none."""
    try:
        return load_profile(f"{dataset}-{model}")
    except ProfileError:
        return load_profile("default")


def measure_gap(base, seeds, data_dir=None, store=None, execution=None, profile=None) -> GapResult:
    """Sweep every K of ``base`` (a RunConfig) over ``seeds``, find F(w*) per seed, and compare with the bound.

    ``profile`` (a Profile, a name or a path; default: the estimated profile of the data set and model)
    gives the bound's constants. Runs go through ``store`` when one is given, so a gap resumes.
    """
    from bladefl_platform.execution import Execution

    from ..tasks import task_context

    return GapStudy(base, seeds, profile).compute(store, execution or Execution(), task_context(data_dir))


def _fit(variant: str, k_star_bound: int | None, b: np.ndarray, measured: np.ndarray) -> VariantFit:
    ok = np.isfinite(b) & np.isfinite(measured)
    if ok.sum() < 3 or np.ptp(b[ok]) == 0:
        return VariantFit(variant, k_star_bound, None, None, None, None, None, int(ok.sum()))
    rho, p = stats.spearmanr(b[ok], measured[ok])
    lin = stats.linregress(b[ok], measured[ok])
    return VariantFit(
        variant=variant,
        k_star_bound=k_star_bound,
        spearman=_num(rho),
        spearman_p=_num(p),
        slope=_num(lin.slope),
        intercept=_num(lin.intercept),
        r2=_num(lin.rvalue**2),
        finite_points=int(ok.sum()),
    )


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _fmt(x: float | None, spec: str = ".3g") -> str:
    return fmt(x, spec=spec, missing="n/a")


def plot_gap(result: GapResult, ax, title: str, seeds: int | None = None) -> None:
    """Fig. 2 style: measured gap (mean ± std) and each variant's bound against K, log scale."""
    t = result.table
    ax.errorbar(t.index, t["measured_gap_mean"], yerr=t["measured_gap_std"].fillna(0), fmt="ko-", capsize=3,
                label=mean_std_label("measured F(w^K) − F(w*)", seeds) if seeds else "measured F(w^K) − F(w*)")
    for form, style in zip(FORMS, ("s--", "^:", "D-.", "v-.")):
        if t[f"bound_{form}"].notna().any():
            ax.plot(t.index, t[f"bound_{form}"], style, ms=4, label=f"bound ({form})")
    ax.set_yscale("log")
    k_axis(ax, list(t.index))
    ax.set_ylabel("optimality gap")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    legend(ax, fontsize=7)


def write_gap_report(result: GapResult, folder: Path, title: str, command: str, seeds: list[int]) -> None:
    """Markdown, CSV and a PNG for one gap analysis."""
    folder = Path(folder)
    result.table.to_csv(folder / "gap.csv")
    fig, axes = new_figure(6, 4.2)
    plot_gap(result, axes[0][0], title, len(seeds))
    save_figure(fig, folder / "gap.png")
    lines = [
        f"# Bound against measurement: {title}",
        "",
        *regenerate(command),
        f"Seeds: {', '.join(map(str, seeds))}. F(w*) = {result.f_star:.5g}. "
        f"Constants: " + ", ".join(f"{k}={getattr(result.params, k):.4g}"
                                   for k in ("L", "xi", "delta", "epsilon", "phi", "theta")),
        "",
        f"Empirical K* (argmin of the mean measured gap): **{result.k_star_measured}**.",
        "",
        "Forms of the bound: `per-round` and `printed` with the profile's epsilon (finite only where D(K) > 0); "
        "`+sc` the same variant with epsilon set to the bound itself (self-consistent; finite wherever phi > 0).",
        "",
        markdown_table(pd.DataFrame([{
            "form": v, "bound's K*": f.k_star_bound if f.k_star_bound is not None else "none",
            "Spearman ρ (bound, measured) over K": f"{_fmt(f.spearman)} (p={_fmt(f.spearman_p)})",
            "affine calibration measured ≈ a·bound + b": f"a={_fmt(f.slope)}, b={_fmt(f.intercept)}",
            "R²": _fmt(f.r2), "K with a finite bound": f.finite_points} for v, f in result.fits.items()])),
        "",
        "The affine fit is a calibration, not a validation: it says how well the bound's shape over K "
        "tracks the measurement once scale and offset are fitted.",
        "",
        markdown_table(pd.DataFrame(
            [[k, _fmt(row["tau"], ".0f"), f"{row['measured_gap_mean']:.4f} ± {_fmt(row['measured_gap_std'], '.4f')}",
              *(_fmt(row[f"{what}_{f}"]) for f in FORMS for what in ("bound", "ratio"))]
             for k, row in result.table.iterrows()],
            columns=["K", "tau", "measured gap (mean ± std)", *(c for f in FORMS for c in (f"bound {f}", "ratio"))])),
        "",
        "![gap](gap.png)",
        "",
    ]
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")


class GapStudy(RunStudy[GapResult]):
    """The measured gap over every K of ``base`` (M and sigma2 as set) against the bound with ``profile``'s constants
    (a Profile, a name or a path; default: the estimated profile of the data set and model, else ``default``)."""

    command = "gap"

    def __init__(self, base: RunConfig, seeds: Sequence[int], profile: Profile | str | None = None):
        self.base, self.seeds = base.replace(K=1), list(seeds)
        self.profile = profile if isinstance(profile, Profile) else (
            load_profile(profile) if profile else profile_for(base.dataset, base.model))
        self.params = self.base.theory_params(self.profile)
        self.configs = sweep_configs(self.base, self.seeds)

    def outputs(self, out: Path) -> Sequence[str]:
        return GAP_FILES

    def run_configs(self) -> list[RunConfig]:
        return [*self.configs, *optimum_configs(self.base, self.seeds)]

    def tasks(self) -> list[Tasks]:
        return [Tasks(RUN, [c.as_dict() for c in self.configs], "sweep-k"), optimum_tasks(self.base, self.seeds)]

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> GapResult:
        sweep = sweep_result(self.base, self.seeds, self.configs, outcomes[0])
        f_star = [r["f_star"] for r in outcomes[1].results]
        return analyse_gap(sweep.per_k, sum(f_star) / len(f_star), self.params)

    @property
    def title(self) -> str:
        b = self.base
        return f"{b.dataset}, M={b.M}, sigma2={b.sigma2:g}, profile {self.profile.name}"

    def report(self, result: GapResult, target: Path, command: str) -> None:
        write_gap_report(result, target, self.title, command, self.seeds)

    def summary(self, run: StudyRun[GapResult]) -> dict[str, Any]:
        r = run.result
        return {"out": run.out, "profile": self.profile.name, "seeds": self.seeds, "f_star": r.f_star,
                "k_star_measured": r.k_star_measured, "fits": {v: dataclasses.asdict(f) for v, f in r.fits.items()},
                "table": r.table.reset_index()}

    def text(self, run: StudyRun[GapResult]) -> str:
        r = run.result
        lines = [f"{run.out}: measured K* = {r.k_star_measured}, F(w*) = {fmt(r.f_star)} (profile {self.profile.name})",
                 f"{'form':<14} {'bound K*':>8} {'Spearman':>9} {'R2 of the calibration':>22}"]
        for v, f in r.fits.items():
            lines.append(f"{v:<14} {fmt(f.k_star_bound, missing='—'):>8} {fmt(f.spearman, 3, missing='—'):>9} "
                         f"{fmt(f.r2, 3, missing='—'):>22}")
        lines.append("—: no K with a finite bound (K*), or fewer than 3 K with a finite, varying bound (Spearman, R2)")
        return "\n".join(lines)
