import pytest

from bladefl_theory import Params
from bladefl_theory.errors import InputError
from bladefl_theory.sensitivity import parse_vary, sweep


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("M=0:3", ("M", [0, 1, 2, 3])),
        ("M=2,4", ("M", [2, 4])),
        ("sigma2=0.01,0.1", ("sigma2", [0.01, 0.1])),
        ("sigma2=0.1:0.3:0.1", ("sigma2", [0.1, 0.2, 0.3])),
        ("t_sum=50:150:50", ("t_sum", [50.0, 100.0, 150.0])),
    ],
)
def test_parse_vary(spec, expected):
    assert parse_vary(spec) == expected


@pytest.mark.parametrize("spec", ["M", "M=", "K=1:3", "M=0.5:2", "M=3:1", "sigma2=a,b", "M=0:4:0"])
def test_parse_vary_rejects(spec):
    with pytest.raises(InputError):
        parse_vary(spec)


def test_verdicts_per_variant():
    result = sweep(Params(), {"M": [0, 2, 4, 6], "sigma2": [0.01, 0.3]})
    v = result.verdicts()
    assert v["printed"].startswith("does not hold in M")
    assert "holds" in v["per-round"] and not v["per-round"].startswith("does not hold")
    per_round = result.frame[result.frame.variant == "per-round"]
    for _, g in per_round.groupby("sigma2"):
        assert g.sort_values("M").k_star_continuous.is_monotonic_decreasing


def test_verdict_not_assessed_without_lazy_parameters():
    result = sweep(Params(), {"beta": [5.0, 10.0]}, ("per-round",))
    assert result.verdicts()["per-round"].startswith("not assessed")
