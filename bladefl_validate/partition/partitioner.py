"""Non-IID splits of a labelled data set over N clients, one small seeded class per scheme.

Every partitioner hands each client exactly ``samples_per_client`` distinct sample indices and never gives one
index to two clients; the same seed gives the same partition.

Partitioners also speak flwr-datasets' vocabulary: ``num_partitions`` (the clients), ``dataset`` (the labels to
split, assigned once), ``is_dataset_assigned()``, ``partition_id_to_indices`` and ``load_partition(i)``, which here
returns client i's sample indices (the data themselves stay with whoever holds them: ``images[idx]``)::

    p = make_partitioner("dirichlet", num_clients=20, samples_per_client=512, seed=0, alpha=0.5)
    p.dataset = train.labels           # 1-D integer labels, or anything with a ``labels`` attribute
    idx = p.load_partition(3)          # == p.partition(train.labels)[3]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

SCHEMES = ("classes", "shards", "dirichlet", "iid")
NUM_CLASSES = 10
#: Shards each client gets under the ``shards`` scheme (McMahan et al.'s two).
SHARDS_PER_CLIENT = 2

# Uniform random picks of a client's classes tried before falling back to the classes with the most samples left.
_CLASS_PICK_TRIES = 32


class PartitionError(ValueError):
    """The labels cannot supply the requested partition; the message is one line."""


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer (got {value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} (got {value})")
    return int(value)


def _as_labels(labels: Any) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional (got shape {y.shape})")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers (got dtype {y.dtype})")
    y = y.astype(np.int64, copy=False)
    if y.size and y.min() < 0:
        raise ValueError("labels must be non-negative")
    return y


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


class IidPartitioner(Partitioner):
    """Uniformly random samples for every client."""

    scheme = "iid"

    def _partition(self, labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        n, m = self.num_clients, self.samples_per_client
        return list(rng.permutation(labels.size)[: n * m].reshape(n, m))


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


def label_counts(labels: np.ndarray, parts: list[np.ndarray], num_classes: int = NUM_CLASSES) -> pd.DataFrame:
    """Samples of each class held by each client: rows ``client`` 0..N-1, columns ``class`` 0..C-1."""
    y = _as_labels(labels)
    width = max(num_classes, int(y.max()) + 1 if y.size else 0)
    rows = [np.bincount(y[np.asarray(p, dtype=np.int64)], minlength=width) for p in parts]
    table = np.vstack(rows) if rows else np.zeros((0, width), dtype=np.int64)
    return pd.DataFrame(table, index=pd.RangeIndex(len(rows), name="client"),
                        columns=pd.RangeIndex(width, name="class"))


def plot_partition(counts_df: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG heat map of a :func:`label_counts` table to ``path``; returns the path."""
    from bladefl_platform.report import new_figure, save_figure

    values = counts_df.to_numpy()
    n_clients, n_classes = values.shape
    fig, axes = new_figure(max(4.0, 0.55 * n_classes + 2.0), min(40.0, max(3.0, 0.3 * n_clients + 1.5)))
    ax = axes[0][0]
    image = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="samples")
    ax.set_xlabel("class")
    ax.set_ylabel("client")
    ax.set_xticks(range(n_classes), [str(c) for c in counts_df.columns])
    if n_clients <= 40:
        ax.set_yticks(range(n_clients), [str(c) for c in counts_df.index])
    if n_clients * n_classes <= 400:
        threshold = values.max() / 2 if values.size else 0
        for (r, c), v in np.ndenumerate(values):
            if v:
                ax.text(c, r, str(v), ha="center", va="center", fontsize=7,
                        color="black" if v > threshold else "white")
    ax.set_title(title or f"label counts, {n_clients} clients")
    path = Path(path)
    save_figure(fig, path, dpi=100)
    return path
