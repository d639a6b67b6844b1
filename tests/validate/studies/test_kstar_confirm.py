"""The K* confirmation on a tiny design: a form chosen on the first study's held-out settings, scored on fresh ones."""

import dataclasses

import pandas as pd
import pytest
from helpers import tiny_kstar_design
from validate_cli_helpers import assert_bad_input, forbid_computation, invoke

from bladefl_platform.errors import InputError
from bladefl_platform.execution import Execution
from bladefl_platform.store import ResultStore
from bladefl_validate.studies.base import run
from bladefl_validate.studies.kstar_confirm import CONFIRM_FILES, ConfirmStudy
from bladefl_validate.studies.kstar_design import CONFIRMATION, DESIGN
from bladefl_validate.studies.kstar_prediction import PREDICTORS, TEST, VALIDATION, run_study, select_form

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
    assert {p.name for p in out.iterdir()} >= set(CONFIRM_FILES)
    key = lambda s: (s.t_sum, s.beta, s.M, s.sigma2)  # noqa: E731
    fresh = {key(s) for s in r.fresh["mnist"]}
    assert fresh == {(p["t_sum"], p["beta"], p["M"], p["sigma2"]) for p in confirmation.off_grid_points()}
    assert not fresh & {key(s) for s in first.settings()}
    # The choice is the first study's, on its arms and off-grid points pooled (the store holds it: nothing runs).
    with ResultStore(store) as s:
        runs = s.count()
        first_analyses, _ = run_study(s, first, str(data_root), execution, bootstrap=5)
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


def test_kstar_confirm_needs_the_first_studys_store(tmp_path, monkeypatch):
    forbid_computation(monkeypatch)
    r = invoke(["kstar-confirm", "--out", str(tmp_path / "c")])
    assert_bad_input(r, "--store")
    r = invoke(["kstar-confirm", "--measured-only", "--store", str(tmp_path / "none.sqlite"), "--out",
                str(tmp_path / "c")])
    assert_bad_input(r, "does not exist")
    assert list(tmp_path.iterdir()) == []
