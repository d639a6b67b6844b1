"""Fit a form's constants to measured loss-over-K curves of a few pilot settings.

The fit minimizes the squared log error between the form (:mod:`bladefl_theory.forms`) and the
mean measured loss at every pilot setting and K, from many starting points (the problem is not
convex), with every constant positive (fitted in log space, within bounds). Uncertainty comes from
refitting on bootstrap resamples of the seeds (whole seeds, so each resample keeps a seed's paired
curve). The result reads like scipy.optimize's: ``constants``, ``status``, ``success``, ``message``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from bladefl_platform.errors import InputError
from .forms import CALIBRATED_FORMS, form_values_at
from .params import SYSTEM_PARAMETERS
from .timemodel import tau

__all__ = ["Calibration", "calibrate", "FREE", "CURVE_COLUMNS"]

#: Columns a curve frame needs: the deployment, K, the seed and the measured final loss.
CURVE_COLUMNS = (*SYSTEM_PARAMETERS, "K", "seed", "loss")

#: Each form's fitted constants with the log10 range starting points are drawn from. Constants of a
#: bound form that are not listed (epsilon) stay fixed: only their ratios to the others are identifiable.
FREE: dict[str, dict[str, tuple[float, float]]] = {
    **{name: dict(f.starts) for name, f in CALIBRATED_FORMS.items()},
    "per-round": {"L": (-1.0, 1.9), "xi": (-2.0, 1.0), "delta": (-2.0, 1.0), "phi": (-4.0, 1.0), "theta": (-3.0, 1.0)},
    "printed": {"L": (-1.0, 1.9), "xi": (-2.0, 1.0), "delta": (-2.0, 1.0), "phi": (-4.0, 1.0), "theta": (-3.0, 1.0)},
}
#: Hard limits of every fitted constant (log10), wide enough never to bind at a sensible fit.
_LIMITS = (-9.0, 6.0)
#: A loss the form cannot produce (a bound that is not finite) counts as this many e-folds off.
_INFEASIBLE = 20.0


@dataclass(frozen=True)
class Calibration:
    """A fitted form: its constants, their bootstrap spread, the pilots' residuals and the fit's error."""

    form: str
    constants: dict[str, float]
    fixed: dict[str, float]
    spread: dict[str, float]  # std of log(constant) over the bootstrap refits
    residuals: pd.DataFrame  # one row per pilot setting and K: measured mean, predicted, log residual
    rms_log_error: float
    pilots: list[dict[str, float]]
    seeds: int
    status: int
    message: str
    bootstrap: int = 0
    starts: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.status == 0

    @property
    def tolerance(self) -> float:
        """The fit's relative error, exp(rms log error) − 1: K within it of the minimum form the K* band."""
        return math.expm1(self.rms_log_error)

    def all_constants(self) -> dict[str, float]:
        return {**self.fixed, **self.constants}


def _check_curves(curves: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise InputError(f"curves lack columns: {', '.join(missing)}")
    if curves.empty:
        raise InputError("no measured curves to calibrate on")
    bad = curves[~(np.isfinite(curves["loss"]) & (curves["loss"] > 0))]
    if len(bad):
        raise InputError(f"{len(bad)} measured losses are not finite and positive")
    return curves


def _means(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean loss per setting and K, with the time model's tau of each row."""
    keys = [*SYSTEM_PARAMETERS, "K"]
    means = curves.groupby(keys, as_index=False)["loss"].mean()
    means["tau"] = [tau(int(k), t, a, b)
                    for k, t, a, b in zip(means["K"], means["t_sum"], means["alpha"], means["beta"])]
    return means


def _predict(form: str, means: pd.DataFrame, constants: Mapping[str, float]) -> np.ndarray:
    system = {n: means[n].to_numpy(dtype=float) for n in SYSTEM_PARAMETERS}
    return form_values_at(form, means["K"].to_numpy(), means["tau"].to_numpy(), system, constants)


def _residuals(form, means, names, fixed, x) -> np.ndarray:
    constants = {**fixed, **dict(zip(names, 10.0 ** np.asarray(x)))}
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(_predict(form, means, constants)) - np.log(means["loss"].to_numpy())
    return np.where(np.isfinite(r), r, _INFEASIBLE)


def _fit(form, means, names, fixed, starts: np.ndarray):
    lo = np.full(len(names), _LIMITS[0])
    hi = np.full(len(names), _LIMITS[1])
    if "L" in names and "eta" in means:
        # Lemma 1 needs eta·L < 1.
        hi[names.index("L")] = math.log10(0.999 / float(means["eta"].max()))
    best = None
    for x0 in starts:
        x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
        r = least_squares(lambda x: _residuals(form, means, names, fixed, x), x0, bounds=(lo, hi), method="trf")
        if best is None or r.cost < best.cost:
            best = r
    return best


def calibrate(
    curves: pd.DataFrame,
    form: str = "drift",
    fixed: Mapping[str, float] | None = None,
    *,
    starts: int = 40,
    bootstrap: int = 100,
    seed: int = 0,
) -> Calibration:
    """Fit ``form``'s free constants (:data:`FREE`) to ``curves`` (:data:`CURVE_COLUMNS`, one row per run).

    ``fixed`` holds the constants the form needs that are not fitted (epsilon for the bound forms).
    Refuses (InputError) fewer distinct (setting, K) points than free constants plus one.
    """
    if form not in FREE:
        raise InputError(f"form must be one of {', '.join(FREE)} (got {form!r})")
    curves = _check_curves(curves)
    fixed = dict(fixed or {})
    if form not in CALIBRATED_FORMS and "epsilon" not in fixed:
        raise InputError(f"form {form!r} needs a fixed epsilon (only the ratios to it are identifiable)")
    names = list(FREE[form])
    means = _means(curves)
    if len(means) < len(names) + 1:
        raise InputError(
            f"{len(means)} measured (setting, K) points cannot fit {len(names)} constants of form {form!r}: "
            f"need at least {len(names) + 1} (more K or more pilot settings)"
        )
    rng = np.random.default_rng(seed)
    ranges = np.array([FREE[form][n] for n in names])
    x0 = rng.uniform(ranges[:, 0], ranges[:, 1], size=(starts, len(names)))
    best = _fit(form, means, names, fixed, x0)
    constants = dict(zip(names, (float(v) for v in 10.0 ** best.x)))
    pred = _predict(form, means, {**fixed, **constants})
    resid = means.assign(predicted=pred, log_residual=np.log(pred) - np.log(means["loss"]))
    rms = float(np.sqrt(np.mean(resid["log_residual"] ** 2)))
    status, message = 0, "converged"
    if not np.isfinite(rms) or rms > 1.0:
        status, message = 1, f"the best fit is poor (rms log error {rms:.3g}): the form does not describe these curves"

    spread = {n: math.nan for n in names}
    seeds = sorted(curves["seed"].unique())
    if bootstrap and len(seeds) > 1 and status == 0:
        draws = []
        for _ in range(bootstrap):
            picked = rng.choice(seeds, size=len(seeds), replace=True)
            sample = pd.concat([curves[curves["seed"] == s] for s in picked], ignore_index=True)
            refit = _fit(form, _means(sample), names, fixed, best.x[None, :])
            draws.append(refit.x)
        spread = dict(zip(names, (float(v) for v in np.std(np.log(10.0) * np.array(draws), axis=0))))
    pilots = [dict(zip(SYSTEM_PARAMETERS, (float(v) for v in k)))
              for k in means.groupby(list(SYSTEM_PARAMETERS)).groups]
    return Calibration(form=form, constants=constants, fixed=fixed, spread=spread, residuals=resid,
                       rms_log_error=rms, pilots=pilots, seeds=len(seeds), status=status, message=message,
                       bootstrap=bootstrap if status == 0 and len(seeds) > 1 else 0, starts=starts)
