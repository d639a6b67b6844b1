"""Every K in 1..K_max for given M, sigma2 and seeds: the empirical K* and how loss and accuracy move with K."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import RunConfig
from .simulate import RoundMetrics, run_to_folder, simulate

__all__ = ["SweepResult", "sweep_k", "write_sweep_report"]


@dataclass(frozen=True)
class SweepResult:
    """Final metrics of every run, and their mean ± std per K."""

    base: RunConfig
    seeds: list[int]
    runs: pd.DataFrame
    per_k: pd.DataFrame

    @property
    def k_star(self) -> int:
        """The empirical K*: argmin over K of the mean final global training loss."""
        return int(self.per_k["final_global_train_loss_mean"].idxmin())


def sweep_k(
    base: RunConfig,
    seeds: Sequence[int],
    data_dir: str | Path | None = None,
    runs_dir: Path | None = None,
    on_run: Callable[[RunConfig], None] | None = None,
    on_round: Callable[[RoundMetrics], None] | None = None,
) -> SweepResult:
    """Run every K in 1..K_max for each seed; with ``runs_dir``, keep each run's folder there."""
    rows = []
    for K in range(1, base.k_max + 1):
        for seed in seeds:
            config = base.replace(K=K, seed=seed)
            if on_run is not None:
                on_run(config)
            if runs_dir is not None:
                result = run_to_folder(config, runs_dir / f"K{K:02d}-seed{seed}", data_dir, on_round)
            else:
                # Without runs_dir the ledger and blobs live only as long as the run.
                tmp = Path(tempfile.mkdtemp(prefix="bladefl-run-"))
                try:
                    result = simulate(config, tmp, data_dir, on_round)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
            s = result.summary()
            rows.append(
                {
                    "K": K,
                    "seed": seed,
                    "tau": config.tau,
                    "final_global_train_loss": s["final_global_train_loss"],
                    "final_test_loss": s["final_test_loss"],
                    "final_test_accuracy": s["final_test_accuracy"],
                    "wall_seconds": s["wall_seconds"],
                }
            )
    runs = pd.DataFrame(rows)
    metrics = ["final_global_train_loss", "final_test_loss", "final_test_accuracy", "wall_seconds"]
    grouped = runs.groupby("K")
    per_k = grouped[metrics].agg(["mean", "std"])
    per_k.columns = [f"{m}_{stat}" for m, stat in per_k.columns]
    per_k.insert(0, "tau", grouped["tau"].first())
    return SweepResult(base=base, seeds=list(seeds), runs=runs, per_k=per_k)


def write_sweep_report(result: SweepResult, folder: Path, command: str) -> None:
    """Write runs.csv, per_k.csv, README.md, loss.png and accuracy.png into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    result.runs.to_csv(folder / "runs.csv", index=False)
    result.per_k.to_csv(folder / "per_k.csv")
    per_k = result.per_k
    ks = per_k.index.to_numpy()
    for name, column, label in (
        ("loss.png", "final_global_train_loss", "final global training loss F(w^K)"),
        ("accuracy.png", "final_test_accuracy", "final test accuracy"),
    ):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        std = per_k[f"{column}_std"].fillna(0.0)
        ax.errorbar(ks, per_k[f"{column}_mean"], yerr=std, fmt="o-", capsize=3)
        ax.axvline(result.k_star, color="grey", ls="--", lw=1, label=f"empirical K* = {result.k_star}")
        b = result.base
        ax.set_title(f"{b.dataset}: N={b.N}, M={b.M}, sigma2={b.sigma2:g}, {len(result.seeds)} seed(s)")
        ax.set_xlabel("K (blocks)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)

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


def _std(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.4f}"
