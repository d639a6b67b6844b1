"""Profiles: named sets of constants for a form of the loss over K, with their provenance.

A profile of the paper's bound holds L, xi, delta, epsilon, phi and theta; a calibrated profile may
hold another form's constants (``form``, see :mod:`bladefl_theory.forms`), the error of its
calibration, the deployment it was measured on (``domain``) and how well it predicted settings it
never saw (``validation``). Every profile that says what system it was estimated or calibrated for (a
calibrated one in ``domain``, an estimated one in the runs of its ``provenance``) has it in ``system``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bladefl_platform.errors import InputError

from .params import VARIANTS, Params

__all__ = ["Profile", "ProfileError", "load_profile", "available_profiles", "CONSTANT_NAMES", "form_constants",
           "VARIANTS", "SYSTEM_KEYS"]

CONSTANT_NAMES = ("L", "xi", "delta", "epsilon", "phi", "theta")


def form_constants() -> dict[str, tuple[str, ...]]:
    """The constants each form a profile may hold needs: the bound's, and each calibrated form's."""
    from .forms import CALIBRATED_FORMS  # needs sympy: imported only when a profile names a calibrated form

    return {**{name: CONSTANT_NAMES for name in VARIANTS},
            **{name: form.constants for name, form in CALIBRATED_FORMS.items()}}


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

    def params(self, **overrides: Any) -> Params:
        """Build :class:`~bladefl_theory.params.Params` from this profile, ``overrides`` winning."""
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
    known = {form: CONSTANT_NAMES} if form in VARIANTS else form_constants()
    if not isinstance(form, str) or form not in known:
        raise ProfileError(f"profile {_short(label)}: form must be one of {', '.join(known)} "
                           f"(got {_short(form)})")
    names = known[form]
    constants = data["constants"]
    missing = [n for n in names if n not in constants]
    if missing:
        raise ProfileError(f"profile {_short(label)} lacks constants: {', '.join(missing)}")
    unknown = sorted(set(constants) - set(names))
    if unknown:
        shown = ", ".join(_short(u, quote=False) for u in unknown[:5])
        shown += f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ProfileError(f"profile {_short(label)} has unknown constants: {shown}")
    values: dict[str, float] = {}
    for n in names:
        v = constants[n]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ProfileError(f"profile {_short(label)}: constant {n} must be a number (got {_short(v)})")
        try:
            values[n] = float(v)
        except OverflowError:
            raise ProfileError(f"profile {_short(label)}: constant {n} must be a finite number "
                               f"(got {_short(v)})") from None
    sections: dict[str, Any] = {}
    for key in ("provenance", "calibration", "domain", "validation"):
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            raise ProfileError(f"profile {_short(label)}: {key!r} must be an object")
        sections[key] = value
    provenance = sections.pop("provenance") or {}  # absent or null: none recorded
    return Profile(
        name=data["name"] if isinstance(data.get("name"), str) else label,
        constants=values,
        provenance=provenance,
        description=data["description"] if isinstance(data.get("description"), str) else "",
        source=source,
        form=form,
        **sections,
        system=_system(provenance, sections["domain"], label),
    )


def _system(provenance: dict[str, Any], domain: dict[str, Any] | None, label: str) -> dict[str, Any]:
    """The system a profile records (see Profile.system); ProfileError for a recorded value of the wrong type."""
    run = provenance.get("run", {})
    if not isinstance(run, dict):
        raise ProfileError(f"profile {_short(label)}: provenance 'run' must be an object")
    system: dict[str, Any] = {}
    for where, record in (("provenance.run", run), ("domain", domain or {})):
        for key, kind in SYSTEM_KEYS.items():
            if key not in record:
                continue
            v = record[key]
            ok = isinstance(v, str) if kind is str else _finite_number(v) and (kind is float or float(v).is_integer())
            if not ok:
                what = {str: "a name", int: "an integer", float: "a finite number"}[kind]
                raise ProfileError(f"profile {_short(label)}: {where} {key} must be {what} (got {_short(v)})")
            system[key] = kind(v)
    return system


def _finite_number(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:  # an integer beyond float range
        return False
