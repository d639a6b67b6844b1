"""Non-IID splits of a labelled data set over N clients, one small seeded class per scheme.

Every partitioner hands each client exactly ``samples_per_client`` distinct sample indices and never gives one
index to two clients; the same seed gives the same partition.

Partitioners also speak flwr-datasets' vocabulary: ``num_partitions`` (the clients), ``dataset`` (the labels to
split, assigned once), ``is_dataset_assigned()``, ``partition_id_to_indices`` and ``load_partition(i)``, which here
returns client i's sample indices (the data themselves stay with whoever holds them: ``images[idx]``)::

    p = make_partitioner("dirichlet", num_clients=20, samples_per_client=512, seed=0, alpha=0.5)
    p.dataset = train.labels           # 1-D integer labels, or anything with a ``labels`` attribute
    idx = p.load_partition(3)          # == p.partition(train.labels)[3]

One file per scheme (flwr-datasets' layout): the base :class:`Partitioner` in ``partitioner``, then
``classes_partitioner``, ``shards_partitioner``, ``dirichlet_partitioner`` and ``iid_partitioner``; the label counts
and their heat map in ``counts``.
"""

from __future__ import annotations

from typing import Any

from .classes_partitioner import ClassesPartitioner
from .counts import NUM_CLASSES, label_counts, plot_partition
from .dirichlet_partitioner import DirichletPartitioner
from .iid_partitioner import IidPartitioner
from .partitioner import PartitionError, Partitioner
from .shards_partitioner import SHARDS_PER_CLIENT, ShardsPartitioner

__all__ = ["NUM_CLASSES", "SCHEMES", "SHARDS_PER_CLIENT", "ClassesPartitioner", "DirichletPartitioner",
           "IidPartitioner", "PartitionError", "Partitioner", "ShardsPartitioner", "label_counts", "make_partitioner",
           "plot_partition"]

SCHEMES = ("classes", "shards", "dirichlet", "iid")

_PARTITIONERS: dict[str, type[Partitioner]] = {
    "classes": ClassesPartitioner,
    "shards": ShardsPartitioner,
    "dirichlet": DirichletPartitioner,
    "iid": IidPartitioner,
}


def make_partitioner(scheme: str, num_clients: int, samples_per_client: int, seed: int = 0,
                     **options: Any) -> Partitioner:
    """The partitioner for ``scheme`` (one of :data:`SCHEMES`) with its scheme-specific ``options``."""
    cls = _PARTITIONERS.get(scheme)
    if cls is None:
        raise ValueError(f"unknown partition scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    unknown = sorted(set(options) - set(cls.options))
    if unknown:
        takes = f"it takes {', '.join(cls.options)}" if cls.options else "it takes none"
        raise ValueError(f"partition scheme {scheme!r} has no option {', '.join(unknown)}; {takes}")
    return cls(num_clients, samples_per_client, seed, **options)
