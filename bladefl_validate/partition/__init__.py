"""Non-IID splits of a labelled data set over N clients (the partitioners live in :mod:`.partitioner`)."""

from .partitioner import (
    NUM_CLASSES,
    SCHEMES,
    SHARDS_PER_CLIENT,
    ClassesPartitioner,
    DirichletPartitioner,
    IidPartitioner,
    PartitionError,
    Partitioner,
    ShardsPartitioner,
    label_counts,
    make_partitioner,
    plot_partition,
)

__all__ = ["NUM_CLASSES", "SCHEMES", "SHARDS_PER_CLIENT", "ClassesPartitioner", "DirichletPartitioner",
           "IidPartitioner", "PartitionError", "Partitioner", "ShardsPartitioner", "label_counts", "make_partitioner",
           "plot_partition"]
