"""Profiles: the shipped ones load, and a hand-edited one is held to the schema declared in profile_schema."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest

from bladefl_theory.profile_schema import SECTIONS
from bladefl_theory.profiles import ProfileError, available_profiles, load_profile

CALIBRATED = json.loads((resources.files("bladefl_theory") / "profile_data" / "mnist-mlp-calibrated.json").read_text())


def edited(tmp_path, change) -> str:
    data = copy.deepcopy(CALIBRATED)
    change(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_every_shipped_profile_passes_the_schema():
    for name in available_profiles():
        assert load_profile(name).name == name


def _set(section: str, key: str, value):
    def change(data):
        where = data
        for part in filter(None, section.split(".")):
            where = where[part]
        where[key] = value
    return change


@pytest.mark.parametrize("change, says", [
    (_set("constants", "F0", 0), "constant F0 must be > 0 (got 0)"),
    (_set("constants", "tau0", 0.0), "constant tau0 must be > 0"),
    (_set("constants", "kappa", -1), "constant kappa must be >= 0"),
    (_set("constants", "c1", "1"), "constant c1 must be a number"),
    (_set("calibration", "tolerance", "x"), "calibration.tolerance must be a number (got 'x')"),
    (_set("calibration", "tolerance", -0.1), "calibration.tolerance must be >= 0 (got -0.1)"),
    (_set("validation", "hit_rate", "x"), "validation.hit_rate must be a number (got 'x')"),
    (_set("validation", "hits", 13), "validation.hits must be at most held_out = 12 (got 13)"),
    (_set("validation", "hit_rate", 0.5), "validation.hit_rate must be hits/held_out = 0.8333 (got 0.5)"),
    (_set("validation", "held_out", 0), "validation.held_out must be an integer >= 1 (got 0)"),
    (_set("validation.fresh_measurement", "worst_regret", float("nan")), "fresh_measurement.worst_regret must be"),
    (_set("validation", "report", "x\n\x1b[2J"), "validation.report must be one line of printable text"),
    (_set("domain.box", "t_sum", [200, 50]), "domain.box.t_sum must be [low, high]"),
    (_set("domain.box", "Q", [0, 1]), "domain.box must name system parameters"),
    (_set("domain", "N", 20.5), "domain.N must be an integer"),
    (_set("domain", "model", ["mlp"]), "domain.model must be one line of printable text"),
    (_set("", "name", "evil\n\x1b[31mred"), "name must be one line of printable text"),
    (_set("", "validation", "yes"), "validation must be an object"),
    (_set("provenance", "run", []), "provenance.run must be an object"),
])
def test_a_hand_edited_profile_is_refused_naming_the_field(tmp_path, change, says):
    with pytest.raises(ProfileError) as caught:
        load_profile(edited(tmp_path, change))
    message = str(caught.value)
    assert says in message and "\n" not in message and "\x1b" not in message


def test_optional_fields_may_be_absent(tmp_path):
    def strip(data):
        for key in ("validation", "calibration", "domain", "name", "description"):
            data.pop(key)
    profile = load_profile(edited(tmp_path, strip))
    assert profile.tolerance == 0.0 and profile.validation is None and profile.system == {}


def test_the_schema_declares_what_the_commands_print():
    assert {"tolerance"} <= set(SECTIONS["calibration"])
    assert {"hits", "held_out", "hit_rate", "median_regret", "worst_regret", "report"} <= set(SECTIONS["validation"])
