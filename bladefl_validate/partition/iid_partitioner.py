"""The ``iid`` scheme: uniformly random samples for every client."""

from __future__ import annotations

import numpy as np

from .partitioner import Partitioner


class IidPartitioner(Partitioner):
    """Uniformly random samples for every client."""

    scheme = "iid"

    def _partition(self, labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        n, m = self.num_clients, self.samples_per_client
        return list(rng.permutation(labels.size)[: n * m].reshape(n, m))
