"""The bladefl-theory CLI through click's runner and as a real subprocess."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from bladefl_theory.cli import cli
from bladefl_theory.forms import CALIBRATED_FORMS
from bladefl_theory.profiles import load_profile


def invoke(args, **kwargs):
    """The CLI on ``args``; kstar on the paper's bound (profile default) with the cvxpy cross-check (--check)
    unless a profile is named.

    kstar's own default is the calibrated profile (tested at the end of this file); most tests
    here are about the bound and its solvers.
    """
    args = list(args)
    if args[:1] == ["kstar"] and "--profile" not in args:
        args[1:1] = ["--profile", "default", "--check"]
    return CliRunner().invoke(cli, args, **kwargs)


def run(*args):
    return invoke(args, catch_exceptions=False)


def test_kstar_json_has_the_documented_keys():
    r = run("kstar", "--M", "4", "--sigma2", "0.1", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    for key in ("k_star", "k_star_continuous", "tau", "value", "k_max", "feasible", "variant", "params",
                "solvers_agree"):
        assert key in out
    assert out["k_star"] == 7 and out["tau"] == 4 and out["k_max"] == 9
    assert out["params"]["M"] == 4 and out["params"]["sigma2"] == 0.1
    assert out["solvers_agree"] is True
    assert out["solvers"]["cvxpy"]["k"] == pytest.approx(out["k_star_continuous"], rel=1e-3)
    assert out["variant"] == "per-round"


def test_kstar_runs_cvxpy_only_when_asked():
    default = ["kstar", "--profile", "default", "--M", "4", "--sigma2", "0.1"]
    plain = CliRunner().invoke(cli, default, catch_exceptions=False)
    assert "solvers agree      yes (closed form, integer search)\n" in plain.output
    assert "solvers agree      yes (closed form, cvxpy, integer search)\n" in run(*default, "--check").output
    out = json.loads(CliRunner().invoke(cli, [*default, "--json"], catch_exceptions=False).output)
    assert out["solvers"]["cvxpy"] is None and out["solvers_agree"] is True and out["k_star"] == 7


#: What --version, --help and kstar must start without (each takes a tenth of a second to seconds to import).
HEAVY = ("sympy", "scipy", "pandas", "cvxpy", "matplotlib", "dask", "distributed", "numpy", "torch")


def modules_after(*commands: list[str]) -> list[list[str]]:
    """Run the command lines one after the other in one fresh interpreter: the modules of HEAVY loaded after each."""
    script = (
        "import json, sys\n"
        "from bladefl_theory.cli import main\n"
        "loaded = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (args, exc.code)\n"
        f"    loaded.append(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "print('LOADED', json.dumps(loaded))\n"
    )
    r = subprocess.run([sys.executable, "-c", script, json.dumps(commands)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1].removeprefix("LOADED "))


def test_version_and_help_import_nothing_heavy():
    assert modules_after(["--version"], ["--help"], ["kstar", "--help"], ["sensitivity", "--help"]) == [[]] * 4


def test_kstar_imports_cvxpy_only_for_the_cross_check():
    bound = ["kstar", "--profile", "default", "--M", "4", "--sigma2", "0.1"]
    calibrated, on_bound, checked = modules_after(["kstar", "--M", "4", "--sigma2", "0.1"], bound, [*bound, "--check"])
    assert calibrated == ["numpy", "sympy"]
    assert on_bound == ["numpy", "scipy", "sympy"]
    assert checked == ["cvxpy", "numpy", "scipy", "sympy"]


def test_kstar_human_output_lists_every_k():
    r = run("kstar", "--M", "4", "--sigma2", "0.1", "--variant", "printed")
    assert r.exit_code == 0
    assert "K*                 7" in r.output
    assert "does not depend on them" in r.output
    rows = [line for line in r.output.splitlines() if line.strip()[:1].isdigit() and "local epochs" not in line]
    assert len(rows) == 9
    assert "<- K*" in r.output


def test_flags_override_the_profile(tmp_path):
    r = run("kstar", "--L", "20", "--json")
    assert json.loads(r.output)["constants"]["L"] == 20.0
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({"constants": {"L": 5, "xi": 1, "delta": 10, "epsilon": 1, "phi": 5, "theta": 0.1}}))
    out = json.loads(run("kstar", "--profile", str(prof), "--phi", "4", "--json").output)
    assert out["constants"]["L"] == 5.0 and out["constants"]["phi"] == 4.0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["kstar", "--M", "20"], "0 <= M <= N-1"),
        (["kstar", "--M", "x"], "'--M'"),
        (["kstar", "--eta", "0.5", "--L", "3"], "eta*L must be < 1"),
        (["kstar", "--t-sum", "5"], "t_sum must be >="),
        (["kstar", "--variant", "other"], "--variant"),
        (["kstar", "--profile", "missing"], "profile 'missing'"),
        (["kstar", "--nope"], "No such option"),
        (["kstar", "--profile", "mnist-mlp-calibrated", "--check"], "--check"),
        (["bound", "--K", "0,3"], "--K"),
        (["bound", "--K", "a"], "--K"),
        (["sensitivity", "--vary", "Q=1:3"], "unknown parameter 'Q'"),
        (["sensitivity", "--vary", "M=0:30"], "grid point M=20"),
        (["sensitivity", "--vary", "sigma2=0:1"], "needs a step"),
        (["sensitivity", "--vary", "sigma2=0:1:1e-300"], "at most 10000"),
        (["sensitivity", "--vary", "M=0:100000000"], "at most 10000"),
        (["convexity", "--grid", "100000000"], "--grid"),
    ],
)
def test_bad_input_is_one_line_and_status_2(args, fragment, tmp_path):
    if args[0] == "sensitivity":
        args = args + ["--out", str(tmp_path / "out")]
    r = invoke(args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line]
    assert len(lines) == 1 and fragment in lines[0] and lines[0].startswith("bladefl-theory: error:")
    assert "Traceback" not in r.output
    assert not (tmp_path / "out").exists()


def test_no_finite_bound_exits_3_with_the_reason():
    r = invoke(["kstar", "--M", "19", "--theta", "10"])
    assert r.exit_code == 3
    last = r.output.splitlines()[-1]
    assert "dominates" in last and "self-consistent" in last
    needed = float(last.split("needs epsilon > ")[1].split(" ")[0])
    assert invoke(["kstar", "--M", "19", "--theta", "10", "--epsilon", str(needed * 0.99)]).exit_code == 3
    assert invoke(["kstar", "--M", "19", "--theta", "10", "--epsilon", str(needed * 1.01)]).exit_code == 0
    r = invoke(["kstar", "--M", "19", "--theta", "10", "--json"])
    assert r.exit_code == 3
    assert json.loads(r.output[: r.output.rindex("}") + 1])["k_star"] is None


def test_bound_formats():
    table = run("bound", "--M", "2", "--K", "6,7")
    assert table.exit_code == 0 and len(table.output.splitlines()) == 5 and "self-consistent" in table.output
    # bound and kstar default to different profiles: bound says which one it used.
    assert table.output.splitlines()[-1].startswith("profile: default (the paper's bound; kstar's default profile")
    assert json.loads(run("bound", "--json").output)["profile"] == "default"
    csv = run("bound", "--csv")
    assert csv.output.splitlines()[0] == "K,tau,bound,bound_self_consistent"
    assert len(csv.output.splitlines()) == 10
    rows = json.loads(run("bound", "--json").output)["rows"]
    assert rows[0]["bound"] is None and rows[6]["K"] == 7 and rows[6]["bound"] > 0
    # The self-consistent bound is finite at every K, and at K=7 it is the bound at epsilon = itself.
    assert all(r["bound_self_consistent"] > 0 for r in rows)
    at = json.loads(run("bound", "--json", "--K", "7", "--epsilon", str(rows[6]["bound_self_consistent"])).output)
    assert at["rows"][0]["bound"] == pytest.approx(rows[6]["bound_self_consistent"], rel=1e-6)


def test_convexity_and_formula_commands():
    r = run("convexity", "--M", "4")
    assert r.exit_code == 0
    assert "proved" in r.output and "feasible interval" in r.output and "where it fails" in r.output
    c = json.loads(run("convexity", "--json").output)
    assert c["holds"] is True and c["feasible"][0] > 1
    latex = run("formula", "--format", "latex")
    assert latex.output.count(r"\frac") >= 3 and "per-round" in latex.output
    assert "γ" in run("formula").output


def test_formula_json_holds_each_formula_as_text_and_latex():
    from bladefl_theory import bound

    out = json.loads(run("formula", "--format", "latex", "--json").output)
    assert out["status"] == 0 and out["format"] == "latex" and "gamma" in out["where"]
    assert [f["name"] for f in out["formulas"]] == ["lemma1", "printed", "per-round"]
    per_round = out["formulas"][2]
    assert per_round["text"] == per_round["latex"] and r"\frac" in per_round["latex"]
    assert per_round["latex"] == bound.to_latex(bound.theorem1("per-round", False))
    pretty = json.loads(run("formula", "--json").output)["formulas"][0]
    assert pretty["text"] == bound.to_pretty(bound.lemma1(False)) and pretty["latex"].startswith(r"\frac")
    expanded = json.loads(run("formula", "--expand", "--json").output)
    assert expanded["where"] is None and "γ" not in expanded["formulas"][0]["text"]


def test_sensitivity_writes_report_and_states_remark_3(tmp_path):
    out = tmp_path / "sens"
    r = run("sensitivity", "--vary", "M=0:6", "--vary", "sigma2=0.01,0.3", "--out", str(out))
    assert r.exit_code == 0, r.output
    for name in ("sensitivity.csv", "README.md", "kstar.png", "bound.png"):
        assert (out / name).is_file()
    frame = pd.read_csv(out / "sensitivity.csv")
    assert len(frame) == 2 * 7 * 2
    readme = (out / "README.md").read_text()
    assert "bladefl-theory sensitivity --vary M=0:6 --vary sigma2=0.01,0.3" in readme
    assert "**printed**: does not hold" in readme
    assert "**per-round**: holds" in readme
    printed = frame[frame.variant == "printed"]
    k_c = printed.k_star_continuous
    assert k_c.nunique() == 1 or k_c.max() - k_c.min() < 1e-9


def test_console_script_runs_as_a_subprocess():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ok = subprocess.run(
        [sys.executable, "-m", "bladefl_theory.cli", "kstar", "--profile", "default", "--M", "4", "--sigma2", "0.1",
         "--json"],
        capture_output=True, text=True, env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["k_star"] == 7
    bad = subprocess.run(
        [sys.executable, "-m", "bladefl_theory.cli", "kstar", "--N", "1"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "N must be an integer >= 2" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("k_list", ["1,3,5", "1", "9", None])
def test_bound_exits_3_only_when_no_k_has_a_finite_bound(k_list):
    # At the defaults the bound is finite at K = 6..9 and nowhere else.
    args = ["bound"] + (["--K", k_list] if k_list else [])
    r = invoke(args)
    assert r.exit_code == 0, r.output
    if k_list in ("1,3,5", "1"):
        assert "finite only for K = 6..9" in r.output
    assert "Traceback" not in r.output


def test_bound_exit_3_names_the_reason_and_agrees_with_kstar():
    for extra in (["--M", "19", "--theta", "10"], ["--epsilon", "1e-300"], ["--M", "19", "--sigma2", "0.3"]):
        b = invoke(["bound", "--K", "7", *extra])
        k = invoke(["kstar", *extra])
        assert b.exit_code == k.exit_code == 3, (extra, b.output)
        hint = " (`bladefl-theory"
        assert b.output.splitlines()[-1].split(hint)[0] == k.output.splitlines()[-1].split(hint)[0]


@pytest.mark.parametrize(
    "args, kstar_status, convexity_status",
    [
        (["--eta", "1e-300"], 0, 0),
        (["--alpha", "0.001"], 3, 0),  # D(K) > 0 only on [9.991, 9.999]: a real K, no integer one
        (["--epsilon", "1e-300"], 3, 0),  # D(K) > 0 only at 9.091
        (["--epsilon", "1e300"], 0, 0),
        (["--beta", "1e300", "--t-sum", "1.5e300"], 3, 3),  # K_max = 1: nothing finite on [1, 1.5]
        (["--M", "19", "--sigma2", "0.3"], 3, 0),  # D(K) > 0 only on [6.47, 6.82]
    ],
)
def test_convexity_and_kstar_agree_on_whether_a_bound_exists(args, kstar_status, convexity_status):
    k = invoke(["kstar", *args])
    c = invoke(["convexity", *args])
    assert (k.exit_code, c.exit_code) == (kstar_status, convexity_status), (k.output, c.output)
    # convexity asks for a real K with D(K) > 0, kstar for an integer one: kstar's success implies convexity's.
    if k.exit_code == 0:
        assert c.exit_code == 0, c.output


@pytest.mark.parametrize(
    "args, status",
    [
        (["kstar", "--alpha", "0.001"], 3),
        (["kstar", "--alpha", "0.0001"], 3),
        (["kstar", "--epsilon", "1e-300"], 3),
        (["kstar", "--beta", "1e300", "--t-sum", "1.5e300"], 3),
        (["kstar", "--epsilon", "1e300"], 0),
        (["kstar", "--json", "--epsilon", "1e-300"], 3),
        (["kstar", "--json", "--eta", "1e-300"], 0),
        (["convexity", "--json", "--epsilon", "1e-300"], 0),
        (["bound", "--json", "--epsilon", "1e300"], 0),
        (["kstar", "--theta", "1e308", "--M", "3", "--xi", "1e308"], 3),  # divergence and lazy terms overflow
    ],
)
def test_extreme_values_give_a_result_or_status_3_never_a_traceback(args, status):
    r = invoke(args)
    assert r.exit_code == status, r.output
    assert "Traceback" not in r.output and "Warning" not in r.output
    if "--json" in args:
        text = r.stdout
        assert json.loads(text[: text.rindex("}") + 1])["status"] == status


def test_huge_n_and_k_max_are_refused_with_the_rule():
    r = invoke(["kstar", "--N", "99999999999999999999", "--M", "99999999999999999998"])
    assert r.exit_code == 2 and "N must be at most 2**53" in r.output
    for cmd in ("kstar", "bound", "convexity"):
        r = invoke([cmd, "--t-sum", "1e12"])
        assert r.exit_code == 2 and "K_max" in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1


def test_json_output_is_strict_even_where_numbers_leave_float_range():
    # phi = 1e-305: D > 0 but 1/D beyond float range; the grid's second differences overflow.
    for cmd in ("kstar", "convexity", "bound"):
        r = invoke([cmd, "--json", "--phi", "1e-305", "--eta", "1e-10", "--epsilon", "1e300"])
        # D(K) > 0, so convexity has its interval; the integer commands have no finite bound and say why.
        assert r.exit_code == (0 if cmd == "convexity" else 3)
        assert cmd == "convexity" or "exceeds float range" in r.output.splitlines()[-1]
        text = r.stdout
        json.loads(text[: text.rindex("}") + 1], parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_output_errors_are_one_line(tmp_path, monkeypatch):
    import bladefl_theory.sensitivity as sensitivity
    import bladefl_theory.solvers as solvers

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sensitivity, "write_report", broken)
    r = invoke(["sensitivity", "--vary", "M=0,1", "--variant", "printed", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and r.output.strip() == "bladefl-theory: error: No space left on device"
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(solvers, "solve_kstar", lambda *a, **k: 1 / 0)
    r = invoke(["kstar"])
    assert r.exit_code == 1 and "internal error" in r.output and "ZeroDivisionError" in r.output
    assert len(r.output.strip().splitlines()) == 1
    monkeypatch.setenv("BLADEFL_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        invoke(["kstar"], catch_exceptions=False)


def estimated_profile(tmp_path, **system):
    """A bound profile as `bladefl-validate estimate` writes one: its system in provenance.run."""
    from bladefl_theory.profiles import load_profile

    run = {"dataset": "mnist", "model": "mlp", "N": 6, "M": 2, "K": 3, "samples_per_client": 128, "t_sum": 30.0,
           "alpha": 1.0, "beta": 2.0, "eta": 0.01, "sigma2": 0.01, **system}
    path = tmp_path / "est6.json"
    path.write_text(json.dumps({"name": "est6", "constants": load_profile("default").constants,
                                "provenance": {"method": "estimated", "run": run}}))
    return str(path)


def test_a_profile_records_the_system_it_was_estimated_or_calibrated_for(tmp_path):
    from bladefl_theory.profiles import ProfileError, load_profile

    assert load_profile(estimated_profile(tmp_path)).system == {
        "dataset": "mnist", "model": "mlp", "N": 6, "samples_per_client": 128, "t_sum": 30.0, "alpha": 1.0,
        "beta": 2.0, "eta": 0.01}
    assert load_profile("mnist-mlp").system["N"] == 20 and load_profile("mnist-mlp").system["t_sum"] == 100.0
    calibrated = load_profile("mnist-mlp-calibrated").system
    assert calibrated["N"] == 20 and calibrated["samples_per_client"] == 512 and "t_sum" not in calibrated
    assert load_profile("default").system == {}
    for bad in ({"N": "six"}, {"N": 6.5}, {"t_sum": True}, {"N": 10**400}, {"model": 3}):
        with pytest.raises(ProfileError, match=f"provenance.run.{next(iter(bad))} must be"):
            load_profile(estimated_profile(tmp_path, **bad))


def test_kstar_takes_the_system_of_the_profile_unless_flags_override(tmp_path):
    prof = estimated_profile(tmp_path)
    out = json.loads(run("kstar", "--profile", prof, "--M", "2", "--sigma2", "0.1", "--json").output)
    assert (out["params"]["N"], out["params"]["t_sum"], out["params"]["beta"]) == (6, 30.0, 2.0)
    assert out["params"]["M"] == 2  # M and sigma2 are the question asked, never the profile's
    assert out["from_profile"] == {"N": 6, "alpha": 1.0, "beta": 2.0, "t_sum": 30.0, "eta": 0.01}
    assert out["profile_system"]["samples_per_client"] == 128 and out["warnings"] == []
    human = run("kstar", "--profile", prof, "--M", "2", "--sigma2", "0.1").output
    notes = [line for line in human.splitlines() if line.startswith("note: N=6")]
    assert notes == [("note: N=6, beta=2, t_sum=30 from profile est6, which was measured on mnist, mlp, N=6, "
                      "|D_i|=128, t_sum=30, alpha=1, beta=2, eta=0.01 (flags override)")]
    out = json.loads(run("kstar", "--profile", prof, "--M", "2", "--N", "10", "--t-sum", "60", "--json").output)
    assert (out["params"]["N"], out["params"]["t_sum"], out["params"]["beta"]) == (10, 60.0, 2.0)
    assert "N" not in out["from_profile"] and "t_sum" not in out["from_profile"]
    assert out["warnings"] == ["N=10, but profile est6 was measured at N=6: the prediction extrapolates"]
    # Other commands take the same defaults; a profile of the paper's system says nothing.
    assert json.loads(run("bound", "--profile", prof, "--json").output)["params"]["N"] == 6
    assert "note:" not in run("kstar", "--profile", "mnist-mlp", "--M", "4", "--sigma2", "0.1", "--L", "1").output


def test_kstar_with_a_calibrated_profile_takes_its_domain(tmp_path):
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({**DRIFT_PROFILE, "domain": {**DRIFT_PROFILE["domain"], "N": 10}}))
    out = json.loads(run("kstar", "--profile", str(path), "--M", "4", "--json").output)
    assert out["params"]["N"] == 10 and out["from_profile"] == {"N": 10, "alpha": 1.0, "eta": 0.01}
    assert "note: N=10 from profile test-calibrated" in run("kstar", "--profile", str(path), "--M", "4").output


DRIFT_PROFILE = {
    "name": "test-calibrated",
    "form": "drift",
    "constants": {"F0": 2.3, "phi": 0.5, "drift": 0.9, "tau0": 30.0, "kappa": 1.0, "c0": 60.0, "c1": 20.0},
    "calibration": {"tolerance": 0.03, "rms_log_error": 0.0296},
    "domain": {"N": 20, "alpha": 1.0, "eta": 0.01, "model": "mlp", "samples_per_client": 512,
               "box": {"t_sum": [50, 200], "beta": [2.5, 20], "M": [0, 8], "sigma2": [0, 0.3]}},
    "validation": {"held_out": 23, "hits": 21, "hit_rate": 0.913, "median_regret": 0.004, "worst_regret": 0.031,
                   "report": "reports/kstar-confirmation"},
    "provenance": {"method": "calibrated on measured sweeps"},
}


@pytest.fixture
def drift_profile(tmp_path):
    path = tmp_path / "test-calibrated.json"
    path.write_text(json.dumps(DRIFT_PROFILE))
    return str(path)


def test_kstar_with_a_calibrated_drift_profile(drift_profile):
    from bladefl_theory.forms import form_kstar

    r = run("kstar", "--profile", drift_profile, "--M", "4", "--sigma2", "0.1", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    system = dict(N=20, M=4, sigma2=0.1, alpha=1.0, beta=10.0, t_sum=100.0, eta=0.01)
    expected = form_kstar("drift", system, DRIFT_PROFILE["constants"], 0.03)
    assert out["form"] == "drift" and out["k_star"] == expected.k_star and out["k_star_band"] == list(expected.band)
    assert out["k_star"] in out["k_star_band"] and out["warnings"] == []
    assert out["validation"]["hit_rate"] == 0.913 and len(out["table"]) == out["k_max"] == 9
    human = run("kstar", "--profile", drift_profile, "--M", "4", "--sigma2", "0.1")
    assert "at 21 of 23 held-out settings it never saw" in human.output and "K* band" in human.output


def test_kstar_warns_outside_the_calibrated_domain(drift_profile):
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()
    r = runner.invoke(cli, ["kstar", "--profile", drift_profile, "--t-sum", "400", "--N", "30", "--model", "cnn"])
    assert r.exit_code == 0
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3 and any("t_sum=400" in w and "50..200" in w for w in warnings)
    assert any("N=30" in w for w in warnings) and any("model=cnn" in w for w in warnings)
    # Constants of the bound, and the bound's variants, mean nothing to the drift form.
    bad = runner.invoke(cli, ["kstar", "--profile", drift_profile, "--L", "3"])
    assert bad.exit_code == 2 and "constant of the paper's bound" in bad.stderr
    bad = runner.invoke(cli, ["kstar", "--profile", drift_profile, "--variant", "printed"])
    assert bad.exit_code == 2 and "--variant" in bad.stderr


def test_kstar_defaults_to_the_calibrated_profile_with_its_band_and_validation():
    r = CliRunner().invoke(cli, ["kstar", "--M", "4", "--sigma2", "0.1", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    profile = load_profile("mnist-mlp-calibrated")
    assert out["profile"] == "mnist-mlp-calibrated" and out["form"] == profile.form in CALIBRATED_FORMS
    assert out["k_star"] in out["k_star_band"] and 1 <= out["k_star"] <= out["k_max"]
    v = out["validation"]
    assert v["settings"] == "fresh off-grid points" and v["held_out"] >= 9
    assert v["report"] == "reports/kstar-confirmation"
    human = CliRunner().invoke(cli, ["kstar", "--M", "4", "--sigma2", "0.1"], catch_exceptions=False)
    assert human.output.startswith(f"profile mnist-mlp-calibrated ({profile.form}): K* inside the measured plausible "
                                   f"set at {v['hits']} of {v['held_out']} fresh off-grid points it never saw")
    assert "a fresh measurement of each, held against half its seeds" in human.output.splitlines()[0]
    assert f"K*                 {out['k_star']}\n" in human.output


def _runner():
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


@pytest.mark.parametrize("t_sum", ["1e9", "1e15", "1e300"])
def test_kstar_refuses_a_k_max_beyond_the_search_with_the_calibrated_profile(t_sum):
    r = _runner().invoke(cli, ["kstar", "--t-sum", t_sum], catch_exceptions=False)
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "must be at most 100000: it is K_max" in r.stderr


def test_kstar_refuses_more_local_epochs_than_a_float_holds():
    r = _runner().invoke(cli, ["kstar", "--alpha", "5e-324", "--json"], catch_exceptions=False)
    assert r.exit_code == 2 and r.stdout == "" and "alpha must leave at most 2**53" in r.stderr


@pytest.mark.parametrize("args, edit", [
    (["--M", "19", "--sigma2", "1e306"], None),
    (["--M", "19"], {"kappa": 1e308}),
])
def test_kstar_with_no_finite_prediction_exits_3_and_says_so(tmp_path, args, edit):
    if edit:
        data = json.loads(json.dumps(DRIFT_PROFILE))
        data["constants"].update(edit)
        (tmp_path / "p.json").write_text(json.dumps(data))
        args = [*args, "--profile", str(tmp_path / "p.json")]
    r = _runner().invoke(cli, ["kstar", *args, "--json"], catch_exceptions=False)
    out = json.loads(r.stdout)
    assert r.exit_code == 3 and out["status"] == 3 and out["success"] is False and out["k_star"] is None
    assert "gives a finite predicted loss" in out["message"] and "finite predicted loss" in r.stderr
    text = _runner().invoke(cli, ["kstar", *args], catch_exceptions=False)
    assert text.exit_code == 3 and "None" not in text.stdout
