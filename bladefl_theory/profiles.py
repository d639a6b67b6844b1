"""Profiles: named sets of learning constants (L, xi, delta, epsilon, phi, theta) with their provenance."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["Profile", "ProfileError", "load_profile", "available_profiles", "CONSTANT_NAMES"]

CONSTANT_NAMES = ("L", "xi", "delta", "epsilon", "phi", "theta")


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

    def params(self, **overrides: Any):
        """Build :class:`~bladefl_theory.params.Params` from this profile, ``overrides`` winning."""
        from .params import Params

        return Params(**{**self.constants, **overrides})


def _builtin_dir():
    return resources.files("bladefl_theory") / "profile_data"


def available_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(p.name[:-5] for p in _builtin_dir().iterdir() if p.name.endswith(".json"))


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a shipped profile by name, or a profile JSON file by path."""
    text_source = str(name_or_path)
    builtin = _builtin_dir() / f"{text_source}.json"
    if builtin.is_file():
        text, source = builtin.read_text(encoding="utf-8"), f"builtin:{text_source}"
    else:
        path = Path(text_source)
        if not path.is_file():
            raise ProfileError(
                f"profile {text_source!r} is neither a shipped profile "
                f"({', '.join(available_profiles())}) nor a readable file"
            )
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"profile {text_source!r} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    return _parse(data, text_source, source)


def _parse(data: Any, label: str, source: str) -> Profile:
    if not isinstance(data, dict) or not isinstance(data.get("constants"), dict):
        raise ProfileError(f"profile {label!r} must be a JSON object with a 'constants' object")
    constants = data["constants"]
    missing = [n for n in CONSTANT_NAMES if n not in constants]
    if missing:
        raise ProfileError(f"profile {label!r} lacks constants: {', '.join(missing)}")
    unknown = sorted(set(constants) - set(CONSTANT_NAMES))
    if unknown:
        raise ProfileError(f"profile {label!r} has unknown constants: {', '.join(unknown)}")
    values: dict[str, float] = {}
    for n in CONSTANT_NAMES:
        v = constants[n]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ProfileError(f"profile {label!r}: constant {n} must be a number (got {v!r})")
        values[n] = float(v)
    provenance = data.get("provenance", {})
    if not isinstance(provenance, dict):
        raise ProfileError(f"profile {label!r}: 'provenance' must be an object")
    return Profile(
        name=str(data.get("name", label)),
        constants=values,
        provenance=provenance,
        description=str(data.get("description", "")),
        source=source,
    )
