"""Profiles: named sets of constants for a form of the loss over K, with their provenance.

A profile of the paper's bound holds L, xi, delta, epsilon, phi and theta; a calibrated profile may
hold another form's constants (``form``, see :mod:`bladefl_theory.forms`), the error of its
calibration, the deployment it was measured on (``domain``) and how well it predicted settings it
never saw (``validation``). Every profile that says what system it was estimated or calibrated for (a
calibrated one in ``domain``, an estimated one in the runs of its ``provenance``) has it in ``system``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from numbers import Real

from bladefl_platform.checks import FINITE, ConstraintError, validate
from bladefl_platform.errors import InputError

from .profile_schema import check_sections

__all__ = ["Profile", "ProfileError", "load_profile", "available_profiles", "CONSTANT_NAMES",
           "VARIANTS", "SYSTEM_KEYS", "form_constraints"]

CONSTANT_NAMES = ("L", "xi", "delta", "epsilon", "phi", "theta")
#: The two forms of the paper's bound (:mod:`bladefl_theory.bound`), which a bound profile may name: the lazy term
#: in each of the K rounds, or once, as eq. (6) prints it. Defined here, the lightest module that needs them.
VARIANTS: tuple[str, ...] = ("per-round", "printed")


#: What a profile may record of the system it was estimated or calibrated for, and the type of each.
SYSTEM_KEYS: dict[str, type] = {"dataset": str, "model": str, "N": int, "samples_per_client": int, "t_sum": float,
                                "alpha": float, "beta": float, "eta": float}


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

    def params(self, **overrides: Any):
        """Build :class:`~bladefl_theory.params.Params` from this profile, ``overrides`` winning."""
        from .params import Params

        if not self.is_bound:
            raise ProfileError(f"profile {self.name!r} holds the {self.form} form's constants, not the bound's")
        return Params(**{**self.constants, **overrides})


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
