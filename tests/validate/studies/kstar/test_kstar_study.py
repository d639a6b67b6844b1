"""The K* confirmation on a tiny design: a form chosen on the first study's held-out settings, scored on fresh ones."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, tiny_kstar_design
from validate_cli_helpers import assert_bad_input, forbid_computation, invoke

from bladefl_platform.errors import InputError
from bladefl_platform.execution import Execution
from bladefl_platform.store import ResultStore
from bladefl_validate.studies.base import run
from bladefl_theory.profiles import load_profile
from bladefl_validate.studies.kstar.report import confirm_files
from bladefl_validate.studies.kstar.study import ConfirmStudy
from bladefl_validate.studies.kstar.design import CONFIRMATION, DESIGN
from bladefl_validate.studies.kstar.analysis import PREDICTORS, analyse_measured, select_form
from bladefl_validate.studies.kstar.study import KStarReportStudy
from bladefl_validate.tasks import task_context
from bladefl_validate.studies.kstar.scoring import TEST, VALIDATION

pytestmark = pytest.mark.usefixtures("private_cache")


def test_the_shipped_confirmation_draws_fresh_points_and_keeps_the_rest_of_the_design():
    fresh = CONFIRMATION.off_grid_points()
    assert len(fresh) == DESIGN.off_grid and not {str(p) for p in fresh} & {str(p) for p in DESIGN.off_grid_points()}
    same = dataclasses.replace(CONFIRMATION, off_grid_seed=DESIGN.off_grid_seed)
    assert same == DESIGN
    with pytest.raises(InputError, match="off-grid points of its own"):
        ConfirmStudy(DESIGN, DESIGN)


def test_the_confirmation_chooses_on_the_first_study_and_scores_only_the_fresh_points(tmp_path, data_root):
    first = tiny_kstar_design()
    confirmation = dataclasses.replace(first, off_grid_seed=first.off_grid_seed + 1)
    store, out = tmp_path / "s.sqlite", tmp_path / "report"
    execution = Execution(workers=1, progress=False)
    done = run(ConfirmStudy(first, confirmation, bootstrap=5), out, store=store, execution=execution,
               data_dir=data_root, command="bladefl-validate kstar-confirm --store S")
    r = done.result
    assert {p.name for p in out.iterdir()} >= set(confirm_files(confirmation))
    key = lambda s: (s.t_sum, s.beta, s.M, s.sigma2)  # noqa: E731
    fresh = {key(s) for s in r.test_settings["mnist"]}
    assert fresh == {(p["t_sum"], p["beta"], p["M"], p["sigma2"]) for p in confirmation.off_grid_points()}
    assert not fresh & {key(s) for s in first.settings()}
    # The choice is the first study's, on its arms and off-grid points pooled (the store holds it: nothing runs).
    with ResultStore(store) as s:
        runs = s.count()
        # Every run went through the study's runner, batch by batch (StudyRun.batches): the first study's steps,
        # then the fresh points'.
        assert sum(b.ran for b in done.batches) == runs and {b.desc for b in done.batches} >= {"kstar step 1"}
        first_analyses = KStarReportStudy(first).compute(s, execution, task_context(str(data_root))).analyses
        assert s.count() == runs
    pooled = select_form(first_analyses, parts=(VALIDATION, TEST))
    assert r.choice.form == pooled.form
    pd.testing.assert_frame_equal(r.choice.scores, pooled.scores)
    # Every predictor is scored at every fresh point and nowhere else; scores.csv is held_out.csv summarised.
    held = pd.read_csv(out / "held_out.csv")
    assert set(held.role) == {"off-grid"} and len(held) == len(PREDICTORS) * len(fresh)
    assert set(zip(held.t_sum, held.beta, held.M, held.sigma2)) == fresh
    scores = pd.read_csv(out / "scores.csv").set_index("predictor")
    hits = held.groupby("predictor").hit.mean()
    assert scores.loc[hits.index, "hit_rate"].to_numpy() == pytest.approx(hits.to_numpy())
    readme = (out / "README.md").read_text()
    assert "bladefl-validate kstar-confirm --store S" in readme and f"**{r.choice.form}**" in readme
    # The profile is the chosen form, fitted on the pilots, and its validation record is the fresh points'.
    profile = load_profile(str(out / "mnist-mlp-calibrated.json"))
    assert profile.form == r.choice.form and profile.domain["N"] == first.base.N
    assert {(p["t_sum"], p["beta"], p["M"], p["sigma2"]) for p in profile.calibration["pilots"]} \
        == {key(s) for s in r.analyses[0].pilots}
    v = profile.validation
    mine = scores.loc[f"{r.choice.form} (calibrated)"]
    assert (v["held_out"], v["settings"]) == (len(fresh), "fresh off-grid points")
    assert v["hit_rate"] == pytest.approx(mine.hit_rate, abs=1e-4) and v["hits"] == round(mine.hit_rate * len(fresh))
    assert v["chosen_on"]["held_out"] == int(pooled.scores.set_index("form").loc[r.choice.form].settings)
    assert v["report"] == "reports/kstar-confirmation"
    assert f"Chosen form: **{r.choice.form}** (on every held-out setting" in (out / "summary.md").read_text()


def test_kstar_confirm_help_names_the_files_it_owns():
    text = " ".join(invoke(["kstar-confirm", "--help"]).output.split())
    for name in [*confirm_files(None), ".bladefl-owner.json"]:
        assert name in text.replace("- ", "-"), name


def test_kstar_confirm_needs_the_first_studys_store(tmp_path, monkeypatch):
    forbid_computation(monkeypatch)
    r = invoke(["kstar-confirm", "--out", str(tmp_path / "c")])
    assert_bad_input(r, "--store")
    r = invoke(["kstar-confirm", "--measured-only", "--store", str(tmp_path / "none.sqlite"), "--out",
                str(tmp_path / "c")])
    assert_bad_input(r, "does not exist")
    assert list(tmp_path.iterdir()) == []


CONFIRMATION_REPORT = REPO / "reports" / "kstar-confirmation"


def test_the_shipped_calibrated_profiles_are_the_confirmations():
    """bladefl_theory ships exactly the profiles reports/kstar-confirmation wrote, and the README quotes its
    summary word for word (regenerate, then copy it in)."""
    scores = pd.read_csv(CONFIRMATION_REPORT / "scores.csv")
    halves = pd.read_csv(CONFIRMATION_REPORT / "split_half.csv")
    choice = pd.read_csv(CONFIRMATION_REPORT / "choice.csv").set_index("form")
    for name in ("mnist-mlp-calibrated", "fashion-mnist-mlp-calibrated"):
        shipped = json.loads((REPO / "bladefl_theory" / "profile_data" / f"{name}.json").read_text())
        report = json.loads((CONFIRMATION_REPORT / f"{name}.json").read_text())
        assert shipped == report, name
        dataset, v = report["domain"]["dataset"], report["validation"]
        [mine] = scores[(scores.dataset == dataset)
                        & (scores.predictor == f"{report['form']} (calibrated)")].itertuples()
        assert (v["held_out"], v["hits"]) == (mine.settings, round(mine.hit_rate * mine.settings))
        for figure in ("hit_rate", "median_regret", "worst_regret"):
            assert v[figure] == pytest.approx(getattr(mine, figure), abs=1e-4), (name, figure)
        mine_halves = halves[halves.dataset == dataset]
        fresh = v["fresh_measurement"]
        assert fresh["held_out"] == len(mine_halves) == mine.settings
        assert fresh["hit_rate"] == pytest.approx(mine_halves.replicate_hit.mean(), abs=1e-4)
        assert fresh["worst_regret"] == pytest.approx(mine_halves.replicate_regret.max(), abs=1e-5)
        assert v["chosen_on"]["mean_regret"] == pytest.approx(choice.loc[report["form"], "mean_regret"], abs=1e-5)
        assert choice.mean_regret.idxmin() == report["form"]
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- kstar-confirmation -->\n", 1)[1].split("<!-- /kstar-confirmation -->", 1)[0]
    assert block == (CONFIRMATION_REPORT / "summary.md").read_text()


def test_the_confirmations_numbers_come_from_the_store():
    """What reports/kstar-confirmation says of every fresh point, and the choice it reports, is what the K* study's
    store gives, recomputed here (without the bootstrap spread of the constants, which no score depends on)."""
    with ResultStore(REPO / "reports" / "kstar-prediction" / "results.sqlite") as store:
        first, _, _ = analyse_measured(store, DESIGN, bootstrap=0)
        analyses, _, progress = analyse_measured(store, CONFIRMATION, bootstrap=0)
    assert set(progress.values()) == {"complete"}
    choice = select_form(first, parts=(VALIDATION, TEST))
    reported = pd.read_csv(CONFIRMATION_REPORT / "choice.csv")
    assert list(reported.form) == list(choice.scores.form)
    np.testing.assert_allclose(reported.mean_regret, choice.scores.mean_regret, rtol=1e-9)
    assert json.loads((CONFIRMATION_REPORT / "mnist-mlp-calibrated.json").read_text())["form"] == choice.form
    held = pd.concat([a.frame() for a in analyses], ignore_index=True)
    held = held[held.role == "off-grid"].reset_index(drop=True)
    stored = pd.read_csv(CONFIRMATION_REPORT / "held_out.csv")
    assert len(held) == len(stored) == len(PREDICTORS) * 2 * CONFIRMATION.off_grid
    for col in ("k_pred", "k_measured", "regret"):
        np.testing.assert_allclose(held[col].astype(float), stored[col].astype(float), rtol=1e-9, equal_nan=True)
    assert (held.plausible.astype(str) == stored.plausible.astype(str)).all()
    fresh = {(p["t_sum"], p["beta"], p["M"], p["sigma2"]) for p in CONFIRMATION.off_grid_points()}
    assert set(zip(stored.t_sum, stored.beta, stored.M, stored.sigma2)) == fresh
    assert not fresh & {(p["t_sum"], p["beta"], p["M"], p["sigma2"]) for p in DESIGN.off_grid_points()}
    # The split-half table holds the fresh points alone, once per data set and predictor of K*.
    assert " | all | " not in (CONFIRMATION_REPORT / "README.md").read_text()
