"""Sequential paired verification of K*: which K in play is best, at a stated confidence, for as few seeds as it takes.

Pure statistics (no torch, no I/O; scipy on first use, so that the command line reads the defaults cheaply): a
:class:`VerifyDesign` declares the test, and :func:`verify` drives it through a ``measure`` callback that returns
each run's final loss and CPU seconds.

The test. A seed fixes the partition, w0 and the lazy set at every K, so K are compared on the paired differences
x_j - x_k over the seeds measured at both. Each comparison is a Student t interval on the mean paired difference at
level alpha / (looks x pairs), alpha = 1 - confidence: Bonferroni over the declared maximum number of looks and over
every pair of K that can ever be in play (the band as given plus the declared edge moves). All the intervals of all
the looks then hold together with probability >= confidence (for normal differences). On that event the true best K
is never eliminated, and

- a K is *eliminated* when another K beats it (the lower end of x_k - x_j is above 0);
- the verification *stops* when the best K in play (least mean loss) is within the tolerance of every other K in
  play (the upper end of x_best - x_k is below tolerance x the best's mean loss): the best's loss is then within the
  tolerance of the true best's; when every other K is eliminated, it is the true best (*separated*);
- if the best K sits at an edge of the K measured (and is not 1 or K_max), the next K beyond it is measured on the
  same seeds before any stop (at most ``max_moves`` times).

A verdict stopped by this rule is right with probability >= confidence. One stopped by the budget, the looks or the
seeds claims nothing beyond the confidence it reached (:func:`confidence_reached`).

Seeds are added in looks. After each look the next number of seeds follows the measured spread (the seeds each
comparison still in play needs to settle, at its measured standard deviation), at least ``growth`` times the last
(so ``max_looks`` looks reach ``max_seeds``), and no more than the budget can pay for: the CPU time of a run is
estimated from the runs done (its K's mean, else the largest mean of any K); only the very first run, which tells the
cost, is started without an estimate.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bladefl_platform.checks import FINITE, Interval, validate

__all__ = ["VerifyDesign", "Look", "Verdict", "Measure", "verify", "confidence_reached", "paired_table",
           "prediction_offset", "STOP_REASONS"]

#: Why a verification stopped: the first two are the rule's (the verdict holds at the confidence); the rest are limits.
STOP_REASONS = ("separated", "within tolerance", "budget", "seeds", "looks")

#: Most the seeds grow from one look to the next: a spread measured on few seeds does not commit the budget at once.
MAX_STEP = 4

#: A batch of runs, (K, seed index), to their (final loss, CPU seconds), in order.
Measure = Callable[[Sequence[tuple[int, int]]], Sequence[tuple[float, float]]]


@dataclass(frozen=True)
class VerifyDesign:
    """The declared sequential test: tolerance (relative), confidence, CPU budget, and the limits on looks and seeds."""

    tolerance: float = 0.01
    confidence: float = 0.9
    max_cpu_hours: float = 1.0
    max_looks: int = 10
    first_seeds: int = 4
    max_seeds: int = 256
    max_moves: int = 2

    def __post_init__(self) -> None:
        whole = numbers.Integral
        validate(vars(self), {
            "tolerance": [numbers.Real, FINITE, Interval(left=0.0, right=1.0, closed="left")],
            "confidence": [numbers.Real, FINITE, Interval(left=0.0, right=1.0, closed="neither")],
            "max_cpu_hours": [numbers.Real, FINITE, Interval(left=0.0, closed="neither")],
            "max_looks": [whole, Interval(numbers.Integral, 1, 100)],
            "first_seeds": [whole, Interval(numbers.Integral, 2, 10_000)],
            "max_seeds": [whole, Interval(numbers.Integral, self.first_seeds, 100_000)],
            "max_moves": [whole, Interval(numbers.Integral, 0, 100)],
        })

    @property
    def budget(self) -> float:
        """The CPU budget in seconds."""
        return self.max_cpu_hours * 3600.0

    @property
    def growth(self) -> float:
        """The least factor by which seeds grow from one look to the next: ``max_looks`` looks reach ``max_seeds``."""
        return (self.max_seeds / self.first_seeds) ** (1.0 / max(self.max_looks - 1, 1))

    def pair_alpha(self, ks: int, confidence: float | None = None) -> float:
        """The level of one comparison: 1 - confidence split over the looks and the pairs of ``ks`` K."""
        pairs = max(ks * (ks - 1) // 2, 1)
        return (1.0 - (self.confidence if confidence is None else confidence)) / (self.max_looks * pairs)


@dataclass(frozen=True)
class Look:
    """One look: the seeds measured, the K in play, the best of them, and the total CPU seconds spent so far."""

    look: int
    seeds: int
    in_play: tuple[int, ...]
    best: int
    cpu_seconds: float


@dataclass(frozen=True)
class Verdict:
    """The verified K*, the K still indistinguishable from it, why it stopped, and what it cost."""

    k_star: int
    indistinguishable: tuple[int, ...]
    eliminated: dict[int, int]  # K -> the K that beat it
    reason: str
    confidence: float  # reached
    seeds: int
    runs: int
    cpu_seconds: float
    at_edge: bool  # K* at an edge of the K measured, with K beyond it never measured
    looks: tuple[Look, ...]
    table: list[dict[str, Any]]
    losses: dict[tuple[int, int], float] = field(repr=False)

    @property
    def confirmed(self) -> bool:
        """True when the rule stopped it (the verdict holds at the stated confidence)."""
        return self.reason in STOP_REASONS[:2]


class _Pairs:
    """Paired differences between the columns of a seeds x K table (NaN: not measured), over the seeds both have."""

    def __init__(self, values: np.ndarray):
        m = values.shape[1]
        self.mean, self.sd, self.n = (np.full((m, m), np.nan) for _ in range(3))
        for i in range(m):
            for j in range(m):
                both = ~np.isnan(values[:, i]) & ~np.isnan(values[:, j])
                d = values[both, i] - values[both, j]
                self.n[i, j] = len(d)
                if len(d):
                    self.mean[i, j] = d.mean()
                if len(d) > 1:
                    self.sd[i, j] = d.std(ddof=1)

    def half(self, alpha: float) -> np.ndarray:
        """Half-widths of the two-sided intervals at level ``alpha`` (inf below two seeds)."""
        from scipy import stats

        df = np.maximum(self.n - 1, 1)
        with np.errstate(invalid="ignore"):
            q = stats.t.ppf(1.0 - alpha / 2.0, df)
            h = q * self.sd / np.sqrt(np.maximum(self.n, 1))
        return np.where(self.n >= 2, np.nan_to_num(h, nan=np.inf), np.inf)


def _table(losses: dict[tuple[int, int], float], ks: Sequence[int], seeds: int) -> np.ndarray:
    """The seeds x K table of final losses (NaN where a K was not measured at a seed)."""
    return np.array([[losses.get((k, s), np.nan) for k in ks] for s in range(seeds)], dtype=float).reshape(seeds,
                                                                                                            len(ks))


def _eliminate(pairs: _Pairs, half: np.ndarray, active: list[int]) -> dict[int, int]:
    """Column indices of ``active`` that another active column beats (lower end above 0), to the one that beats it."""
    lower = pairs.mean - half
    return {i: max((j for j in active if j != i), key=lambda j: lower[i, j])
            for i in active if any(lower[i, j] > 0 for j in active if j != i)}


def _within(pairs: _Pairs, half: np.ndarray, best: int, others: Sequence[int], ref: float, tolerance: float) -> bool:
    """True when the best is within ``tolerance`` x ``ref`` of each of ``others`` (upper end of best - other)."""
    return all(pairs.mean[best, k] + half[best, k] < tolerance * ref for k in others)


def _best(values: np.ndarray, active: Sequence[int]) -> int:
    """The column of ``active`` with the least mean loss over the seeds it has."""
    return min(active, key=lambda i: float(np.nanmean(values[:, i])))


def confidence_reached(values: np.ndarray, best: int, design: VerifyDesign, ks_declared: int) -> float:
    """The highest confidence at which the final table supports the verdict ``best`` (column): no K beats it, and every
    other K is beaten by some K or within the tolerance of it, with the test's split over looks and pairs; 0 if none."""
    pairs = _Pairs(values)
    cols = list(range(values.shape[1]))
    ref = float(np.nanmean(values[:, best]))

    def holds(alpha: float) -> bool:
        half = pairs.half(design.pair_alpha(ks_declared, 1.0 - alpha))
        beaten = _eliminate(pairs, half, cols)
        others = [k for k in cols if k != best and k not in beaten]
        return best not in beaten and _within(pairs, half, best, others, ref, design.tolerance)

    if not holds(1.0 - 1e-12):
        return 0.0
    lo, hi = -12.0, 0.0  # log10 of alpha: holds at 10**hi, search the least
    if holds(10.0 ** lo):
        return 1.0 - 10.0 ** lo
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if holds(10.0 ** mid) else (mid, hi)
    return 1.0 - 10.0 ** hi


def _seeds_wanted(pairs: _Pairs, best: int, active: Sequence[int], ref: float, design: VerifyDesign,
                  alpha: float, seeds: int) -> int:
    """The next look's seeds: what every comparison of the best still open needs to settle at its measured spread
    (normal quantile), at least ``growth`` times and at most :data:`MAX_STEP` times the seeds measured."""
    from scipy import stats

    q = float(stats.norm.ppf(1.0 - alpha / 2.0))
    wanted = seeds
    for k in active:
        if k == best:
            continue
        margin = design.tolerance * ref - pairs.mean[best, k]  # the half-width that settles it (>= tolerance x ref)
        sd = pairs.sd[best, k]
        need = design.max_seeds if margin <= 0 else math.ceil((q * sd / margin) ** 2) if np.isfinite(sd) else seeds
        wanted = max(wanted, need)
    least = max(math.ceil(seeds * design.growth), seeds + 1)
    return min(design.max_seeds, max(least, min(wanted, MAX_STEP * seeds)))


class _Ledger:
    """The runs measured so far (loss and CPU seconds per (K, seed index)) and what more would cost."""

    def __init__(self, measure: Measure, budget: float):
        self.measure, self.budget = measure, budget
        self.losses: dict[tuple[int, int], float] = {}
        self.cpu: dict[tuple[int, int], float] = {}

    @property
    def spent(self) -> float:
        return float(sum(self.cpu.values()))

    def cost(self, k: int) -> float:
        """A run's CPU seconds at ``k``: the mean at ``k`` of the runs done, else the largest mean of any K."""
        by_k: dict[int, list[float]] = {}
        for (kk, _), c in self.cpu.items():
            by_k.setdefault(kk, []).append(c)
        means = {kk: float(np.mean(v)) for kk, v in by_k.items()}
        return means.get(k, max(means.values()))

    def run(self, runs: Sequence[tuple[int, int]]) -> None:
        todo = [r for r in runs if r not in self.losses]
        for r, (loss, cpu) in zip(todo, self.measure(todo), strict=True):
            self.losses[r], self.cpu[r] = float(loss), float(cpu)

    def affordable(self, catch_up: Sequence[tuple[int, int]], ks: Sequence[int], more: int) -> int:
        """The most new seeds (<= ``more``) at every K of ``ks`` the budget pays for after ``catch_up``; -1 if it
        cannot pay for ``catch_up``."""
        left = self.budget - self.spent - sum(self.cost(k) for k, _ in catch_up)
        per_seed = sum(self.cost(k) for k in ks)
        if left < 0:
            return -1
        return min(more, int(left // per_seed)) if per_seed > 0 else more


def verify(measure: Measure, band: Sequence[int], k_max: int, design: VerifyDesign) -> Verdict:
    """Measure the K of ``band`` (and beyond, where the best sits at an edge) on paired seeds 0, 1, ... until the
    rule of this module stops, or the budget, ``max_looks`` or ``max_seeds`` does."""
    ks = sorted(dict.fromkeys(int(k) for k in band))
    if not ks or ks[0] < 1 or ks[-1] > k_max:
        raise ValueError(f"the band {list(band)} must be K in 1..{k_max}")
    declared = min(len(ks) + design.max_moves, k_max)
    alpha = design.pair_alpha(declared)
    ledger = _Ledger(measure, design.budget)
    ledger.run([(ks[len(ks) // 2], 0)])  # the probe: what a run costs
    eliminated: dict[int, int] = {}
    looks: list[Look] = []
    seeds, moves, target = 0, 0, design.first_seeds
    catch_up: list[tuple[int, int]] = []
    while True:
        active = [k for k in ks if k not in eliminated]
        more = ledger.affordable(catch_up, active, target - seeds)
        if more < 0 or (more == 0 and not catch_up):
            ks = [k for k in ks if (k, 0) not in catch_up]  # a K an edge move added and the budget cannot measure
            reason = "budget"
            break
        ledger.run([*catch_up, *((k, s) for s in range(seeds, seeds + more) for k in active)])
        seeds, catch_up = seeds + more, []
        may_move = moves < design.max_moves and len(looks) + 1 < design.max_looks
        step = _look(ledger, ks, active, seeds, alpha, design, k_max, may_move)
        eliminated.update(step.eliminated)
        looks.append(Look(len(looks) + 1, seeds, tuple(k for k in ks if k not in eliminated), step.best,
                          ledger.spent))
        target = step.next_seeds
        if step.move is not None:
            ks, moves = sorted([*ks, step.move]), moves + 1
            catch_up = [(step.move, s) for s in range(seeds)]
        elif step.stop is not None or len(looks) >= design.max_looks or seeds >= design.max_seeds:
            reason = step.stop or ("looks" if len(looks) >= design.max_looks else "seeds")
            break
    return _verdict(ledger, ks, eliminated, reason, seeds, looks, design, declared, k_max)


@dataclass(frozen=True)
class _Step:
    """What one look decides: eliminations, the best, and a stop reason, an edge move or the next seeds."""

    eliminated: dict[int, int]
    best: int
    stop: str | None
    move: int | None
    next_seeds: int


def _look(ledger: _Ledger, ks: list[int], active: list[int], seeds: int, alpha: float, design: VerifyDesign,
          k_max: int, may_move: bool) -> _Step:
    """Evaluate the table of the K in play after a batch."""
    values = _table(ledger.losses, ks, seeds)
    pairs = _Pairs(values)
    half = pairs.half(alpha)
    col = {k: i for i, k in enumerate(ks)}
    beaten = _eliminate(pairs, half, [col[k] for k in active])
    eliminated = {ks[i]: ks[j] for i, j in beaten.items()}
    left = [col[k] for k in active if k not in eliminated]
    best = _best(values, left)
    ref = float(np.nanmean(values[:, best]))
    edge = [k for k in (ks[best] - 1, ks[best] + 1) if 1 <= k <= k_max and k not in col]
    wanted = _seeds_wanted(pairs, best, left, ref, design, alpha, seeds)
    if may_move and edge:
        return _Step(eliminated, ks[best], None, edge[0], wanted)
    stop = ("separated" if len(left) == 1 else
            "within tolerance" if _within(pairs, half, best, [k for k in left if k != best], ref, design.tolerance)
            else None)
    return _Step(eliminated, ks[best], stop, None, wanted)


def _verdict(ledger: _Ledger, ks: list[int], eliminated: dict[int, int], reason: str, seeds: int,
             looks: list[Look], design: VerifyDesign, declared: int, k_max: int) -> Verdict:
    """The verdict from the final table."""
    ks = [k for k in ks if any(kk == k for kk, _ in ledger.losses)]
    values = _table(ledger.losses, ks, max(seeds, 1))
    active = [i for i, k in enumerate(ks) if k not in eliminated]
    best = _best(values, active)
    k_star = ks[best]
    at_edge = any(1 <= k <= k_max and k not in ks for k in (k_star - 1, k_star + 1))
    reached = confidence_reached(values, best, design, declared) if seeds >= 2 else 0.0
    return Verdict(
        k_star=k_star, indistinguishable=tuple(ks[i] for i in active if i != best), eliminated=dict(eliminated),
        reason=reason, confidence=reached, seeds=seeds, runs=len(ledger.losses), cpu_seconds=ledger.spent,
        at_edge=at_edge, looks=tuple(looks), losses=dict(ledger.losses),
        table=paired_table(ledger.losses, ks, k_star, eliminated, design, declared))


def paired_table(losses: dict[tuple[int, int], float], ks: Sequence[int], k_star: int, eliminated: dict[int, int],
                 design: VerifyDesign, declared: int) -> list[dict[str, Any]]:
    """One row per K measured: seeds, mean loss, the paired difference to K* (absolute and relative to K*'s mean
    loss) with its half-width at the test's level, and whether it is in play or which K beat it."""
    seeds = 1 + max((s for _, s in losses), default=-1)
    values = _table(losses, ks, seeds)
    pairs = _Pairs(values)
    half = pairs.half(design.pair_alpha(declared))
    b = list(ks).index(k_star)
    ref = float(np.nanmean(values[:, b]))
    rows = []
    for i, k in enumerate(ks):
        diff, h = float(pairs.mean[i, b]), float(half[i, b])
        column = values[:, i]
        rows.append({"K": k, "seeds": int(np.sum(~np.isnan(column))), "mean_loss": float(np.nanmean(column)),
                     "diff_to_kstar": 0.0 if i == b else diff, "half_width": 0.0 if i == b else h,
                     "relative_diff": 0.0 if i == b else diff / ref, "relative_half_width": 0.0 if i == b else h / ref,
                     "status": "K*" if i == b else f"beaten by K={eliminated[k]}" if k in eliminated else "in play"})
    return rows


def prediction_offset(verdict: Verdict, predicted: int) -> dict[str, Any]:
    """How far the predicted K* is from the verified one: blocks, and its loss relative to K*'s (paired, over the
    seeds both were measured on; None where the predicted K was not measured)."""
    rows = {r["K"]: r for r in verdict.table}
    row = rows.get(predicted)
    return {"predicted": predicted, "blocks": predicted - verdict.k_star,
            "relative_loss": None if row is None else row["relative_diff"],
            "relative_half_width": None if row is None else row["relative_half_width"]}
