"""What the commands print: with --json one strict JSON object on stdout whose status is the exit status, levelled
logs on stderr (-q, -v), and numbers for people (no raw None, no float noise).

The heavy computations are replaced by small fakes: these tests are about the output, not the results."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from validate_cli_helpers import SMALL, fake_tasks, invoke, separate_runner

from bladefl_platform.cli import emit_json, json_ready, json_text
from bladefl_platform.store import ResultStore
from bladefl_theory.cli import cli as theory_cli

NOISE = re.compile(r"\d\.\d{7,}")  # 0.8999999999999998, 0.30000000000000004


def one_object(result) -> dict:
    """The whole of stdout is one JSON object, strict (no NaN, no Infinity), its status the exit status."""
    text = result.stdout
    obj = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert isinstance(obj, dict), text
    assert obj["status"] == result.exit_code, (obj["status"], result.exit_code, result.stderr)
    assert next(iter(obj)) == "status"
    return obj


def theory(args):
    return separate_runner().invoke(theory_cli, list(args), catch_exceptions=False)


# ---------------------------------------------------------------------------------------------
# The one emitter.


def test_json_ready_makes_anything_a_command_returns_strict_json(tmp_path):
    frame = pd.DataFrame({"K": np.array([1, 2], dtype=np.int64), "x": [0.5, math.nan]})
    obj = {"inf": math.inf, "nan": float("nan"), "i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True),
           "path": tmp_path / "a", "t": (1, 2), "frame": frame, "na": pd.NA, "arr": np.array([1.0, np.inf]), 4: "key"}
    ready = json_ready(obj)
    assert ready == {"inf": None, "nan": None, "i": 3, "f": 0.5, "b": True, "path": str(tmp_path / "a"), "t": [1, 2],
                     "frame": [{"K": 1, "x": 0.5}, {"K": 2, "x": None}], "na": None, "arr": [1.0, None], "4": "key"}
    assert json.loads(json_text(obj)) == ready
    with pytest.raises(TypeError):
        json_ready(object())


def test_emit_json_puts_the_status_first_and_returns_it(capsys):
    assert emit_json({"a": 1, "status": 99}, 3) == 3
    out = capsys.readouterr().out
    assert list(json.loads(out)) == ["status", "a"] and json.loads(out)["status"] == 3


# ---------------------------------------------------------------------------------------------
# bladefl-theory


@pytest.mark.parametrize(
    "args, code",
    [
        (["kstar", "--profile", "default", "--M", "4"], 0),
        (["kstar", "--profile", "default", "--epsilon", "0.01"], 3),
        (["kstar"], 0),  # the calibrated profile's form
        (["bound", "--K", "1,2"], 0),
        (["bound", "--epsilon", "0.01"], 3),
        (["convexity", "--grid", "11"], 0),
        (["convexity", "--M", "19", "--sigma2", "1e6", "--grid", "11"], 3),
    ],
)
def test_theory_json_status_is_the_exit_status(args, code):
    r = theory([*args, "--json"])
    assert r.exit_code == code, r.stderr
    one_object(r)
    if code:
        assert r.stderr.startswith("bladefl-theory: error: ")


def test_kstar_json_keeps_the_solvers_status_apart():
    out = one_object(theory(["kstar", "--profile", "default", "--M", "4", "--check", "--json"]))
    assert out["solver_status"] in (0, 1) and out["success"] is True


def test_sensitivity_json(tmp_path):
    r = theory(["sensitivity", "--vary", "M=0,4", "--variant", "per-round", "--quiet", "--out", str(tmp_path / "s"),
                "--json"])
    assert r.exit_code == 0, r.stderr
    out = one_object(r)
    assert "sensitivity.csv" in out["files"] and len(out["rows"]) == 2 and "per-round" in out["verdicts"]
    assert "wrote " in r.stderr  # what it wrote is a message, not the result


def test_theory_logs_are_levelled():
    # kstar's profile was measured at N=20: N=10 warns, with -q too.
    assert "warning: " in theory(["kstar", "--N", "10"]).stderr
    assert "warning: " in theory(["-q", "kstar", "--N", "10"]).stderr
    assert "debug: " not in theory(["kstar", "--profile", "default"]).stderr
    verbose = theory(["-v", "kstar", "--profile", "default"])
    assert verbose.exit_code == 0 and "debug: " in verbose.stderr and "parameters" in verbose.stderr
    assert "debug: " not in verbose.stdout
    both = theory(["-v", "-q", "kstar"])
    assert both.exit_code == 2 and "exclude each other" in both.stderr


def test_verbosity_is_accepted_after_the_subcommand_too():
    verbose = theory(["kstar", "--profile", "default", "-v"])
    assert verbose.exit_code == 0 and "debug: bladefl-theory" in verbose.stderr and "parameters" in verbose.stderr
    assert "warning: " in theory(["kstar", "--N", "10", "--quiet"]).stderr
    assert theory(["kstar", "--N", "10", "-q"]).stdout == theory(["kstar", "--N", "10"]).stdout
    both = theory(["-v", "kstar", "-q"])
    assert both.exit_code == 2 and "exclude each other" in both.stderr
    # A command's own --quiet (no progress bars) keeps its meaning; -q after it is the group's.
    sensitivity = theory(["sensitivity", "--help"]).stdout
    assert "--quiet                        No progress bar." in sensitivity and "-q  " in sensitivity


def test_verbosity_does_not_outlive_an_invocation():
    import logging

    theory(["-v", "kstar", "--profile", "default"])
    assert logging.getLogger("bladefl_theory").level == logging.NOTSET
    assert not logging.getLogger("bladefl_theory").handlers


# ---------------------------------------------------------------------------------------------
# bladefl-validate: fakes of the heavy parts.


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Both data sets, large enough for the paper's deployment (N=20, |D_i|=512, 4 classes per client) that
    reproduce, detection-report, kstar-report and calibrate check their runs at."""
    from helpers import write_data_root

    sizes = {"mnist": (12000, 300, 0), "fashion-mnist": (12000, 300, 1)}
    return write_data_root(tmp_path_factory.mktemp("data"), sizes)


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    """Every command's stored tasks answered at once with plausible numbers (validate_cli_helpers.fake_tasks), which
    the studies analyse and report on as they would real ones; the K* study's analysis and report replaced by fakes
    that write where the command expects its report."""
    from bladefl_validate.studies.kstar import analysis as kstar_analysis, budget as kstar_budget, study as kstar_study
    from bladefl_validate.studies.kstar.analysis import KStarResult

    def writes(name):
        return lambda *args, **kwargs: (Path(next(a for a in args if isinstance(a, Path))) / name).write_text("x")

    fake_tasks(monkeypatch)
    # calibrate states its cost from a short timing before it runs: a fixed figure here.
    monkeypatch.setattr(kstar_budget, "estimate_cost", lambda configs, *a, **k: kstar_budget.Cost(len(configs), 1, 0.5))
    scores = pd.DataFrame({"dataset": ["mnist"], "predictor": ["drift (calibrated)"], "settings": [2], "answered": [1],
                           "hit_rate": [0.5], "median_regret": [math.nan], "worst_regret": [math.inf]})
    analysis = SimpleNamespace(dataset="mnist", scores=lambda part=None: scores)
    frame = pd.DataFrame({"cpu_seconds": [3600.0, 1800.0]})
    choice = SimpleNamespace(form="saturating")
    monkeypatch.setattr(kstar_analysis, "measure_study", lambda *a, **k: None)
    monkeypatch.setattr(kstar_analysis, "study_result", lambda store, chosen_on, tested_on, parts, on, bootstrap,
                        measured_only=False: KStarResult(
        [analysis], frame, {"s1": "complete", "s2": "unmeasured", "s3": "complete"} if measured_only else None,
        choice, pd.DataFrame()))
    monkeypatch.setattr(kstar_study, "write_report", writes("README.md"))
    cal = SimpleNamespace(success=True, message="", constants={"a": 0.30000000000000004, "b": 2.0},
                          spread={"a": 0.1, "b": math.nan}, rms_log_error=0.01, tolerance=0.02)
    monkeypatch.setattr(kstar_analysis, "fit_pilots", lambda *a, **k: cal)
    monkeypatch.setattr(kstar_study, "profile_document", lambda cal, name, *a, **k: {"name": name})


def commands(data_root, tmp_path) -> dict[str, list[str]]:
    data = ["--data-dir", str(data_root)]
    return {
        "sweep-k": ["sweep-k", *SMALL, *data, "--out", str(tmp_path / "sweep")],
        "gap": ["gap", *SMALL, "--seeds", "1", *data, "--out", str(tmp_path / "gap")],
        "estimate": ["estimate", *SMALL, "--K", "2", "--seeds", "1", *data, "--out", str(tmp_path / "p.json")],
        "reproduce": ["reproduce", "--datasets", "mnist", "--seeds", "1", "--quiet", *data,
                      "--out", str(tmp_path / "reproduce")],
        "detection-report": ["detection-report", "--datasets", "mnist", "--M", "1", "--sigma2", "0.01", "--quiet",
                             *data, "--out", str(tmp_path / "detection")],
        "kstar-report": ["kstar-report", "--quiet", *data, "--out", str(tmp_path / "kstar")],
        "kstar-report --measured-only": ["kstar-report", "--measured-only", "--store", str(tmp_path / "s.sqlite"),
                                         "--out", str(tmp_path / "kstar-measured")],
        "calibrate": ["calibrate", "--seeds", "1", "--quiet", "--store", str(tmp_path / "s.sqlite"), *data,
                      "--out", str(tmp_path / "c.json")],
    }


NAMES = ["sweep-k", "gap", "estimate", "reproduce", "detection-report", "kstar-report", "kstar-report --measured-only",
         "calibrate"]


@pytest.mark.parametrize("name", NAMES)
def test_validate_json_is_one_object_whose_status_is_the_exit_status(tmp_path, data_root, fakes, name):
    if name.endswith("--measured-only"):
        with ResultStore(tmp_path / "s.sqlite"):
            pass
    r = invoke([*commands(data_root, tmp_path)[name], "--json"])
    assert r.exit_code == 0, r.stderr
    out = one_object(r)
    assert len(out) > 2
    human = invoke(commands(data_root, tmp_path)[name])
    assert human.exit_code == 0, human.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(human.stdout)
    for text in (human.stdout, human.stderr):
        assert "None" not in text and not re.search(r"\bnan\b", text, re.IGNORECASE), text
        assert not NOISE.search(text), text


def test_the_json_of_a_report_holds_its_results(tmp_path, data_root, fakes):
    c = commands(data_root, tmp_path)
    sweep = one_object(invoke([*c["sweep-k"], "--json"]))
    assert sweep["k_star"] == 2 and [row["K"] for row in sweep["per_k"]] == [1, 2]
    gap = one_object(invoke([*c["gap"], "--json"]))
    assert gap["k_star_measured"] == 2 and set(gap["fits"]) >= {"per-round", "printed+sc"}
    assert gap["fits"]["per-round"]["k_star_bound"] is None  # not finite at this tiny deployment: null, never NaN
    with ResultStore(tmp_path / "s.sqlite"):
        pass
    measured = one_object(invoke([*c["kstar-report --measured-only"], "--json"]))
    assert measured["campaign"]["progress"] == {"complete": 2, "unmeasured": 1}
    assert measured["scores"][0]["worst_regret"] is None and measured["campaign"]["cpu_hours"] == 1.5
    assert measured["form"] == "saturating" and {row["part"] for row in measured["scores"]} == {"all", "off-grid"}
    cal = one_object(invoke([*c["calibrate"], "--json"]))
    assert cal["relative_spread"]["b"] is None and cal["constants"]["b"] == 2.0


def test_the_recorded_command_line_leaves_json_out(tmp_path, data_root, fakes):
    assert invoke([*commands(data_root, tmp_path)["sweep-k"], "--json"]).exit_code == 0
    line = (tmp_path / "sweep" / "README.md").read_text().split("Regenerate with:\n\n    ")[1].splitlines()[0]
    assert line.startswith("bladefl-validate sweep-k --N 4") and "--json" not in line and "--quiet" not in line


def test_gap_prints_no_none_and_no_float_noise(tmp_path, data_root, fakes):
    r = invoke(commands(data_root, tmp_path)["gap"])
    assert r.exit_code == 0, r.stderr
    assert "None" not in r.stdout and not NOISE.search(r.stdout), r.stdout
    assert "F(w*) = 0.3" in r.stdout and "—" in r.stdout  # the per-round bound's K* does not exist here


def test_run_and_chain_verify_json(tmp_path, data_root):
    out = tmp_path / "run"
    r = invoke(["run", *SMALL, "--K", "2", "--data-dir", str(data_root), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.stderr
    run = one_object(r)
    assert run["config"]["K"] == 2 and run["summary"]["rounds"] == 2 and len(run["tip_hash"]) == 64
    ok = invoke(["chain", "verify", str(out), "--tip", run["tip_hash"], "--json"])
    assert one_object(ok)["ok"] is True and ok.exit_code == 0
    blob = next(p for p in (out / "blobs").rglob("*") if p.is_file())
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))
    bad = invoke(["chain", "verify", str(out), "--json"])
    assert bad.exit_code == 1 and one_object(bad)["ok"] is False


def test_validate_logs_are_levelled(tmp_path, data_root, fakes, monkeypatch):
    fake_tasks(monkeypatch, skipped=2)
    args = commands(data_root, tmp_path)["sweep-k"]
    default = invoke(args)
    assert "2 of 2 runs were already in the store" in default.stderr and "debug: " not in default.stderr
    assert "already in the store" not in default.stdout  # results alone on stdout
    quiet = invoke(["-q", *args])
    assert quiet.exit_code == 0 and quiet.stderr.strip() == "" and "empirical K*" in quiet.stdout
    verbose = invoke(["-v", *args, "--json"])
    assert "debug: bladefl-validate" in verbose.stderr and "already in the store" in verbose.stderr
    one_object(verbose)
    after = invoke([*args, "-q"])
    assert after.exit_code == 0 and after.stderr.strip() == "" and "empirical K*" in after.stdout
    verbose = invoke([*args, "--json", "--verbose"])
    assert "debug: bladefl-validate" in verbose.stderr
    one_object(verbose)
    chain = invoke(["chain", "verify", str(tmp_path / "nowhere"), "-q"])
    assert chain.exit_code == 2 and "is not a folder" in chain.stderr
