"""Screening the cache pool for lazy clients: detectors on the stacked models ``W [N, d]`` of one round.

A lazy model is ``w_s + n`` with ``n ~ N(0, sigma2 I)`` for some honest source ``s``. Each detector
scores every client against its nearest neighbour ``j`` (Euclidean) and calls it *suspicious* when
the score is below a threshold; lower scores are more suspicious.

- ``nn``: the nearest-neighbour distance over a robust scale of the round's distances (the median
  of every client's median distance to the others). A copy sits at about sqrt(d·sigma2) from its
  source; this only stands out while that is smaller than the spread of honest models.
- ``noise``: Bartlett's test of equal variances over blocks of the difference ``w_i − w_j``. For a
  copy and its source the difference is exactly i.i.d. Gaussian, so the block variances agree
  (statistic/(blocks−1) ≈ 1 whatever sigma2 is); differences between honest models are structured
  (layers, pixels, classes), so their block variances do not. sigma2 need not be known.

A copy and its source are each other's nearest neighbours, so both look suspicious. The noise
adds d·sigma2 to the squared distance from the reference (the round's starting global model), so
of a suspicious client and its neighbour only the one farther from the reference is flagged
(exact duplicates are both flagged: nothing tells them apart).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bladefl_platform.errors import InputError

__all__ = [
    "DETECTORS",
    "Detection",
    "NearestNeighbourDetector",
    "NoiseDetector",
    "make_detector",
    "pairwise_distances",
    "precision_recall",
    "run_precision_recall",
    "write_detection_csv",
]

#: Detector names accepted by ``--detect`` (besides "none").
DETECTORS = ("nn", "noise")


@dataclass(frozen=True)
class Detection:
    """One screening: ``flagged`` bool [N], ``scores`` float64 [N] (lower is more suspicious), ``neighbours`` [N]."""

    flagged: torch.Tensor
    scores: torch.Tensor
    neighbours: torch.Tensor

    def flagged_clients(self) -> list[int]:
        return [int(i) for i in torch.nonzero(self.flagged).flatten()]


def _centered(W: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
    """``W − reference`` in float64 (default reference: the mean model); checks shapes."""
    if not isinstance(W, torch.Tensor) or W.dim() != 2 or W.shape[0] < 3 or W.shape[1] < 1:
        shape = list(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
        raise InputError(f"detection needs stacked models W [N >= 3, d >= 1], got {shape}")
    W64 = W.detach().to(torch.float64)
    if reference is None:
        return W64 - W64.mean(dim=0)
    if reference.shape != (W.shape[1],):
        raise InputError(f"reference must have shape [{W.shape[1]}], got {list(reference.shape)}")
    return W64 - reference.detach().to(device=W.device, dtype=torch.float64)


def pairwise_distances(U: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``[N, N]`` between the rows of ``U`` (float64), +inf on the diagonal."""
    U = U.to(torch.float64)
    sq = (U * U).sum(dim=1)
    D2 = (sq[:, None] + sq[None, :] - 2.0 * (U @ U.T)).clamp_min_(0.0)
    D = D2.sqrt_()
    D.fill_diagonal_(math.inf)
    return D


def _flag(U: torch.Tensor, suspicious: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """Suspicious clients that are at least as far from the reference as their neighbour."""
    norms = U.norm(dim=1)
    return suspicious & (norms >= norms[neighbours])


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not (t > 0 and math.isfinite(t)):
        raise InputError(f"detection threshold must be positive and finite (got {threshold!r})")
    return t


class NearestNeighbourDetector:
    """Flags the noisier end of pairs much closer than the round's typical distance (score < threshold)."""

    name = "nn"
    default_threshold = 0.4

    def __init__(self, threshold: float | None = None):
        self.threshold = _check_threshold(self.default_threshold if threshold is None else threshold)

    def __call__(self, W: torch.Tensor, reference: torch.Tensor | None = None) -> Detection:
        U = _centered(W, reference)
        D = pairwise_distances(U)
        nearest, neighbours = D.min(dim=1)
        # Median over the finite off-diagonal entries of each row: sort puts +inf last.
        n = D.shape[0]
        row_median = D.sort(dim=1).values[:, (n - 2) // 2]
        scores = nearest / row_median.median().clamp_min(torch.finfo(torch.float64).tiny)
        return Detection(_flag(U, scores < self.threshold, neighbours), scores, neighbours)


class NoiseDetector:
    """Flags the noisier end of pairs whose difference has equal variance in every block (score < threshold).

    The score is Bartlett's statistic over ``block_size``-coordinate blocks of ``w_i − w_j`` (zero
    mean assumed) divided by its degrees of freedom: about 1 ± sqrt(2/blocks) for i.i.d. noise.
    """

    name = "noise"
    default_threshold = 1.5

    def __init__(self, threshold: float | None = None, block_size: int = 64):
        self.threshold = _check_threshold(self.default_threshold if threshold is None else threshold)
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 2:
            raise InputError(f"block_size must be an integer >= 2 (got {block_size!r})")
        self.block_size = block_size

    def __call__(self, W: torch.Tensor, reference: torch.Tensor | None = None) -> Detection:
        U = _centered(W, reference)
        n, d = U.shape
        b = self.block_size
        k = d // b
        if k < 2:
            raise InputError(f"the noise detector needs d >= 2·block_size = {2 * b} (got d={d})")
        neighbours = pairwise_distances(U).argmin(dim=1)
        delta = (U - U[neighbours])[:, : k * b].view(n, k, b)
        block_var = delta.square().mean(dim=2)  # [n, k]
        pooled = block_var.mean(dim=1)  # equal block sizes
        # log(0) = -inf makes the statistic +inf: a block without noise is structure.
        stat = b * (k * pooled.log() - block_var.log().sum(dim=1))
        correction = 1.0 + (k / b - 1.0 / (k * b)) / (3.0 * (k - 1))
        scores = stat / correction / (k - 1)
        scores = torch.where(pooled > 0, scores, torch.zeros_like(scores))  # identical models: a plain copy
        return Detection(_flag(U, scores < self.threshold, neighbours), scores, neighbours)


def make_detector(name: str, threshold: float | None = None) -> NearestNeighbourDetector | NoiseDetector:
    """The detector called ``name`` ("nn" or "noise"), with its default threshold unless one is given."""
    if name == "nn":
        return NearestNeighbourDetector(threshold)
    if name == "noise":
        return NoiseDetector(threshold)
    raise InputError(f"detector must be one of {', '.join(DETECTORS)} (got {name!r})")


def precision_recall(flagged: torch.Tensor, truly_lazy: torch.Tensor) -> tuple[float, float]:
    """Precision and recall of boolean ``flagged`` against ``truly_lazy`` (NaN where undefined)."""
    flagged, truly_lazy = flagged.bool(), truly_lazy.bool()
    tp = int((flagged & truly_lazy).sum())
    n_flagged, n_lazy = int(flagged.sum()), int(truly_lazy.sum())
    return (tp / n_flagged if n_flagged else math.nan, tp / n_lazy if n_lazy else math.nan)


def write_detection_csv(path: str | os.PathLike[str], detections: Sequence[Detection], lazy: Sequence[int]) -> None:
    """One row per round and client: ``round, client, flagged, score, truly_lazy, neighbour``."""
    lazy_set = set(lazy)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("round", "client", "flagged", "score", "truly_lazy", "neighbour"))
        for k, det in enumerate(detections, start=1):
            for i, (f, s, j) in enumerate(zip(det.flagged.tolist(), det.scores.tolist(), det.neighbours.tolist())):
                writer.writerow((k, i, int(f), repr(s), int(i in lazy_set), j))


def run_precision_recall(detections: Sequence[Detection], lazy: Sequence[int]) -> tuple[float, float]:
    """Precision and recall over every (round, client) screening of a run."""
    if not detections:
        return math.nan, math.nan
    flagged = torch.stack([d.flagged.cpu() for d in detections])
    truth = torch.zeros(flagged.shape[1], dtype=torch.bool)
    truth[list(lazy)] = True
    return precision_recall(flagged, truth.expand_as(flagged))
