import math

import pytest

from bladefl_theory import Params, load_profile
from bladefl_theory.convexity import certify
from bladefl_theory.solvers import feasible_interval, kstar, solve_kstar


def test_default_profile_puts_per_round_kstar_at_seven():
    r = kstar(Params(), "per-round")
    assert r.k_star == 7
    assert r.tau == 4
    assert r.k_star_continuous == pytest.approx(7.0, abs=1e-4)
    assert r.solvers_agree and r.success
    assert "calibrated" in load_profile("default").description.lower()


def test_kstar_result_fields():
    r = kstar(Params(M=4, sigma2=0.1))
    d = r.as_dict()
    for key in ("k_star", "k_star_continuous", "tau", "bound", "k_max", "feasible", "variant", "params",
                "solvers_agree"):
        assert key in d
    assert d["k_max"] == 9
    assert len(r.table()) == 9
    assert [row["K"] for row in r.table() if row["feasible"]] == [6, 7, 8, 9]


def test_per_round_continuous_kstar_moves_with_lazy_clients_but_printed_does_not():
    def closed_form(m, variant):
        return solve_kstar(Params(M=m, sigma2=0.01), variant, method="closed-form").k_star_continuous

    per_round = [closed_form(m, "per-round") for m in (0, 2, 4, 6)]
    printed = [closed_form(m, "printed") for m in (0, 2, 4, 6)]
    assert all(b < a for a, b in zip(per_round, per_round[1:]))
    assert max(printed) - min(printed) < 1e-9


def test_no_finite_bound_is_reported_with_the_dominant_term():
    r = kstar(Params(M=19, theta=10.0), "per-round")
    assert r.k_star is None and r.status == 2 and not r.success
    assert "lazy term" in r.message and "dominates" in r.message
    # With mining at beta=0.5 the best K is small, where the divergence term is large.
    r = kstar(Params(M=1, theta=2.0, sigma2=0.0, phi=0.01, L=90.0, beta=0.5, t_sum=20.0), "printed")
    assert r.k_star is None and "the divergence term" in r.message, r.message


def test_feasible_interval_between_integers_is_explained():
    # At M=19, sigma2=0.3 the per-round interval [6.47, 6.82] holds no integer.
    r = kstar(Params(M=19, sigma2=0.3), "per-round")
    assert r.k_star is None
    assert r.k_star_continuous is not None
    assert "holds no integer" in r.message
    assert r.solvers_agree


def test_optimum_at_the_right_end_when_d_keeps_rising():
    # Mining is cheap next to training: the stationary K lies beyond t_sum/(alpha+beta).
    p = Params(beta=0.01, alpha=1.0, t_sum=10.0)
    r = kstar(p)
    assert r.k_star == r.k_max == 9
    assert r.k_star_continuous == pytest.approx(10 / 1.01)
    assert r.solvers["closed-form"].status == 1 and r.solvers_agree


def test_optimum_at_k_equal_one():
    p = Params(t_sum=21.0, alpha=1.0, beta=10.0, phi=50.0, L=1.0)
    r = kstar(p)
    assert r.k_max == 1 and r.k_star == 1


def test_cvxpy_and_closed_form_agree_at_paper_grid():
    for m in (0, 2, 4, 6):
        for s in (0.01, 0.1, 0.3):
            p = Params(M=m, sigma2=s)
            a, b = solve_kstar(p, method="closed-form"), solve_kstar(p, method="cvxpy")
            assert b.success and b.method == "cvxpy"
            assert b.k_star_continuous == pytest.approx(a.k_star_continuous, rel=1e-3)


def test_integer_search_limit():
    from bladefl_theory import ParameterError

    # Params refuses a K_max beyond what the integer search covers.
    with pytest.raises(ParameterError, match="K_max"):
        Params(t_sum=1e9, alpha=1e-3, beta=1e-3, eta=0.01, L=1.0)


def test_convexity_certificate_at_defaults():
    c = certify(Params(M=4), "per-round")
    assert c.denominator_concave_symbolic and c.holds
    lo, hi = c.feasible
    assert 5 < lo < 6 and hi == pytest.approx(100 / 11)
    assert any("not finite on [1," in f for f in c.failures)
    assert c.min_second_difference_bound > 0 and c.max_second_difference_D < 0


def test_convexity_certificate_says_where_there_is_no_finite_bound():
    c = certify(Params(M=19, theta=10.0), "per-round")
    assert c.feasible is None and not c.holds
    assert any("no finite bound" in f for f in c.failures)


def test_feasible_interval_endpoints_are_roots():
    from bladefl_theory.bound import denominator

    p = Params(M=6, sigma2=0.2)
    lo, hi = feasible_interval(p)
    assert float(denominator(lo, p)) == pytest.approx(0.0, abs=1e-9)
    assert float(denominator(hi, p)) == pytest.approx(0.0, abs=1e-9)
    assert 7 < hi < 100 / 11
    lo0, hi0 = feasible_interval(Params())
    assert math.isclose(hi0, 100 / 11) and float(denominator(hi0, Params())) > 0


def test_shipped_default_profile_is_what_hand_profile_computes(tmp_path):
    import json

    from bladefl_theory import hand_profile
    from bladefl_theory.profiles import _builtin_dir

    assert hand_profile.main(["--out", str(tmp_path)]) == 0
    shipped = json.loads((_builtin_dir() / "default.json").read_text())
    assert json.loads((tmp_path / "default.json").read_text()) == shipped


def test_certify_caps_the_grid():
    from bladefl_theory.convexity import MAX_GRID_POINTS
    from bladefl_platform.errors import InputError

    with pytest.raises(InputError, match=f"from 3 to {MAX_GRID_POINTS}"):
        certify(Params(), grid_points=MAX_GRID_POINTS + 1)
    with pytest.raises(InputError, match="from 3 to"):
        certify(Params(), grid_points=2)


@pytest.mark.parametrize("params", [Params(M=4, sigma2=0.1), Params(M=19, theta=10.0), Params(M=19, sigma2=0.3)],
                         ids=["finite", "no finite bound", "interval between integers"])
def test_one_kstar_call_computes_the_canonical_form_and_the_feasible_interval_once(monkeypatch, params):
    # Before solve_kstar, kstar with the cross-check computed them 4 and 2 times (7 and 3 without a finite bound).
    import bladefl_theory.solvers as S

    calls = {"canonical": 0, "feasible": 0}

    def counted(name, f):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return f(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(S, "canonical", counted("canonical", S.canonical))
    monkeypatch.setattr(S, "_feasible_interval", counted("feasible", S._feasible_interval))
    r = kstar(params, "per-round")
    r.as_dict()
    assert calls == {"canonical": 1, "feasible": 1}


def test_solve_kstar_runs_the_method_asked_for():
    p = Params(M=4, sigma2=0.1)
    auto = solve_kstar(p)
    assert auto.method == "auto" and list(auto.solvers) == ["closed-form", "integer"]
    assert auto.as_dict()["solvers"]["cvxpy"] is None
    checked = solve_kstar(p, check=True)
    assert list(checked.solvers) == ["closed-form", "cvxpy", "integer"] and checked.solvers_agree
    closed, integer = solve_kstar(p, method="closed-form"), solve_kstar(p, method="integer")
    assert closed.k_star is None and closed.tau is None and closed.solvers_agree is None
    assert closed.k_star_continuous == auto.k_star_continuous and integer.k_star == auto.k_star == 7
    assert integer.k_star_continuous is None and integer.bound == auto.bound
    # What a method did not need is computed when read.
    assert closed.feasible == integer.feasible == feasible_interval(p)
    assert len(closed.table()) == 9


@pytest.mark.parametrize("kwargs, fragment", [(dict(method="newton"), "method must be one of"),
                                              (dict(method="integer", check=True), "check cross-checks"),
                                              (dict(variant="other"), "variant must be one of")])
def test_solve_kstar_refuses_an_unknown_method_or_variant(kwargs, fragment):
    from bladefl_theory import ParameterError

    with pytest.raises(ParameterError, match=fragment):
        solve_kstar(Params(), **kwargs)
