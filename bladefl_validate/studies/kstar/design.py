"""The measured design of the K* prediction study: which settings, which K, how many seeds.

One-at-a-time arms around a centre (t_sum, beta, M and sigma2 moved one at a time) and points drawn
at random over the whole box, on MNIST and Fashion-MNIST, at the paper's defaults otherwise (N = 20,
|D_i| = 512, MLP 784-256-10, k = 4 classes per client, eta = 0.01, batch 64). The centre and the M
and sigma2 arms are the paper's Fig. 3 and Fig. 4 settings.

Measurement is adaptive but deterministic given the results: every K where K_max is small, a coarse
grid refined around the minimum where it is large, and more seeds wherever the measured K* is not
yet pinned down. Each step is a function of what the result store holds, so a campaign resumes
anywhere and :func:`measure` run again on a complete store runs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from bladefl_platform.store import ResultStore
from bladefl_platform.study import Runner, Tasks

from ...config import DATASETS, RunConfig
from ...tasks import RUN
from ..reproduce import FIG3, FIG4
from .scoring import BOOTSTRAP_DRAWS, PLAUSIBLE_SHARE, plausible_set

__all__ = [
    "Setting",
    "Design",
    "DESIGN",
    "CONFIRMATION",
    "coarse_ks",
    "refine_ks",
    "measure",
    "measured_runs",
    "progress",
]


@dataclass(frozen=True)
class Setting:
    """One deployment of the design: data set, time budget, mining time, lazy clients and their noise.

    ``role`` says where it sits in the design: ``centre``, ``arm:NAME`` or ``off-grid``.
    """

    dataset: str
    t_sum: float
    beta: float
    M: int
    sigma2: float
    role: str

    @property
    def label(self) -> str:
        return f"{self.dataset} t_sum={self.t_sum:g} beta={self.beta:g} M={self.M} sigma2={self.sigma2:g}"

    def config(self, base: RunConfig, K: int = 1, seed: int = 0) -> RunConfig:
        return base.replace(dataset=self.dataset, t_sum=float(self.t_sum), beta=float(self.beta), M=self.M,
                            sigma2=float(self.sigma2), K=K, seed=seed)

    def k_max(self, base: RunConfig) -> int:
        return self.config(base).k_max

    def system(self) -> dict[str, float]:
        """The system parameters that vary in the design, as the theory names them."""
        return {"t_sum": float(self.t_sum), "beta": float(self.beta), "M": self.M, "sigma2": float(self.sigma2)}


@dataclass(frozen=True)
class Design:
    """The whole design and its measurement rules (every number a report quotes comes from here)."""

    base: RunConfig = RunConfig(K=1)
    datasets: tuple[str, ...] = DATASETS
    centre: Mapping[str, float] = field(default_factory=lambda: {"t_sum": 100.0, "beta": 10.0, "M": 4, "sigma2": 0.01})
    arms: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: {
        "t_sum": (50.0, 200.0),
        "beta": (2.5, 5.0, 20.0),
        "M": (0, 2, 6, 8),
        "sigma2": (0.0, 0.05, 0.1, 0.2, 0.3),
    })
    #: The box the off-grid points are drawn from (beta log-uniformly, M as an integer).
    box: Mapping[str, tuple[float, float]] = field(default_factory=lambda: {
        "t_sum": (50.0, 200.0), "beta": (2.5, 20.0), "M": (0, 8), "sigma2": (0.0, 0.3),
    })
    off_grid: int = 12
    off_grid_seed: int = 20261125
    #: The settings a calibration may see, as (role, parameter, value): the centre and the far end of three arms.
    pilots: tuple[tuple[str, str | None, float | None], ...] = (
        ("centre", None, None), ("arm:t_sum", "t_sum", 200.0), ("arm:M", "M", 8), ("arm:sigma2", "sigma2", 0.3),
    )
    #: Seeds every setting gets first, and the paper's Fig. 3 / Fig. 4 settings (for the reproduction report).
    #: Eight, so that two halves of four can be held against each other (the measurement's own noise).
    base_seeds: int = 8
    figure_seeds: int = 8
    #: A campaign cut short scores a setting measured at all its first K on at least this many seeds.
    scored_seeds: int = 4
    #: Where the measured K* is still wider than this many blocks, ``seed_step`` more seeds, up to ``max_seeds``.
    max_width: int = 3
    seed_step: int = 4
    max_seeds: int = 16
    #: Every K is measured up to this K_max; above it a coarse grid of about ``coarse_points`` K, then refined.
    full_k_up_to: int = 20
    coarse_points: int = 12
    #: A K is plausible when it is the argmin in at least this share of the bootstrap resamples of the seeds.
    plausible_share: float = PLAUSIBLE_SHARE
    bootstrap_draws: int = BOOTSTRAP_DRAWS

    def settings(self) -> list[Setting]:
        """Every setting: for each data set the centre, the arms, then the off-grid points."""
        return [s for d in self.datasets for s in self._settings(d)]

    def _settings(self, dataset: str) -> list[Setting]:
        c = self.centre
        out = [Setting(dataset, c["t_sum"], c["beta"], int(c["M"]), c["sigma2"], "centre")]
        for name, values in self.arms.items():
            for v in values:
                point = {**c, name: v}
                out.append(Setting(dataset, point["t_sum"], point["beta"], int(point["M"]), point["sigma2"],
                                   f"arm:{name}"))
        out += [Setting(dataset, p["t_sum"], p["beta"], int(p["M"]), p["sigma2"], "off-grid")
                for p in self.off_grid_points()]
        return out

    def off_grid_points(self) -> list[dict[str, float]]:
        """The off-grid points, the same for every data set: uniform over the box (beta log-uniform), rounded."""
        rng = np.random.default_rng(self.off_grid_seed)
        b = self.box
        points = []
        for _ in range(self.off_grid):
            points.append({
                "t_sum": float(round(rng.uniform(*b["t_sum"]))),
                "beta": float(round(math.exp(rng.uniform(math.log(b["beta"][0]), math.log(b["beta"][1]))), 1)),
                "M": int(rng.integers(int(b["M"][0]), int(b["M"][1]) + 1)),
                "sigma2": float(round(rng.uniform(*b["sigma2"]), 3)),
            })
        return points

    def is_pilot(self, s: Setting) -> bool:
        """True for the settings a calibration may see."""
        return any(s.role == role and (name is None or s.system()[name] == value) for role, name, value in self.pilots)

    def is_figure_setting(self, s: Setting) -> bool:
        """The paper's Fig. 3 (M varies at sigma2 = 0.01) and Fig. 4 (sigma2 varies at M = 4) settings."""
        return s.role != "off-grid" and (s.t_sum, s.beta) == (100.0, 10.0) and (s.M, s.sigma2) in FIG3 + FIG4


def coarse_ks(k_max: int, points: int) -> list[int]:
    """About ``points`` K spread geometrically over 1..k_max (always 1 and k_max)."""
    grid = np.geomspace(1, k_max, points)
    return sorted({1, k_max, *(int(round(k)) for k in grid)})


def refine_ks(measured: Sequence[int], plausible: Iterable[int]) -> list[int]:
    """Every K between the measured neighbours of each plausible K: the refinement of a coarse grid."""
    ks = sorted(measured)
    out: set[int] = set()
    for k in plausible:
        i = ks.index(k)
        lo, hi = ks[max(i - 1, 0)], ks[min(i + 1, len(ks) - 1)]
        out.update(range(lo, hi + 1))
    return sorted(out)


def _width(ks: Sequence[int]) -> int:
    return max(ks) - min(ks) + 1


@dataclass
class _State:
    """What the design asks of one setting at this step: its K and its seeds."""

    ks: list[int]
    seeds: int
    coarse: bool


def measured_runs(store: ResultStore, design: Design | None = None) -> pd.DataFrame:
    """Every stored run of the design's settings on its base configuration, one row per run.

    A store may hold runs of other designs too (the confirmation's beside the first study's): they are left out."""
    design = design or DESIGN
    base = design.base.as_dict()
    fixed = {k: v for k, v in base.items() if k not in ("dataset", "t_sum", "beta", "M", "sigma2", "K", "seed")}
    settings = {(s.dataset, s.t_sum, s.beta, s.M, s.sigma2) for s in design.settings()}
    rows = []
    for r in store.rows(RUN.name):
        if r["version"] != RUN.version:
            continue
        c = r["config"]
        if any(c.get(k) != v for k, v in fixed.items()) or (
                (c["dataset"], c["t_sum"], c["beta"], c["M"], c["sigma2"]) not in settings):
            continue
        res = r["result"]
        rows.append({"dataset": c["dataset"], "t_sum": c["t_sum"], "beta": c["beta"], "M": c["M"],
                     "sigma2": c["sigma2"], "K": c["K"], "seed": c["seed"], "tau": res["tau"],
                     "final_global_train_loss": res["final_global_train_loss"],
                     "final_test_accuracy": res["final_test_accuracy"],
                     "cpu_seconds": res.get("cpu_seconds", res.get("wall_seconds"))})
    return pd.DataFrame(rows)


def _runs_of(frame: pd.DataFrame, s: Setting) -> pd.DataFrame:
    if frame.empty:
        return frame
    m = ((frame.dataset == s.dataset) & (frame.t_sum == float(s.t_sum)) & (frame.beta == float(s.beta))
         & (frame.M == s.M) & (frame.sigma2 == float(s.sigma2)))
    return frame[m]


def _next_step(design: Design, s: Setting, runs: pd.DataFrame, state: _State) -> _State:
    """Refine K and add seeds where the measurements ask for it; the same state when nothing is left to do."""
    mine = runs[(runs.seed < state.seeds) & runs.K.isin(state.ks)]
    plausible, _ = plausible_set(mine, design.plausible_share, design.bootstrap_draws)
    ks = state.ks
    if state.coarse:
        refined = sorted(set(ks) | set(refine_ks(ks, plausible)))
        if refined != ks:
            return _State(refined, state.seeds, True)
    if _width(plausible) > design.max_width and state.seeds < design.max_seeds:
        return _State(ks, min(state.seeds + design.seed_step, design.max_seeds), state.coarse)
    return state


def _initial(design: Design, s: Setting) -> _State:
    km = s.k_max(design.base)
    coarse = km > design.full_k_up_to
    ks = coarse_ks(km, design.coarse_points) if coarse else list(range(1, km + 1))
    seeds = max(design.figure_seeds, design.base_seeds) if design.is_figure_setting(s) else design.base_seeds
    return _State(ks, seeds, coarse)


def plan(design: Design, frame: pd.DataFrame) -> tuple[dict[Setting, _State], list[RunConfig]]:
    """Each setting's K and seeds given what is measured, and the runs still missing for them."""
    states, missing = {}, []
    for s in design.settings():
        state = _initial(design, s)
        runs = _runs_of(frame, s)
        while True:
            have = set(zip(runs.K, runs.seed)) if len(runs) else set()
            need = [(k, seed) for k in state.ks for seed in range(state.seeds) if (k, seed) not in have]
            if need:
                missing += [s.config(design.base, K=k, seed=seed) for k, seed in need]
                break
            step = _next_step(design, s, runs, state)
            if step == state:
                break
            state = step
        states[s] = state
    return states, missing


def _cost(c: RunConfig) -> float:
    return c.K * c.tau * (c.N - c.M)


def progress(design: Design, frame: pd.DataFrame) -> dict[Setting, str]:
    """Each setting's state of measurement: ``complete``; ``refining`` (its first K and seeds are measured,
    more K or seeds are still due); ``partial`` (its first K are measured on at least ``scored_seeds`` seeds,
    not yet on all its first seeds); or ``unmeasured``. A report on a campaign cut short scores all but the last."""
    _, missing = plan(design, frame)
    due = {(c.dataset, c.t_sum, c.beta, c.M, c.sigma2) for c in missing}
    out = {}
    for s in design.settings():
        if (s.dataset, float(s.t_sum), float(s.beta), s.M, float(s.sigma2)) not in due:
            out[s] = "complete"
            continue
        first = _initial(design, s)
        runs = _runs_of(frame, s)
        have = set(zip(runs.K, runs.seed)) if len(runs) else set()
        whole = sum(all((k, seed) in have for k in first.ks) for seed in range(first.seeds))
        out[s] = ("refining" if whole == first.seeds else
                  "partial" if whole >= min(design.scored_seeds, first.seeds) else "unmeasured")
    return out


def measure(run: Runner, design: Design | None = None,
            on_step: Callable[[int, int], None] | None = None) -> dict[Setting, _State]:
    """Run the design to completion through ``run`` (a study's runner, which records every batch and holds the
    store): step after step until nothing is missing.

    ``on_step(step, runs)`` is told how many runs each step starts. Returns each setting's final state.
    """
    design = design or DESIGN
    if run.store is None:
        raise ValueError("the K* design is measured through a result store: what runs next depends on what it holds")
    step = 0
    while True:
        states, missing = plan(design, measured_runs(run.store, design))
        if not missing:
            return states
        step += 1
        if on_step is not None:
            on_step(step, len(missing))
        # Lower seeds first, so that a campaign cut short leaves every setting measured on as many whole seeds as
        # it can; among equal seeds the longest runs first, so that the workers finish together.
        missing.sort(key=lambda c: (c.seed, -_cost(c)))
        run(Tasks(RUN, [c.as_dict() for c in missing], f"kstar step {step}"))


DESIGN = Design()

#: The confirmation, declared before any of its runs (2026-12-07). On the first study's test the form its rule did
#: not choose (drift) scored better than the one it did (saturating). A choice made on that test would spend it, so
#: the confirmation chooses again, by the same rule (lowest mean regret), on every held-out setting of the first
#: study (arms and off-grid points pooled), and tests the choice on twelve fresh off-grid points per data set drawn
#: from the same box with another seed; pilots, seeds and measurement rules are the first study's.
CONFIRMATION = replace(DESIGN, off_grid_seed=20261207)
