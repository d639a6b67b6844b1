"""K* for a question: ``kstar(M=4, sigma2=0.1)``, one entry and one answer for every form of the loss over K.

The question is a deployment (N, M, sigma2, alpha, beta, t_sum, eta) put to a profile. What it leaves unset
comes from the profile's system, else from the paper's defaults. A profile of the paper's bound is solved by
:func:`bladefl_theory.solvers.solve_kstar`, a calibrated one by :func:`bladefl_theory.forms.form_kstar`; both
come back as one :class:`KStar`, which ``bladefl-theory kstar`` prints and nothing more. Light to import: the
numeric modules load when a K* is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bladefl_platform.errors import InputError

from .params import LEARNING_CONSTANTS, SYSTEM_DEFAULTS, SYSTEM_PARAMETERS, check_system
from .profiles import Profile, load_profile

__all__ = ["kstar", "KStar", "DEFAULT_PROFILE", "EXIT_NO_FINITE"]

#: The profile ``kstar`` (and ``bladefl-theory kstar``) uses unless told otherwise: calibrated on measured sweeps,
#: validated on held-out settings.
DEFAULT_PROFILE = "mnist-mlp-calibrated"
#: Status of an answer with no finite value at any K (the command's exit status).
EXIT_NO_FINITE = 3


@dataclass(frozen=True)
class KStar:
    """The answer to a K* question, for every form: K*, tau, the band, each K's value, and how far to trust it.

    ``record`` is the profile's held-out record; ``record_applies`` is False where the question lies outside the
    profile's domain (``warnings`` say where) or the profile has no record. ``solver`` holds, for the paper's
    bound only, :func:`~bladefl_theory.solvers.solve_kstar`'s result (continuous K*, feasible interval, agreement).
    """

    profile: str
    form: str
    k_star: int | None
    tau: int | None
    value: float | None
    k_max: int
    band: tuple[int, ...]
    tolerance: float
    values: tuple[float | None, ...]
    taus: tuple[int, ...]
    system: dict[str, Any]
    constants: dict[str, float]
    from_profile: dict[str, Any]
    profile_system: dict[str, Any]
    warnings: tuple[str, ...]
    record: dict[str, Any] | None
    record_applies: bool
    record_line: str | None
    system_note: str | None
    message: str
    variant: str | None = None
    solver: Any = field(default=None, repr=False, compare=False)

    @property
    def status(self) -> int:
        """0 with a K*, else :data:`EXIT_NO_FINITE`."""
        return 0 if self.k_star is not None else EXIT_NO_FINITE

    @property
    def success(self) -> bool:
        return self.status == 0

    @property
    def at_end(self) -> bool:
        """K* at an end of the K range (1 or K_max)."""
        return self.k_star in (1, self.k_max)

    def table(self) -> list[dict[str, Any]]:
        """One row per K = 1..K_max: tau, the value (None where not finite) and whether K is in the band."""
        band = set(self.band)
        return [{"K": k, "tau": t, "value": v, "in_band": k in band}
                for k, (t, v) in enumerate(zip(self.taus, self.values), start=1)]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``bladefl-theory kstar --json``): the same keys for every form."""
        solved = self.solver.as_dict() if self.solver is not None else {}
        return {
            "status": self.status, "success": self.success, "message": self.message, "form": self.form,
            "variant": self.variant, "profile": self.profile, "k_star": self.k_star, "tau": self.tau,
            "value": self.value, "k_star_band": list(self.band), "tolerance": self.tolerance, "k_max": self.k_max,
            "at_end": self.at_end, "params": dict(self.system), "constants": dict(self.constants),
            "warnings": list(self.warnings), "validation": self.record, "validation_applies": self.record_applies,
            "profile_system": dict(self.profile_system), "from_profile": dict(self.from_profile),
            "k_star_continuous": solved.get("k_star_continuous"), "feasible": solved.get("feasible"),
            "solvers_agree": solved.get("solvers_agree"), "solvers": solved.get("solvers"),
            "solver_status": solved.get("status"), "notes": solved.get("notes", []), "table": self.table(),
        }


def kstar(profile: str | Profile | None = None, *, variant: str | None = None, check: bool = False,
          model: str | None = None, samples_per_client: int | None = None, **question: Any) -> KStar:
    """K* for the deployment in ``question`` (N, M, sigma2, alpha, beta, t_sum, eta; with a bound profile also its
    constants L, xi, delta, epsilon, phi, theta), by ``profile`` (a name, a path or a Profile; default
    :data:`DEFAULT_PROFILE`). ``model`` and ``samples_per_client`` are compared with the profile's, for a warning.

    ``variant`` (per-round or printed) and ``check`` (cvxpy's cross-check) apply to a profile of the bound only.
    """
    prof = profile if isinstance(profile, Profile) else load_profile(profile or DEFAULT_PROFILE)
    unknown = sorted(set(question) - set(SYSTEM_PARAMETERS) - set(LEARNING_CONSTANTS))
    if unknown:
        raise InputError(f"kstar: unknown parameter {unknown[0]!r}; known: "
                         f"{', '.join((*SYSTEM_PARAMETERS, *LEARNING_CONSTANTS))}")
    given = {k: v for k, v in question.items() if v is not None}
    yours = {"model": model, "samples_per_client": samples_per_client}
    if prof.is_bound:
        return _bound_answer(prof, variant or prof.form, check, given, yours)
    _refuse_bound_options(prof, variant, check, given)
    return _form_answer(prof, given, yours)


def _refuse_bound_options(prof: Profile, variant: str | None, check: bool, given: Mapping[str, Any]) -> None:
    """A calibrated profile takes neither the bound's variants, its cross-check nor its constants."""
    use = f"profile {prof.name} holds the {prof.form} form (use --profile default for the bound)"
    if check:
        raise InputError(f"--check cross-checks the solvers of the paper's bound; {use}")
    if variant is not None:
        raise InputError(f"--variant chooses a form of the paper's bound; {use}")
    bound_flags = [n for n in LEARNING_CONSTANTS if n in given]
    if bound_flags:
        raise InputError(f"--{bound_flags[0]} is a constant of the paper's bound; profile {prof.name} holds the "
                         f"{prof.form} form's constants ({', '.join(prof.constants)})")


def _form_answer(prof: Profile, given: Mapping[str, Any], yours: Mapping[str, Any]) -> KStar:
    """The answer of a calibrated form (drift, saturating): its prediction of the final loss over K."""
    from .forms import form_kstar

    taken = prof.defaults(given)
    system = {**SYSTEM_DEFAULTS, **taken, **{n: given[n] for n in SYSTEM_PARAMETERS if n in given}}
    check_system(**{n: system[n] for n in SYSTEM_PARAMETERS})
    system = {n: system[n] for n in SYSTEM_PARAMETERS}
    r = form_kstar(prof.form, system, prof.constants, prof.tolerance)
    if r.k_star is None:
        message = (f"no K in 1..{r.k_max} gives a finite predicted loss ({prof.form}, profile {prof.name}): "
                   "the parameters or constants put it beyond float range (1.8e308)")
    else:
        message = "K* at an end of the K range" if r.k_star in (1, r.k_max) else "K* inside the K range"
    return _answer(prof, system, taken, yours, r.values, r.band, message, k_star=r.k_star, value=r.value)


def _bound_answer(prof: Profile, variant: str, check: bool, given: Mapping[str, Any],
                  yours: Mapping[str, Any]) -> KStar:
    """The answer of the paper's bound: solve_kstar's integer K*, with its continuous K* and solvers' agreement."""
    from .forms import band_of
    from .solvers import solve_kstar

    taken = prof.defaults(given)
    params = prof.params(**{**taken, **given})
    r = solve_kstar(params, variant, check=check)
    message = r.message
    if r.k_star is None:
        message += " (`bladefl-theory bound` also prints the self-consistent bound, which needs no epsilon)"
    system = {n: getattr(params, n) for n in SYSTEM_PARAMETERS}
    constants = {n: getattr(params, n) for n in LEARNING_CONSTANTS}
    hand = []
    if prof.provenance.get("method") == "calibrated":
        hand.append(f"profile {prof.name} is hand-calibrated (its constants were set, not measured); "
                    f"{DEFAULT_PROFILE} was calibrated on measured sweeps and validated on held-out settings")
    return _answer(prof, system, taken, yours, r.bounds, band_of(r.bounds, prof.tolerance), message,
                   k_star=r.k_star, value=r.bound, constants=constants, variant=variant, solver=r, also=hand)


def _answer(prof: Profile, system: dict[str, Any], taken: dict[str, Any], yours: Mapping[str, Any], values: Any,
            band: tuple[int, ...], message: str, *, k_star: int | None, value: float | None,
            constants: dict[str, float] | None = None, variant: str | None = None, solver: Any = None,
            also: list[str] | None = None) -> KStar:
    """The one answer, from a form's values at K = 1..K_max and the profile it came from."""
    import numpy as np

    from .timemodel import taus

    k_max = len(values)
    at = taus(np.arange(1, k_max + 1), system["t_sum"], system["alpha"], system["beta"])
    outside = prof.domain_warnings({**system, **yours})
    applies = prof.validation is not None and not outside
    warnings = (*outside, *(also or []))
    line = prof.validation_line()
    if line and not applies:
        line = (f"profile {prof.name} was validated on its domain ({_box(prof)}); this question lies outside it, "
                "so its held-out record does not apply (see the warnings)")
    return KStar(
        profile=prof.name, form=variant or prof.form, k_star=k_star, tau=int(at[k_star - 1]) if k_star else None,
        value=value if value is None or math.isfinite(value) else None, k_max=k_max, band=band,
        tolerance=prof.tolerance, values=tuple(float(v) if math.isfinite(v) else None for v in values),
        taus=tuple(int(t) for t in at), system=system, constants=dict(constants or prof.constants),
        from_profile=taken, profile_system=dict(prof.system), warnings=warnings, record=prof.validation,
        record_applies=applies, record_line=line, system_note=prof.system_note(taken), message=message,
        variant=variant, solver=solver,
    )


def _box(prof: Profile) -> str:
    box = (prof.domain or {}).get("box") or {}
    measured = [f"{k}={prof.system[k]}" for k in ("N", "alpha", "eta", "model", "samples_per_client")
                if k in prof.system]
    ranges = [f"{name} {lo:g}..{hi:g}" for name, (lo, hi) in box.items()]
    return ", ".join(measured + ranges)
