"""The K* prediction study end to end on a tiny design: calibrate on pilots, score held-out settings, report."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, tiny_kstar_design as tiny_design

from bladefl_platform.execution import Execution
from bladefl_platform.store import ResultStore
from bladefl_validate.studies.kstar.design import DESIGN, measured_runs, progress
from bladefl_validate.studies.kstar.analysis import (
    CANDIDATES,
    PREDICTORS,
    analyse,
    analyse_measured,
    held_out_settings,
    pilot_settings,
    run_study,
    select_form,
    split_half_scores,
)
from bladefl_validate.studies.kstar.report import report_files, write_report

pytestmark = pytest.mark.usefixtures("private_cache")


def test_pilots_and_held_out_settings_are_disjoint_and_cover_the_design():
    d = tiny_design()
    pilots, held = pilot_settings(d, "mnist"), held_out_settings(d, "mnist")
    assert [s.role for s in pilots] == ["centre", "arm:t_sum", "arm:M", "arm:sigma2"]
    assert not set(pilots) & set(held)
    assert set(pilots) | set(held) == set(d.settings())


def test_the_study_calibrates_on_pilots_alone_and_scores_every_held_out_setting(tmp_path, data_root):
    design = tiny_design()
    with ResultStore(tmp_path / "s.sqlite") as store:
        analyses, frame = run_study(store, design, str(data_root), Execution(workers=1, progress=False), bootstrap=5)
        stored = len(measured_runs(store, design))
    [a] = analyses
    # The calibration saw exactly the pilots' settings.
    for cal in a.calibrations.values():
        seen = {(p["t_sum"], p["beta"], p["M"], p["sigma2"]) for p in cal.pilots}
        assert seen == {(s.t_sum, s.beta, s.M, s.sigma2) for s in a.pilots}
    f = a.frame()
    assert set(f.predictor) == set(PREDICTORS)
    assert len(f) == len(PREDICTORS) * len(a.held_out)
    # Every K some predictor chose was measured, so every answer has a regret: 0 exactly where the predicted K is the
    # measured K* (the K of least mean loss), positive elsewhere.
    answered = f[f.k_pred.notna()]
    assert answered.regret.notna().all()
    exact = answered.k_pred == answered.k_measured
    assert (answered.regret[exact] == 0).all() and (answered.regret[~exact] > 0).all()
    assert (f.hit == [k in set(map(int, p.split())) if k == k else False for k, p in zip(f.k_pred, f.plausible)]).all()
    # A measured predictor: the pilot's K* is a constant, clipped to K_max.
    pilot_k = f[f.predictor == "pilot's K*"]
    assert (pilot_k.k_pred <= [s.k_max(design.base) for s in a.held_out]).all()

    out = tmp_path / "report"
    out.mkdir()
    choice = write_report(analyses, frame, design, out, "bladefl-validate kstar-report --out X",
                          {"runs": stored, "cpu_hours": 0.01})
    assert set(report_files(design)) == {p.name for p in out.iterdir()}
    assert choice.form == select_form(analyses).form and choice.form in CANDIDATES
    assert f"Chosen form: **{choice.form}** (on the arms)" in (out / "summary.md").read_text()
    # The choice is made on the arms alone: whatever the off-grid points measured, the same form is chosen.
    test_rows = f.role == "off-grid"
    for bias in (-0.5, 0.5):
        fake = [dataclasses.replace(p, regret=(p.regret or 0) + bias, plausible=(99,)) if p.setting.role == "off-grid"
                else p for p in a.predictions]
        again_choice = select_form([dataclasses.replace(a, predictions=fake)])
        assert again_choice.form == choice.form
        pd.testing.assert_frame_equal(again_choice.scores, choice.scores)
    assert test_rows.any()
    readme = (out / "README.md").read_text()
    assert "bladefl-validate kstar-report --out X" in readme and "Held-out scores" in readme

    # Everything is in the store: the study again runs nothing and gives the same numbers.
    with ResultStore(tmp_path / "s.sqlite") as store:
        again, _ = run_study(store, design, str(data_root), Execution(workers=1, progress=False), bootstrap=5)
        assert len(measured_runs(store, design)) == stored
    pd.testing.assert_frame_equal(again[0].frame(), f)

    # A campaign cut short: one held-out setting without runs is left out of the scores, and the report says so.
    gone = a.held_out[-1]
    mask = ((frame.t_sum == gone.t_sum) & (frame.beta == gone.beta) & (frame.M == gone.M)
            & (frame.sigma2 == gone.sigma2))
    state = progress(design, frame[~mask])
    assert state[gone] == "unmeasured" and all(v == "complete" for s, v in state.items() if s != gone)
    assert all(v == "complete" for v in progress(design, frame).values())
    [cut] = analyse(frame[~mask], design, 5, held_out={s for s, v in state.items() if v != "unmeasured"})
    assert gone not in cut.held_out and len(cut.held_out) == len(a.held_out) - 1
    pd.testing.assert_frame_equal(cut.frame().reset_index(drop=True),
                                  f[f.M.ne(gone.M) | f.t_sum.ne(gone.t_sum) | f.beta.ne(gone.beta)
                                    | f.sigma2.ne(gone.sigma2)].reset_index(drop=True))
    short = tmp_path / "short"
    short.mkdir()
    write_report([cut], frame[~mask], design, short, "X", {"runs": stored, "cpu_hours": 0.01, "progress": state})
    text = (short / "README.md").read_text()
    assert "**The campaign was cut short**" in text
    assert f"1 not measured yet, left out of every score: {gone.label}" in text


REPORT = REPO / "reports" / "kstar-prediction"


def test_the_reports_numbers_come_from_its_store():
    """What reports/kstar-prediction says of every held-out setting is what its store gives, recomputed here
    (without the bootstrap spread of the constants, which no score depends on); the pilots are never scored."""
    with ResultStore(REPORT / "results.sqlite") as store:
        analyses, frame, _ = analyse_measured(store, bootstrap=0)
    held = pd.concat([a.frame() for a in analyses], ignore_index=True)
    stored = pd.read_csv(REPORT / "held_out.csv")
    assert len(held) == len(stored)
    for col in ("k_pred", "k_measured", "regret"):
        np.testing.assert_allclose(held[col].astype(float), stored[col].astype(float), rtol=1e-9, equal_nan=True)
    assert (held.plausible.astype(str) == stored.plausible.astype(str)).all()
    choice = select_form(analyses)
    forms = pd.read_csv(REPORT / "forms.csv")
    assert f"Chosen form: **{choice.form}**" in (REPORT / "README.md").read_text()
    np.testing.assert_allclose(choice.scores.mean_regret, forms.mean_regret, rtol=1e-9)
    split = split_half_scores(analyses, frame, DESIGN, choice.form)
    np.testing.assert_allclose(split.form_regret, pd.read_csv(REPORT / "split_half.csv").form_regret, rtol=1e-9)
    for a in analyses:
        pilots = {(s.t_sum, s.beta, s.M, s.sigma2) for s in pilot_settings(DESIGN, a.dataset)}
        assert not pilots & {(s.t_sum, s.beta, s.M, s.sigma2) for s in a.held_out}


def test_the_docs_quote_the_reports_summary():
    """The K* study's results in the docs (docs/kstar-study.md) are the report's summary.md itself, included as
    generated rather than copied (the docs build renders it)."""
    page = (REPO / "docs" / "kstar-study.md").read_text()
    assert "```{include} ../reports/kstar-prediction/summary.md\n```" in page
    assert "| data set | settings |" not in page  # no copy of the table to go stale
