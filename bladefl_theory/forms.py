"""Models of the final loss F(w^K) over K: the paper's bound, and the forms calibrated on measurements.

Every form maps the number of blocks K (with the time model's tau) and a deployment (N, M, sigma2,
alpha, beta, t_sum, eta) to a number whose argmin over K is the form's K*:

- ``per-round`` and ``printed``: the paper's bound 1/D(K) (:mod:`bladefl_theory.bound`), with the
  constants L, xi, delta, epsilon, phi, theta; continuous gamma = (t_sum − K·beta)/alpha, as printed.
  ``per-round+sc`` and ``printed+sc``: the same with epsilon set to the bound itself (self-consistent).
- ``drift`` and ``saturating``: predictions of the loss itself (:data:`CALIBRATED_FORMS`), three
  terms in the paper's quantities, which differ only in how many local epochs count as progress::

      F(w^K) = (1 + kappa·M/N)·[ 1/(1/F0 + eta·phi·E)              progress of E effective local epochs
                               + drift·(1 − exp(−tau/tau0)) ]      non-IID drift of tau local epochs, saturating
             + (M·sigma2/N²)·(c0 + c1·K)                           lazy noise: final aggregation and K rounds

  ``drift``: E = K·tau, every local epoch is progress. ``saturating``: E = K·tau0·(1 − exp(−tau/tau0)),
  a client's progress on the global objective saturates as it nears its own optimum, at the same
  rate tau0 as its drift away from the global one.

  The progress term is Wang et al.'s 1/D with the initial gap F0 = F(w0) − F(w*) the paper drops.
  Measured drift grows with tau but saturates (a client cannot drift past its own optimum), where the
  bound's lambda^tau grows without limit. Lazy copies over-weight the models they copy, which scales
  the loss of the trained model by (1 + kappa·M/N); M·sigma2/N² is the variance the lazy noise adds to
  the average. With M entering only through that factor and the noise term (which grows with K), K*
  never grows with M or sigma2 (Remark 3 of the paper). tau is the time model's whole number of
  epochs, so K·tau is what the clients really train.

Each calibrated form is one sympy expression; its numeric function is generated from it (``lambdify``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from . import bound as _bound
from bladefl_platform.checks import FINITE, Interval, Rule, shown, validate
from bladefl_platform.errors import InputError
from .params import K_MAX_RULE, Params
from .timemodel import k_max, tau, taus

__all__ = [
    "FORMS",
    "BOUND_FORMS",
    "CALIBRATED_FORMS",
    "CalibratedForm",
    "DRIFT_CONSTANTS",
    "form_expr",
    "form_values",
    "form_values_at",
    "bound_values",
    "form_kstar",
    "FormKStar",
    "band_of",
    "QUESTION_RULES",
]


@dataclass(frozen=True)
class CalibratedForm:
    """A form fitted to measurements: its constants and the log10 range a calibration draws starting points from."""

    name: str
    description: str
    starts: Mapping[str, tuple[float, float]]

    @property
    def constants(self) -> tuple[str, ...]:
        return tuple(self.starts)

    @property
    def constraints(self) -> dict[str, list]:
        """Each constant's rules: finite and >= 0; F0 and tau0 divide, so > 0."""
        return {n: _POSITIVE if n in ("F0", "tau0") else _NONNEG for n in self.constants}


_NONNEG = [Real, FINITE, Interval(Real, 0, None, closed="left")]
_POSITIVE = [Real, FINITE, Interval(Real, 0, None, closed="neither")]
#: The drift and saturating forms' constants, in the order of the module docstring.
DRIFT_CONSTANTS = ("F0", "phi", "drift", "tau0", "kappa", "c0", "c1")
_STARTS = {"F0": (-0.5, 1.0), "phi": (-3.0, 1.0), "drift": (-2.0, 0.5), "tau0": (-0.5, 2.0), "kappa": (-3.0, 1.0),
           "c0": (-2.0, 3.0), "c1": (-3.0, 2.0)}
#: The forms calibrated on measured sweeps (the module docstring says what each term is for).
CALIBRATED_FORMS: dict[str, CalibratedForm] = {
    "drift": CalibratedForm("drift", "predicted final loss: progress of every local epoch, saturating non-IID drift "
                            "and lazy noise (calibrated)", _STARTS),
    "saturating": CalibratedForm("saturating", "predicted final loss: progress that saturates in tau, saturating "
                                 "non-IID drift and lazy noise (calibrated)", _STARTS),
}
#: Every form's name and what its value is.
FORMS: dict[str, str] = {
    "per-round": "the paper's bound with the lazy term in each of the K rounds",
    "printed": "the paper's bound, eq. (6) verbatim",
    "per-round+sc": "the per-round bound with epsilon set to the bound itself",
    "printed+sc": "the printed bound with epsilon set to the bound itself",
    **{f.name: f.description for f in CALIBRATED_FORMS.values()},
}
#: The forms of the paper's bound: each variant with the profile's epsilon, and self-consistent.
BOUND_FORMS: tuple[str, ...] = ("per-round", "printed", "per-round+sc", "printed+sc")

_K, _TAU = sp.Symbol("K", positive=True), sp.Symbol("tau", positive=True)
_SYSTEM = {n: _bound.SYMBOLS[n] for n in ("N", "M", "sigma2", "eta")}
_CONST = {n: sp.Symbol(n, positive=True) for n in DRIFT_CONSTANTS}


def form_expr(form: str) -> sp.Expr:
    """A calibrated form's F(w^K) in K, tau, N, M, sigma2, eta and its constants."""
    if form not in CALIBRATED_FORMS:
        raise InputError(f"form must be one of {', '.join(CALIBRATED_FORMS)} (got {form!r})")
    s, c = _SYSTEM, _CONST
    reached = 1 - sp.exp(-_TAU / c["tau0"])  # how far tau local epochs take a client towards its own optimum
    epochs = _K * _TAU if form == "drift" else _K * c["tau0"] * reached
    progress = 1 / (1 / c["F0"] + s["eta"] * c["phi"] * epochs)
    lazy = 1 + c["kappa"] * s["M"] / s["N"]
    noise = s["M"] * s["sigma2"] / s["N"] ** 2 * (c["c0"] + c["c1"] * _K)
    return lazy * (progress + c["drift"] * reached) + noise


@lru_cache(maxsize=None)
def _compiled(form: str):
    args = [_K, _TAU, *_SYSTEM.values(), *(_CONST[n] for n in CALIBRATED_FORMS[form].constants)]
    return sp.lambdify(args, form_expr(form), modules="numpy")


def _check_constants(form: str, constants: Mapping[str, float]) -> None:
    names = CALIBRATED_FORMS[form].constants
    missing = [n for n in names if n not in constants]
    if missing:
        raise InputError(f"form {form!r} needs constants {', '.join(missing)}")
    validate(constants, CALIBRATED_FORMS[form].constraints)


#: Most whole local epochs per block a calibrated form takes: a float holds whole numbers exactly up to 2**53.
MAX_EPOCHS = 2**53


def _epochs_exact(v: Mapping[str, Any]) -> str | None:
    most = tau(1, v["t_sum"], v["alpha"], v["beta"])
    if most <= MAX_EPOCHS:
        return None
    return (f"alpha must leave at most 2**53 = {MAX_EPOCHS} local epochs per block, the whole numbers a float holds "
            f"exactly (got alpha={shown(v['alpha'])}: {len(str(most))} digits of epochs at K = 1)")


#: The rules of a calibrated form's question beyond the deployment's: K_max searchable, tau exact.
QUESTION_RULES = (K_MAX_RULE, Rule("alpha", _epochs_exact))


def form_values(form: str, K, system: Mapping[str, float], constants: Mapping[str, float]) -> np.ndarray:
    """The form at integer K (an array), for a deployment ``system`` (Params' system names) and ``constants``.

    ``inf`` where a bound form is not finite. For a calibrated form, tau is the time model's whole epochs.
    """
    ks = np.atleast_1d(np.asarray(K, dtype=int))
    if form in BOUND_FORMS:
        merged: dict[str, Any] = {**system, **constants}  # N and M are integers: Params checks every type
        Params(**merged)  # the rules of the bound's parameters
    else:
        validate(system, {}, QUESTION_RULES)
    at = taus(ks, system["t_sum"], system["alpha"], system["beta"])
    return form_values_at(form, ks, at, {n: np.full(len(ks), float(v)) for n, v in system.items()}, constants)


def form_values_at(form: str, K: np.ndarray, taus: np.ndarray, system: Mapping[str, np.ndarray],
                   constants: Mapping[str, float]) -> np.ndarray:
    """The form at many (K, setting) rows at once: ``system`` maps each system parameter to an array.

    ``taus`` are the time model's whole epochs at each row (the calibrated forms use them). Unchecked: for fits.
    """
    if form in BOUND_FORMS:
        values = {**system, **{n: float(v) for n, v in constants.items()}}
        return bound_values(form, K, values)
    if form not in CALIBRATED_FORMS:
        raise InputError(f"form must be one of {', '.join(FORMS)} (got {form!r})")
    _check_constants(form, constants)
    args = [np.asarray(K, dtype=float), np.asarray(taus, dtype=float), *(system[n] for n in _SYSTEM),
            *(np.float64(constants[n]) for n in CALIBRATED_FORMS[form].constants)]  # numpy's inf, never an error
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        out = np.asarray(_compiled(form)(*args), dtype=float)
    return np.where(np.isfinite(out) & (out > 0), out, np.inf)


def bound_values(form: str, K, params) -> np.ndarray:
    """A form of the paper's bound (:data:`BOUND_FORMS`) at each K; ``inf`` where it is not finite.

    ``params`` is a :class:`Params` or a mapping of every parameter (arrays broadcast together).
    """
    if form not in BOUND_FORMS:
        raise InputError(f"form must be one of {', '.join(BOUND_FORMS)} (got {form!r})")
    variant, _, sc = form.partition("+")
    f = _bound.bound_self_consistent if sc else _bound.bound_value
    return np.atleast_1d(np.asarray(f(np.asarray(K, dtype=float), params, variant), dtype=float))


@dataclass(frozen=True)
class FormKStar:
    """A form's K* over K = 1..K_max, its value there, and the K whose value is within ``tolerance`` of it."""

    form: str
    k_star: int | None
    tau: int | None
    value: float | None
    k_max: int
    values: np.ndarray
    band: tuple[int, ...]
    tolerance: float

    def table(self) -> list[dict]:
        band = set(self.band)
        return [{"K": k, "value": float(v) if math.isfinite(v) else None, "in_band": k in band}
                for k, v in enumerate(self.values, start=1)]


def form_kstar(form: str, system: Mapping[str, float], constants: Mapping[str, float],
               tolerance: float = 0.0) -> FormKStar:
    """K* of a form: the argmin over K = 1..K_max, and the band of K within a relative ``tolerance`` of the minimum.

    Every K is evaluated: unlike the paper's bound, a calibrated form need not be convex or unimodal in K
    (whole local epochs make steps, and the drift term is concave in K where tau + beta/alpha > 2·tau0).
    """
    validate(system, {}, QUESTION_RULES if form in CALIBRATED_FORMS else (K_MAX_RULE,))  # before K_max arrays
    km = k_max(system["t_sum"], system["alpha"], system["beta"])
    values = form_values(form, np.arange(1, km + 1), system, constants)
    if not np.isfinite(values).any():
        return FormKStar(form, None, None, None, km, values, (), tolerance)
    i = int(np.argmin(values))
    return FormKStar(form, i + 1, tau(i + 1, system["t_sum"], system["alpha"], system["beta"]), float(values[i]), km,
                     values, band_of(values, tolerance), tolerance)


def band_of(values: np.ndarray, tolerance: float) -> tuple[int, ...]:
    """Every K (values at K = 1, 2, ...) whose value is finite and within a relative ``tolerance`` of the smallest."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        return ()
    best = float(values[finite].min())
    return tuple(int(k) for k in np.flatnonzero(finite & (values <= best * (1 + tolerance))) + 1)
