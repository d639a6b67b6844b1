"""Work no one can wait for, and input the simulator cannot take, is refused before anything runs, in one line.

A run beyond MAX_CLIENT_EPOCHS client-epochs (N*K*tau: ``--alpha 1e-300`` or ``--t-sum 1e300`` trained until killed)
is refused unless --allow-long is given; a learning rate beyond float32 is refused (it was an internal error); a
calibration's pilot with a repeated name, or beyond the bound, is refused, and --store is required there; a
scheduler address of no use is refused by every command, the theory's included.
"""

from __future__ import annotations

import socket

import pytest
from helpers import snapshot
from validate_cli_helpers import SMALL, assert_bad_input, forbid_computation, invoke

from bladefl_platform.checks import ConstraintError
from bladefl_validate.config import MAX_CLIENT_EPOCHS, RunConfig


@pytest.mark.parametrize("args, fragment", [
    (["run", *SMALL, "--K", "2", "--alpha", "1e-300"],
     "tau=2.00e+300 local epochs per block is 1.60e+301 client-epochs (N*K*tau), more than MAX_CLIENT_EPOCHS = "
     "10,000,000"),
    (["run", *SMALL, "--K", "2", "--alpha", "5e-324"], "--allow-long"),
    (["run", "--t-sum", "1e300"], "tau=1.42e+299"),
    (["sweep-k", *SMALL, "--alpha", "1e-300"], "MAX_CLIENT_EPOCHS"),
    (["estimate", *SMALL, "--K", "2", "--t-sum", "1e300"], "MAX_CLIENT_EPOCHS"),
    (["gap", *SMALL, "--t-sum", "1e300"], "MAX_CLIENT_EPOCHS"),
    (["run", *SMALL, "--K", "2", "--eta", "1e300"], "eta must be at most 3.40282e+38: models are float32"),
    (["sweep-k", *SMALL, "--eta", "1e39"], "eta must be at most"),
    (["calibrate", "--pilot", "t_sum=100,t_sum=120", "--store", "<store>"], "t_sum is given twice"),
    (["calibrate", "--pilot", "t_sum=1e9", "--store", "<store>"], "MAX_CLIENT_EPOCHS"),
    (["calibrate", "--allow-long", "--pilot", "t_sum=1e9", "--store", "<store>"], "runs, more than 100,000"),
    (["sweep-k", *SMALL, "<no-out>"], "Missing option '--out'"),
    (["kstar-report", "--scheduler", "inproc://x"], "--scheduler must be an address such as tcp://HOST:PORT"),
    (["sweep-k", *SMALL, "--scheduler", "inproc://x"], "--scheduler must be an address"),
    (["sweep-k", *SMALL, "--scheduler", "inproc://10.0.0.1/1/1"], "no in-process scheduler of that address"),
])
def test_refused_before_anything_runs(tmp_path, data_root, monkeypatch, args, fragment):
    forbid_computation(monkeypatch)
    out = [] if "<no-out>" in args else ["--out", str(tmp_path / ("p.json" if args[0] in ("calibrate", "estimate")
                                                                   else "out"))]
    args = [str(tmp_path / "s.sqlite") if a == "<store>" else a for a in args if a != "<no-out>"]
    assert_bad_input(invoke([*args, "--data-dir", str(data_root), *out]), fragment)
    assert list(tmp_path.iterdir()) == []


def test_allow_long_lets_a_long_run_through_and_names_only_runs_that_need_it():
    with pytest.raises(ConstraintError, match="MAX_CLIENT_EPOCHS") as info:
        RunConfig(alpha=1e-5)
    assert info.value.parameter == "t_sum"
    long = RunConfig(alpha=1e-5, allow_long=True)
    assert long.N * long.K * long.tau > MAX_CLIENT_EPOCHS
    assert long.as_dict()["allow_long"] is True and RunConfig.from_dict(long.as_dict()) == long
    # A run within the bound is the same run, with the same store key and config.json, whether or not it was allowed.
    assert RunConfig(allow_long=True).as_dict() == RunConfig().as_dict()
    assert "allow_long" not in RunConfig().as_dict()
    assert RunConfig(eta=3e38).eta == 3e38
    # Counts are 64-bit: beyond 2**63 - 1 client-epochs no flag lets a run through (tau was an internal error).
    with pytest.raises(ConstraintError, match=r"more than any run can count \(2\*\*63 - 1, even with --allow-long\)"):
        RunConfig(alpha=5e-324, allow_long=True)


def test_an_unreachable_scheduler_fails_the_theory_sensitivity_too(tmp_path):
    from click.testing import CliRunner

    from bladefl_theory.cli import cli

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = snapshot(tmp_path)
    r = CliRunner().invoke(cli, ["sensitivity", "--vary", "M=0:3", "--scheduler", f"tcp://127.0.0.1:{port}",
                                 "--out", str(tmp_path / "sens")])
    assert r.exit_code == 2, r.output
    assert "cannot reach the Dask scheduler" in r.output and len(r.output.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before


def test_a_diverged_run_says_so_instead_of_nan(tmp_path, data_root):
    r = invoke(["run", *SMALL, "--K", "2", "--eta", "1e30", "--data-dir", str(data_root), "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.stderr
    assert "final training loss not finite (diverged)" in r.stdout and "nan" not in r.stdout, r.stdout
