"""The K* study's measured design: settings, coarse-to-fine K, adaptive seeds, resumable measurement."""

import pytest

from bladefl_platform.execution import Execution
from bladefl_platform.store import ResultStore
from bladefl_platform.study import Runner
from bladefl_validate.config import RunConfig
from bladefl_validate.tasks import task_context
from bladefl_validate.studies.kstar.design import (
    DESIGN,
    Design,
    coarse_ks,
    measure,
    measured_runs,
    plan,
    refine_ks,
)

pytestmark = pytest.mark.usefixtures("private_cache")


def tiny_design(**changes) -> Design:
    base = RunConfig(N=4, K=1, samples_per_client=32, hidden=8, batch_size=16, difficulty_bits=2, eta=0.05)
    values = dict(
        base=base, datasets=("mnist",), centre={"t_sum": 12.0, "beta": 2.0, "M": 1, "sigma2": 0.01},
        arms={"M": (0,), "beta": (0.5,)},
        box={"t_sum": (9.0, 14.0), "beta": (2.0, 3.0), "M": (0, 1), "sigma2": (0.0, 0.1)},
        off_grid=1, base_seeds=2, figure_seeds=2, seed_step=1, max_seeds=3, full_k_up_to=4, coarse_points=3,
    )
    return Design(**{**values, **changes})


def test_the_design_has_arms_around_the_centre_and_off_grid_points_on_both_datasets():
    settings = DESIGN.settings()
    per_dataset = 1 + sum(len(v) for v in DESIGN.arms.values()) + DESIGN.off_grid
    assert len(settings) == 2 * per_dataset and len(set(settings)) == len(settings)
    centre = [s for s in settings if s.role == "centre"]
    assert [s.dataset for s in centre] == ["mnist", "fashion-mnist"]
    for s in settings:
        if s.role.startswith("arm:"):
            moved = [k for k, v in s.system().items() if v != DESIGN.centre[k]]
            assert moved == [s.role[4:]]
    off = DESIGN.off_grid_points()
    assert len(off) == DESIGN.off_grid == 12
    for p in off:
        for name, (lo, hi) in DESIGN.box.items():
            assert lo <= p[name] <= hi
    assert {s.k_max(DESIGN.base) for s in settings} >= {4, 9, 18, 28}


def test_coarse_grid_and_refinement():
    assert coarse_ks(57, 12)[0] == 1 and coarse_ks(57, 12)[-1] == 57
    assert len(coarse_ks(57, 12)) <= 12
    assert refine_ks([1, 2, 4, 8, 16], [4]) == [2, 3, 4, 5, 6, 7, 8]
    assert refine_ks([1, 2, 4, 8, 16], [1, 16]) == [1, 2, 8, 9, 10, 11, 12, 13, 14, 15, 16]


def test_measure_runs_the_design_through_the_store_and_resumes(tmp_path, data_root):
    design = tiny_design()
    with ResultStore(tmp_path / "s.sqlite") as store:
        steps = []
        runner = Runner(store, Execution(workers=1, progress=False), task_context(str(data_root)))
        states = measure(runner, design, on_step=lambda step, n: steps.append(n))
        assert steps and steps[0] > 0
        # Every step is one batch of the runner's, which a study's record (StudyRun.batches) keeps.
        assert [b.ran for b in runner.history] == steps and [b.desc for b in runner.history] == [
            f"kstar step {i}" for i in range(1, len(steps) + 1)]
        runs = measured_runs(store, design)
        for s, state in states.items():
            mine = runs[(runs.t_sum == s.t_sum) & (runs.beta == s.beta) & (runs.M == s.M) & (runs.sigma2 == s.sigma2)]
            assert set(mine.K) >= set(state.ks) and mine.seed.nunique() >= state.seeds >= design.base_seeds
        # beta = 0.5 gives K_max = 8 > full_k_up_to: a coarse grid, refined around its minimum
        wide = [st for s, st in states.items() if s.beta == 0.5][0]
        assert wide.coarse and set(coarse_ks(8, 3)) <= set(wide.ks)
        # Everything is stored: running again plans nothing and runs nothing.
        assert plan(design, runs)[1] == []
        again = []
        measure(Runner(store, Execution(workers=1, progress=False), task_context(str(data_root))), design,
                on_step=lambda s, n: again.append(n))
        assert again == []
