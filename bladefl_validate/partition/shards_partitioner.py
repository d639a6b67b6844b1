"""The ``shards`` scheme: McMahan et al.'s label-sorted shards, dealt at random."""

from __future__ import annotations

import numpy as np

from .partitioner import Partitioner, _check_int

#: Shards each client gets under the ``shards`` scheme (McMahan et al.'s two).
SHARDS_PER_CLIENT = 2


class ShardsPartitioner(Partitioner):
    """McMahan et al.: sort by label, cut into shards of ``samples_per_client / shards_per_client``, deal at random."""

    scheme = "shards"
    options = ("shards_per_client",)

    def __init__(self, num_clients: int, samples_per_client: int, seed: int = 0,
                 shards_per_client: int = SHARDS_PER_CLIENT) -> None:
        super().__init__(num_clients, samples_per_client, seed)
        self.shards_per_client = _check_int("shards_per_client", shards_per_client, 1)
        if self.samples_per_client % self.shards_per_client:
            raise ValueError(f"samples_per_client ({self.samples_per_client}) must be divisible by "
                             f"shards_per_client ({self.shards_per_client})")

    def _partition(self, labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        n, s = self.num_clients, self.shards_per_client
        size = self.samples_per_client // s
        order = rng.permutation(labels.size)
        order = order[np.argsort(labels[order], kind="stable")]
        n_shards = labels.size // size  # >= n·s, checked by partition()
        shards = order[: n_shards * size].reshape(n_shards, size)
        dealt = shards[rng.choice(n_shards, size=n * s, replace=False)]
        return list(dealt.reshape(n, s * size))
