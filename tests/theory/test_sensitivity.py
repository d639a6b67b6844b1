import pytest

from bladefl_theory import Params
from bladefl_platform.errors import InputError
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


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("sigma2=0:1:1e-300", "at most 10000"),
        ("M=0:100000000", "at most 10000"),
        ("sigma2=0:1:0.0000001", "at most 10000"),
        ("sigma2=0:1e999999999:1", "finite"),
        ("sigma2=1e999999999,1", "finite"),
        ("sigma2=0:nan:1", "finite"),
        ("M=0:" + "9" * 1000, "at most 10000"),
        ("M=0:" + "9" * 5000, "a float can hold"),
        ("M=" + "9" * 5000, "integers"),
    ],
)
def test_parse_vary_refuses_huge_grids_at_once(spec, fragment, monkeypatch):
    # "At once": the range's size is counted from its ends and step, so no value of the grid is built, and no
    # exact number is made from a text a float cannot hold (Fraction("1e999999999") has a billion digits).
    import math
    from fractions import Fraction

    import bladefl_theory.sensitivity as S

    exact_from = []

    def fraction(value, *args):
        exact_from.append(value)
        return Fraction(value, *args)

    monkeypatch.setattr(S, "range", lambda *a: pytest.fail(f"the grid was built: range{a}"), raising=False)
    monkeypatch.setattr(S, "Fraction", fraction)
    with pytest.raises(InputError, match=fragment):
        parse_vary(spec)
    assert all(math.isfinite(float(v)) for v in exact_from if isinstance(v, str)), exact_from


def test_sweep_refuses_a_grid_too_large_before_solving(monkeypatch):
    import bladefl_theory.sensitivity as S

    monkeypatch.setattr(S, "_solve_chunk", lambda *a: pytest.fail("solved"))
    with pytest.raises(InputError, match="1000000 points, at most"):
        sweep(Params(N=20_000), {"M": list(range(10_000)), "sigma2": [0.1 * i for i in range(100)]})
    # Each point's integer search covers 1..K_max: the sum over the grid is bounded too.
    with pytest.raises(InputError, match="K_max"):
        sweep(Params(), {"t_sum": [1e6 + i for i in range(1000)]}, ("per-round",))


@pytest.mark.parametrize(
    "base, varied",
    [
        (Params(theta=10.0), {"M": [18, 19]}),  # no grid point has a finite bound
        (Params(), {"M": [4]}),  # one value
        (Params(M=0), {"sigma2": [0.0, 0.3]}),  # sigma2 acts only through sqrt(M)
    ],
)
def test_verdict_is_not_assessed_without_two_finite_points(base, varied):
    for text in sweep(base, varied).verdicts().values():
        assert text.startswith("not assessed"), text


def test_large_sensitivity_grid_goes_through_dask(cluster_address):
    from bladefl_platform.execution import Execution

    result = sweep(Params(), {"M": list(range(20)), "sigma2": [i / 100 for i in range(60)]}, ("per-round", "printed"),
                   Execution(scheduler=cluster_address, progress=False))
    assert len(result.frame) == 2 * 20 * 60
    small = sweep(Params(), {"M": [0, 5]}, ("per-round",))
    row = result.frame[(result.frame.variant == "per-round") & (result.frame.M == 5) & (result.frame.sigma2 == 0.01)]
    assert float(row.k_star_continuous.iloc[0]) == pytest.approx(float(small.frame.k_star_continuous.iloc[1]))
