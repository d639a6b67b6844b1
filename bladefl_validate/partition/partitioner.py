"""The base of every partitioner (flwr-datasets' ``Partitioner``), the one error it raises, and the argument checks
and class pools the schemes share. A scheme subclasses :class:`Partitioner` and implements ``_partition``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np


class PartitionError(ValueError):
    """The labels cannot supply the requested partition; the message is one line."""


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer (got {value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} (got {value})")
    return int(value)


def _as_labels(labels: Any) -> np.ndarray:
    """Labels as int64 class codes: non-negative integers as they are; any other labels (strings, negative or
    float values) as the index of their value among the sorted distinct values."""
    y = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional (got shape {y.shape})")
    if y.size and np.issubdtype(y.dtype, np.integer) and y.min() >= 0:
        return y.astype(np.int64, copy=False)
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("labels must be finite")
    return np.unique(y, return_inverse=True)[1].astype(np.int64).reshape(-1)


class Partitioner(ABC):
    """Base class: ``partition(labels)`` returns one index array per client."""

    scheme: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, num_clients: int, samples_per_client: int, seed: int = 0) -> None:
        self.num_clients = _check_int("num_clients", num_clients, 1)
        self.samples_per_client = _check_int("samples_per_client", samples_per_client, 1)
        self.seed = _check_int("seed", seed, 0)
        self._labels: np.ndarray | None = None
        self._parts: list[np.ndarray] | None = None

    @property
    def num_partitions(self) -> int:
        """The number of partitions, one per client (flwr-datasets' name for ``num_clients``)."""
        return self.num_clients

    @property
    def dataset(self) -> np.ndarray:
        """The labels this partitioner splits (assign them once: ``p.dataset = labels``)."""
        if self._labels is None:
            raise AttributeError("no dataset assigned: set partitioner.dataset = labels first")
        return self._labels

    @dataset.setter
    def dataset(self, value: Any) -> None:
        if self._labels is not None:
            raise ValueError("the dataset is assigned only once: make a new partitioner for other labels")
        self._labels = _as_labels(getattr(value, "labels", value))

    def is_dataset_assigned(self) -> bool:
        """Whether labels have been assigned (``dataset``)."""
        return self._labels is not None

    @property
    def partition_id_to_indices(self) -> dict[int, np.ndarray]:
        """Every client's sample indices of the assigned dataset, by client id (computed once)."""
        return {i: p.copy() for i, p in enumerate(self._drawn())}

    def load_partition(self, partition_id: int) -> np.ndarray:
        """Client ``partition_id``'s sorted int64 sample indices into the assigned dataset: ``partition(labels)[i]``,
        the whole partition drawn once and kept."""
        i = _check_int("partition_id", partition_id, 0)
        if i >= self.num_partitions:
            raise IndexError(f"partition_id must be in 0..{self.num_partitions - 1} (got {i})")
        return self._drawn()[i].copy()

    def _drawn(self) -> list[np.ndarray]:
        """The partition of the assigned dataset, drawn on first use and kept."""
        if self._parts is None:
            self._parts = self.partition(self.dataset)
        return self._parts

    def partition(self, labels: np.ndarray) -> list[np.ndarray]:
        """Sorted int64 index arrays, one per client, each ``samples_per_client`` long, pairwise disjoint."""
        y = _as_labels(labels)
        need = self.num_clients * self.samples_per_client
        if need > y.size:
            raise PartitionError(
                f"{self.scheme}: {self.num_clients} clients x {self.samples_per_client} samples need {need} samples, "
                f"only {y.size} available"
            )
        parts = self._partition(y, np.random.default_rng(self.seed))
        return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]

    @abstractmethod
    def _partition(self, labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """The scheme itself; ``labels`` are valid and there are enough of them in total."""

    def __repr__(self) -> str:
        opts = "".join(f", {name}={getattr(self, name)!r}" for name in self.options)
        return (f"{type(self).__name__}(num_clients={self.num_clients}, "
                f"samples_per_client={self.samples_per_client}, seed={self.seed}{opts})")


def _class_pools(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """The classes present and, for each, its sample indices in random order."""
    classes = np.unique(labels)
    order = rng.permutation(labels.size)
    order = order[np.argsort(labels[order], kind="stable")]
    bounds = np.searchsorted(labels[order], classes, side="left").tolist() + [labels.size]
    return classes, [order[bounds[i]: bounds[i + 1]] for i in range(classes.size)]
