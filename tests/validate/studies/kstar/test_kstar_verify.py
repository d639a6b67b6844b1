"""bladefl-validate kstar-verify: the study around the sequential test, end to end on a tiny system."""

from __future__ import annotations

import json

import pytest
from validate_cli_helpers import SMALL, assert_bad_input, forbid_computation, invoke

from bladefl_validate.studies.kstar import verify as kstar_verify
from bladefl_validate.studies.kstar.verify import VERIFY_SEEDS, measured_band, study_seeds

#: A tiny verification: the SMALL deployment (K_max = 2), a loose tolerance and a budget that ends it soon.
TINY = [*SMALL, "--tolerance", "0.5", "--max-cpu-hours", "0.01", "--workers", "1"]


def test_verification_seeds_are_disjoint_from_every_seed_the_calibration_and_the_studies_use():
    used = study_seeds()
    assert used.stop >= 1000 and not set(used) & set(VERIFY_SEEDS[:2000])
    assert VERIFY_SEEDS.start >= used.stop


def test_the_band_is_widened_by_one_k_each_side_within_the_k_range():
    assert measured_band((3, 4), 9) == [2, 3, 4, 5]
    assert measured_band((1,), 9) == [1, 2]
    assert measured_band((9,), 9) == [8, 9]
    assert measured_band((2, 5), 5) == [1, 2, 3, 4, 5]


def test_the_default_profile_band_is_the_calibrated_forms(monkeypatch):
    from bladefl_theory.forms import form_kstar
    from bladefl_theory.profiles import load_profile

    from bladefl_validate.config import RunConfig

    profile = load_profile("mnist-mlp-calibrated")
    system = {"N": 20, "M": 4, "sigma2": 0.1, "alpha": 1.0, "beta": 10.0, "t_sum": 100.0, "eta": 0.01}
    r = form_kstar(profile.form, system, profile.constants, profile.tolerance)
    answer = kstar_verify.profile_answer(profile, system)
    assert (answer.k_star, answer.band) == (r.k_star, r.band)
    base = RunConfig(M=4, sigma2=0.1)
    assert kstar_verify._default_profile(base) == "mnist-mlp-calibrated"


def test_end_to_end_resumes_from_the_store_and_reports_in_json(tmp_path, data_root):
    out = tmp_path / "verify"
    args = ["kstar-verify", *TINY, "--data-dir", str(data_root), "--out", str(out), "--json"]
    first = invoke(args)
    assert first.exit_code == 0, first.stderr
    r = json.loads(first.stdout)
    assert r["ran"] == r["runs"] > 0 and r["skipped"] == 0
    for key in ("k_star", "indistinguishable", "confidence_reached", "seeds", "cpu_hours", "summary", "paired", "looks",
                "prediction", "reason", "seed_range"):
        assert key in r
    assert r["k_star"] in (1, 2) and r["prediction"]["measured_first"] == [1, 2]
    assert r["seed_range"][0] == VERIFY_SEEDS.start and r["seeds"] == r["seed_range"][1] - VERIFY_SEEDS.start + 1
    assert r["prediction"]["off"]["blocks"] == r["prediction"]["k_star"] - r["k_star"]
    assert r["cpu_hours"] <= 0.01 or r["runs"] == 1
    assert r["warnings"]  # N=4 and the rest lie outside mnist-mlp-calibrated's domain
    assert r["summary"].startswith(f"verified K* = {r['k_star']} ")
    for name in kstar_verify.VERIFY_FILES:
        assert (out / name).is_file()
    readme = (out / "README.md").read_text()
    assert "bladefl-validate kstar-verify" in readme and "--tolerance 0.5" in readme
    second = json.loads(invoke(args).stdout)
    assert second["ran"] == 0 and second["skipped"] == r["runs"]
    assert {k: v for k, v in second.items() if k not in ("ran", "skipped")} == \
        {k: v for k, v in r.items() if k not in ("ran", "skipped")}


def test_a_budget_that_pays_for_no_seed_verifies_nothing():
    from bladefl_validate.config import RunConfig
    from bladefl_validate.studies.kstar.sequential import VerifyDesign, verify

    design = VerifyDesign(max_cpu_hours=20 / 3600)
    v = verify(lambda runs: [(1.0, 10.0)] * len(runs), [1, 2, 3], 3, design)
    assert (v.seeds, v.runs, v.reason, v.confidence) == (0, 1, "budget", 0.0)
    result = kstar_verify.VerifyResult(RunConfig(), "p", "drift", 2, (2,), [1, 2, 3], v, design)
    line = kstar_verify.summary_line(result)
    assert line.startswith("nothing verified: 0.00555556 CPU h does not pay for one seed at each of K = 1, 2, 3 (the "
                           "first run cost 10 CPU s)")


@pytest.mark.parametrize("extra, fragment", [
    (["--tolerance", "-0.1"], "tolerance must be >= 0 and < 1"),
    (["--tolerance", "nan"], "tolerance must be finite"),
    (["--confidence", "1"], "confidence must be > 0 and < 1"),
    (["--max-cpu-hours", "0"], "max_cpu_hours must be > 0"),
    (["--max-cpu-hours", "inf"], "max_cpu_hours must be finite"),
    (["--strict"], "(--strict)"),
    (["--profile", "no-such-profile"], "no-such-profile"),
])
def test_bad_input_is_one_line_status_2_and_nothing_written(tmp_path, data_root, monkeypatch, extra, fragment):
    forbid_computation(monkeypatch)
    out = tmp_path / "verify"
    result = invoke(["kstar-verify", *SMALL, "--data-dir", str(data_root), "--out", str(out), *extra])
    assert_bad_input(result, fragment)
    assert not out.exists() and list(tmp_path.iterdir()) == []
