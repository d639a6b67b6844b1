"""The ``dirichlet`` scheme: each client's class proportions drawn from Dir(alpha), with bounded retries."""

from __future__ import annotations

import math

import numpy as np

from .partitioner import PartitionError, Partitioner, _check_int, _class_pools


class DirichletPartitioner(Partitioner):
    """Each client's class proportions drawn from Dir(alpha); a draw the samples left cannot serve is drawn again."""

    scheme = "dirichlet"
    options = ("alpha", "max_retries")

    def __init__(self, num_clients: int, samples_per_client: int, seed: int = 0, alpha: float = 0.5,
                 max_retries: int = 100) -> None:
        super().__init__(num_clients, samples_per_client, seed)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)) \
                or not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"alpha must be a positive finite number (got {alpha!r})")
        self.alpha = float(alpha)
        self.max_retries = _check_int("max_retries", max_retries, 1)

    def _counts(self, p: np.ndarray) -> np.ndarray:
        """``p`` scaled to integers summing to exactly samples_per_client (largest remainders round up)."""
        exact = p / p.sum() * self.samples_per_client
        counts = np.floor(exact).astype(np.int64)
        short = self.samples_per_client - int(counts.sum())
        if short > 0:
            counts[np.argsort(counts - exact, kind="stable")[:short]] += 1
        return counts

    def _partition(self, labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        classes, pools = _class_pools(labels, rng)
        remaining = np.array([pool.size for pool in pools], dtype=np.int64)
        concentration = np.full(classes.size, self.alpha)
        plans = []
        for i in range(self.num_clients):
            for _ in range(self.max_retries):
                p = rng.dirichlet(concentration)
                if not np.all(np.isfinite(p)) or p.sum() <= 0:
                    continue  # underflow at tiny alpha: just draw again
                counts = self._counts(p)
                if np.all(counts <= remaining):
                    break
            else:
                raise PartitionError(
                    f"dirichlet(alpha={self.alpha:g}): client {i} needs {self.samples_per_client} samples, and none "
                    f"of {self.max_retries} draws fit the {int(remaining.sum())} left (at most "
                    f"{int(remaining.max())} in one class); use a larger alpha or fewer samples"
                )
            remaining -= counts
            plans.append(counts)
        used = np.zeros(classes.size, dtype=np.int64)
        parts = []
        for counts in plans:
            parts.append(np.concatenate([pools[c][used[c]: used[c] + counts[c]] for c in range(classes.size)]))
            used += counts
        return parts
