"""Every K in 1..K_max for given M, sigma2 and seeds: the empirical K* and how loss and accuracy move with K.

Runs execute through dask.distributed (:func:`bladefl_platform.execution.run_tasks`) and each
finished run is recorded in a :class:`~bladefl_platform.store.ResultStore`, so a sweep resumes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bladefl_platform.execution import Execution, TaskKind, run_tasks
from bladefl_platform.report import k_axis, legend, mean_std_label, new_figure, save_figure
from bladefl_platform.store import ResultStore

from .config import RunConfig
from .simulation import SIMULATION_VERSION, batch_key, run_to_folder, simulate_many
from .tasks import task_context

__all__ = [
    "SweepResult",
    "sweep_k",
    "sweep_configs",
    "summarize",
    "bootstrap_k_star",
    "write_sweep_report",
    "run_batch",
    "RUN",
    "BATCH_SIZE",
]

#: Runs trained together in one task, at most (see simulate_many).
BATCH_SIZE = 8


def run_batch(configs: list[Mapping[str, Any]], context: Mapping[str, Any]) -> list[dict]:
    """Runs that share a batch key, simulated together: each run's summary, JSON-ready.

    With ``context["runs_dir"]``, each run's folder (ledger and blobs) is kept there; otherwise the
    ledger and blobs live in memory only as long as the run.
    """
    rcs = [RunConfig.from_dict(dict(c)) for c in configs]
    data_dir = context.get("data_dir")
    runs_dir = context.get("runs_dir")
    start = time.process_time()
    if runs_dir:
        results = [run_to_folder(rc, Path(runs_dir) / f"K{rc.K:02d}-seed{rc.seed}", data_dir, overwrite=True)
                   for rc in rcs]
    else:
        results = simulate_many(rcs, None, data_dir, evaluate_rounds="final")
    # The batch's CPU time (every thread of this process), shared evenly: what a campaign costs.
    cpu = (time.process_time() - start) / len(rcs)
    return [{**r.summary(), "cpu_seconds": cpu} for r in results]


def _batch_key(config: Mapping[str, Any]) -> tuple:
    return batch_key(RunConfig.from_dict(dict(config)))


#: One simulation run, as the result store knows it.
RUN = TaskKind("bladefl-run", SIMULATION_VERSION, run_batch, _batch_key, BATCH_SIZE)


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
        """The empirical K*: argmin over K of the mean final global training loss."""
        return int(self.per_k["final_global_train_loss_mean"].idxmin())


def sweep_configs(base: RunConfig, seeds: Sequence[int]) -> list[RunConfig]:
    """One config per K in 1..K_max and seed."""
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
    configs = sweep_configs(base, seeds)
    context = task_context(data_dir, runs_dir)
    outcome = run_tasks(RUN, [c.as_dict() for c in configs], store, context, execution, desc="sweep-k")
    runs, per_k = summarize(configs, outcome.results)
    return SweepResult(base=base, seeds=list(seeds), runs=runs, per_k=per_k, skipped=outcome.skipped)


def bootstrap_k_star(runs: pd.DataFrame, draws: int = 1000, seed: int = 0) -> dict[int, float]:
    """How often each K is the empirical K* when the seeds are resampled with replacement."""
    rng = np.random.default_rng(seed)
    table = runs.pivot(index="seed", columns="K", values="final_global_train_loss")
    values = table.to_numpy()
    picks = rng.integers(0, len(values), size=(draws, len(values)))
    winners = table.columns.to_numpy()[np.argmin(values[picks].mean(axis=1), axis=1)]
    ks, counts = np.unique(winners, return_counts=True)
    return {int(k): float(c) / draws for k, c in zip(ks, counts)}


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

    b = result.base
    lines = [
        f"# sweep-k: {b.dataset}, N={b.N}, M={b.M}, sigma2={b.sigma2:g}",
        "",
        "Regenerate with:",
        "",
        f"    {command}",
        "",
        f"Seeds: {', '.join(map(str, result.seeds))}. Time model: t_sum={b.t_sum:g}, alpha={b.alpha:g}, "
        f"beta={b.beta:g}, so K = 1..{b.k_max}. Model {b.model}, partition {b.partition}, "
        f"|D_i|={b.samples_per_client}, eta={b.eta:g}, batch {b.batch_size}.",
        "",
        f"**Empirical K* = {result.k_star}** (argmin over K of the mean final global training loss).",
        "",
        _stability(result.runs),
        "",
        "| K | tau | final training loss (mean ± std) | test accuracy (mean ± std) |",
        "|---|---|---|---|",
    ]
    for k, row in per_k.iterrows():
        lines.append(
            f"| {k} | {int(row['tau'])} | {row['final_global_train_loss_mean']:.4f} ± "
            f"{_std(row['final_global_train_loss_std'])} | {row['final_test_accuracy_mean']:.4f} ± "
            f"{_std(row['final_test_accuracy_std'])} |"
        )
    lines += ["", "![loss against K](loss.png)", "", "![accuracy against K](accuracy.png)", ""]
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")


def _stability(runs: pd.DataFrame) -> str:
    """One sentence on how stable the empirical K* is under resampling the seeds."""
    if runs["seed"].nunique() < 2:
        return "One seed: no spread of K* can be stated; run more seeds."
    shares = bootstrap_k_star(runs)
    text = ", ".join(f"K={k}: {share:.0%}" for k, share in sorted(shares.items(), key=lambda kv: -kv[1]))
    return f"Bootstrap over seeds (1000 resamples), share of resamples in which each K is the empirical K*: {text}."


def _std(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.4f}"
