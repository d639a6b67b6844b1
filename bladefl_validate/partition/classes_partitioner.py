"""The ``classes`` scheme: each client holds k classes in equal blocks."""

from __future__ import annotations

import numpy as np

from .partitioner import PartitionError, Partitioner, _check_int, _class_pools

# Uniform random picks of a client's classes tried before falling back to the classes with the most samples left.
_CLASS_PICK_TRIES = 32


class ClassesPartitioner(Partitioner):
    """Each client gets ``samples_per_client / k`` samples from each of ``k`` distinct, randomly chosen classes."""

    scheme = "classes"
    options = ("k",)

    def __init__(self, num_clients: int, samples_per_client: int, seed: int = 0, k: int = 4) -> None:
        super().__init__(num_clients, samples_per_client, seed)
        self.k = _check_int("k", k, 1)
        if self.samples_per_client % self.k:
            raise ValueError(f"samples_per_client ({self.samples_per_client}) must be divisible by k ({self.k})")

    def _partition(self, labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        n, k = self.num_clients, self.k
        block = self.samples_per_client // k
        classes, pools = _class_pools(labels, rng)
        if classes.size < k:
            raise PartitionError(f"classes: each client needs {k} distinct classes, the labels have {classes.size}")
        blocks = np.array([pool.size // block for pool in pools])
        # A client takes at most one block per class, so class c serves at most min(n, blocks[c]) clients; that sum
        # reaching n·k is necessary and sufficient for an assignment to exist.
        supply = int(np.minimum(blocks, n).sum())
        if supply < n * k:
            raise PartitionError(
                f"classes: {n} clients x {k} classes need {n * k} class blocks of {block} samples "
                f"(at most one per client and class), the labels supply {supply}"
            )
        remaining = blocks.copy()
        chosen: list[np.ndarray] = []
        for i in range(n):
            later = n - i - 1
            eligible = np.flatnonzero(remaining > 0)
            pick: np.ndarray | None = None
            for _ in range(_CLASS_PICK_TRIES):
                trial = rng.choice(eligible, size=k, replace=False)
                after = remaining.copy()
                after[trial] -= 1
                if np.minimum(after, later).sum() >= later * k:
                    pick = trial
                    break
            if pick is None:
                # Taking the k classes with the most blocks left always keeps the rest of the clients servable.
                pick = np.lexsort((rng.random(remaining.size), -remaining))[:k]
            remaining[pick] -= 1
            chosen.append(pick)
        used = np.zeros(classes.size, dtype=np.int64)
        parts = []
        for pick in chosen:
            take = []
            for c in pick:
                take.append(pools[c][used[c] * block: (used[c] + 1) * block])
                used[c] += 1
            parts.append(np.concatenate(take))
        return parts
