"""Calibrate any system the simulator runs: pilots from a box, checked and costed before any run, constants recovered
from synthetic curves for any N and |D_i|, bad input refused with one line and nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from validate_cli_helpers import assert_bad_input, forbid_computation, invoke

from bladefl_platform.errors import InputError
from bladefl_theory.forms import form_values
from bladefl_theory.profiles import load_profile
from bladefl_validate.config import RunConfig
from bladefl_validate.studies.kstar import analysis, budget

BOX = "t_sum=50:200,beta=2.5:20,M=0:8,sigma2=0:0.3"


def test_box_pilots_span_every_parameter_beta_too():
    pilots = budget.box_pilots(budget.parse_box(BOX))
    assert len(pilots) == 4
    for name, (lo, hi) in budget.parse_box(BOX).items():
        values = [p[name] for p in pilots]
        assert min(values) == lo and max(values) == hi, name
        assert any(lo < v < hi for v in values) or name == "M", name  # the centre
    assert all(isinstance(p["M"], int) for p in pilots)


@pytest.mark.parametrize("N, samples", [(50, 128), (8, 2048)])
def test_calibration_on_synthetic_curves_recovers_their_constants(N, samples):
    truth = load_profile("mnist-mlp-calibrated")
    base = RunConfig(N=N, samples_per_client=samples, K=1)
    pilots = budget.box_pilots(budget.parse_box(BOX.replace("M=0:8", f"M=0:{min(8, N - 1)}")))
    _, configs = analysis.pilot_configs(base, "mnist", pilots, [0])
    results = [{"final_global_train_loss": float(form_values(truth.form, np.array([c.K]), {
        n: getattr(c, n) for n in ("N", "M", "sigma2", "alpha", "beta", "t_sum", "eta")}, truth.constants)[0])}
        for c in configs]
    cal = analysis.fit_pilots(configs, results, truth.form, None, bootstrap=0)
    assert cal.success and cal.rms_log_error < 1e-6
    for name, value in cal.constants.items():
        assert value == pytest.approx(truth.constants[name], rel=1e-3), name


@pytest.mark.parametrize("box, fragment", [
    ("t_sum=50:200,beta=2.5:20,M=0:8", "name a range for sigma2 too"),
    ("t_sum=200:50,beta=2.5:20,M=0:8,sigma2=0:0.3", "low end must not exceed its high end"),
    ("t_sum=50:200,beta=x:20,M=0:8,sigma2=0:0.3", "beta's ends must be numbers"),
    ("t_sum=50:200,beta=2.5:20,M=0:1.5,sigma2=0:0.3", "M counts clients"),
    ("t_sum=50:200,gamma=1:2,M=0:8,sigma2=0:0.3", "expected NAME=LOW:HIGH"),
    ("t_sum=10:30,beta=2.5:20,M=0:8,sigma2=0:0.3", "allows only K = 1"),  # the fewest-K pilot: t_sum 30, beta 20
    ("--pilot t_sum=24,beta=10 --pilot t_sum=25,beta=10", "needs at least 8"),  # 2 K each: 4 points, 7 constants
])
def test_a_bad_box_gets_one_line_and_nothing_is_written(tmp_path, monkeypatch, box, fragment):
    forbid_computation(monkeypatch)
    pilots = box.split() if box.startswith("--") else ["--box", box]
    r = invoke(["calibrate", *pilots, "--form", "drift", "--out", str(tmp_path / "p.json")])
    assert_bad_input(r, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, fragment", [
    (["--max-cpu-hours", "0"], "--max-cpu-hours must be a positive number"),
    (["--pilot", "M=1"], "--pilot and --box both name the pilots"),
])
def test_a_bad_budget_or_both_pilots_and_box_get_one_line(tmp_path, monkeypatch, args, fragment):
    forbid_computation(monkeypatch)
    r = invoke(["calibrate", "--box", BOX, *args, "--out", str(tmp_path / "p.json")])
    assert_bad_input(r, fragment)
    assert list(tmp_path.iterdir()) == []


def test_a_calibration_over_its_budget_is_refused_before_any_run(tmp_path, data_root):
    r = invoke(["-q", "calibrate", "--data-dir", str(data_root), "--N", "4", "--samples-per-client", "32",
                "--box", "t_sum=24:36,beta=4:10,M=0:1,sigma2=0:0.1", "--seeds", "2", "--max-cpu-hours", "1e-9",
                "--difficulty-bits", "2", "--out", str(tmp_path / "p.json")])
    assert_bad_input(r, "client-epochs")
    assert "more than --max-cpu-hours 1e-09" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_estimate_adds_up_what_each_run_trains():
    c = RunConfig(N=10, M=2, K=3, t_sum=100, beta=10)
    assert budget.client_epochs(c) == 8 * 3 * c.tau
    with pytest.raises(InputError, match="needs at least"):
        budget.check_points(RunConfig(K=1), [{"t_sum": 24.0, "beta": 10.0}], "drift")
