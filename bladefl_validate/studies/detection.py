"""How well each lazy-client detector works, and what exclusion buys (``bladefl-validate detection-report``).

For every dataset, M, sigma2 and seed, each detector screens two runs of the same deployment: one
that only reports (precision and recall over every round and client) and one that leaves flagged
clients out of aggregation (final loss and accuracy with exclusion). Screening alone changes
nothing in training, so the report-only runs of the two detectors must end in the same model; the
report states how far apart they are. M = 0 runs give the honest baseline and the false-positive rate.

A study (:class:`DetectionStudy`) that owns its report folder whole; each run is a stored task
(:data:`DETECTION`, defined here). The simulator (and with it torch) is imported only when runs
happen or the report is written, so the command line can read the grid's defaults without it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bladefl_platform.errors import InputError
from bladefl_platform.execution import Execution, TaskKind, TaskOutcome, one_by_one
from bladefl_platform.report import fmt, markdown_table, new_figure, regenerate, save_figure
from bladefl_platform.store import ResultStore
from bladefl_platform.study import Layout, Runner, StudyRun, Tasks

from ..config import DETECTORS, SIMULATION_VERSION, RunConfig
from ..tasks import torch_threads
from .base import RunStudy

__all__ = [
    "SETTING",
    "DEFAULT_SIGMA2",
    "DEFAULT_M",
    "DETECTION_FILES",
    "DETECTION",
    "detection_task",
    "DetectionReport",
    "DetectionStudy",
    "check_grid",
    "run_detection_report",
    "write_detection_report",
]

#: The files of a detection report's folder.
DETECTION_FILES = ("README.md", "runs.csv", "cells.csv", "breakdown.csv", "detection.png", "accuracy.png")


#: The reduced deployment: the paper's N, |D_i|, alpha, beta and eta, with t_sum = 24 so K = 2 gives tau = 2.
SETTING: dict[str, Any] = dict(N=20, K=2, t_sum=24.0, alpha=1.0, beta=10.0, eta=0.01, samples_per_client=512,
                               difficulty_bits=8)
DEFAULT_SIGMA2 = (1e-8, 1e-7, 1e-6, 1e-4, 1e-2, 0.3)
DEFAULT_M = (2, 4, 6)

_F1_BROKEN = 0.5


def detection_task(config: Mapping[str, Any], context: Mapping[str, Any]) -> dict:
    """One run screened by its detector: how many screenings flagged whom, and the final loss and accuracy."""
    from ..plugins import load_plugins
    from ..simulation import simulate

    load_plugins()
    rc = RunConfig.from_dict(dict(config))
    start = time.perf_counter()
    result = simulate(rc, None, context.get("data_dir"))
    lazy = set(result.lazy)
    return {
        "flagged": sum(len(r.flagged) for r in result.rounds),
        "true_positives": sum(len(lazy.intersection(r.flagged)) for r in result.rounds),
        "lazy_screenings": len(lazy) * len(result.rounds),
        "honest_screenings": (rc.N - len(lazy)) * len(result.rounds),
        "final_global_train_loss": result.final.global_train_loss,
        "final_test_accuracy": result.final.test_accuracy,
        "seconds": time.perf_counter() - start,
    }


#: A run of the detection report (its results are a run's, so the simulator's version).
DETECTION = TaskKind("bladefl-detection-run", SIMULATION_VERSION, one_by_one(detection_task),
                     worker_setup=torch_threads)


@dataclass(frozen=True)
class DetectionReport:
    """Every run (``runs``), the table per dataset, detector, M and sigma2 (``cells``), and the summed run time."""

    base: RunConfig
    seeds: list[int]
    runs: pd.DataFrame
    cells: pd.DataFrame
    wall_seconds: float

    def breakdown(self) -> pd.DataFrame:
        """Per dataset, detector and M: the smallest sigma2 with F1 < 0.5 (NaN if none), the largest with F1 >= 0.9."""
        rows = []
        lazy = self.cells[self.cells["M"] > 0]
        for (dataset, detector, M), g in lazy.groupby(["dataset", "detector", "M"], sort=False):
            g = g.sort_values("sigma2")
            broken = g.loc[~(g["f1"] >= _F1_BROKEN), "sigma2"]
            good = g.loc[g["f1"] >= 0.9, "sigma2"]
            rows.append({"dataset": dataset, "detector": detector, "M": M,
                         "breaks_down_at": broken.min() if len(broken) else math.nan,
                         "works_up_to": good.max() if len(good) else math.nan})
        return pd.DataFrame(rows)


def check_grid(base: RunConfig, datasets: Sequence[str], Ms: Sequence[int], sigma2s: Sequence[float],
               seeds: Sequence[int]) -> None:
    """InputError unless every run of the grid has a valid config (checked before anything runs)."""
    if not datasets or not Ms or not sigma2s or not seeds:
        raise InputError("detection-report needs at least one dataset, M, sigma2 and seed")
    if any(M < 1 for M in Ms):
        raise InputError("detection-report: every M must be >= 1 (the honest baseline M = 0 is always run)")
    for dataset in datasets:
        for M in Ms:
            for s2 in sigma2s:
                for seed in seeds:
                    base.replace(dataset=dataset, M=M, sigma2=s2, seed=seed, detect=DETECTORS[0])


def run_detection_report(
    datasets: Sequence[str],
    Ms: Sequence[int],
    sigma2s: Sequence[float],
    seeds: Sequence[int],
    data_dir: str | Path | None = None,
    store: ResultStore | None = None,
    execution: Execution = Execution(),
    base: RunConfig | None = None,
) -> DetectionReport:
    """Run the grid (two runs per detector and cell: report only, and excluding) and tabulate it.

    ``base`` is the deployment (default: :data:`SETTING`); dataset, M, sigma2, seed and detection vary.
    """
    from ..tasks import task_context

    return DetectionStudy(datasets, Ms, sigma2s, seeds, base).compute(store, execution, task_context(data_dir))


class DetectionStudy(RunStudy[DetectionReport]):
    """Each detector on every dataset, M and sigma2 of the grid (and M = 0), each seed: report only, and excluding."""

    command = "detection-report"
    layout = Layout.FOLDER
    unit = "runs"

    def __init__(self, datasets: Sequence[str], Ms: Sequence[int], sigma2s: Sequence[float], seeds: Sequence[int],
                 base: RunConfig | None = None):
        self.base = base if base is not None else RunConfig(**SETTING)
        self.datasets, self.seeds = list(datasets), list(seeds)
        check_grid(self.base, self.datasets, Ms, sigma2s, self.seeds)
        grid = [(0, 0.0)] + [(M, float(s2)) for M in Ms for s2 in sigma2s]
        self.configs = [
            self.base.replace(dataset=dataset, M=M, sigma2=s2, seed=seed, detect=detector, exclude_flagged=exclude)
            for dataset in self.datasets for M, s2 in grid for seed in self.seeds for detector in DETECTORS
            for exclude in (False, True)
        ]

    def outputs(self, out: Path) -> Sequence[str]:
        return DETECTION_FILES

    def run_configs(self) -> list[RunConfig]:
        return [self.base.replace(dataset=d, seed=self.seeds[0]) for d in self.datasets]

    def tasks(self) -> list[Tasks]:
        return [Tasks(DETECTION, [c.as_dict() for c in self.configs], "detection-report")]

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> DetectionReport:
        runs = pd.DataFrame([
            {"dataset": c.dataset, "M": c.M, "sigma2": c.sigma2, "seed": c.seed, "detector": c.detect,
             "exclude_flagged": c.exclude_flagged, **r}
            for c, r in zip(self.configs, outcomes[0].results)
        ])
        return DetectionReport(self.base, self.seeds, runs, _cells(runs), float(runs["seconds"].sum()))

    def report(self, result: DetectionReport, target: Path, command: str) -> None:
        write_detection_report(result, target, command)

    def summary(self, run: StudyRun[DetectionReport]) -> dict[str, Any]:
        r = run.result
        return {"out": run.out, "runs": len(r.runs), "breakdown": r.breakdown(), "cells": r.cells}

    def text(self, run: StudyRun[DetectionReport]) -> str:
        lines = [f"{run.out}: {len(run.result.runs)} runs"]
        for _, row in run.result.breakdown().iterrows():
            at = row["breaks_down_at"]
            lines.append(f"{row['dataset']} {row['detector']} M={row['M']}: F1 < 0.5 from sigma2 = "
                         f"{'none in the grid' if at != at else format(at, 'g')}")
        return "\n".join(lines)


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def _cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Pooled over seeds: precision, recall and F1 of the report-only runs; mean final loss and accuracy of both."""
    rows = []
    for (dataset, detector, M, s2), g in runs.groupby(["dataset", "detector", "M", "sigma2"], sort=False):
        passive, excluding = g[~g["exclude_flagged"]], g[g["exclude_flagged"]]
        tp, flagged, lazy = (passive[c].sum() for c in ("true_positives", "flagged", "lazy_screenings"))
        precision, recall = _ratio(tp, flagged), _ratio(tp, lazy)
        rows.append({
            "dataset": dataset, "detector": detector, "M": M, "sigma2": s2,
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall > 0 else
            (0.0 if M > 0 else math.nan),
            "false_positive_rate": _ratio(flagged - tp, passive["honest_screenings"].sum()),
            "loss_without_exclusion": passive["final_global_train_loss"].mean(),
            "accuracy_without_exclusion": passive["final_test_accuracy"].mean(),
            "loss_with_exclusion": excluding["final_global_train_loss"].mean(),
            "accuracy_with_exclusion": excluding["final_test_accuracy"].mean(),
        })
    return pd.DataFrame(rows)


def _fmt(x: float, spec: str = ".2f") -> str:
    return fmt(x, spec=spec, missing="–")


def _plot(report: DetectionReport, folder: Path) -> None:
    cells = report.cells
    datasets = list(dict.fromkeys(cells["dataset"]))
    Ms = sorted(m for m in cells["M"].unique() if m > 0)
    styles = dict(zip(Ms, ("-", "--", ":", "-.")))
    colors = {"nn": "tab:blue", "noise": "tab:orange"}

    fig, axes = new_figure(5.5 * len(datasets), 7, 2, len(datasets))
    for col, dataset in enumerate(datasets):
        for row, metric in enumerate(("precision", "recall")):
            ax = axes[row][col]
            for detector in DETECTORS:
                for M in Ms:
                    g = cells[(cells["dataset"] == dataset) & (cells["detector"] == detector) & (cells["M"] == M)]
                    g = g.sort_values("sigma2")
                    ax.plot(g["sigma2"], g[metric], styles.get(M, "-"), marker="o", color=colors.get(detector),
                            label=f"{detector}, M={M}")
            ax.set_xscale("log")
            ax.set_ylim(-0.05, 1.05)
            ax.set_xlabel("sigma2 (variance of the lazy noise)")
            ax.set_ylabel(metric)
            ax.set_title(f"{dataset}: {metric}")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    save_figure(fig, folder / "detection.png")

    fig, axes = new_figure(4.5 * len(Ms), 3.6 * len(datasets), len(datasets), len(Ms))
    for r, dataset in enumerate(datasets):
        honest = cells[(cells["dataset"] == dataset) & (cells["M"] == 0)]["accuracy_without_exclusion"].mean()
        for c, M in enumerate(Ms):
            ax = axes[r][c]
            g = cells[(cells["dataset"] == dataset) & (cells["M"] == M)]
            base = g[g["detector"] == DETECTORS[0]].sort_values("sigma2")
            ax.plot(base["sigma2"], base["accuracy_without_exclusion"], "k-o", label="no exclusion")
            for detector in DETECTORS:
                d = g[g["detector"] == detector].sort_values("sigma2")
                ax.plot(d["sigma2"], d["accuracy_with_exclusion"], "--s", color=colors.get(detector),
                        label=f"excluding {detector}-flagged")
            ax.axhline(honest, color="grey", lw=1, ls=":", label="M = 0")
            ax.set_xscale("log")
            ax.set_xlabel("sigma2")
            ax.set_ylabel("final test accuracy")
            ax.set_title(f"{dataset}, M={M}")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    save_figure(fig, folder / "accuracy.png")


def _headline(report: DetectionReport) -> list[str]:
    """One bullet per detector: the sigma2 where it works on every dataset and M, and what exclusion changes."""
    lines = []
    cells = report.cells[report.cells["M"] > 0]
    for detector in DETECTORS:
        c = cells[cells["detector"] == detector]
        f1 = c.groupby("sigma2")["f1"]
        good = [s for s, ok in f1.apply(lambda x: bool((x >= 0.9).all())).items() if ok]
        bad = [s for s, ok in f1.apply(lambda x: bool((~(x >= _F1_BROKEN)).any())).items() if ok]
        gain = c["accuracy_with_exclusion"] - c["accuracy_without_exclusion"]
        worst = c.loc[c["accuracy_without_exclusion"].idxmin()]
        lines.append(
            f"- `{detector}`: F1 >= 0.9 on every dataset and M at sigma2 in {_set(good)}; F1 < {_F1_BROKEN} on "
            f"some dataset or M at sigma2 in {_set(bad)}. Excluding its flagged clients changes the final test "
            f"accuracy by {gain.mean():+.4f} on average (from {gain.min():+.4f} to {gain.max():+.4f}); in the "
            f"cell with the lowest accuracy without exclusion ({worst['dataset']}, M={worst['M']}, "
            f"sigma2={worst['sigma2']:g}) it goes from {worst['accuracy_without_exclusion']:.4f} to "
            f"{worst['accuracy_with_exclusion']:.4f}."
        )
        if detector == "nn" and bad:
            from ..learning.model import make_spec

            d = make_spec(report.base.model, report.base.hidden).dim
            lines.append(
                f"  - `nn` needs a copy to be closer to its source, sqrt(d·sigma2), than honest models are to each "
                f"other; with d = {d} parameters that distance is {math.sqrt(d * min(bad)):.2g} at sigma2 = "
                f"{min(bad):g} and {math.sqrt(d * max(bad)):.3g} at sigma2 = {max(bad):g}."
            )
    return lines


def _set(values: Sequence[float]) -> str:
    return "{" + ", ".join(f"{v:g}" for v in sorted(values)) + "}" if values else "{} (none)"


def _exclusion_rows(cells: pd.DataFrame, datasets: Sequence[str], sigma2s: Sequence[float]) -> list[list[Any]]:
    """Per dataset, M and sigma2: final loss / accuracy without exclusion, and excluding each detector's flagged."""
    by = cells.set_index(["dataset", "M", "sigma2", "detector"])
    rows = []
    for dataset in datasets:
        for M in sorted(m for m in cells["M"].unique() if m > 0):
            for s in sigma2s:
                none = by.loc[(dataset, M, s, DETECTORS[0])]
                parts = [f"{none['loss_without_exclusion']:.4f} / {none['accuracy_without_exclusion']:.4f}"]
                parts += [f"{by.loc[(dataset, M, s, d), 'loss_with_exclusion']:.4f} / "
                          f"{by.loc[(dataset, M, s, d), 'accuracy_with_exclusion']:.4f}" for d in DETECTORS]
                rows.append([dataset, M, f"{s:g}", *parts])
    return rows


def write_detection_report(report: DetectionReport, folder: Path, command: str) -> None:
    """Write runs.csv, cells.csv, breakdown.csv, detection.png, accuracy.png and README.md into ``folder``."""
    folder = Path(folder)
    report.runs.to_csv(folder / "runs.csv", index=False)
    report.cells.to_csv(folder / "cells.csv", index=False)
    breakdown = report.breakdown()
    breakdown.to_csv(folder / "breakdown.csv", index=False)
    _plot(report, folder)
    sigma2s = sorted(s for s in report.cells["sigma2"].unique() if s > 0)
    lines = [*_setting_section(report, command, sigma2s), "## Headline", "", *_headline(report), "",
             *_breakdown_section(breakdown), *_precision_recall_section(report.cells, sigma2s),
             *_exclusion_section(report.cells, sigma2s)]
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")


def _setting_section(report: DetectionReport, command: str, sigma2s: Sequence[float]) -> list[str]:
    """The README's title, how to regenerate it, and its setting: the deployment, the grid and the detectors."""
    from ..learning.detect import make_detector

    b, cells, runs = report.base, report.cells, report.runs
    passive = runs[~runs["exclude_flagged"]].set_index(["dataset", "M", "sigma2", "seed", "detector"])
    loss = passive["final_global_train_loss"].unstack("detector")
    passive_gap = float((loss.max(axis=1) - loss.min(axis=1)).max())
    datasets = list(dict.fromkeys(cells["dataset"]))
    thresholds = ", ".join(f"`{d}` {make_detector(d).threshold:g}" for d in DETECTORS)
    return [
        "# Detecting lazy clients: precision, recall and exclusion", "",
        *regenerate(command, "Generated by `bladefl-validate detection-report`; regenerate with:"),
        "## Setting", "",
        f"A reduced but real deployment: N={b.N} clients, |D_i|={b.samples_per_client}, K={b.K} blocks with "
        f"t_sum={b.t_sum:g}, alpha={b.alpha:g}, beta={b.beta:g} (so tau={b.tau} local epochs per block), "
        f"eta={b.eta:g}, batch {b.batch_size}, model {b.model} (hidden {b.hidden}), partition {b.partition} "
        f"({b.classes_per_client} classes per client), proof of work at {b.difficulty_bits} bits. "
        f"Datasets: {', '.join(datasets)}; M in {{{', '.join(str(m) for m in sorted(cells['M'].unique()) if m)}}} "
        f"plus M=0; sigma2 in {{{', '.join(f'{s:g}' for s in sigma2s)}}}; seeds {', '.join(map(str, report.seeds))}. "
        f"{len(runs)} runs, {report.wall_seconds / 60:.1f} minutes of compute (summed over runs).", "",
        f"Detectors (`bladefl_validate/learning/detect.py`) with their default thresholds ({thresholds}): `nn` flags "
        "a client whose nearest neighbour is much closer than the round's typical distance; `noise` flags one "
        "whose difference to its nearest neighbour has the same variance in every 64-coordinate block "
        "(Bartlett's test), as i.i.d. noise does. Of a suspicious pair only the model farther from the "
        "round's starting global model is flagged. Precision and recall count every (round, client) "
        "screening of the runs that only report, pooled over seeds; `–` means undefined (nothing flagged, "
        "or no lazy client).", "",
        f"Screening alone does not change training: the report-only runs of the two detectors end with "
        f"final losses that differ by at most {passive_gap:.2g}. A copy can be told from its source only "
        "while d·sigma2 exceeds about 2·sqrt(sigma2)·‖update‖ (its extra distance from the starting model "
        "against the random cross term); below that, one model of the pair is flagged at random.", "",
    ]


def _breakdown_section(breakdown: pd.DataFrame) -> list[str]:
    """Where each detector's F1 falls below :data:`_F1_BROKEN`, and up to where it stays at least 0.9."""
    columns = ["dataset", "detector", "M", "breaks down at sigma2", "F1 >= 0.9 up to sigma2"]
    rows = [{"dataset": r["dataset"], "detector": r["detector"], "M": r["M"],
             "breaks down at sigma2": fmt(r["breaks_down_at"], spec="g", missing="none"),
             "F1 >= 0.9 up to sigma2": _fmt(r["works_up_to"], "g")} for _, r in breakdown.iterrows()]
    return ["## Where detection breaks down", "",
            f"The smallest sigma2 of the grid at which F1 falls below {_F1_BROKEN} (`none` if it never does), "
            "and the largest at which F1 is at least 0.9:", "",
            markdown_table(pd.DataFrame(rows, columns=columns)), ""]


def _precision_recall_section(cells: pd.DataFrame, sigma2s: Sequence[float]) -> list[str]:
    """Precision / recall per dataset, detector, M and sigma2, then the honest baseline (M = 0)."""
    lazy = cells[cells["M"] > 0].set_index(["dataset", "detector", "M", "sigma2"])
    rows = [[dataset, detector, M, *(f"{_fmt(lazy.loc[(dataset, detector, M, s), 'precision'])} / "
                                     f"{_fmt(lazy.loc[(dataset, detector, M, s), 'recall'])}" for s in sigma2s)]
            for (dataset, detector, M), _ in lazy.groupby(level=[0, 1, 2], sort=False)]
    measures = ("loss_without_exclusion", "accuracy_without_exclusion", "loss_with_exclusion",
                "accuracy_with_exclusion")
    honest = [[r["dataset"], r["detector"], _fmt(r["false_positive_rate"], ".3f"), *(f"{r[c]:.4f}" for c in measures)]
              for _, r in cells[cells["M"] == 0].iterrows()]
    return ["## Precision / recall", "",
            markdown_table(pd.DataFrame(rows, columns=["dataset", "detector", "M",
                                                       *(f"sigma2={s:g}" for s in sigma2s)])), "",
            "Honest baseline (M = 0): share of honest screenings flagged (false positives), and the final loss and "
            "accuracy without and with exclusion:", "",
            markdown_table(pd.DataFrame(honest, columns=["dataset", "detector", "false positive rate", "loss",
                                                         "accuracy", "loss, excluding", "accuracy, excluding"])), ""]


def _exclusion_section(cells: pd.DataFrame, sigma2s: Sequence[float]) -> list[str]:
    """The final loss and accuracy with and without exclusion, the figures and the data files."""
    datasets = list(dict.fromkeys(cells["dataset"]))
    columns = ["dataset", "M", "sigma2", "no exclusion", "excluding `nn`-flagged", "excluding `noise`-flagged"]
    return ["## Final loss and accuracy, with and without exclusion", "",
            "Final global training loss F(w^K) / test accuracy after the last block.", "",
            markdown_table(pd.DataFrame(_exclusion_rows(cells, datasets, sigma2s), columns=columns)), "",
            "## Figures", "",
            "![precision and recall against sigma2](detection.png)", "",
            "![final test accuracy with and without exclusion](accuracy.png)", "",
            "Files: `runs.csv` (every run), `cells.csv` (the tables above), `breakdown.csv`.", ""]
