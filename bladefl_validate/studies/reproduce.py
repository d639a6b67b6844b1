"""The paper's experiments reproduced (Figs. 2–4 and its K* values), written to one report folder.

A study (:class:`ReproduceStudy`, the command ``bladefl-validate reproduce``): all runs of all figures go
through one dask.distributed execution and one result store, so the reproduction resumes where it stopped
and shares runs between figures (the M=4, sigma2=0.01 sweep serves Fig. 3 and Fig. 4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bladefl_platform.execution import Execution, TaskOutcome
from bladefl_platform.report import fmt, k_axis, legend, markdown_table, new_figure, regenerate, save_figure, text_table
from bladefl_platform.store import ResultStore
from bladefl_platform.study import Runner, StudyRun, Tasks
from bladefl_theory.forms import bound_values
from bladefl_theory.profiles import Profile
from bladefl_theory.solvers import kstar

from ..config import DATASETS, RunConfig
from ..tasks import OPTIMUM, RUN, optimum_tasks
from .base import RunStudy
from .gap import FORMS, GapResult, analyse_gap, k_star_of, plot_gap, profile_for
from .kstar.scoring import PLAUSIBLE_SHARE, loss_table, plausible_set, table_kstar
from .sweep_k import summarize, sweep_configs

__all__ = ["FigureSweep", "FIG3", "FIG4", "PAPER_K_STAR", "Reproduction", "ReproduceStudy", "reproduce",
           "reproduce_files", "write_reproduction"]


@dataclass(frozen=True)
class FigureSweep:
    """One sweep over K: a dataset, M lazy clients and their noise variance."""

    dataset: str
    M: int
    sigma2: float


#: Fig. 3: M in {0, 2, 4, 6} at sigma2 = 0.01; Fig. 4: sigma2 in {0.01, 0.1, 0.2, 0.3} at M = 4.
FIG3 = tuple((M, 0.01) for M in (0, 2, 4, 6))
FIG4 = tuple((4, s) for s in (0.01, 0.1, 0.2, 0.3))
#: The K* values the paper states in its text (Section 5.2), MNIST only.
PAPER_K_STAR = {("mnist", 0, 0.01): 7, ("mnist", 2, 0.01): 6, ("mnist", 6, 0.01): 5, ("mnist", 4, 0.01): 7,
                ("mnist", 4, 0.3): 5}


def settings(datasets: Sequence[str] = DATASETS) -> list[FigureSweep]:
    """Every sweep the figures need, each once."""
    pairs = list(dict.fromkeys(FIG3 + FIG4))
    return [FigureSweep(d, M, s) for d in datasets for M, s in pairs]


def reproduce_files(datasets: Sequence[str]) -> tuple[str, ...]:
    """The report files a reproduction of these data sets writes."""
    return ("README.md", "runs.csv", "per_k.csv", "f_star.csv", "kstar.csv", "fig2.png", "fig3.png", "fig4.png",
            *(f"gap-{d}.csv" for d in datasets))


@dataclass(frozen=True)
class Reproduction:
    """Everything the report needs: runs, per-K summaries, F(w*), gaps and the K* table."""

    base: RunConfig
    seeds: list[int]
    runs: pd.DataFrame
    per_k: pd.DataFrame
    f_star: pd.DataFrame
    gaps: dict[str, GapResult]
    kstar_table: pd.DataFrame
    profiles: dict[str, str]
    ran: int
    skipped: int
    elapsed_seconds: float


def reproduce(
    base: RunConfig,
    seeds: Sequence[int],
    data_dir: str | Path | None,
    store: ResultStore,
    execution: Execution = Execution(),
    datasets: Sequence[str] = DATASETS,
) -> Reproduction:
    """Run (or take from ``store``) every sweep and every F(w*), then compare with theory and the paper."""
    from ..tasks import task_context

    return ReproduceStudy(base, seeds, datasets).compute(store, execution, task_context(data_dir))


class ReproduceStudy(RunStudy[Reproduction]):
    """The paper's Figs. 2 to 4 and its K* values at its settings (``base``), on ``datasets``."""

    command = "reproduce"
    unit = "runs"

    def __init__(self, base: RunConfig, seeds: Sequence[int], datasets: Sequence[str] = DATASETS):
        self.base, self.seeds, self.datasets = base, list(seeds), tuple(datasets)
        self.grid = settings(self.datasets)
        self.configs: list[RunConfig] = []
        self.labels: list[FigureSweep] = []  # the setting of each config
        for s in self.grid:
            for c in sweep_configs(base.replace(dataset=s.dataset, M=s.M, sigma2=s.sigma2, K=1), seeds):
                self.configs.append(c)
                self.labels.append(s)

    def outputs(self, out: Path) -> Sequence[str]:
        return reproduce_files(self.datasets)

    def run_configs(self) -> list[RunConfig]:
        return [self.base.replace(dataset=d, seed=s) for d in self.datasets for s in self.seeds]

    def tasks(self) -> list[Tasks]:
        # F(w*) depends on the union of the clients' data, so on the dataset and the seed (the partition).
        return [Tasks(RUN, [c.as_dict() for c in self.configs], "runs"),
                *(optimum_tasks(self.base.replace(dataset=d), self.seeds) for d in self.datasets)]

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> Reproduction:
        return _analyse(self, outcomes[0], dict(zip(self.datasets, outcomes[1:])), run.elapsed())

    def report(self, result: Reproduction, target: Path, command: str) -> None:
        write_reproduction(result, target, command)

    def summary(self, run: StudyRun[Reproduction]) -> dict[str, Any]:
        r = run.result
        return {"out": run.out, "datasets": list(self.datasets), "seeds": self.seeds, "profiles": r.profiles,
                "ran": r.ran, "skipped": r.skipped, "kstar": r.kstar_table}

    def text(self, run: StudyRun[Reproduction]) -> str:
        return text_table(run.result.kstar_table)


def _analyse(study: ReproduceStudy, runs_outcome: TaskOutcome, found: dict[str, TaskOutcome],
             elapsed: float) -> Reproduction:
    """Every sweep's summary, F(w*), the gaps at M = 0 and the K* table, from the study's outcomes."""
    base, seeds, datasets, grid, configs, labels = (study.base, study.seeds, study.datasets, study.grid, study.configs,
                                                    study.labels)
    f_star = pd.DataFrame([{"dataset": d, "seed": seed, **r} for d, o in found.items()
                           for seed, r in zip(seeds, o.results)])

    run_frames, per_k_frames = [], []
    for s in grid:
        idx = [i for i, lab in enumerate(labels) if lab == s]
        runs, per_k = summarize([configs[i] for i in idx], [runs_outcome.results[i] for i in idx])
        # The gap is measured against each seed's own optimum.
        fs = f_star[f_star.dataset == s.dataset].set_index("seed")["f_star"]
        runs["gap"] = runs["final_global_train_loss"] - runs["seed"].map(fs)
        runs.insert(0, "sigma2", s.sigma2)
        runs.insert(0, "M", s.M)
        runs.insert(0, "dataset", s.dataset)
        per_k = per_k.reset_index()
        per_k.insert(0, "sigma2", s.sigma2)
        per_k.insert(0, "M", s.M)
        per_k.insert(0, "dataset", s.dataset)
        run_frames.append(runs)
        per_k_frames.append(per_k)
    all_runs = pd.concat(run_frames, ignore_index=True)
    all_per_k = pd.concat(per_k_frames, ignore_index=True)

    gaps, profiles = {}, {}
    for d in datasets:
        profile = profile_for(d, base.model)
        profiles[d] = profile.name
        sub = all_per_k[(all_per_k.dataset == d) & (all_per_k.M == 0)].set_index("K")
        gaps[d] = analyse_gap(sub, float(f_star[f_star.dataset == d].f_star.mean()), _theory(base, d, 0, 0.01, profile))
    rows = [_kstar_row(base, s, all_runs) for s in grid]
    table = pd.DataFrame(rows)
    for col in ("k_star_paper", *(_column(f) for f in FORMS)):
        table[col] = table[col].astype("Int64")
    return Reproduction(
        base=base, seeds=list(seeds), runs=all_runs, per_k=all_per_k, f_star=f_star, gaps=gaps, kstar_table=table,
        profiles=profiles, ran=runs_outcome.ran + sum(o.ran for o in found.values()),
        skipped=runs_outcome.skipped + sum(o.skipped for o in found.values()),
        elapsed_seconds=elapsed,
    )


def _kstar_row(base: RunConfig, s: FigureSweep, all_runs: pd.DataFrame) -> dict[str, Any]:
    """One setting's row of the K* table: the measured K* with its bootstrap share and plausible K, the paper's,
    and each form's."""
    runs = all_runs[(all_runs.dataset == s.dataset) & (all_runs.M == s.M) & (all_runs.sigma2 == s.sigma2)]
    best = table_kstar(loss_table(runs))
    plausible, shares = plausible_set(runs, PLAUSIBLE_SHARE)
    params = _theory(base, s.dataset, s.M, s.sigma2, profile_for(s.dataset, base.model))
    return {
        "dataset": s.dataset,
        "M": s.M,
        "sigma2": s.sigma2,
        "k_star_measured": best,
        "k_star_measured_share": shares.get(best, 0.0),
        "k_star_measured_plausible": " ".join(map(str, plausible)),
        "k_star_per_round": _k(params, "per-round"),
        "k_star_printed": _k(params, "printed"),
        "k_star_paper": PAPER_K_STAR.get((s.dataset, s.M, s.sigma2)),
        **{_column(f): _k_sc(params, f, base.k_max) for f in FORMS if "+" in f},
    }


#: The bootstrap share of the measured K* from which the report calls it settled.
SETTLED_SHARE = 0.9


def _theory(base: RunConfig, dataset: str, M: int, sigma2: float, profile: Profile):
    return base.replace(dataset=dataset, M=M, sigma2=sigma2, K=1).theory_params(profile)


def _k(params, variant: str) -> int | None:
    return kstar(params, variant, cross_check=False).k_star


def _column(form: str) -> str:
    """The kstar.csv column of a form of the bound: per-round+sc -> k_star_per_round_sc."""
    return "k_star_" + form.replace("-", "_").replace("+", "_")


def _k_sc(params, form: str, k_max: int) -> int | None:
    ks = np.arange(1, k_max + 1)
    return k_star_of(ks, bound_values(form, ks, params))


def _line_figure(rep: Reproduction, pairs, vary: str, path: Path) -> None:
    datasets = list(rep.per_k.dataset.unique())
    fig, axes = new_figure(5.5 * len(datasets), 7, 2, len(datasets))
    for j, d in enumerate(datasets):
        for M, s2 in pairs:
            sub = rep.per_k[(rep.per_k.dataset == d) & (rep.per_k.M == M) & (rep.per_k.sigma2 == s2)]
            label = f"M/N={M / rep.base.N:.0%}" if vary == "M" else f"sigma2={s2:g}"
            for i, (col, name) in enumerate((("final_global_train_loss", "loss"), ("final_test_accuracy", "accuracy"))):
                axes[i][j].errorbar(sub.K, sub[f"{col}_mean"], yerr=sub[f"{col}_std"].fillna(0), fmt="o-", ms=3,
                                    capsize=2, label=label)
                axes[i][j].set_ylabel(f"final {name}")
        fixed = "sigma2 = 0.01" if vary == "M" else "M = 4"
        for i in range(2):
            k_axis(axes[i][j], sorted(rep.per_k.K.unique()))
            axes[i][j].set_title(f"{d}, {fixed}, t_sum = {rep.base.t_sum:g}, beta = {rep.base.beta:g}: mean ± std "
                                 f"over {len(rep.seeds)} seeds", fontsize=8)
            axes[i][j].grid(alpha=0.3)
            legend(axes[i][j], fontsize=7)
    save_figure(fig, path)


def write_reproduction(rep: Reproduction, folder: Path, command: str) -> None:
    """Figures, CSVs and the README with commentary, all computed from ``rep``."""
    folder = Path(folder)
    rep.runs.to_csv(folder / "runs.csv", index=False)
    rep.per_k.to_csv(folder / "per_k.csv", index=False)
    rep.f_star.to_csv(folder / "f_star.csv", index=False)
    rep.kstar_table.to_csv(folder / "kstar.csv", index=False)
    fig, axes = new_figure(5.5 * len(rep.gaps), 4, 1, len(rep.gaps))
    for ax, (d, gap) in zip(axes[0], rep.gaps.items()):
        plot_gap(gap, ax, f"{d}, M=0 (profile {rep.profiles[d]})", len(rep.seeds))
        gap.table.to_csv(folder / f"gap-{d}.csv")
    save_figure(fig, folder / "fig2.png")
    _line_figure(rep, FIG3, "M", folder / "fig3.png")
    _line_figure(rep, FIG4, "sigma2", folder / "fig4.png")
    (folder / "README.md").write_text(_readme(rep, command), encoding="utf-8")


def _readme(rep: Reproduction, command: str) -> str:
    """The report's README.md: set-up, K* with its commentary, and one section per figure."""
    lines = [*_setup_section(rep, command), *_kstar_section(rep), *_fig2_section(rep),
             "## Fig. 3: loss and accuracy against K for M in {0, 2, 4, 6}, sigma2 = 0.01", "", "![fig3](fig3.png)", "",
             "## Fig. 4: sigma2 in {0.01, 0.1, 0.2, 0.3} at M = 4", "", "![fig4](fig4.png)", "",
             "Data: `runs.csv` (every run), `per_k.csv` (mean and std per K), `gap-*.csv`, `f_star.csv`, `kstar.csv`.",
             ""]
    return "\n".join(lines)


def _setup_section(rep: Reproduction, command: str) -> list[str]:
    """The title, how to regenerate the report, and the set-up: deployment, seeds, runs, code versions, constants."""
    b = rep.base
    wall = rep.runs.wall_seconds.sum()
    return [
        "# The paper's experiments, reproduced", "",
        *regenerate(command, "Generated by `bladefl-validate reproduce`; regenerate (runs already in `results.sqlite` "
                             "are reused) with:"),
        "## Set-up", "",
        f"- N={b.N} clients, |D_i|={b.samples_per_client}, partition `{b.partition}` (k={b.classes_per_client} classes "
        f"per client), model `{b.model}` (hidden {b.hidden}), SGD eta={b.eta:g}, batch {b.batch_size}, no momentum.",
        f"- Time model t_sum={b.t_sum:g}, alpha={b.alpha:g}, beta={b.beta:g}: K = 1..{b.k_max}, "
        f"tau = {', '.join(str(b.replace(K=k).tau) for k in range(1, b.k_max + 1))}.",
        f"- Proof of work at {b.difficulty_bits} bits; lazy noise of variance sigma2.",
        f"- Seeds per point: {len(rep.seeds)} ({', '.join(map(str, rep.seeds))}); the seed draws the partition, "
        "the lazy clients, the initial model and every batch order.",
        f"- {len(rep.runs)} runs; summed run wall time {wall / 60:.1f} min; "
        f"this invocation ran {rep.ran} tasks and reused "
        f"{rep.skipped} from the store in {rep.elapsed_seconds / 60:.1f} min.",
        f"- Code versions: runs `{RUN.name}` version {RUN.version}, F(w*) `{OPTIMUM.name}` version "
        f"{OPTIMUM.version}; each is part of its stored result's key, so results of other code are never reused.",
        "- F(w*): centralized L-BFGS on the union of the clients' data, per dataset and seed (`f_star.csv`); "
        "the measured gap is F(w^K) − F(w*) of the same seed.",
        f"- Theory constants: profiles {', '.join(f'`{p}` ({d})' for d, p in rep.profiles.items())}.", "",
    ]


def _kstar_section(rep: Reproduction) -> list[str]:
    """The K* table (measured, with its bootstrap spread, against the paper and each form) and what it shows."""
    return [
        "## K*", "",
        "`k_star_measured_share` is the share of 1000 bootstrap resamples of the seeds in which the measured K* "
        "is the same K: the spread of the empirical K*. `k_star_measured_plausible` lists every K that is the "
        f"argmin in at least {PLAUSIBLE_SHARE:.0%} of the resamples.", "",
        markdown_table(rep.kstar_table, digits=3), "",
        _commentary(rep), "",
    ]


def _fig2_section(rep: Reproduction) -> list[str]:
    """Fig. 2 and, per data set and form, the bound's K* and how the bound tracks the measured gap at M = 0."""
    lines = ["## Fig. 2: the bound against the measured gap (M = 0)", "", "![fig2](fig2.png)", "",
             "At M = 0 there is no lazy term, so `per-round` and `printed` coincide; `+sc` marks the self-consistent "
             "form (epsilon set to the bound itself); a form is drawn at the K where it is finite.", ""]
    for d, gap in rep.gaps.items():
        for v, f in gap.fits.items():
            lines.append(
                f"- {d}, {v}: "
                f"bound's K* = {f.k_star_bound if f.k_star_bound is not None else 'none (no finite bound)'}, "
                f"measured K* = {gap.k_star_measured}, Spearman ρ over K = {_f(f.spearman)}, "
                f"calibration measured ≈ {_f(f.slope)}·bound + {_f(f.intercept)} "
                f"(R² = {_f(f.r2)}, {f.finite_points} K with a finite bound)."
            )
    return [*lines, ""]


#: The paper's own inconsistency about K*, said at the end of the commentary.
_CONTRADICTION = ("- The paper contradicts itself: its Fig. 3 text gives K* = 6 at M = 2 and 5 at M = 6 "
                  "(sigma2 = 0.01), so K* <= 6 for M >= 2, while its Fig. 4 text gives K* = 7 at M = 4 with the same "
                  "sigma2 = 0.01.")


def _commentary(rep: Reproduction) -> str:
    """What agrees and what does not: the measured K*'s spread, the paper's values, each form's error and ratio."""
    t = rep.kstar_table
    errors, form_lines = _form_errors(t)
    out = ["## What agrees and what does not", "", _settled_line(rep), *_paper_line(t), *_movement_lines(t),
           *form_lines, *_pair_lines(errors), *_ratio_lines(rep), _verdict(rep, errors), _CONTRADICTION]
    return "\n".join(out)


def _settled_line(rep: Reproduction) -> str:
    """In how many settings the measured K* is settled, and the plausible K where the seeds disagree."""
    t = rep.kstar_table
    settled = t.k_star_measured_share >= SETTLED_SHARE
    line = (f"- The measured K* is settled (the same K in at least {SETTLED_SHARE:.0%} of the bootstrap resamples) in "
            f"{int(settled.sum())} of {len(t)} settings with {len(rep.seeds)} seeds per point.")
    if (~settled).any():
        line += " In the others the seeds disagree (the share of the reported K*): " + "; ".join(
            f"{r.dataset} M={r.M} sigma2={r.sigma2:g} ({r.k_star_measured_share:.0%}, plausible K: "
            f"{r.k_star_measured_plausible.replace(' ', ', ')})" for r in t[~settled].itertuples()
        ) + "."
    return line


def _paper_line(t: pd.DataFrame) -> list[str]:
    """How often the measured K* is the paper's stated value, or among the plausible K (none without values)."""
    paper = t[t.k_star_paper.notna()]
    if not len(paper):
        return []
    hits = int((paper.k_star_measured == paper.k_star_paper).sum())
    plausible = sum(str(r.k_star_paper) in r.k_star_measured_plausible.split() for r in paper.itertuples())
    return [f"- The measured K* matches the paper's stated value in {hits} of {len(paper)} settings "
            + "(" + "; ".join(f"{r.dataset} M={r.M} sigma2={r.sigma2:g}: measured {r.k_star_measured}, paper "
                              f"{r.k_star_paper}" for r in paper.itertuples())
            + f"). The paper's value is among the plausible K in {plausible} of them."]


def _movement_lines(t: pd.DataFrame) -> list[str]:
    """Per data set, how the measured K* moves with M (Fig. 3) and with sigma2 (Fig. 4)."""
    lines = []
    for d in t.dataset.unique():
        sub = t[t.dataset == d]
        fig3 = sub[sub.sigma2 == 0.01].sort_values("M")
        fig4 = sub[sub.M == 4].sort_values("sigma2")
        lines.append(
            f"- {d}: measured K* over M = {', '.join(map(str, fig3.M))} (sigma2=0.01) is "
            f"{', '.join(map(str, fig3.k_star_measured))}; over sigma2 = {', '.join(f'{s:g}' for s in fig4.sigma2)} "
            f"(M=4) it is {', '.join(map(str, fig4.k_star_measured))}. {_movement(fig3.k_star_measured, 'M')} "
            f"{_movement(fig4.k_star_measured, 'sigma2')}"
        )
    return lines


def _form_errors(t: pd.DataFrame) -> tuple[dict[str, float], list[str]]:
    """Each form's mean absolute error in K* over the settings where it is finite (inf where nowhere), said."""
    errors: dict[str, float] = {}
    lines = []
    for form in FORMS:
        name = _column(form)
        col = t[name]
        ok = col.notna()
        if not ok.any():
            errors[form] = math.inf
            lines.append(f"- `{form}`: no setting has a finite bound, so it predicts no K*.")
            continue
        errors[form] = float(np.mean(np.abs(col[ok].astype(float) - t.k_star_measured[ok])))
        values = ", ".join(f"{d} {sorted(set(map(int, g[name].dropna())))}" for d, g in t[ok].groupby("dataset"))
        lines.append(
            f"- `{form}` predicts K* with mean absolute error {errors[form]:.2f} blocks over {int(ok.sum())} of "
            f"{len(t)} settings with a finite bound; its K* over the settings: {values}."
        )
    return errors, lines


def _pair_lines(errors: Mapping[str, float]) -> list[str]:
    """Which of each pair of forms (lazy term per round or once; each self-consistent) is closer."""
    lines = []
    for pair in (("per-round", "printed"), ("per-round+sc", "printed+sc")):
        a, b = (errors[p] for p in pair)
        if math.isinf(a) and math.isinf(b):
            lines.append(f"- Neither `{pair[0]}` nor `{pair[1]}` gives a finite bound in any setting.")
        elif a == b:
            lines.append(f"- Neither `{pair[0]}` nor `{pair[1]}` predicts the measured K* better than the other.")
        else:
            closer = min(pair, key=lambda p: errors[p])
            lines.append(f"- `{closer}` is the closer of `{pair[0]}` and `{pair[1]}` to the measured K*.")
    return lines


def _ratio_lines(rep: Reproduction) -> list[str]:
    """Per data set and form at M = 0: at how many K the bound is finite, and its ratio to the measured gap."""
    lines = []
    for d, gap in rep.gaps.items():
        for form in FORMS:
            ratio = gap.table[f"ratio_{form}"].dropna()
            if len(ratio):
                lines.append(
                    f"- {d}, `{form}` at M = 0: the bound is finite at {len(ratio)} of {len(gap.table)} K and "
                    f"{ratio.min():.3g} to {ratio.max():.3g} times the measured gap there."
                )
            else:
                lines.append(f"- {d}, `{form}` at M = 0: the bound is finite at no K (vacuous with these constants).")
    return lines


def _verdict(rep: Reproduction, errors: Mapping[str, float]) -> str:
    """One line on how far the theory can be trusted in these runs, from the numbers above."""
    t = rep.kstar_table
    parts = []
    vacuous = [v for v in FORMS if "+" not in v and math.isinf(errors[v])]
    if vacuous:
        parts.append(f"with the estimated constants the bound as printed ({', '.join(f'`{v}`' for v in vacuous)}) "
                     "is finite in no setting")
    said: dict[str, list[str]] = {}  # identical findings of several forms are said once
    for form in (f for f in FORMS if "+" in f and not math.isinf(errors[f])):
        ratios = pd.concat([g.table[f"ratio_{form}"].dropna() for g in rep.gaps.values()])
        finding = (f"K* = {_values(t[_column(form)].dropna())} (measured: {_values(t.k_star_measured)}), "
                   f"{ratios.min():.2g} to {ratios.max():.2g} times the measured gap at M = 0")
        said.setdefault(finding, []).append(f"`{form}`")
    parts += [f"{' and '.join(forms)}: {finding}" for finding, forms in said.items()]
    return "- In short: " + "; ".join(parts) + "." if parts else "- In short: no form of the bound was evaluated."


def _values(values: pd.Series) -> str:
    v = sorted(set(int(x) for x in values))
    return str(v[0]) if len(v) == 1 else f"{v[0]} to {v[-1]}"


def _movement(values: pd.Series, name: str) -> str:
    v = list(values)
    if len(set(v)) == 1:
        return f"It does not move with {name}."
    if all(b <= a for a, b in zip(v, v[1:])):
        return f"It falls (never rises) as {name} grows, as Remark 3 says."
    return f"It is not monotone in {name}."


def _f(x) -> str:
    return fmt(x, spec=".3g", missing="n/a")
