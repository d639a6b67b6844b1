"""Every K in 1..K_max for given M, sigma2 and seeds: the empirical K* and how loss and accuracy move with K.

A study (:class:`SweepKStudy`, the command ``bladefl-validate sweep-k``): every run is a stored task, so a
sweep resumes; :func:`sweep_k` is the same sweep from Python.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bladefl_platform.atomic import created_folder, remove_stale_temporaries
from bladefl_platform.errors import InputError
from bladefl_platform.execution import Execution, TaskOutcome
from bladefl_platform.report import fmt, k_axis, legend, markdown_table, mean_std_label, new_figure, regenerate
from bladefl_platform.report import save_figure
from bladefl_platform.store import ResultStore
from bladefl_platform.study import Runner, StudyRun, Tasks

from ..config import RunConfig
from ..tasks import RUN, task_context
from .base import RunStudy
from .kstar.scoring import BOOTSTRAP_DRAWS, kstar_shares, loss_table, table_kstar

__all__ = [
    "SweepResult",
    "SweepKStudy",
    "sweep_k",
    "sweep_configs",
    "summarize",
    "bootstrap_k_star",
    "write_sweep_report",
    "SWEEP_FILES",
]

#: Most runs one sweep makes (K_max times the seeds): beyond that the time budget, not the sweep, is wrong.
MAX_SWEEP_RUNS = 100_000
#: The report files of a sweep.
SWEEP_FILES = ("README.md", "runs.csv", "per_k.csv", "loss.png", "accuracy.png")


@dataclass(frozen=True)
class SweepResult:
    """Final metrics of every run, and their mean ± std per K."""

    base: RunConfig
    seeds: list[int]
    runs: pd.DataFrame
    per_k: pd.DataFrame
    skipped: int = 0

    @property
    def k_star(self) -> int:
        """The empirical K*: argmin over K of the mean final global training loss (:func:`.measured_kstar`)."""
        return table_kstar(loss_table(self.runs))


def sweep_configs(base: RunConfig, seeds: Sequence[int]) -> list[RunConfig]:
    """One config per K in 1..K_max and seed; InputError for more than :data:`MAX_SWEEP_RUNS`."""
    runs = base.k_max * len(seeds)
    if runs > MAX_SWEEP_RUNS:
        raise InputError(f"a sweep over K = 1..{base.k_max} and {len(seeds)} seed(s) is {runs:,} runs, more than "
                         f"{MAX_SWEEP_RUNS:,}: lower t_sum or raise alpha + beta")
    return [base.replace(K=K, seed=seed) for K in range(1, base.k_max + 1) for seed in seeds]


def summarize(configs: Sequence[RunConfig], results: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Final metrics per run, and their mean ± std per K."""
    runs = pd.DataFrame(
        [
            {
                "K": c.K,
                "seed": c.seed,
                "tau": c.tau,
                "final_global_train_loss": r["final_global_train_loss"],
                "final_test_loss": r["final_test_loss"],
                "final_test_accuracy": r["final_test_accuracy"],
                "wall_seconds": r["wall_seconds"],
            }
            for c, r in zip(configs, results)
        ]
    )
    metrics = ["final_global_train_loss", "final_test_loss", "final_test_accuracy", "wall_seconds"]
    grouped = runs.groupby("K")
    per_k = grouped[metrics].agg(["mean", "std"])
    per_k.columns = [f"{m}_{stat}" for m, stat in per_k.columns]
    per_k.insert(0, "tau", grouped["tau"].first())
    return runs, per_k


def sweep_k(
    base: RunConfig,
    seeds: Sequence[int],
    data_dir: str | Path | None = None,
    runs_dir: Path | None = None,
    store: ResultStore | None = None,
    execution: Execution = Execution(),
) -> SweepResult:
    """Run every K in 1..K_max for each seed (skipping runs already in ``store``)."""
    return SweepKStudy(base, seeds, runs_dir).compute(store, execution, task_context(data_dir))


def sweep_result(base: RunConfig, seeds: Sequence[int], configs: Sequence[RunConfig],
                 outcome: TaskOutcome) -> SweepResult:
    """The sweep of ``configs`` (:func:`sweep_configs`) from its runs' outcome."""
    runs, per_k = summarize(configs, outcome.results)
    return SweepResult(base=base, seeds=list(seeds), runs=runs, per_k=per_k, skipped=outcome.skipped)


def bootstrap_k_star(runs: pd.DataFrame, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> dict[int, float]:
    """How often each K is the empirical K* when the seeds are resampled with replacement."""
    table = loss_table(runs)
    return kstar_shares(table.to_numpy(), table.columns.to_numpy(), draws, np.random.default_rng(seed))


def write_sweep_report(result: SweepResult, folder: Path, command: str) -> None:
    """Write runs.csv, per_k.csv, README.md, loss.png and accuracy.png into ``folder``."""
    folder = Path(folder)
    result.runs.to_csv(folder / "runs.csv", index=False)
    result.per_k.to_csv(folder / "per_k.csv")
    per_k = result.per_k
    ks = per_k.index.to_numpy()
    b = result.base
    for name, column, label in (
        ("loss.png", "final_global_train_loss", "final global training loss F(w^K)"),
        ("accuracy.png", "final_test_accuracy", "final test accuracy"),
    ):
        fig, axes = new_figure(5.5, 4)
        ax = axes[0][0]
        std = per_k[f"{column}_std"].fillna(0.0)
        ax.errorbar(ks, per_k[f"{column}_mean"], yerr=std, fmt="o-", capsize=3,
                    label=mean_std_label("measured", len(result.seeds)))
        ax.axvline(result.k_star, color="grey", ls="--", lw=1, label=f"empirical K* = {result.k_star}")
        ax.set_title(f"{b.dataset}: N={b.N}, M={b.M}, sigma2={b.sigma2:g}, t_sum={b.t_sum:g}, beta={b.beta:g}",
                     fontsize=9)
        k_axis(ax, ks)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        legend(ax, fontsize=8)
        save_figure(fig, folder / name)

    lines = [
        f"# sweep-k: {b.dataset}, N={b.N}, M={b.M}, sigma2={b.sigma2:g}",
        "",
        *regenerate(command),
        f"Seeds: {', '.join(map(str, result.seeds))}. Time model: t_sum={b.t_sum:g}, alpha={b.alpha:g}, "
        f"beta={b.beta:g}, so K = 1..{b.k_max}. Model {b.model}, partition {b.partition}, "
        f"|D_i|={b.samples_per_client}, eta={b.eta:g}, batch {b.batch_size}.",
        "",
        f"**Empirical K* = {result.k_star}** (argmin over K of the mean final global training loss).",
        "",
        _stability(result.runs),
        "",
        markdown_table(pd.DataFrame({
            "K": per_k.index, "tau": per_k["tau"].astype(int).to_numpy(),
            "final training loss (mean ± std)": [_mean_std(per_k, "final_global_train_loss", k) for k in per_k.index],
            "test accuracy (mean ± std)": [_mean_std(per_k, "final_test_accuracy", k) for k in per_k.index],
        })),
        "",
        "![loss against K](loss.png)",
        "",
        "![accuracy against K](accuracy.png)",
        "",
    ]
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")


def _stability(runs: pd.DataFrame) -> str:
    """One sentence on how stable the empirical K* is under resampling the seeds."""
    if runs["seed"].nunique() < 2:
        return "One seed: no spread of K* can be stated; run more seeds."
    shares = bootstrap_k_star(runs)
    text = ", ".join(f"K={k}: {share:.0%}" for k, share in sorted(shares.items(), key=lambda kv: -kv[1]))
    return f"Bootstrap over seeds (1000 resamples), share of resamples in which each K is the empirical K*: {text}."


def _mean_std(per_k: pd.DataFrame, column: str, k: int) -> str:
    row = per_k.loc[k]
    return f"{fmt(row[f'{column}_mean'], spec='.4f')} ± {fmt(row[f'{column}_std'], spec='.4f', missing='n/a')}"


class SweepKStudy(RunStudy[SweepResult]):
    """Every K in 1..K_max of ``base`` for each seed; with ``runs_dir``, each run's folder (ledger and blobs) there."""

    command = "sweep-k"
    unit = "runs"

    def __init__(self, base: RunConfig, seeds: Sequence[int], runs_dir: Path | None = None):
        self.base, self.seeds, self.runs_dir = base, list(seeds), runs_dir
        self.configs = sweep_configs(base, self.seeds)

    def outputs(self, out: Path) -> Sequence[str]:
        return SWEEP_FILES

    def run_configs(self) -> list[RunConfig]:
        return self.configs

    def measure(self, run: Runner) -> list[TaskOutcome]:
        runs_dir = self.runs_dir
        with contextlib.ExitStack() as stack:
            context: dict[str, Any] = {}
            if runs_dir is not None:
                stack.enter_context(created_folder(runs_dir))
                # Folders of runs a killed sweep was writing; again at the end, for those of this sweep's workers.
                remove_stale_temporaries(runs_dir)
                stack.callback(remove_stale_temporaries, runs_dir)
                context["runs_dir"] = str(runs_dir.resolve())
            return [run(Tasks(RUN, [c.as_dict() for c in self.configs], "sweep-k", context))]

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> SweepResult:
        return sweep_result(self.base, self.seeds, self.configs, outcomes[0])

    def report(self, result: SweepResult, target: Path, command: str) -> None:
        write_sweep_report(result, target, command)

    def summary(self, run: StudyRun[SweepResult]) -> dict[str, Any]:
        r = run.result
        return {"out": run.out, "k_star": r.k_star, "seeds": r.seeds, "runs": len(r.runs), "skipped": r.skipped,
                "per_k": r.per_k.reset_index()}

    def text(self, run: StudyRun[SweepResult]) -> str:
        r = run.result
        return "\n".join([f"{run.out}: empirical K* = {r.k_star}", *(
            f"K={k} tau={int(row['tau'])} loss {row['final_global_train_loss_mean']:.4f} "
            f"acc {row['final_test_accuracy_mean']:.4f}" for k, row in r.per_k.iterrows())])
