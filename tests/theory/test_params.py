import re
import json

import pytest

from bladefl_theory import ParameterError, Params, ProfileError, available_profiles, load_profile
from bladefl_theory.timemodel import gamma, k_max, k_max_continuous, lam, tau


def test_defaults_are_the_papers():
    p = Params()
    assert (p.N, p.M, p.alpha, p.beta, p.t_sum, p.eta) == (20, 0, 1.0, 10.0, 100.0, 0.01)
    assert p.as_dict()["L"] == load_profile("default").constants["L"]


def test_written_out_default_constants_are_the_default_profiles():
    from bladefl_theory.params import DEFAULT_CONSTANTS, LEARNING_CONSTANTS

    shipped = load_profile("default").constants
    assert DEFAULT_CONSTANTS == shipped
    assert {name: getattr(Params(), name) for name in LEARNING_CONSTANTS} == shipped


@pytest.mark.parametrize(
    "change, name, fragment",
    [
        ({"N": 1}, "N", "N must be an integer >= 2"),
        ({"N": 2.5}, "N", "N must be an integer"),
        ({"M": -1}, "M", "0 <= M <= N-1"),
        ({"M": 20}, "M", "0 <= M <= N-1 = 19"),
        ({"M": True}, "M", "M must be an integer"),
        ({"sigma2": -0.1}, "sigma2", "sigma2 must be >= 0"),
        ({"theta": -1.0}, "theta", "theta must be >= 0"),
        ({"alpha": 0.0}, "alpha", "alpha must be > 0"),
        ({"beta": -1.0}, "beta", "beta must be > 0"),
        ({"eta": 0.0}, "eta", "eta must be > 0"),
        ({"L": 0.0}, "L", "L must be > 0"),
        ({"xi": -2.0}, "xi", "xi must be > 0"),
        ({"delta": 0.0}, "delta", "delta must be > 0"),
        ({"epsilon": 0.0}, "epsilon", "epsilon must be > 0"),
        ({"phi": 0.0}, "phi", "phi must be > 0"),
        ({"phi": float("nan")}, "phi", "phi must be finite"),
        ({"eta": 0.1, "L": 10.0}, "eta", "eta*L must be < 1"),
        ({"t_sum": 10.0}, "t_sum", "t_sum must be >= alpha + beta = 11"),
        ({"sigma2": "0.1"}, "sigma2", "sigma2 must be a number"),
        ({"N": 2**53 + 1, "M": 3}, "N", "N must be at most 2**53"),
        ({"N": 10**400, "M": 10**400 - 1}, "N", "N must be at most 2**53"),
    ],
)
def test_each_rule_has_its_message(change, name, fragment):
    with pytest.raises(ParameterError, match=re.escape(fragment)) as info:
        Params(**change)
    assert info.value.parameter == name
    assert "\n" not in str(info.value)


def test_replace_validates_and_rejects_unknown():
    p = Params()
    assert p.replace(M=3).M == 3
    with pytest.raises(ParameterError, match="0 <= M"):
        p.replace(M=25)
    with pytest.raises(ParameterError, match="unknown parameter 'K'"):
        p.replace(K=3)


def test_params_are_immutable():
    with pytest.raises(Exception):
        Params().M = 3  # type: ignore[misc]


def test_time_model_at_paper_defaults():
    assert k_max(100, 1, 10) == 9
    assert [tau(k, 100, 1, 10) for k in range(1, 10)] == [90, 40, 23, 15, 10, 6, 4, 2, 1]
    assert k_max_continuous(100, 1, 10) == pytest.approx(100 / 11)
    assert gamma(7, 100, 1, 10) == 30
    assert lam(0.01, 10) == pytest.approx(1.1)


def test_time_model_floors_decimals_as_typed():
    # 0.3/0.1 is 2.9999999999999996 in binary floating point.
    assert k_max(0.3, 0.05, 0.05) == 3
    assert tau(1, 0.7, 0.1, 0.4) == 3  # (0.7 - 0.4)/0.1
    with pytest.raises(ValueError):
        tau(0, 100, 1, 10)


def test_profiles_ship_and_load(tmp_path):
    assert "default" in available_profiles()
    prof = load_profile("default")
    assert prof.provenance["method"] == "calibrated"
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "constants": {**prof.constants, "L": 2.0},
                                "provenance": {"method": "test"}}))
    assert load_profile(path).params(M=2).L == 2.0


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"constants": {"L": 1}}', "lacks constants"),
        ('{"constants": {"L": 1, "xi": 1, "delta": 1, "epsilon": 1, "phi": 1, "theta": 0, "K": 3}}',
         "unknown constants: K"),
        ('{"constants": {"L": "a", "xi": 1, "delta": 1, "epsilon": 1, "phi": 1, "theta": 0}}', "must be a number"),
    ],
)
def test_bad_profiles_are_rejected(tmp_path, content, fragment):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ProfileError, match=fragment):
        load_profile(path)


def test_missing_profile_names_the_shipped_ones():
    with pytest.raises(ProfileError, match="neither a shipped profile"):
        load_profile("no-such-profile")


_GOOD = '"L": 1, "xi": 1, "delta": 1, "epsilon": 1, "phi": 1, "theta": 0'


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"constants": {' + _GOOD.encode() + b', "x": ' + b"9" * 5000 + b"}}", "not valid JSON"),
        (b'{"constants": {' + _GOOD.replace('"L": 1', '"L": 1' + "0" * 400).encode() + b"}}",
         "constant L must be finite"),
        (b" " * (2 << 20), "larger than"),
    ],
)
def test_unreadable_profiles_are_one_line_errors(tmp_path, content, fragment):
    path = tmp_path / "p.json"
    path.write_bytes(content)
    with pytest.raises(ProfileError, match=fragment) as info:
        load_profile(path)
    assert "\n" not in str(info.value)


def test_profile_names_do_not_reach_outside_the_shipped_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError, match="neither a shipped profile"):
        load_profile("../profile_data/default")
    with pytest.raises(ProfileError, match="neither a shipped profile"):
        load_profile(tmp_path)
