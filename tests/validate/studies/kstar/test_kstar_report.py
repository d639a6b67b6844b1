"""The K* study's report: its numbers come from the store, it writes the choice it is given, its README by section."""

import dataclasses

import numpy as np
import pandas as pd
from helpers import REPO

from bladefl_platform.store import ResultStore
from bladefl_validate.studies.kstar.analysis import (
    CANDIDATES,
    analyse_measured,
    pilot_settings,
    select_form,
    split_half_scores,
    study_result,
)
from bladefl_validate.studies.kstar.design import DESIGN
from bladefl_validate.studies.kstar.report import _section, report_files, write_report

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


def test_the_report_writes_the_choice_it_is_given(tmp_path):
    """The form is chosen by the analysis (the result holds it); the report only writes it down."""
    with ResultStore(REPORT / "results.sqlite") as store:
        result = study_result(store, DESIGN, DESIGN, bootstrap=0, measured_only=True)
    assert f"Chosen form: **{result.choice.form}**," in (REPORT / "README.md").read_text()
    other = next(f for f in CANDIDATES if f != result.choice.form)
    forced = dataclasses.replace(result, choice=dataclasses.replace(result.choice, form=other),
                                 split_half=split_half_scores(result.analyses, result.frame, DESIGN, other))
    write_report(forced, DESIGN, tmp_path, "bladefl-validate kstar-report --out X")
    assert {p.name for p in tmp_path.iterdir()} == set(report_files(DESIGN))
    assert (tmp_path / "summary.md").read_text().startswith(f"Chosen form: **{other}** (on the arms)")
    assert f"Chosen form: **{other}**, on the validation settings" in (tmp_path / "README.md").read_text()
    # What does not depend on the choice is the committed report's, byte for byte.
    for name in ("held_out.csv", "scores.csv", "forms.csv", "measured.csv"):
        assert (tmp_path / name).read_bytes() == (REPORT / name).read_bytes(), name


def test_a_readme_section_is_its_heading_and_blocks_each_followed_by_an_empty_line():
    assert _section("T", "a", "b\nc") == ["## T", "", "a", "", "b\nc", ""]
