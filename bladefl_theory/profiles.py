"""Profiles: named sets of constants for a form of the loss over K, with their provenance.

A profile of the paper's bound holds L, xi, delta, epsilon, phi and theta; a calibrated profile may
hold another form's constants (``form``, see :mod:`bladefl_theory.forms`), the error of its
calibration, the deployment it was measured on (``domain``) and how well it predicted settings it
never saw (``validation``). Every profile that says what system it was estimated or calibrated for (a
calibrated one in ``domain``, an estimated one in the runs of its ``provenance``) has it in ``system``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from numbers import Real

from bladefl_platform.checks import FINITE, ConstraintError, validate
from bladefl_platform.errors import InputError

from .params import VARIANTS, Params
from .profile_schema import check_sections

__all__ = ["Profile", "ProfileError", "load_profile", "available_profiles", "CONSTANT_NAMES",
           "VARIANTS", "SYSTEM_KEYS", "form_constraints", "PROFILE_DEFAULTS"]

CONSTANT_NAMES = ("L", "xi", "delta", "epsilon", "phi", "theta")


#: What a profile may record of the system it was estimated or calibrated for, and the type of each.
SYSTEM_KEYS: dict[str, type] = {"dataset": str, "model": str, "N": int, "samples_per_client": int, "t_sum": float,
                                "alpha": float, "beta": float, "eta": float}


#: The parameters a profile's system gives their defaults (M and sigma2, the question asked, never come from it).
PROFILE_DEFAULTS = ("N", "alpha", "beta", "t_sum", "eta")
#: What a question is compared with the profile's record on, for a warning (besides its validated box).
_COMPARED = ("N", "alpha", "eta", "model", "samples_per_client")


class ProfileError(InputError):
    """A profile cannot be found or read."""


@dataclass(frozen=True)
class Profile:
    """Learning constants and where they came from."""

    name: str
    constants: dict[str, float]
    provenance: dict[str, Any]
    description: str = ""
    source: str = ""
    form: str = "per-round"
    calibration: dict[str, Any] | None = None
    domain: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    #: The system the constants were estimated or calibrated for, as far as the profile records it (keys of
    #: SYSTEM_KEYS): from ``domain``, else from the runs an estimate made (``provenance["run"]``).
    system: dict[str, Any] = field(default_factory=dict)

    @property
    def is_bound(self) -> bool:
        """True for a profile of the paper's bound (its constants make :class:`Params`)."""
        return self.form in VARIANTS

    @property
    def tolerance(self) -> float:
        """The calibration's relative error (0 for a profile that was not fitted to measurements)."""
        return float((self.calibration or {}).get("tolerance", 0.0))

    def defaults(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The values of the profile's system that stand where ``given`` sets nothing (or None)."""
        return {k: self.system[k] for k in PROFILE_DEFAULTS if k in self.system and given.get(k) is None}

    def system_note(self, taken: Mapping[str, Any]) -> str | None:
        """One line saying which defaults came from the profile, if any differs from the paper's (None otherwise)."""
        from .params import SYSTEM_DEFAULTS

        differ = {k: v for k, v in taken.items() if v != SYSTEM_DEFAULTS[k]}
        if not differ:
            return None
        labels = {"samples_per_client": "|D_i|"}
        record = ", ".join(str(v) if k in ("dataset", "model") else f"{labels.get(k, k)}={v:g}"
                           for k, v in self.system.items())
        used = ", ".join(f"{k}={v:g}" for k, v in differ.items())
        return f"{used} from profile {self.name}, which was measured on {record} (flags override)"

    def domain_warnings(self, question: Mapping[str, Any]) -> list[str]:
        """One line per parameter of ``question`` outside the region the profile was calibrated and validated on."""
        out = []
        for name in _COMPARED:
            value = question.get(name)
            if value is not None and name in self.system and value != self.system[name]:
                out.append(f"{name}={value}, but profile {self.name} was measured at {name}={self.system[name]}: "
                           "the prediction extrapolates")
        for name, (lo, hi) in ((self.domain or {}).get("box") or {}).items():
            if name in question and not lo <= question[name] <= hi:
                out.append(f"{name}={question[name]:g} lies outside the range profile {self.name} was validated on "
                           f"({lo:g}..{hi:g}): the prediction extrapolates")
        return out

    def validation_line(self) -> str | None:
        """How well the profile predicted settings it never saw, in one line (None if it was never validated)."""
        v = self.validation
        if not v:
            return None
        where = v.get("settings", "held-out settings")
        line = (f"profile {self.name} ({self.form}): K* inside the measured plausible set at {v['hits']} of "
                f"{v['held_out']} {where} it never saw ({v['hit_rate']:.0%}), regret median "
                f"{_pct(v.get('median_regret'))}, worst {_pct(v.get('worst_regret'))}")
        fresh = v.get("fresh_measurement")
        if fresh:
            line += (f"; a fresh measurement of each, held against half its seeds: {fresh['hit_rate']:.0%}, "
                     f"{_pct(fresh.get('median_regret'))}, {_pct(fresh.get('worst_regret'))}")
        return line + (f" ({v['report']})" if v.get("report") else "")

    def params(self, **overrides: Any) -> Params:
        """Build :class:`~bladefl_theory.params.Params` from this profile, ``overrides`` winning."""
        if not self.is_bound:
            raise ProfileError(f"profile {self.name!r} holds the {self.form} form's constants, not the bound's")
        return Params(**{**self.constants, **overrides})


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def _builtin_dir():
    return resources.files("bladefl_theory") / "profile_data"


def available_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(p.name[:-5] for p in _builtin_dir().iterdir() if p.name.endswith(".json"))


#: Largest profile file read (a profile is a few kilobytes).
MAX_PROFILE_BYTES = 1 << 20


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a shipped profile by name, or a profile JSON file by path."""
    text_source = str(name_or_path)
    if text_source in available_profiles():
        builtin = _builtin_dir() / f"{text_source}.json"
        text, source = builtin.read_text(encoding="utf-8"), f"builtin:{text_source}"
    else:
        text, source = _read_file(text_source), text_source
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"profile {_short(text_source)} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise ProfileError(f"profile {_short(text_source)} is nested too deeply to be a profile") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ProfileError(f"profile {_short(text_source)} is not valid JSON: {exc}") from None
    return _parse(data, text_source, source)


def _read_file(text_source: str) -> str:
    path = Path(text_source)
    not_found = ProfileError(
        f"profile {_short(text_source)} is neither a shipped profile ({', '.join(available_profiles())}) "
        "nor a readable file"
    )
    try:
        if not path.is_file():
            raise not_found
        if path.stat().st_size > MAX_PROFILE_BYTES:
            raise ProfileError(f"profile {_short(text_source)} is larger than {MAX_PROFILE_BYTES} bytes: not a profile")
        with path.open("rb") as f:
            raw = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ProfileError(f"profile {_short(text_source)} cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_PROFILE_BYTES:
        raise ProfileError(f"profile {_short(text_source)} is larger than {MAX_PROFILE_BYTES} bytes: not a profile")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"profile {_short(text_source)} is not UTF-8 text (a JSON file was expected)") from None


def _short(value: Any, quote: bool = True) -> str:
    """repr(value) (or str, without ``quote``), cut to 200 characters for a one-line message."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _parse(data: Any, label: str, source: str) -> Profile:
    if not isinstance(data, dict) or not isinstance(data.get("constants"), dict):
        raise ProfileError(f"profile {_short(label)} must be a JSON object with a 'constants' object")
    form = data.get("form", "per-round")
    known = {form: _bound_constraints()} if form in VARIANTS else form_constraints()
    if not isinstance(form, str) or form not in known:
        raise ProfileError(f"profile {_short(label)}: form must be one of {', '.join(known)} "
                           f"(got {_short(form)})")
    constants = _constants(data["constants"], known[form], label)
    try:
        check_sections(data)
    except ConstraintError as exc:
        raise ProfileError(f"profile {_short(label)}: {exc}") from None
    sections = {key: data.get(key) for key in ("calibration", "domain", "validation")}
    provenance = data.get("provenance") or {}  # absent or null: none recorded
    return Profile(
        name=data.get("name") or label,
        constants=constants,
        provenance=provenance,
        description=data.get("description") or "",
        source=source,
        form=form,
        **sections,
        system=_system(provenance, sections["domain"]),
    )


def _bound_constraints() -> dict[str, list]:
    """A bound profile's constants as the file holds them: finite numbers (:class:`Params` holds the bound's rules)."""
    return {n: [Real, FINITE] for n in CONSTANT_NAMES}


def form_constraints() -> dict[str, dict[str, list]]:
    """The constants each form a profile may hold needs, with their constraints: the bound's, each calibrated form's."""
    # forms needs Params, whose defaults are a profile: a bound profile is read without it.
    from .forms import CALIBRATED_FORMS

    return {**{name: _bound_constraints() for name in VARIANTS},
            **{name: form.constraints for name, form in CALIBRATED_FORMS.items()}}


def _constants(constants: dict[str, Any], constraints: dict[str, list], label: str) -> dict[str, float]:
    """The constants a form needs, each held to its constraints, as floats."""
    missing = [n for n in constraints if n not in constants]
    if missing:
        raise ProfileError(f"profile {_short(label)} lacks constants: {', '.join(missing)}")
    unknown = sorted(set(constants) - set(constraints))
    if unknown:
        shown_ = ", ".join(_short(u, quote=False) for u in unknown[:5])
        shown_ += f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ProfileError(f"profile {_short(label)} has unknown constants: {shown_}")
    try:
        validate({n: constants[n] for n in constraints}, constraints)
    except ConstraintError as exc:
        raise ProfileError(f"profile {_short(label)}: constant {exc}") from None
    return {n: float(constants[n]) for n in constraints}


def _system(provenance: dict[str, Any], domain: dict[str, Any] | None) -> dict[str, Any]:
    """The system a profile records (see Profile.system), from its checked ``provenance.run`` and ``domain``."""
    system: dict[str, Any] = {}
    for record in (provenance.get("run") or {}, domain or {}):
        for key, kind in SYSTEM_KEYS.items():
            if record.get(key) is not None:
                system[key] = kind(record[key])
    return system
