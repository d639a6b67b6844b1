"""K* predicted in settings nobody ran: calibrate on a few pilot sweeps, score every held-out setting.

The measured design is :mod:`.kstar_design`. Per data set, four pilot settings (the centre and the
far end of the t_sum, M and sigma2 arms) calibrate three forms (:mod:`bladefl_theory.calibration`):
the paper's per-round bound with its constants fitted, and the two candidate forms of
:data:`bladefl_theory.forms.CALIBRATED_FORMS`. Every other setting of the design is held out, and
each predictor's K* there is scored against the measurement:

- hit: the predicted K* is in the measured plausible set (every K that is the argmin of the mean
  loss in at least 10% of the bootstrap resamples of the seeds);
- regret: measured mean loss at the predicted K* over measured mean loss at the measured K*, minus 1,
  with its spread over bootstrap resamples of the seeds.

Baselines, scored alike: the paper's bound with the hand-calibrated ``default`` profile, the per-round
and printed bounds with the estimated profile and their self-consistent forms, the pilot's K*
(a constant) and the pilot's tau (the K whose tau is closest to the best tau of the centre pilot).

The held-out settings play two parts. The arms are the validation: the candidate form with the
lowest mean regret there (:func:`select_form`) is the study's choice. The off-grid points
are the test: nothing is chosen on them. (The profiles the package ships are the confirmation's,
:mod:`.kstar_confirm`, which chooses on both parts and tests on fresh points.)
:func:`split_half_scores` holds the chosen form and a
fresh measurement (half the seeds) against the other half of the seeds, which says how good any
K* can look against a measurement this noisy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bladefl_theory.calibration import Calibration, calibrate
from bladefl_theory.forms import CALIBRATED_FORMS, form_kstar
from bladefl_theory.profiles import load_profile
from bladefl_theory.timemodel import k_max, tau

from ..tasks import task_context
from .kstar_design import DESIGN, Design, Setting, plausible_of
from .sweep_k import sweep_configs

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
    "run_study",
]

#: The candidate forms for the shipped profiles (:data:`bladefl_theory.forms.CALIBRATED_FORMS`).
CANDIDATES = tuple(CALIBRATED_FORMS)
#: Every form calibrated on the pilots: the candidates, and the bound (its epsilon stays the estimated profile's).
CALIBRATED = (*CANDIDATES, "per-round")
#: Bootstrap resamples of the seeds for plausible sets and regret spreads.
DRAWS = 1000


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


def seed_table(runs: pd.DataFrame) -> pd.DataFrame:
    """A seed-by-K table of the final loss without gaps: the K measured on at least half of the seeds, then the
    seeds measured at all of those K (a campaign cut short has seeds that are measured at only some K)."""
    table = runs.pivot_table(index="seed", columns="K", values="final_global_train_loss")
    table = table.loc[:, table.notna().sum() * 2 >= len(table)]
    return table.dropna(axis=0)


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
        return self.k_pred is not None and self.k_pred in self.plausible


def _bootstrap_regret(table: pd.DataFrame, k_pred: int, k_meas: int, rng) -> tuple[float, float]:
    values = table.to_numpy()
    cols = list(table.columns)
    a, b = values[:, cols.index(k_pred)], values[:, cols.index(k_meas)]
    regret = float(a.mean() / b.mean() - 1)
    picks = rng.integers(0, len(values), size=(DRAWS, len(values)))
    draws = a[picks].mean(axis=1) / b[picks].mean(axis=1) - 1
    return regret, float(np.std(draws))


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
        g = f[f.predictor == name] if len(f) else f
        regret = g.regret.dropna() if len(g) else pd.Series(dtype=float)
        rows.append({"predictor": name, "settings": len(g), "answered": int(g.k_pred.notna().sum()) if len(g) else 0,
                     "hit_rate": float(g.hit.mean()) if len(g) else math.nan,
                     "median_regret": float(regret.median()) if len(regret) else math.nan,
                     "worst_regret": float(regret.max()) if len(regret) else math.nan})
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
    k = int(table.columns[np.argmin(table.to_numpy().mean(axis=0))])
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
            k_meas = int(table.columns[np.argmin(table.to_numpy().mean(axis=0))])
            for name in PREDICTORS:
                k = ks[name]
                regret = spread = None
                if k is not None and k in table.columns:
                    regret, spread = _bootstrap_regret(table, k, k_meas, rng)
                predictions.append(Prediction(s, name, k, k_meas, tuple(plausible), regret, spread))
        out.append(DatasetAnalysis(dataset, pilot_settings(design, dataset), list(predicted), cals,
                                   predictions, pilot_k, pilot_tau))
    return out


#: The held-out settings that choose the K* study's form (the arms), and those that only test it.
VALIDATION, TEST = "arms", "off-grid"


def part_of(role: str) -> str:
    """Which part a held-out setting of ``role`` plays: :data:`VALIDATION` or :data:`TEST`."""
    return TEST if role == "off-grid" else VALIDATION


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
        rows.append({"form": form, "settings": len(mine), "hit_rate": float(mine.hit.mean()) if len(mine) else math.nan,
                     "mean_regret": float(common[name].mean()) if len(common) else math.nan,
                     "median_regret": float(mine.regret.median()), "worst_regret": float(mine.regret.max())})
    scores = pd.DataFrame(rows)
    ranked = scores.assign(order=range(len(scores))).sort_values(["mean_regret", "hit_rate", "order"],
                                                                  ascending=[True, False, True], na_position="last")
    return FormChoice(str(ranked.form.iloc[0]), scores, len(common), on)


def split_half_scores(analyses: Sequence[DatasetAnalysis], frame: pd.DataFrame, design: Design, form: str,
                      splits: int = 20, seed: int = 0) -> pd.DataFrame:
    """The calibrated ``form`` and a fresh measurement, each held against half of a setting's seeds.

    For each held-out setting with at least four seeds, ``splits`` random halves A and B: the truth is A's
    plausible set and mean loss; the fresh measurement's K* is the argmin of B's mean (an independent
    replicate with as many seeds as A). One row per setting: the mean hit and regret of both over the splits.
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
            values, ks = table.to_numpy(), table.columns.to_numpy()
            k_pred = int(pred)
            hits: dict[str, list[bool]] = {"form": [], "replicate": []}
            regrets: dict[str, list[float]] = {"form": [], "replicate": []}
            for _ in range(splits):
                order = rng.permutation(len(values))
                A, B = values[order[:half]], values[order[half:2 * half]]
                plausible, _ = plausible_of(A, ks, design.plausible_share, design.bootstrap_draws, rng)
                mean_a = A.mean(axis=0)
                k_rep = int(ks[np.argmin(B.mean(axis=0))])
                for who, k in (("form", k_pred), ("replicate", k_rep)):
                    hits[who].append(k in plausible)
                    regrets[who].append(float(mean_a[list(ks).index(k)] / mean_a.min() - 1))
            rows.append({"dataset": a.dataset, "role": s.role, "part": part_of(s.role), "t_sum": s.t_sum,
                         "beta": s.beta, "M": s.M, "sigma2": s.sigma2, "seeds": len(values), "half": half,
                         **{f"{who}_hit": float(np.mean(hits[who])) for who in hits},
                         **{f"{who}_regret": float(np.mean(regrets[who])) for who in regrets}})
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
                        "hit_rate": float(g[f"{who}_hit"].mean()),
                        "median_regret": float(g[f"{who}_regret"].median()),
                        "worst_regret": float(g[f"{who}_regret"].max())})
    return pd.DataFrame(out)


def analyse_measured(store, design: Design = DESIGN, bootstrap: int = 100
                     ) -> tuple[list[DatasetAnalysis], pd.DataFrame, dict[Setting, str]]:
    """Analyse what ``store`` holds, running nothing: a campaign cut short, scored where it was measured.

    Held-out settings whose first runs are not all measured are left out; returns each setting's
    :func:`~.kstar_design.progress` beside the analyses and the runs, for the report to say so.
    """
    from .kstar_design import measured_runs, progress

    frame = measured_runs(store, design)
    state = progress(design, frame)
    unready = [s for s in design.settings() if design.is_pilot(s) and state[s] == "unmeasured"]
    if unready:
        from bladefl_platform.errors import InputError

        raise InputError(f"the pilot {unready[0].label} of the K* study is not measured yet: run kstar-report "
                         "without --measured-only to measure it")
    measured = {s for s, v in state.items() if v != "unmeasured"}
    return analyse(frame, design, bootstrap, held_out=measured), frame, state


def run_study(store, design: Design = DESIGN, data_dir: str | None = None, execution=None,
              bootstrap: int = 100) -> tuple[list[DatasetAnalysis], pd.DataFrame]:
    """Measure the design to completion, add every K a predictor chose, and analyse: all through ``store``."""
    from bladefl_platform.execution import Execution, run_tasks

    from ..tasks import RUN
    from .kstar_design import measure, measured_runs

    execution = execution or Execution()
    measure(store, design, data_dir, execution)
    frame = measured_runs(store, design)
    missing = []
    for dataset in design.datasets:
        cals = calibrate_dataset(frame, design, dataset, bootstrap=0)
        predicted, _, _ = predict_all(frame, design, dataset, cals)
        missing += missing_runs(frame, design, predicted)
    if missing:
        context = task_context(data_dir)
        run_tasks(RUN, [c.as_dict() for c in missing], store, context, execution, desc="predicted K")
        frame = measured_runs(store, design)
    return analyse(frame, design, bootstrap), frame


def profile_document(cal: Calibration, name: str, dataset: str, base, seeds: dict[str, int], command: str,
                     validation: dict | None = None, box: dict | None = None) -> dict:
    """A profile JSON (what :func:`bladefl_theory.profiles.load_profile` reads) from a calibration, with its provenance.

    ``seeds`` maps each pilot's label to its number of seeds; ``box`` is the region of system parameters the
    profile speaks for (default: the pilots' own range); ``validation`` how it did on held-out settings.
    """
    from ..tasks import SIMULATION_VERSION

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
        },
        "domain": {"dataset": dataset, "model": base.model, "hidden": base.hidden, "N": base.N,
                   "samples_per_client": base.samples_per_client, "alpha": base.alpha, "eta": base.eta,
                   "batch_size": base.batch_size, "partition": base.partition,
                   "classes_per_client": base.classes_per_client, "box": box},
        "validation": validation,
        "provenance": {"method": "calibrated on measured sweeps (bladefl_theory.calibration)", "command": command,
                       "simulation_version": SIMULATION_VERSION},
    }


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
