"""K* predicted in settings nobody ran: pilots, predictors, calibration, prediction, and the choice of form.

The measured design is :mod:`.design`, the scoring rule :mod:`.scoring`. Per data set, four pilot settings (the
centre and the far end of the t_sum, M and sigma2 arms) calibrate three forms (:mod:`bladefl_theory.calibration`):
the paper's per-round bound with its constants fitted, and the two candidate forms of
:data:`bladefl_theory.forms.CALIBRATED_FORMS`. Every other setting of the design is held out, and each predictor's
K* there is scored against the measurement (hit and regret, :mod:`.scoring`).

Baselines, scored alike: the paper's bound with the hand-calibrated ``default`` profile, the per-round
and printed bounds with the estimated profile and their self-consistent forms, the pilot's K*
(a constant) and the pilot's tau (the K whose tau is closest to the best tau of the centre pilot).

The choice is made here, not in a report: :func:`study_result` chooses the candidate form with the lowest mean
regret (:func:`select_form`) on the held-out settings a study chooses on (the K* study: its arms, the validation;
the confirmation: every held-out setting of the K* study) and scores every predictor on the settings it tests on,
where nothing was chosen. :func:`split_half_scores` holds the chosen form and a fresh measurement (half the seeds)
against the other half of the seeds, which says how good any K* can look against a measurement this noisy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bladefl_theory.calibration import Calibration, calibrate
from bladefl_theory.forms import CALIBRATED_FORMS, form_kstar
from bladefl_theory.profiles import load_profile
from bladefl_theory.timemodel import k_max, tau
from bladefl_platform.errors import InputError
from bladefl_platform.store import ResultStore
from bladefl_platform.study import Runner, Tasks

from ...tasks import RUN
from .design import DESIGN, Design, Setting, measure, measured_runs, progress
from .scoring import (
    TEST,
    VALIDATION,
    aggregate,
    bootstrap_regret,
    hit,
    part_of,
    plausible_of,
    seed_table,
    split_half,
    table_kstar,
)
from ..sweep_k import sweep_configs

__all__ = [
    "PREDICTORS",
    "CANDIDATES",
    "CALIBRATED",
    "calibrated",
    "VALIDATION",
    "TEST",
    "part_of",
    "FormChoice",
    "select_form",
    "split_half_scores",
    "split_half_summary",
    "scores_of",
    "seed_table",
    "pilot_settings",
    "held_out_settings",
    "curves",
    "Prediction",
    "DatasetAnalysis",
    "analyse",
    "analyse_measured",
    "missing_runs",
    "measure_study",
    "analyse_store",
    "study_result",
    "KStarResult",
    "CHOSEN_ON",
]

#: The candidate forms for the shipped profiles (:data:`bladefl_theory.forms.CALIBRATED_FORMS`).
CANDIDATES = tuple(CALIBRATED_FORMS)
#: Every form calibrated on the pilots: the candidates, and the bound (its epsilon stays the estimated profile's).
CALIBRATED = (*CANDIDATES, "per-round")


def pilot_settings(design: Design, dataset: str) -> list[Setting]:
    """The pilot settings of ``dataset``, in the design's order of pilots (the centre first)."""
    mine = [s for s in design.settings() if s.dataset == dataset and design.is_pilot(s)]
    return sorted(mine, key=lambda s: [p[0] for p in design.pilots].index(s.role))


def held_out_settings(design: Design, dataset: str) -> list[Setting]:
    """Every setting of ``dataset`` that is not a pilot."""
    return [s for s in design.settings() if s.dataset == dataset and not design.is_pilot(s)]


def _runs_of(frame: pd.DataFrame, s: Setting) -> pd.DataFrame:
    m = ((frame.dataset == s.dataset) & (frame.t_sum == float(s.t_sum)) & (frame.beta == float(s.beta))
         & (frame.M == s.M) & (frame.sigma2 == float(s.sigma2)))
    return frame[m]


def _system(design: Design, s: Setting) -> dict[str, float]:
    b = design.base
    return {"N": b.N, "M": s.M, "sigma2": float(s.sigma2), "alpha": b.alpha, "beta": float(s.beta),
            "t_sum": float(s.t_sum), "eta": b.eta}


def curves(frame: pd.DataFrame, settings: Sequence[Setting], design: Design) -> pd.DataFrame:
    """The measured runs of ``settings`` in the calibration's layout (system parameters, K, seed, loss)."""
    parts = []
    for s in settings:
        runs = _runs_of(frame, s)
        sys_ = _system(design, s)
        parts.append(pd.DataFrame({**{k: [v] * len(runs) for k, v in sys_.items()}, "K": runs.K.to_numpy(),
                                   "seed": runs.seed.to_numpy(), "loss": runs.final_global_train_loss.to_numpy()}))
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class Prediction:
    """One predictor's K* at one held-out setting, scored against the measurement."""

    setting: Setting
    predictor: str
    k_pred: int | None
    k_measured: int
    plausible: tuple[int, ...]
    regret: float | None
    regret_std: float | None

    @property
    def hit(self) -> bool:
        return hit(self.k_pred, self.plausible)


@dataclass
class DatasetAnalysis:
    """One data set: the calibrations, every predictor's K* at every held-out setting, and their scores."""

    dataset: str
    pilots: list[Setting]
    held_out: list[Setting]
    calibrations: dict[str, Calibration]
    predictions: list[Prediction]
    pilot_k_star: int
    pilot_tau: int

    def frame(self) -> pd.DataFrame:
        """One row per held-out setting and predictor."""
        return pd.DataFrame([{
            "dataset": self.dataset, "role": p.setting.role, "t_sum": p.setting.t_sum, "beta": p.setting.beta,
            "M": p.setting.M, "sigma2": p.setting.sigma2, "predictor": p.predictor, "k_pred": p.k_pred,
            "k_measured": p.k_measured, "plausible": " ".join(map(str, p.plausible)), "hit": p.hit,
            "regret": p.regret, "regret_std": p.regret_std,
        } for p in self.predictions])

    def scores(self, part: str | None = None) -> pd.DataFrame:
        """Per predictor: hit rate, median and worst regret, and how many settings it answered.

        ``part`` keeps the :data:`VALIDATION` or the :data:`TEST` settings only."""
        f = self.frame()
        if part is not None and len(f):
            f = f[f.role.map(part_of) == part]
        return scores_of(f).assign(dataset=self.dataset)[["dataset", "predictor", "settings", "answered", "hit_rate",
                                                           "median_regret", "worst_regret"]]


def scores_of(f: pd.DataFrame) -> pd.DataFrame:
    """Per predictor (:data:`PREDICTORS`): settings, answered, hit rate, median and worst regret over rows ``f``."""
    rows = []
    for name in PREDICTORS:
        g = f[f.predictor == name] if len(f) else pd.DataFrame({"hit": [], "regret": [], "k_pred": []})
        rows.append({"predictor": name, "settings": len(g), "answered": int(g.k_pred.notna().sum()),
                     **aggregate(g.hit, g.regret)})
    return pd.DataFrame(rows)


def _bound_kstar(profile_name: str, form: str) -> Callable[[dict], int | None]:
    constants = load_profile(profile_name).constants
    return lambda system: form_kstar(form, system, constants).k_star


def calibrated(form: str) -> str:
    """The predictor name of a form calibrated on the pilots."""
    return f"{form} (calibrated)"


#: Every predictor, in the report's order.
PREDICTORS = (
    *(calibrated(f) for f in CALIBRATED),
    "per-round, default profile",
    "per-round, estimated",
    "printed, estimated",
    "per-round+sc, estimated",
    "printed+sc, estimated",
    "pilot's K*",
    "pilot's tau",
)


def _closest_tau(system: dict, target: int) -> int:
    km = k_max(system["t_sum"], system["alpha"], system["beta"])
    taus = [tau(k, system["t_sum"], system["alpha"], system["beta"]) for k in range(1, km + 1)]
    return 1 + int(np.argmin([abs(t - target) for t in taus]))


def _predictors(dataset: str, model: str, cals: dict[str, Calibration], pilot_k: int,
                pilot_tau: int) -> dict[str, Callable[[dict], int | None]]:
    estimated = f"{dataset}-{model}"
    def fitted(form: str) -> Callable[[dict], int | None]:
        return lambda s: form_kstar(form, s, cals[form].all_constants()).k_star

    return {
        **{calibrated(f): fitted(f) for f in CALIBRATED},
        "per-round, default profile": _bound_kstar("default", "per-round"),
        "per-round, estimated": _bound_kstar(estimated, "per-round"),
        "printed, estimated": _bound_kstar(estimated, "printed"),
        "per-round+sc, estimated": _bound_kstar(estimated, "per-round+sc"),
        "printed+sc, estimated": _bound_kstar(estimated, "printed+sc"),
        "pilot's K*": lambda s: min(pilot_k, k_max(s["t_sum"], s["alpha"], s["beta"])),
        "pilot's tau": lambda s: _closest_tau(s, pilot_tau),
    }


def calibrate_dataset(frame: pd.DataFrame, design: Design, dataset: str,
                      bootstrap: int = 100) -> dict[str, Calibration]:
    """Every calibrated form (:data:`CALIBRATED`), fitted on the pilots of ``dataset`` alone."""
    pilots = pilot_settings(design, dataset)
    data = curves(frame, pilots, design)
    epsilon = load_profile(f"{dataset}-{design.base.model}").constants["epsilon"]
    return {form: calibrate(data, form, None if form in CANDIDATES else {"epsilon": epsilon}, bootstrap=bootstrap)
            for form in CALIBRATED}


def _centre_pilot(frame: pd.DataFrame, design: Design, dataset: str) -> tuple[int, int]:
    centre = pilot_settings(design, dataset)[0]
    table = seed_table(_runs_of(frame, centre))
    k = table_kstar(table)
    return k, tau(k, centre.t_sum, design.base.alpha, centre.beta)


def predict_all(frame: pd.DataFrame, design: Design, dataset: str,
                cals: dict[str, Calibration]) -> tuple[dict[Setting, dict[str, int | None]], int, int]:
    """Every predictor's K* at every held-out setting of ``dataset`` (needs only the pilots' runs)."""
    pilot_k, pilot_tau = _centre_pilot(frame, design, dataset)
    predictors = _predictors(dataset, design.base.model, cals, pilot_k, pilot_tau)
    out = {}
    for s in held_out_settings(design, dataset):
        system = _system(design, s)
        out[s] = {name: predictors[name](system) for name in PREDICTORS}
    return out, pilot_k, pilot_tau


def missing_runs(frame: pd.DataFrame, design: Design, predicted: dict[Setting, dict[str, int | None]]):
    """The runs to add so that every predicted K is measured for every seed of its setting."""
    out = []
    for s, ks in predicted.items():
        runs = _runs_of(frame, s)
        seeds = sorted(runs.seed.unique())
        have = set(zip(runs.K, runs.seed))
        for k in sorted({k for k in ks.values() if k is not None}):
            out += [s.config(design.base, K=k, seed=int(seed)) for seed in seeds if (k, seed) not in have]
    return out


def analyse(frame: pd.DataFrame, design: Design = DESIGN, bootstrap: int = 100,
            datasets: Sequence[str] | None = None,
            held_out: Collection[Setting] | None = None) -> list[DatasetAnalysis]:
    """Calibrate on the pilots and score every predictor at every held-out setting (from measured runs only).

    ``held_out`` limits the scoring to those settings (a campaign cut short: the ones measured). A predicted
    K that was not measured gets no regret (:func:`missing_runs` lists the runs it needs).
    """
    out = []
    for dataset in datasets or design.datasets:
        cals = calibrate_dataset(frame, design, dataset, bootstrap)
        predicted, pilot_k, pilot_tau = predict_all(frame, design, dataset, cals)
        if held_out is not None:
            predicted = {s: ks for s, ks in predicted.items() if s in held_out}
        rng = np.random.default_rng(0)
        predictions = []
        for s, ks in predicted.items():
            table = seed_table(_runs_of(frame, s))
            plausible, _ = plausible_of(table.to_numpy(), table.columns.to_numpy(), design.plausible_share,
                                        design.bootstrap_draws, np.random.default_rng(0))
            k_meas = table_kstar(table)
            for name in PREDICTORS:
                k = ks[name]
                regret = spread = None
                if k is not None and k in table.columns:
                    regret, spread = bootstrap_regret(table, k, k_meas, rng)
                predictions.append(Prediction(s, name, k, k_meas, tuple(plausible), regret, spread))
        out.append(DatasetAnalysis(dataset, pilot_settings(design, dataset), list(predicted), cals,
                                   predictions, pilot_k, pilot_tau))
    return out


@dataclass(frozen=True)
class FormChoice:
    """The candidate form a rule chose, and every candidate's scores on the settings it chose on."""

    form: str
    scores: pd.DataFrame
    compared: int  # settings chosen on where every candidate's K* was measured (the mean regret's support)
    on: str = "the validation settings (the arms)"  # the settings the choice was made on, in words

    @property
    def rule(self) -> str:
        """The rule, in words, for the report."""
        return (f"the candidate with the lowest mean regret on {self.on} of both data sets, over the settings "
                "where every candidate's K* was measured; ties go to the higher hit rate")


def select_form(analyses: Sequence[DatasetAnalysis], parts: Collection[str] = (VALIDATION,),
                on: str = FormChoice.on) -> FormChoice:
    """Choose among :data:`CANDIDATES` by :attr:`FormChoice.rule` on the held-out settings of ``parts`` (by
    default the validation settings alone: the test plays no part); ``on`` says which, in words."""
    f = pd.concat([a.frame() for a in analyses], ignore_index=True)
    names = [calibrated(c) for c in CANDIDATES]
    val = f[f.role.map(part_of).isin(list(parts)) & f.predictor.isin(names)]
    key = ["dataset", "t_sum", "beta", "M", "sigma2"]
    regrets = val.pivot_table(index=key, columns="predictor", values="regret", dropna=False).reindex(columns=names)
    common = regrets.dropna()
    rows = []
    for form, name in zip(CANDIDATES, names):
        mine = val[val.predictor == name]
        figures = aggregate(mine.hit, mine.regret)
        rows.append({"form": form, "settings": len(mine), "hit_rate": figures["hit_rate"],
                     "mean_regret": float(common[name].mean()) if len(common) else math.nan,
                     "median_regret": figures["median_regret"], "worst_regret": figures["worst_regret"]})
    scores = pd.DataFrame(rows)
    ranked = scores.assign(order=range(len(scores))).sort_values(["mean_regret", "hit_rate", "order"],
                                                                  ascending=[True, False, True], na_position="last")
    return FormChoice(str(ranked.form.iloc[0]), scores, len(common), on)


def split_half_scores(analyses: Sequence[DatasetAnalysis], frame: pd.DataFrame, design: Design, form: str,
                      splits: int = 20, seed: int = 0) -> pd.DataFrame:
    """The calibrated ``form`` and a fresh measurement, each held against half of a setting's seeds.

    One row per held-out setting with at least four seeds: :func:`~.scoring.split_half` over ``splits`` random
    halves.
    """
    rng = np.random.default_rng(seed)
    name = calibrated(form)
    rows = []
    for a in analyses:
        f = a.frame()
        for s in a.held_out:
            table = seed_table(_runs_of(frame, s))
            half = len(table) // 2
            pred = f[(f.predictor == name) & (f.t_sum == s.t_sum) & (f.beta == s.beta) & (f.M == s.M)
                     & (f.sigma2 == s.sigma2)].k_pred.iloc[0]
            if half < 2 or pred is None or pred != pred or int(pred) not in table.columns:
                continue
            scores = split_half(table.to_numpy(), table.columns.to_numpy(), int(pred), splits, rng,
                                design.plausible_share, design.bootstrap_draws)
            rows.append({"dataset": a.dataset, "role": s.role, "part": part_of(s.role), "t_sum": s.t_sum,
                         "beta": s.beta, "M": s.M, "sigma2": s.sigma2, "seeds": len(table), "half": half, **scores})
    return pd.DataFrame(rows)


def split_half_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Hit rate, median and worst regret of the form and of the fresh measurement, per data set and part."""
    out: list[dict] = []
    if rows.empty:
        return pd.DataFrame(out)
    groups = [*rows.groupby(["dataset", "part"]), *(((d, "all"), g) for d, g in rows.groupby("dataset"))]
    for (dataset, part), g in groups:
        for who, label in (("form", "calibrated form"), ("replicate", "fresh measurement")):
            out.append({"dataset": dataset, "settings": part, "held-out": len(g), "who": label,
                        **aggregate(g[f"{who}_hit"], g[f"{who}_regret"])})
    return pd.DataFrame(out)


def analyse_measured(store, design: Design = DESIGN, bootstrap: int = 100
                     ) -> tuple[list[DatasetAnalysis], pd.DataFrame, dict[Setting, str]]:
    """Analyse what ``store`` holds, running nothing: a campaign cut short, scored where it was measured.

    Held-out settings whose first runs are not all measured are left out; returns each setting's
    :func:`~.design.progress` beside the analyses and the runs, for the report to say so.
    """
    frame = measured_runs(store, design)
    state = progress(design, frame)
    unready = [s for s in design.settings() if design.is_pilot(s) and state[s] == "unmeasured"]
    if unready:
        raise InputError(f"the pilot {unready[0].label} of the K* study is not measured yet: run kstar-report "
                         "without --measured-only to measure it")
    measured = {s for s, v in state.items() if v != "unmeasured"}
    return analyse(frame, design, bootstrap, held_out=measured), frame, state


def measure_study(run: Runner, design: Design = DESIGN) -> None:
    """Measure the design to completion, then every K a predictor chose at a held-out setting: all through ``run``
    (a study's runner: its store, execution and record of batches)."""
    measure(run, design)
    assert run.store is not None  # measure() refuses a runner without one
    frame = measured_runs(run.store, design)
    missing = []
    for dataset in design.datasets:
        cals = calibrate_dataset(frame, design, dataset, bootstrap=0)
        predicted, _, _ = predict_all(frame, design, dataset, cals)
        missing += missing_runs(frame, design, predicted)
    if missing:
        run(Tasks(RUN, [c.as_dict() for c in missing], "predicted K"))


def analyse_store(store: ResultStore, design: Design = DESIGN, bootstrap: int = 100, measured_only: bool = False
                  ) -> tuple[list[DatasetAnalysis], pd.DataFrame, dict[Setting, str] | None]:
    """The analyses of what ``store`` holds of ``design``, its runs, and (``measured_only``: a campaign that may be
    cut short, :func:`analyse_measured`) each setting's progress."""
    if measured_only:
        return analyse_measured(store, design, bootstrap)
    frame = measured_runs(store, design)
    return analyse(frame, design, bootstrap), frame, None



def parse_pilot(text: str, centre: dict) -> dict[str, float]:
    """A pilot setting from ``t_sum=100,beta=10,M=4,sigma2=0.01``; unnamed parameters take the centre's values."""
    from bladefl_platform.errors import InputError

    point = dict(centre)
    named: set[str] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in point:
            raise InputError(f"--pilot {text!r}: expected NAME=VALUE pairs with NAME in {', '.join(point)}")
        if name.strip() in named:
            raise InputError(f"--pilot {text!r}: {name.strip()} is given twice")
        named.add(name.strip())
        try:
            point[name.strip()] = int(value) if name.strip() == "M" else float(value)
        except ValueError:
            raise InputError(f"--pilot {text!r}: {name.strip()} must be a number (got {value!r})") from None
    return point


def check_pilots(design: Design, dataset: str, base, pilots: Sequence[dict]) -> None:
    """InputError for more than four pilots, repeated ones, or a pilot that the study holds out on this deployment."""
    from bladefl_platform.errors import InputError

    if not 1 <= len(pilots) <= 4:
        raise InputError(f"a calibration takes 1 to 4 pilot settings, what a deployer can afford (got {len(pilots)})")
    keys = [tuple(float(p[n]) for n in ("t_sum", "beta", "M", "sigma2")) for p in pilots]
    if len(set(keys)) != len(keys):
        raise InputError("the pilot settings must differ from each other")
    same = {k: v for k, v in base.as_dict().items()
            if k not in ("dataset", "t_sum", "beta", "M", "sigma2", "K", "seed")}
    if dataset in design.datasets and same == {k: v for k, v in design.base.as_dict().items() if k in same}:
        held = {(float(s.t_sum), float(s.beta), float(s.M), float(s.sigma2))
                for s in held_out_settings(design, dataset)}
        for p, k in zip(pilots, keys):
            if k in held:
                raise InputError(
                    f"pilot t_sum={p['t_sum']:g}, beta={p['beta']:g}, M={p['M']}, sigma2={p['sigma2']:g} is a held-out "
                    "setting of the K* prediction study: calibrating on it would let the validation see its own test "
                    "data; choose another pilot")


def pilot_configs(base, dataset: str, pilots: Sequence[dict], seeds: Sequence[int]):
    """The pilot settings, and the runs that sweep every K of each for every seed."""
    settings = [Setting(dataset, float(p["t_sum"]), float(p["beta"]), int(p["M"]), float(p["sigma2"]), "pilot")
                for p in pilots]
    # Each pilot is a sweep: held to a sweep's limit on runs before any is made.
    configs = [c for s in settings for c in sweep_configs(s.config(base), seeds)]
    return settings, configs


def fit_pilots(configs, results, form: str = "drift", fixed: dict | None = None, bootstrap: int = 100) -> Calibration:
    """``form`` fitted to the pilots' runs ``configs`` and their ``results`` alone."""
    data = pd.DataFrame([{"N": c.N, "M": c.M, "sigma2": c.sigma2, "alpha": c.alpha, "beta": c.beta, "t_sum": c.t_sum,
                          "eta": c.eta, "K": c.K, "seed": c.seed, "loss": r["final_global_train_loss"]}
                         for c, r in zip(configs, results)])
    return calibrate(data, form, fixed, bootstrap=bootstrap)


@dataclass
class KStarResult:
    """A K* study's result: the analyses of the design it tests on and their runs, the form chosen (on the settings
    it chooses on), and the chosen form's split halves on the settings it tests on."""

    analyses: list[DatasetAnalysis]
    frame: pd.DataFrame
    progress: dict[Setting, str] | None  # each setting's state, when the report covers a campaign cut short
    choice: FormChoice
    split_half: pd.DataFrame  # split_half_scores of the chosen form

    @property
    def campaign(self) -> dict[str, Any]:
        """The runs, CPU hours and progress of the design tested on."""
        return {"runs": len(self.frame), "cpu_hours": float(self.frame.cpu_seconds.sum()) / 3600,
                "progress": self.progress}

    @property
    def test_settings(self) -> dict[str, list[Setting]]:
        """Per data set, the test settings scored (all of them, unless the campaign was cut short)."""
        return {a.dataset: [s for s in a.held_out if part_of(s.role) == TEST] for a in self.analyses}

    def test_rows(self) -> pd.DataFrame:
        """One row per test setting and predictor."""
        f = pd.concat([a.frame() for a in self.analyses], ignore_index=True)
        return f[f.role.map(part_of) == TEST].reset_index(drop=True)

    def test_scores(self) -> pd.DataFrame:
        """Per data set and predictor: hit rate, median and worst regret on the test settings."""
        return pd.concat([a.scores(TEST) for a in self.analyses], ignore_index=True)

    def part_scores(self) -> list[dict[str, Any]]:
        """Every predictor's scores on all held-out settings and on the test, one record per data set and part."""
        return [{**row, "part": part or "all"} for part in (None, TEST) for a in self.analyses
                for row in a.scores(part).to_dict(orient="records")]


def study_result(store: ResultStore, chosen_on: Design, tested_on: Design, parts: Collection[str] = (VALIDATION,),
                 on: str = FormChoice.on, bootstrap: int = 100, measured_only: bool = False) -> KStarResult:
    """A K* study's result from what ``store`` holds: the form chosen on the held-out settings of ``parts`` of
    ``chosen_on`` (``on`` says which, in words), every predictor scored on ``tested_on``, and the chosen form's split
    halves there (on its test alone when it is another design than the one chosen on)."""
    apart = chosen_on != tested_on
    # The choice depends on the predictions alone, not on the constants' bootstrap spread: no bootstrap for them.
    chooser = analyse_store(store, chosen_on, 0, measured_only)[0] if apart else None
    analyses, frame, state = analyse_store(store, tested_on, bootstrap, measured_only)
    choice = select_form(chooser if chooser is not None else analyses, parts, on)
    halves = split_half_scores(analyses, frame, tested_on, choice.form)
    if apart and len(halves):
        halves = halves[halves.part == TEST].reset_index(drop=True)
    return KStarResult(analyses, frame, state, choice, halves)


#: The settings the confirmation chooses the form on, in words.
CHOSEN_ON = "every held-out setting of the K* study"
