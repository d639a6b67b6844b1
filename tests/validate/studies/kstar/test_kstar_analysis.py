"""The K* study's analysis end to end on a tiny design: calibrate on pilots, score held-out settings, choose, report."""

import dataclasses

import pandas as pd
import pytest
from helpers import tiny_kstar_design as tiny_design

from bladefl_platform.execution import Execution
from bladefl_platform.store import ResultStore
from bladefl_validate.studies.kstar.design import measured_runs, progress
from bladefl_validate.studies.kstar.analysis import (
    CANDIDATES,
    PREDICTORS,
    KStarResult,
    analyse,
    held_out_settings,
    pilot_settings,
    select_form,
    split_half_scores,
)
from bladefl_validate.studies.kstar.report import report_files, write_report
from bladefl_validate.studies.kstar.study import KStarReportStudy
from bladefl_validate.tasks import task_context

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
        result = KStarReportStudy(design).compute(store, Execution(workers=1, progress=False),
                                                  task_context(str(data_root)))
        stored = len(measured_runs(store, design))
    analyses, frame = result.analyses, result.frame
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
    write_report(result, design, out, "bladefl-validate kstar-report --out X")
    assert set(report_files(design)) == {p.name for p in out.iterdir()}
    # The result holds its choice, made on the analyses (not by the report).
    choice = result.choice
    assert choice.form == select_form(analyses).form and choice.form in CANDIDATES
    pd.testing.assert_frame_equal(result.split_half, split_half_scores(analyses, frame, design, choice.form))
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
        again = KStarReportStudy(design).compute(store, Execution(workers=1, progress=False),
                                                 task_context(str(data_root)))
        assert len(measured_runs(store, design)) == stored
    pd.testing.assert_frame_equal(again.analyses[0].frame(), f)

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
    cut_choice = select_form([cut])
    write_report(KStarResult([cut], frame[~mask], state, cut_choice,
                             split_half_scores([cut], frame[~mask], design, cut_choice.form)), design, short, "X")
    text = (short / "README.md").read_text()
    assert "**The campaign was cut short**" in text
    assert f"1 not measured yet, left out of every score: {gone.label}" in text
