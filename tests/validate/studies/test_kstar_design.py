"""The K* study's measured design: settings, coarse-to-fine K, adaptive seeds, resumable measurement."""

import pandas as pd
import pytest

from bladefl_platform.execution import Execution
from bladefl_platform.store import ResultStore
from bladefl_validate.config import RunConfig
from bladefl_validate.studies.kstar.design import (
    DESIGN,
    Design,
    coarse_ks,
    measure,
    measured_runs,
    plan,
    refine_ks,
)
from bladefl_validate.studies.kstar.scoring import plausible_set

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


def test_plausible_set_is_paired_over_seeds():
    # Seed effects dwarf the K effect, but K = 2 is better than K = 1 and 3 for every seed: paired, it is certain.
    rows = [{"seed": s, "K": k, "final_global_train_loss": 10 * s + {1: 1.0, 2: 0.9, 3: 1.05}[k]}
            for s in range(5) for k in (1, 2, 3)]
    ks, shares = plausible_set(pd.DataFrame(rows), 0.1, 200)
    assert ks == [2] and shares == {2: 1.0}
    # Two K tied on average with opposite signs per seed: both plausible.
    rows = [{"seed": s, "K": k, "final_global_train_loss": (1.0 if (s + k) % 2 else 0.5)} for s in range(6)
            for k in (1, 2)]
    assert plausible_set(pd.DataFrame(rows), 0.1, 500)[0] == [1, 2]


def test_measure_runs_the_design_through_the_store_and_resumes(tmp_path, data_root):
    design = tiny_design()
    with ResultStore(tmp_path / "s.sqlite") as store:
        steps = []
        states = measure(store, design, str(data_root), Execution(workers=1, progress=False),
                         on_step=lambda step, n: steps.append(n))
        assert steps and steps[0] > 0
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
        measure(store, design, str(data_root), Execution(workers=1, progress=False),
                on_step=lambda s, n: again.append(n))
        assert again == []
