"""The profile file's schema, declared once as constraints (:mod:`bladefl_platform.checks`) and checked on load.

Every field a command reads or prints is declared here, by section (``validation.hits`` is the ``hits`` of the
``validation`` object); fields nobody reads (a calibration's residuals) are free. The constants are checked by
their form (:func:`bladefl_theory.profiles.form_constraints`). Light: imports nothing of the theory at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from bladefl_platform.checks import FINITE, TEXT, ConstraintError, Interval, Rule, Text, shown, validate

__all__ = ["SECTIONS", "SECTION_RULES", "SYSTEM_FIELDS", "check_sections", "check_box"]

_NONNEG = [Real, FINITE, Interval(Real, 0, None, closed="left")]
_POSITIVE = [Real, FINITE, Interval(Real, 0, None, closed="neither")]
_COUNT = [Integral, Interval(Integral, 1, None, closed="left")]
_SHARE = [Real, Interval(Real, 0, 1)]

#: What a profile may record of the system it was measured on (``domain`` and ``provenance.run``).
SYSTEM_FIELDS: dict[str, list] = {
    "dataset": [None, TEXT], "model": [None, TEXT], "partition": [None, TEXT],
    "N": [None, Integral, Interval(Integral, 2, 2**53)],  # 2**53: the integers a float holds exactly
    **{n: [None, *_COUNT] for n in ("samples_per_client", "hidden", "batch_size", "classes_per_client")},
    **{n: [None, *_POSITIVE] for n in ("t_sum", "alpha", "beta", "eta")},
}
#: A held-out record's numbers (the profile's ``validation`` and its ``fresh_measurement``).
_RECORD: dict[str, list] = {
    "held_out": _COUNT, "hits": [None, Integral, Interval(Integral, 0, None, closed="left")], "hit_rate": _SHARE,
    "median_regret": [None, *_NONNEG], "worst_regret": [None, *_NONNEG],
}
#: Each section's fields and their constraints ("" is the top level).
SECTIONS: dict[str, dict[str, list]] = {
    "": {"name": [None, TEXT], "description": [None, Text(longest=5000)]},
    "calibration": {"tolerance": [None, *_NONNEG], "rms_log_error": [None, *_NONNEG],
                    "bootstrap": [None, Integral, Interval(Integral, 0, None, closed="left")]},
    "validation": {**_RECORD, "hits": [Integral, Interval(Integral, 0, None, closed="left")],
                   "settings": [None, TEXT], "report": [None, TEXT]},
    "validation.fresh_measurement": _RECORD,
    "validation.chosen_on": {"settings": [None, TEXT], "held_out": [None, *_COUNT], "mean_regret": [None, *_NONNEG],
                             "rule": [None, Text(longest=5000)]},
    "domain": SYSTEM_FIELDS,
    "provenance": {"method": [None, TEXT], "command": [None, Text(longest=5000)]},
    "provenance.run": SYSTEM_FIELDS,
}


def _hits_within(v: Mapping[str, Any]) -> str | None:
    hits, held_out = v["hits"], v["held_out"]
    if hits is None or hits <= held_out:
        return None
    return f"hits must be at most held_out = {held_out} (got {shown(hits)})"


def _rate_of_hits(v: Mapping[str, Any]) -> str | None:
    hits, held_out, rate = v["hits"], v["held_out"], v["hit_rate"]
    if hits is None or abs(rate - hits / held_out) <= 5e-5:
        return None
    return f"hit_rate must be hits/held_out = {hits / held_out:.4f} (got {shown(rate)})"


#: The rules between a section's fields.
SECTION_RULES: dict[str, tuple[Rule, ...]] = {
    s: (Rule("hits", _hits_within), Rule("hit_rate", _rate_of_hits)) for s in ("validation",
                                                                           "validation.fresh_measurement")
}


def _section(data: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The object at a dotted ``path`` ("" the top level), None where absent; ConstraintError if not an object."""
    here: Any = data
    for part in filter(None, path.split(".")):
        here = here.get(part) if isinstance(here, Mapping) else None
        if here is None:
            return None
    if not isinstance(here, Mapping):
        raise ConstraintError(path, f"{path} must be an object (got {shown(here)})")
    return here


def check_sections(data: Mapping[str, Any]) -> None:
    """Hold every declared section of a profile's JSON object to its constraints; ConstraintError names the field."""
    for path, fields in SECTIONS.items():
        section = _section(data, path)
        if section is None:
            continue
        prefix = f"{path}." if path else ""
        try:
            validate({k: section.get(k) for k in fields}, fields, SECTION_RULES.get(path, ()))
        except ConstraintError as exc:
            raise ConstraintError(prefix + exc.parameter, prefix + str(exc)) from None
    domain = _section(data, "domain")
    check_box((domain or {}).get("box"))


def check_box(box: Any) -> None:
    """``domain.box``: each system parameter's validated range as [low, high], finite, low <= high."""
    from .params import SYSTEM_PARAMETERS  # params reads a profile at import: the box is checked later

    if box is None:
        return
    if not isinstance(box, Mapping):
        raise ConstraintError("domain.box", f"domain.box must be an object (got {shown(box)})")
    for name, pair in box.items():
        where = f"domain.box.{name}"
        if name not in SYSTEM_PARAMETERS:
            raise ConstraintError("domain.box", f"domain.box must name system parameters "
                                  f"({', '.join(SYSTEM_PARAMETERS)}) (got {shown(name)})")
        ok = isinstance(pair, list) and len(pair) == 2 and all(FINITE.holds(x) for x in pair)
        if not ok or pair[0] > pair[1]:
            raise ConstraintError(where, f"{where} must be [low, high], two finite numbers with low <= high "
                                  f"(got {shown(pair)})")
