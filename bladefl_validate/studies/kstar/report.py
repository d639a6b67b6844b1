"""The K* study's reports: the prediction report (README, CSVs and figures) and the confirmation's (README, CSVs and
the calibrated profiles the package ships), from a finished analysis."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bladefl_theory.calibration import Calibration
from bladefl_theory.forms import form_values
from bladefl_theory.timemodel import tau
from bladefl_platform.report import fmt, k_axis, legend, markdown_table, mean_std_label, new_figure, regenerate
from bladefl_platform.report import save_figure

from ...tasks import SIMULATION_VERSION
from .analysis import (
    CANDIDATES,
    CHOSEN_ON,
    PREDICTORS,
    DatasetAnalysis,
    FormChoice,
    KStarResult,
    _runs_of,
    _system,
    calibrated,
    split_half_summary,
)
from .design import Design, Setting
from .scoring import TARGETS_TEXT, TEST, VALIDATION, aggregate, meets_targets, part_of, seed_table, table_kstar

__all__ = ["write_report", "report_files", "summary_text", "verdict", "STUDY_PARTS", "pct", "score_line",
           "score_table", "forms_table", "split_table", "REPORT", "FRESH", "CHOSEN_ON", "profile_name",
           "confirm_files", "profile_document", "calibrated_profile", "confirm_readme", "write_confirmation"]

def report_files(design: Design) -> list[str]:
    """The files :func:`write_report` writes for ``design``."""
    return ["README.md", "summary.md", "held_out.csv", "scores.csv", "forms.csv", "split_half.csv", "calibration.csv",
            "residuals.csv", "measured.csv", "kstar.png", "curves.png"]


def pct(x: float) -> str:
    """A hit rate or regret as the K* reports print it (a missing one as —)."""
    return fmt(x, spec=".1%", missing="—")


def score_line(row: Mapping[str, Any]) -> str:
    """One predictor's scores (a row of :meth:`DatasetAnalysis.scores`, with its ``part`` if it has one), as a line
    of a command's output."""
    part = f"{row['part']:8s} " if "part" in row else ""
    return (f"{row['dataset']:14s} {part}{row['predictor']:28s} hit {pct(row['hit_rate']):>6}  median regret "
            f"{pct(row['median_regret']):>6}  worst {pct(row['worst_regret']):>6}  "
            f"({row['answered']}/{row['settings']})")


def score_table(analyses: Sequence[DatasetAnalysis], part: str | None = None) -> pd.DataFrame:
    """The scores of every predictor as the reports show them, over all held-out settings or one ``part``."""
    rows = []
    for a in analyses:
        for r in a.scores(part).itertuples():
            rows.append({"data set": a.dataset, "predictor": r.predictor, "held-out": r.settings,
                         "answered": r.answered, "hit rate": pct(r.hit_rate), "median regret": pct(r.median_regret),
                         "worst regret": pct(r.worst_regret)})
    return pd.DataFrame(rows)


def _split_row(summary: pd.DataFrame, dataset: str, who: str) -> pd.Series | None:
    """The split-half scores on the test of ``dataset`` for ``who`` (the calibrated form, or a fresh measurement)."""
    if summary.empty:
        return None
    rows = summary[(summary.dataset == dataset) & (summary.settings == TEST) & (summary.who == who)]
    return rows.iloc[0] if len(rows) else None


def verdict(analyses: Sequence[DatasetAnalysis], choice: FormChoice, summary: pd.DataFrame,
            parts: Sequence[tuple[str | None, str]] = ((TEST, "off-grid test settings"),
                                                       (None, "held-out settings (arms and off-grid)"))) -> list[str]:
    """Per data set and part: the chosen form's scores against the targets and every baseline, and on the test
    against a fresh measurement (``summary``, the split-half scores)."""
    chosen_name = calibrated(choice.form)
    lines = []
    for a in analyses:
        for part, what in parts:
            s = a.scores(part).set_index("predictor")
            chosen = s.loc[chosen_name]
            if not chosen["settings"]:
                continue
            beaten = [name for name in PREDICTORS if name != chosen_name and s.loc[name, "answered"]
                      and (chosen["hit_rate"] < s.loc[name, "hit_rate"]
                           or chosen["median_regret"] > s.loc[name, "median_regret"]
                           or chosen["worst_regret"] > s.loc[name, "worst_regret"])]
            constants = ("pilot's K*", "pilot's tau")
            better_than_constants = all(
                chosen["hit_rate"] > s.loc[c, "hit_rate"] or chosen["median_regret"] < s.loc[c, "median_regret"]
                or chosen["worst_regret"] < s.loc[c, "worst_regret"] for c in constants)
            line = (f"- **{a.dataset}**, {int(chosen['settings'])} {what}: the calibrated {choice.form} form puts K* "
                    f"in the measured plausible set in {pct(chosen['hit_rate'])}, median regret "
                    f"{pct(chosen['median_regret'])}, worst {pct(chosen['worst_regret'])}: "
                    f"{'meets' if meets_targets(chosen) else 'misses'} the targets ({TARGETS_TEXT}). "
                    + ("At least as good as every baseline on all three figures" if not beaten else
                       f"Behind on at least one figure: {', '.join(beaten)}")
                    + ("; better than both constant baselines on at least one figure." if better_than_constants else
                       "; not better than the constant baselines on any figure."))
            fresh = _split_row(summary, a.dataset, "fresh measurement")
            if part == TEST and fresh is not None:
                r, q = fresh, _split_row(summary, a.dataset, "calibrated form")
                if q is not None:
                    line += (f" Against half of the seeds, a fresh measurement at the setting itself scores "
                             f"{pct(r.hit_rate)}, {pct(r.median_regret)}, {pct(r.worst_regret)}, the form "
                             f"{pct(q.hit_rate)}, {pct(q.median_regret)}, {pct(q.worst_regret)}.")
            lines.append(line)
    return lines


def _time_model_table(analyses: Sequence[DatasetAnalysis], frame: pd.DataFrame, design: Design,
                      form: str) -> pd.DataFrame:
    """The centre and the t_sum and beta arms: does the best tau stay put when the budget or the mining time moves?"""
    rows = []
    for a in analyses:
        f = a.frame()
        for s in [*a.pilots, *a.held_out]:
            if s.role not in ("centre", "arm:t_sum", "arm:beta"):
                continue
            runs = _runs_of(frame, s)
            table = seed_table(runs)
            k = table_kstar(table)
            tau_of = {int(kk): int(t) for kk, t in runs.groupby("K").tau.first().items()}
            row = f[(f.predictor == calibrated(form)) & (f.t_sum == s.t_sum) & (f.beta == s.beta) & (f.M == s.M)
                    & (f.sigma2 == s.sigma2)]
            plausible = list(map(int, row.plausible.iloc[0].split())) if len(row) else [k]
            predicted = int(row.k_pred.iloc[0]) if len(row) and row.k_pred.notna().iloc[0] else None
            rows.append({"data set": a.dataset, "t_sum": s.t_sum, "beta": s.beta, "role": s.role,
                         "K_max": s.k_max(design.base),
                         "measured K*": k, "tau at K*": tau_of[k],
                         "plausible tau": " ".join(str(tau_of[p]) for p in plausible if p in tau_of),
                         f"{form}'s K*": predicted if not design.is_pilot(s) else "(pilot)",
                         f"{form}'s tau": tau(predicted, s.t_sum, design.base.alpha, s.beta) if predicted else ""})
    return pd.DataFrame(rows).sort_values(["data set", "beta", "t_sum"])


def _calibration_table(analyses: Sequence[DatasetAnalysis]) -> pd.DataFrame:
    rows = []
    for a in analyses:
        for form, cal in a.calibrations.items():
            for name, value in cal.all_constants().items():
                spread = cal.spread.get(name, math.nan)
                rows.append({"data set": a.dataset, "form": form, "constant": name, "value": value,
                             "relative spread (bootstrap)": (math.expm1(spread) if not math.isnan(spread)
                                                             else math.nan),
                             "fitted": name in cal.constants})
    return pd.DataFrame(rows)


def _measured_table(frame: pd.DataFrame, design: Design) -> pd.DataFrame:
    g = frame.groupby(["dataset", "t_sum", "beta", "M", "sigma2", "K"])
    out = g.final_global_train_loss.agg(["mean", "std", "count"]).reset_index()
    out.insert(6, "tau", [int(t) for t in g.tau.first().to_numpy()])
    return out.rename(columns={"mean": "loss_mean", "std": "loss_std", "count": "seeds"})


def _coverage(frame: pd.DataFrame, design: Design, analyses: Sequence[DatasetAnalysis]) -> list[str]:
    """Which K were measured where K_max exceeds the full-K limit."""
    lines = []
    for a in analyses:
        for s in [*a.pilots, *a.held_out]:
            km = s.k_max(design.base)
            if km <= design.full_k_up_to:
                continue
            runs = _runs_of(frame, s)
            ks = sorted(int(k) for k in runs.K.unique())
            lines.append(f"- {s.label} (K_max = {km}): K = {', '.join(map(str, ks))}")
    return lines


def _figures(analyses: Sequence[DatasetAnalysis], frame: pd.DataFrame, design: Design, folder: Path,
             form: str) -> None:
    """The report's two figures: kstar.png and curves.png."""
    _kstar_figure(analyses, folder, form)
    _curves_figure(analyses, frame, design, folder, form)


def _kstar_figure(analyses: Sequence[DatasetAnalysis], folder: Path, form: str) -> None:
    """Predicted against measured K* at every held-out setting."""
    fig, grid = new_figure(6.5 * len(analyses), 5, 1, len(analyses))
    axes = grid[0]
    shown = (calibrated(form), calibrated("per-round"), "pilot's tau")
    markers = dict(zip(shown, ("o", "s", "^")))
    for ax, a in zip(axes, analyses):
        f = a.frame()
        settings = f[f.predictor == calibrated(form)].sort_values(["k_measured", "t_sum", "beta"])
        settings = settings.reset_index(drop=True)
        x = np.arange(len(settings))
        lo = [min(map(int, p.split())) for p in settings.plausible]
        hi = [max(map(int, p.split())) for p in settings.plausible]
        ax.vlines(x, lo, hi, color="0.75", lw=6, label="measured plausible set")
        ax.plot(x, settings.k_measured, "k_", ms=12, mew=2, label="measured K*")
        for j, name in enumerate(shown):
            g = f[f.predictor == name].set_index(["t_sum", "beta", "M", "sigma2"])
            ys = [g.loc[(r.t_sum, r.beta, r.M, r.sigma2), "k_pred"] for r in settings.itertuples()]
            ax.plot(x + (j - 1) * 0.18, ys, markers[name], ms=5, ls="none", label=name)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{r.role.replace('arm:', '')}\n{r.t_sum:g}/{r.beta:g}/{r.M}/{r.sigma2:g}"
                            for r in settings.itertuples()], rotation=90, fontsize=6)
        ax.set_ylabel("K (blocks)")
        ax.set_yscale("log")
        from matplotlib.ticker import LogLocator, ScalarFormatter

        ax.yaxis.set_major_locator(LogLocator(base=2))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.set_title(f"{a.dataset}: K* at {len(settings)} held-out settings (t_sum/beta/M/sigma2)", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        legend(ax, fontsize=7)
    save_figure(fig, folder / "kstar.png")


def _curves_figure(analyses: Sequence[DatasetAnalysis], frame: pd.DataFrame, design: Design, folder: Path,
                   form: str) -> None:
    """Loss curves: measured against predicted, at a few held-out settings per data set."""
    picks = [_pick(a) for a in analyses]
    cols = max(len(p) for p in picks)
    fig, axes = new_figure(3.6 * cols, 3.2 * len(analyses), len(analyses), cols)
    for row, (a, settings) in enumerate(zip(analyses, picks)):
        for col, s in enumerate(settings):
            ax = axes[row][col]
            runs = _runs_of(frame, s)
            m = runs.groupby("K").final_global_train_loss.agg(["mean", "std", "count"])
            ax.errorbar(m.index, m["mean"], yerr=m["std"].fillna(0), fmt="o", ms=3, color="k", capsize=2,
                        label=mean_std_label("measured", int(m["count"].min())))
            ks = np.arange(1, s.k_max(design.base) + 1)
            for drawn, style in ((form, "-"), ("per-round", "--")):
                cal = a.calibrations[drawn]
                ax.plot(ks, form_values(drawn, ks, _system(design, s), cal.all_constants()), style,
                        label=calibrated(drawn))
            ax.set_title(f"{a.dataset} {s.role}\nt_sum={s.t_sum:g} beta={s.beta:g} M={s.M} sigma2={s.sigma2:g}",
                         fontsize=8)
            k_axis(ax, list(m.index))
            ax.set_ylabel("final training loss")
            ax.grid(alpha=0.3)
            ax.set_ylim(bottom=0)
            top = float(np.nanmax(m["mean"] + m["std"].fillna(0)))
            ax.set_ylim(0, top * 1.3)
            if col == 0:
                ax.legend(fontsize=6)
        for col in range(len(settings), cols):
            axes[row][col].set_visible(False)
    save_figure(fig, folder / "curves.png")


def _pick(a: DatasetAnalysis) -> list[Setting]:
    """Held-out settings to draw: the ends of the beta arm, the t_sum arm's other end, and off-grid points."""
    chosen = [s for s in a.held_out if s.role in ("arm:beta", "arm:t_sum")]
    chosen += [s for s in a.held_out if s.role == "arm:sigma2" and s.sigma2 == 0.1]
    chosen += [s for s in a.held_out if s.role == "off-grid"][:3]
    return chosen[:8]


def write_report(result: KStarResult, design: Design, folder: Path, command: str) -> None:
    """Everything the report folder holds, from the study's result (its analyses, runs and choice)."""
    folder = Path(folder)
    analyses, frame, choice, split = result.analyses, result.frame, result.choice, result.split_half
    summary = split_half_summary(split)
    per_setting = pd.concat([a.frame() for a in analyses], ignore_index=True)
    per_setting.to_csv(folder / "held_out.csv", index=False)
    scores = pd.concat([a.scores(part).assign(part=part or "all") for part in (None, VALIDATION, TEST)
                        for a in analyses], ignore_index=True)
    scores.to_csv(folder / "scores.csv", index=False)
    choice.scores.to_csv(folder / "forms.csv", index=False)
    split.to_csv(folder / "split_half.csv", index=False)
    _calibration_table(analyses).to_csv(folder / "calibration.csv", index=False)
    pd.concat([a.calibrations[f].residuals.assign(dataset=a.dataset, form=f) for a in analyses for f in a.calibrations],
              ignore_index=True).to_csv(folder / "residuals.csv", index=False)
    _measured_table(frame, design).to_csv(folder / "measured.csv", index=False)
    _figures(analyses, frame, design, folder, choice.form)
    (folder / "README.md").write_text(_readme(result, design, command, summary), encoding="utf-8")
    (folder / "summary.md").write_text(summary_text(analyses, choice, summary), encoding="utf-8")


#: The parts of the K* study's held-out settings its summary and verdict show, and what they call them.
STUDY_PARTS = ((TEST, "off-grid (test)"), (VALIDATION, "arms (validation)"), (None, "all held-out"))


def summary_text(analyses: Sequence[DatasetAnalysis], choice: FormChoice, summary: pd.DataFrame,
                 parts: Sequence[tuple[str | None, str]] = STUDY_PARTS, chosen_on: str = "the arms") -> str:
    """The results in one table, as the project's README quotes them (a test holds the two equal): the chosen form
    on each of ``parts`` (the test first), the forms not chosen and a fresh measurement (``summary``, the split-half
    scores) on the test."""
    rows = []
    test = dict(parts)[TEST]

    def row(dataset: str, what: str, n: int, r) -> None:
        rows.append({"data set": dataset, "settings": what, "n": n, "K* in the plausible set": pct(r.hit_rate),
                     "median regret": pct(r.median_regret), "worst regret": pct(r.worst_regret)})

    for a in analyses:
        for part, what in parts:
            r = a.scores(part).set_index("predictor").loc[calibrated(choice.form)]
            row(a.dataset, what, int(r.settings), r)
        # The candidates the rule did not choose, on the same test: whether the choice held up there.
        for form in (f for f in CANDIDATES if f != choice.form):
            r = a.scores(TEST).set_index("predictor").loc[calibrated(form)]
            row(a.dataset, f"{test}, the {form} form (not chosen)", int(r.settings), r)
        fresh = _split_row(summary, a.dataset, "fresh measurement")
        if fresh is not None:
            row(a.dataset, f"{test}, a fresh measurement vs half the seeds", int(fresh["held-out"]), fresh)
    return (f"Chosen form: **{choice.form}** (on {chosen_on}). Calibrated {choice.form} form, unless a row "
            "names another:\n\n" + markdown_table(pd.DataFrame(rows)) + "\n")


def forms_table(choice: FormChoice, settings: str = "validation settings") -> pd.DataFrame:
    """The candidates' scores on the settings ``choice`` was made on (``settings``: their column's name)."""
    return pd.DataFrame([{"form": r.form + (" (chosen)" if r.form == choice.form else ""),
                          settings: r.settings, "hit rate": pct(r.hit_rate),
                          "mean regret": pct(r.mean_regret), "median regret": pct(r.median_regret),
                          "worst regret": pct(r.worst_regret)} for r in choice.scores.itertuples()])


def split_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Split-half scores (:func:`~.analysis.split_half_summary`) as the reports show them."""
    if summary.empty:
        return summary
    return pd.DataFrame([{"data set": r.dataset, "settings": r.settings, "held-out": r._3, "K* from": r.who,
                          "hit rate": pct(r.hit_rate), "median regret": pct(r.median_regret),
                          "worst regret": pct(r.worst_regret)} for r in summary.itertuples()])


def _seeds_text(design: Design) -> str:
    figure = max(design.figure_seeds, design.base_seeds)
    extra = f" ({figure} at the paper's Fig. 3 and 4 settings)" if figure != design.base_seeds else ""
    return (f"Seeds: {design.base_seeds} per setting{extra}, {design.seed_step} more at a time (up to "
            f"{design.max_seeds}) wherever the plausible set spanned more than {design.max_width} blocks.")


#: The prose of the K* report's README that depends on no number: one string per paragraph or list.
_HIT_TEXT = (
    "Hit: the predicted K* is in the measured plausible set (every K that is the argmin of the mean loss in at "
    "least {share:.0%} of {draws} bootstrap resamples of the seeds; seeds are resampled whole, so K are compared "
    "paired). Regret: measured mean loss at the predicted K* / measured mean loss at the measured K* − 1. A "
    "predictor that finds no finite K* has no answer there (a miss, without a regret).")
_SPLIT_TEXT = (
    "The measured K* is itself noisy: the loss at neighbouring K often differs by less than its spread over "
    "seeds. To see how much of a miss is the measurement's, every held-out setting's seeds are split at random "
    "into two halves, 20 times: the truth is the first half's plausible set and mean loss, and two K* are "
    "scored against it alike: the calibrated form's, and a fresh measurement's (the argmin of the second half's "
    "mean: what running the setting itself, with as many seeds, would have chosen). Per setting the hits and "
    "regrets are averaged over the splits.")
_CALIBRATION_TEXT = (
    "Pilots (per data set, the only settings any calibration sees): {pilots}. Every calibrated form is fitted "
    "to the pilots' mean loss per K by least squares on the log loss, from 40 random starts; the spread is the "
    "standard deviation over refits on bootstrap resamples of the seeds. The band of `bladefl-theory kstar` is "
    "every K whose predicted loss is within the fit's rms error of the minimum.")
_FORMS_TEXT = [
    "- **per-round (calibrated)**: the paper's per-round bound 1/D(K) with L, xi, delta, phi and theta fitted "
    "(epsilon fixed at the estimated profile's value: only ratios to it are identifiable).",
    "- **drift** and **saturating** (`bladefl_theory.forms`, where each term is argued): "
    "F(w^K) = (1 + kappa·M/N)·[1/(1/F0 + eta·phi·E) + drift·(1 − exp(−tau/tau0))] + (M·sigma2/N²)·(c0 + c1·K), "
    "with E = K·tau local epochs of progress (drift) or E = K·tau0·(1 − exp(−tau/tau0)), progress that "
    "saturates as a client nears its own optimum (saturating).",
]
_HISTORY_TEXT = (
    "The paper's bound, even with its constants fitted, cannot follow the measured curves: its divergence term "
    "grows as lambda^tau without limit, and the lazy term enters 1/D, where the measured lazy damage adds to the "
    "loss. The drift form was designed on the committed paper reproduction (t_sum = 100, beta = 10, the M and "
    "sigma2 arms) and on the pilots. It erred low where mining is cheap (beta = 2.5: K* 8 to 10 where 15 to 18 "
    "was measured): every local epoch counts as progress in it, so it favours long rounds. The saturating form, "
    "and the lazy factor on the whole trained loss (which keeps K* non-increasing in M, Remark 3), were fixed "
    "on the pilots and the arms alone; the off-grid points took no part in either form or in the choice "
    "between them, though the drift form's earlier off-grid scores had been published (they showed the same "
    "low bias as the arms).")
_FILES_TEXT = [
    "- `held_out.csv`: every held-out setting and predictor: predicted K*, measured K*, plausible set, hit, regret "
    "and its bootstrap standard deviation",
    "- `summary.md`: the chosen form's scores in one table, as the project's README quotes them",
    "- `scores.csv`: hit rate, median and worst regret per data set, predictor and part (all, arms, off-grid)",
    "- `forms.csv`: the candidate forms' scores on the validation settings, by which the form was chosen",
    "- `split_half.csv`: per held-out setting, the calibrated form and a fresh measurement against half the seeds",
    "- `calibration.csv`, `residuals.csv`: fitted constants with their spread; the pilots' fit per K",
    "- `measured.csv`: mean, std and seeds of the final training loss per setting and K",
]


def _section(title: str, *blocks: str) -> list[str]:
    """A README section: its heading, then each block (a paragraph, table or list) followed by an empty line."""
    return [f"## {title}", "", *(line for block in blocks for line in (block, ""))]


def _readme(result: KStarResult, design: Design, command: str, summary: pd.DataFrame) -> str:
    """The K* report's README: one section after another."""
    analyses, choice = result.analyses, result.choice
    return "\n".join([
        *_readme_intro(command, result.campaign),
        "## Verdict", "", _verdict_intro(choice), "", *verdict(analyses, choice, summary), "",
        *_scores_section(analyses, design),
        *_section("Choosing the form",
                  f"Candidates: {', '.join(CANDIDATES)} (`bladefl_theory.forms`), each calibrated on the same "
                  f"pilots. The rule: {choice.rule}. Over {choice.compared} validation settings:",
                  markdown_table(forms_table(choice))),
        *_section("How good can a K* look against this measurement? (split halves)", _SPLIT_TEXT,
                  markdown_table(split_table(summary))),
        *_time_model_section(result, design),
        *_design_section(result, design),
        *_calibration_section(analyses, design),
        *_section("How the forms were designed, and what that means for these numbers", _HISTORY_TEXT),
        *_section("Files", "\n".join(_FILES_TEXT)),
    ])


def _readme_intro(command: str, campaign: dict) -> list[str]:
    """The README's title and how to regenerate it."""
    return ["# K* predicted in settings nobody ran", "", *regenerate(command),
            "It reads the result store `results.sqlite` beside this file and runs only what the store lacks"
            + (" (with `--measured-only`, nothing: the report covers what the store holds)."
               if campaign.get("progress") else "."), ""]


def _verdict_intro(choice: FormChoice) -> str:
    return (f"Chosen form: **{choice.form}**, on the validation settings (the arms); the off-grid points are the "
            "test, which nothing was chosen on. The profiles the package ships are the confirmation's "
            "(`bladefl-validate kstar-confirm`): it chooses again on every held-out setting here and tests that "
            "choice on fresh off-grid points.")


def _scores_section(analyses: Sequence[DatasetAnalysis], design: Design) -> list[str]:
    """Every predictor's scores on the test, on the validation and on both, and the two figures."""
    return _section(
        "Held-out scores",
        _HIT_TEXT.format(share=design.plausible_share, draws=design.bootstrap_draws),
        "Test: the off-grid points, drawn at random over the box, which neither the design of the forms nor the "
        "choice between them looked at:",
        markdown_table(score_table(analyses, TEST)),
        "Validation: the one-at-a-time arms, on which the form was chosen (not out of sample for that choice):",
        markdown_table(score_table(analyses, VALIDATION)),
        "All held-out settings:",
        markdown_table(score_table(analyses)),
        "![predicted against measured K*](kstar.png)",
        "![measured and predicted loss curves](curves.png)")


def _time_model_section(result: KStarResult, design: Design) -> list[str]:
    """Whether the best tau stays put when the budget or the mining time moves."""
    return _section(
        "Does the best tau stay put? (the time model)",
        "The bound's closed form says the optimal tau does not depend on t_sum (doubling the budget should double "
        f"K*) and moves with beta. Measured, at the centre's M = {design.centre['M']}, sigma2 = "
        f"{design.centre['sigma2']:g}:",
        markdown_table(_time_model_table(result.analyses, result.frame, design, result.choice.form)))


def _design_section(result: KStarResult, design: Design) -> list[str]:
    """The deployment, the settings, the seeds and K measured, and the campaign's cost."""
    b, analyses, campaign = design.base, result.analyses, result.campaign
    held = sum(len(a.held_out) for a in analyses)
    runs = (f"Real runs of the simulator (`bladefl-validate`): N = {b.N}, |D_i| = {b.samples_per_client}, "
            f"MLP 784-{b.hidden}-10, {b.classes_per_client} classes per client, eta = {b.eta:g}, batch "
            f"{b.batch_size}, alpha = {b.alpha:g}, proof of work at {b.difficulty_bits} bits, on "
            f"{' and '.join(design.datasets)}. One-at-a-time arms around the centre {_centre(design)}: "
            + "; ".join(f"{k} in {{{', '.join(f'{v:g}' for v in vals)}}}" for k, vals in design.arms.items())
            + f"; and {design.off_grid} off-grid points drawn at random over the box "
            + ", ".join(f"{k} in [{lo:g}, {hi:g}]" for k, (lo, hi) in design.box.items())
            + f" (beta log-uniform, M an integer), the same points on both data sets. {held} held-out settings in all.")
    ks = (f"{_seeds_text(design)} K: every K up to K_max = {design.full_k_up_to}; above it a coarse grid of about "
          f"{design.coarse_points} K (geometric), refined to every K between the grid neighbours of each plausible "
          "K, plus every K some predictor chose. Where K_max is larger than that, these K were measured:")
    return ["## The design", "", runs, "", ks, "", *_coverage(result.frame, design, analyses), "",
            "Plausible sets still wider than the design's limit after the last seeds: " + _wide(analyses, design), "",
            f"Cost: {campaign['runs']} runs, {campaign['cpu_hours']:.1f} CPU hours (the workers' process time; "
            f"simulation version {SIMULATION_VERSION}).",
            *_progress_lines(campaign.get("progress")), *_unscored_lines(analyses), ""]


def _calibration_section(analyses: Sequence[DatasetAnalysis], design: Design) -> list[str]:
    """The pilots, how each form is fitted, the constants and the fits' errors."""
    pilots = ", ".join(f"{role}" + (f" ({name} = {value:g})" if name else "") for role, name, value in design.pilots)
    rms = "; ".join(f"{a.dataset} {f} {a.calibrations[f].rms_log_error:.3f}" for a in analyses for f in a.calibrations)
    return _section("Calibration", _CALIBRATION_TEXT.format(pilots=pilots), "\n".join(_FORMS_TEXT),
                    markdown_table(_calibration_table(analyses)),
                    f"Root-mean-square log error on the pilots: {rms}.")


def _progress_lines(progress: dict | None) -> list[str]:
    """What a campaign cut short (``kstar-report --measured-only``) had measured, setting by setting."""
    if not progress or all(v == "complete" for v in progress.values()):
        return []
    out = ["", "**The campaign was cut short** (`--measured-only`): the scores above cover only the held-out settings "
           "whose first runs were all measured."]
    for state, what in (("refining", "measured at their first K and seeds, more K or seeds still due (their plausible "
                                      "sets may be wider than the design allows)"),
                        ("partial", "measured at their first K on fewer seeds than the design's first ones (scored "
                                    "on the seeds measured at every K)"),
                        ("unmeasured", "not measured yet, left out of every score")):
        names = [s.label for s, v in progress.items() if v == state]
        if names:
            out.append(f"- {len(names)} {what}: {'; '.join(names)}")
    return out


def _unscored_lines(analyses: Sequence[DatasetAnalysis]) -> list[str]:
    """Predictions of a K that was never measured at their setting: answered, but without a regret."""
    out = []
    for a in analyses:
        f = a.frame()
        gaps = f[f.k_pred.notna() & f.regret.isna()]
        if len(gaps):
            out.append(f"- {a.dataset}: {len(gaps)} prediction(s) of a K not measured there (no regret; the full "
                       "`kstar-report` measures them): " + "; ".join(
                           f"{r.predictor} K = {int(r.k_pred)} at t_sum={r.t_sum:g} beta={r.beta:g} M={r.M} "
                           f"sigma2={r.sigma2:g}" for r in gaps.itertuples()))
    return ["", *out] if out else []


def _centre(design: Design) -> str:
    return ", ".join(f"{k} = {v:g}" for k, v in design.centre.items())


def _wide(analyses, design: Design) -> str:
    names = []
    for a in analyses:
        f = a.frame()
        for r in f[f.predictor == PREDICTORS[0]].itertuples():  # every predictor's row holds the setting's set
            ks = list(map(int, r.plausible.split()))
            if max(ks) - min(ks) + 1 > design.max_width:
                names.append(f"{a.dataset} t_sum={r.t_sum:g} beta={r.beta:g} M={r.M} sigma2={r.sigma2:g} "
                             f"({r.plausible})")
    return "none." if not names else "; ".join(names) + "."


#: Where the project keeps the confirmation's report (the shipped profiles' validation record points there).
REPORT = "reports/kstar-confirmation"
#: The confirmation's test, as its tables and profiles call it.
FRESH = "fresh off-grid points"


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


def _figures_of(hits: pd.Series, regrets: pd.Series) -> dict:
    """Hit rate, median and worst regret (:func:`~.scoring.aggregate`) as a profile records them."""
    figures = aggregate(hits, regrets)
    return {"held_out": len(hits), "hit_rate": round(figures["hit_rate"], 4),
            **{k: None if math.isnan(figures[k]) else round(figures[k], 5) for k in ("median_regret", "worst_regret")}}


def _test_figures(rows: pd.DataFrame) -> dict:
    """A predictor's figures on the test, with its count of hits."""
    figures = _figures_of(rows.hit, rows.regret)
    return {"held_out": figures.pop("held_out"), "hits": int(rows.hit.sum()), **figures}


def write_confirmation(result: KStarResult, design: Design, target: Path, command: str, report: str = REPORT) -> None:
    """Everything the confirmation's report folder holds, the calibrated profiles among them (``report``: the folder
    their validation record names)."""
    result.test_rows().to_csv(target / "held_out.csv", index=False)
    result.test_scores().to_csv(target / "scores.csv", index=False)
    result.choice.scores.to_csv(target / "choice.csv", index=False)
    result.split_half.to_csv(target / "split_half.csv", index=False)
    summary = split_half_summary(result.split_half)
    for a in result.analyses:
        profile = calibrated_profile(a, result, design, command, report)
        name = profile_name(a.dataset, design.base.model)
        (target / f"{name}.json").write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
    (target / "summary.md").write_text(
        summary_text(result.analyses, result.choice, summary, parts=((TEST, FRESH),), chosen_on=CHOSEN_ON),
        encoding="utf-8")
    (target / "README.md").write_text(confirm_readme(result, design, command, summary), encoding="utf-8")


def profile_document(cal: Calibration, name: str, dataset: str, base, seeds: dict[str, int], command: str,
                     validation: dict | None = None, box: dict | None = None, cost: dict | None = None) -> dict:
    """A profile JSON (what :func:`bladefl_theory.profiles.load_profile` reads) from a calibration, with its provenance.

    ``seeds`` maps each pilot's label to its number of seeds; ``box`` is the region of system parameters the
    profile speaks for (default: the pilots' own range); ``validation`` how it did on held-out settings; ``cost``
    what the calibration was estimated to cost and did cost (recorded when given).
    """
    if box is None:
        box = {n: [min(p[n] for p in cal.pilots), max(p[n] for p in cal.pilots)]
               for n in ("t_sum", "beta", "M", "sigma2")}
    residuals = [[*(float(r[n]) for n in ("t_sum", "beta", "M", "sigma2")), int(r["K"]), round(float(r["loss"]), 6),
                  round(float(r["predicted"]), 6)] for _, r in cal.residuals.iterrows()]
    return {
        "name": name,
        "description": (f"The {cal.form} form calibrated on {len(cal.pilots)} pilot sweeps of {dataset} "
                        f"({base.model} {base.hidden}, N={base.N}, |D_i|={base.samples_per_client})"
                        + (f", validated on {validation['held_out']} held-out settings ({validation['report']})"
                           if validation else ", not validated on held-out settings") + "."),
        "form": cal.form,
        "constants": {k: float(f"{v:.6g}") for k, v in cal.all_constants().items()},
        "calibration": {
            "rms_log_error": round(cal.rms_log_error, 6),
            "tolerance": round(cal.tolerance, 6),
            "fitted": sorted(cal.constants),
            "spread_log": {k: (None if math.isnan(v) else round(v, 4)) for k, v in cal.spread.items()},
            "bootstrap": cal.bootstrap,
            "pilots": cal.pilots,
            "seeds": seeds,
            "residuals_columns": ["t_sum", "beta", "M", "sigma2", "K", "measured_mean_loss", "predicted"],
            "residuals": residuals,
            **({"cost": cost} if cost is not None else {}),
        },
        "domain": {**_fixed(base, dataset), "box": box},
        "validation": validation,
        "provenance": {"method": "calibrated on measured sweeps (bladefl_theory.calibration)", "command": command,
                       "simulation_version": SIMULATION_VERSION},
    }


def _fixed(base, dataset: str) -> dict[str, Any]:
    """What a calibration held fixed: the learning settings of its runs, the partition's parameter, and any other
    setting off its default (a registered data set's or module's fingerprint too); not the box's, K or the seed."""
    fixed = {"dataset": dataset, "model": base.model, "hidden": base.hidden, "N": base.N,
             "samples_per_client": base.samples_per_client, "alpha": base.alpha, "eta": base.eta,
             "batch_size": base.batch_size, "partition": base.partition}
    fixed.update({"classes_per_client": base.classes_per_client} if base.partition == "classes" else
                 {"dirichlet_alpha": base.dirichlet_alpha} if base.partition == "dirichlet" else {})
    skip = {*fixed, "t_sum", "beta", "M", "sigma2", "K", "seed", "classes_per_client", "dirichlet_alpha"}
    defaults = type(base)().as_dict()
    return {**fixed, **{k: v for k, v in base.as_dict().items() if k not in skip and defaults.get(k, k) != v}}

def calibrated_profile(a: DatasetAnalysis, r: KStarResult, design: Design, command: str,
                       report: str = REPORT) -> dict:
    """The shipped profile of one data set: the chosen form calibrated on the pilots, with its scores on the fresh
    points (``validation``), on the settings it was chosen on, and a fresh measurement's against the same noise."""
    f = a.frame()
    mine = f[f.predictor == calibrated(r.choice.form)]
    box = {name: [min(float(s.system()[name]) for s in a.pilots + a.held_out),
                  max(float(s.system()[name]) for s in a.pilots + a.held_out)]
           for name in ("t_sum", "beta", "M", "sigma2")}
    halves = r.split_half[r.split_half.dataset == a.dataset] if len(r.split_half) else r.split_half
    chosen_on = r.choice.scores.set_index("form").loc[r.choice.form]
    mean_regret = float(chosen_on.mean_regret)
    validation = {
        **_test_figures(mine[mine.role.map(part_of) == TEST]), "settings": FRESH,
        "fresh_measurement": None if halves.empty else _figures_of(halves.replicate_hit, halves.replicate_regret),
        "chosen_on": {"settings": r.choice.on, "held_out": int(chosen_on.settings),
                      "mean_regret": None if math.isnan(mean_regret) else round(mean_regret, 5),
                      "rule": r.choice.rule},
        "report": report,
    }
    seeds = {s.label: int(_runs_of(r.frame, s).seed.nunique()) for s in a.pilots}
    return profile_document(a.calibrations[r.choice.form], profile_name(a.dataset, design.base.model), a.dataset,
                               design.base, seeds, command, validation=validation, box=box)


#: The confirmation README's prose that depends on no number.
_CONFIRM_HIT_TEXT = (
    "Hit: the predicted K* is in the measured plausible set; regret: measured mean loss at the predicted K* / "
    "at the measured K* − 1 (as in the K* study's report).")
_CONFIRM_NOISE_TEXT = (
    "Each fresh point's seeds split in halves, 20 times: the chosen form and a fresh measurement (the other "
    "half's argmin), each held against one half.")


def confirm_readme(r: KStarResult, design: Design, command: str, summary: pd.DataFrame) -> str:
    """The confirmation's README: one section after another."""
    noise = (markdown_table(split_table(summary[summary.settings == TEST])) if len(summary)
             else "No fresh point has the seeds for it yet.")
    return "\n".join([
        "# K* confirmed on fresh settings", "",
        *regenerate(command, "Generated by `bladefl-validate kstar-confirm`; regenerate with:"),
        "It reads the K* study's result store and runs only what it lacks: the fresh points, and every K a "
        "predictor chose there.", "",
        *_confirm_verdict(r, design, summary),
        *_section("Every predictor on the fresh points", _CONFIRM_HIT_TEXT,
                  markdown_table(score_table(r.analyses, TEST))),
        "## The measurement's own noise", "", _CONFIRM_NOISE_TEXT, "", noise, "",
        _confirm_cost(r, design), "",
    ])


def _confirm_verdict(r: KStarResult, design: Design, summary: pd.DataFrame) -> list[str]:
    """The chosen form, the rule and the candidates' scores it was chosen by, and its scores on the fresh points."""
    lines = ["## Verdict", "",
             f"Chosen form: **{r.choice.form}**. The rule, declared before the fresh points were drawn: "
             f"{r.choice.rule} ({r.choice.compared} settings):", "",
             markdown_table(forms_table(r.choice, "settings")), "",
             *(verdict(r.analyses, r.choice, summary, parts=((TEST, FRESH),)) or ["No fresh point measured yet."])]
    if r.progress is not None:
        states = list(r.progress.values())
        lines += ["", "**A campaign cut short** (`--measured-only`): settings by state: "
                  + ", ".join(f"{s} {states.count(s)}" for s in dict.fromkeys(states))
                  + "; the fresh points not measured yet are not scored."]
    return [*lines, "",
            f"The profiles `{profile_name(design.datasets[0], design.base.model)}.json` and the like here are the "
            "chosen form fitted on the pilots, with these scores as their validation record; the package ships them "
            "(`bladefl_theory/profile_data/`).", ""]


def _confirm_cost(r: KStarResult, design: Design) -> str:
    """What the fresh points cost (the first study's runs are reused)."""
    runs = [_runs_of(r.frame, s) for points in r.test_settings.values() for s in points]
    cpu_hours = sum(float(x.cpu_seconds.sum()) for x in runs) / 3600
    return (f"Cost of the fresh points (drawn with seed {design.off_grid_seed}; the first study's runs are "
            f"reused): {sum(len(x) for x in runs)} runs, {cpu_hours:.1f} CPU hours.")
