"""The partitioners: sizes, disjointness and determinism, each scheme's shape, refusals, and flwr-datasets'
vocabulary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import write_idx_dataset

from bladefl_validate.data import load_dataset
from bladefl_validate.partition import (
    SCHEMES,
    ClassesPartitioner,
    DirichletPartitioner,
    IidPartitioner,
    PartitionError,
    ShardsPartitioner,
    label_counts,
    make_partitioner,
    plot_partition,
)


def balanced_labels(per_class: int = 200, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.arange(10 * per_class) % 10)


SETUPS = [
    ("classes", {"k": 4}),
    ("classes", {"k": 1, "samples_per_client": 60}),
    ("shards", {}),
    ("shards", {"shards_per_client": 3}),
    ("dirichlet", {"alpha": 0.5}),
    ("iid", {}),
]


@pytest.mark.parametrize(("scheme", "options"), SETUPS)
def test_sizes_disjointness_determinism(scheme, options):
    labels = balanced_labels()
    options = dict(options)
    size = options.pop("samples_per_client", 60)
    make = lambda seed: make_partitioner(scheme, 12, size, seed, **options)  # noqa: E731
    parts = make(1).partition(labels)
    assert len(parts) == 12
    assert all(p.shape == (size,) and p.dtype == np.int64 for p in parts)
    every = np.concatenate(parts)
    assert np.unique(every).size == every.size  # disjoint and no repeats
    assert every.min() >= 0 and every.max() < labels.size
    again = make(1).partition(labels)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = make(2).partition(labels)
    assert any(not np.array_equal(a, b) for a, b in zip(parts, other))


@pytest.mark.parametrize("k", [1, 2, 4, 5])
def test_classes_gives_k_classes_in_equal_blocks(k):
    labels = balanced_labels()
    parts = ClassesPartitioner(15, 20 * k, seed=3, k=k).partition(labels)
    counts = label_counts(labels, parts)
    for _, row in counts.iterrows():
        held = row[row > 0]
        assert len(held) == k and set(held.tolist()) == {20}


def test_classes_fills_a_tight_request():
    # 200 samples per class, blocks of 50: 4 blocks per class, 40 in all = exactly 20 clients x 2 classes.
    labels = balanced_labels()
    for seed in range(20):
        parts = ClassesPartitioner(20, 100, seed=seed, k=2).partition(labels)
        counts = label_counts(labels, parts)
        assert ((counts > 0).sum(axis=1) == 2).all()
        assert (counts.sum(axis=0) == 200).all()
    # 2000 samples again, but 1100 of them in class 0: one block of class 0 per client leaves too few of the rest.
    skewed = np.r_[np.zeros(1100, dtype=int), np.arange(900) % 9 + 1]
    assert ClassesPartitioner(10, 100, seed=0, k=2).partition(skewed)
    with pytest.raises(PartitionError, match=r"20 clients x 2 classes need 40 class blocks of 50 .* supply 38"):
        ClassesPartitioner(20, 100, seed=0, k=2).partition(skewed)


def test_classes_fallback_keeps_tight_requests_feasible(monkeypatch):
    # With no random tries, every client takes the classes with the most blocks left; that must never dead-end.
    monkeypatch.setattr("bladefl_validate.partition.classes_partitioner._CLASS_PICK_TRIES", 0)
    skewed = np.r_[np.zeros(1100, dtype=int), np.arange(900) % 9 + 1]
    for clients, k, size in ((18, 2, 100), (9, 3, 150)):  # both use every one of the available blocks of 50
        parts = ClassesPartitioner(clients, size, seed=1, k=k).partition(skewed)
        counts = label_counts(skewed, parts)
        assert ((counts > 0).sum(axis=1) == k).all()


def test_classes_needs_enough_distinct_classes():
    labels = np.arange(300) % 3
    with pytest.raises(PartitionError, match="4 distinct classes, the labels have 3"):
        ClassesPartitioner(2, 40, k=4).partition(labels)
    # Plenty of samples, but one client cannot take two blocks of the same class.
    skewed = np.r_[np.zeros(1000, dtype=int), np.arange(30) % 3 + 1]
    with pytest.raises(PartitionError, match="need 6 class blocks of 10 .* supply 5"):
        ClassesPartitioner(2, 30, k=3).partition(skewed)


def test_shards_are_label_pure_when_classes_fill_whole_shards():
    labels = balanced_labels()  # 200 per class, shards of 50
    parts = ShardsPartitioner(20, 100, seed=4).partition(labels)
    counts = label_counts(labels, parts)
    assert ((counts > 0).sum(axis=1) <= 2).all()
    assert set(np.unique(counts.to_numpy())) <= {0, 50, 100}
    assert np.unique(np.concatenate(parts)).size == labels.size  # N·|D_i| = n uses every sample


def test_dirichlet_alpha_controls_skew():
    labels = balanced_labels()
    skewed = label_counts(labels, DirichletPartitioner(10, 100, seed=5, alpha=0.05).partition(labels))
    flat = label_counts(labels, DirichletPartitioner(10, 100, seed=5, alpha=1000.0).partition(labels))
    assert (skewed.max(axis=1) / 100).mean() > 0.7  # mostly one class per client
    assert (flat.max(axis=1) / 100).max() < 0.2  # close to uniform
    assert (skewed.sum(axis=1) == 100).all() and (flat.sum(axis=1) == 100).all()


def test_dirichlet_with_tiny_alpha_terminates():
    labels = balanced_labels()
    parts = DirichletPartitioner(8, 150, seed=6, alpha=1e-4).partition(labels)
    assert all(p.size == 150 for p in parts)
    # Each client wants (almost) one class but no class has 250: every draw fails, and it says so.
    with pytest.raises(PartitionError, match=r"client 0 needs 250 samples, and none of 100 draws fit the 2000 left"):
        DirichletPartitioner(5, 250, seed=6, alpha=1e-4).partition(labels)
    with pytest.raises(PartitionError, match="none of 3 draws"):
        DirichletPartitioner(5, 250, seed=6, alpha=1e-4, max_retries=3).partition(labels)


def test_iid_covers_all_classes():
    labels = balanced_labels()
    counts = label_counts(labels, IidPartitioner(4, 500, seed=7).partition(labels))
    assert ((counts > 0).sum(axis=1) == 10).all()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_too_few_samples_is_a_partition_error(scheme):
    labels = balanced_labels(per_class=10)
    with pytest.raises(PartitionError, match=r"11 clients x 10 samples need 110 samples, only 100 available"):
        make_partitioner(scheme, 11, 10, 0, **({"k": 2} if scheme == "classes" else {})).partition(labels)
    assert issubclass(PartitionError, ValueError)


def test_labels_as_torch_tensor_and_bad_labels():
    labels = torch.from_numpy(balanced_labels())
    assert len(IidPartitioner(2, 10).partition(labels)) == 2
    with pytest.raises(ValueError, match="one-dimensional"):
        IidPartitioner(2, 10).partition(np.zeros((10, 2), dtype=int))
    with pytest.raises(ValueError, match="finite"):
        IidPartitioner(2, 10).partition(np.full(100, np.nan))


@pytest.mark.parametrize("scheme", ["classes", "shards", "dirichlet", "iid"])
def test_any_labels_partition_as_their_sorted_class_codes(scheme):
    codes = balanced_labels()  # 0..9
    names = np.array(["cat", "dog", "emu", "fox", "gnu", "hen", "ibis", "jay", "koi", "lynx"])
    options = {"k": 2} if scheme == "classes" else {}
    want = make_partitioner(scheme, 5, 20, 3, **options).partition(codes)
    for labels in (names[codes], codes * 2.5 - 7, codes.astype(np.int64) - 4):
        got = make_partitioner(scheme, 5, 20, 3, **options).partition(labels)
        assert all(np.array_equal(a, b) for a, b in zip(got, want)), labels.dtype
    assert label_counts(names[codes], want).equals(label_counts(codes, want))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_partitioner("pathological", 2, 10, 0), "unknown partition scheme 'pathological'; known: "
                                                             "classes, shards, dirichlet, iid"),
        (lambda: make_partitioner("iid", 2, 10, 0, k=2), "has no option k; it takes none"),
        (lambda: make_partitioner("classes", 2, 10, 0, alpha=1.0), "has no option alpha; it takes k"),
        (lambda: make_partitioner("classes", 2, 10, 0, k=3), r"samples_per_client \(10\) must be divisible by k"),
        (lambda: make_partitioner("shards", 2, 9, 0), "divisible by shards_per_client"),
        (lambda: make_partitioner("iid", 0, 10, 0), "num_clients must be at least 1"),
        (lambda: make_partitioner("iid", 2, True, 0), "samples_per_client must be an integer"),
        (lambda: make_partitioner("iid", 2, 10, -1), "seed must be at least 0"),
        (lambda: make_partitioner("iid", 2.0, 10, 0), "num_clients must be an integer"),
        (lambda: make_partitioner("dirichlet", 2, 10, 0, alpha=0.0), "alpha must be a positive finite number"),
        (lambda: make_partitioner("dirichlet", 2, 10, 0, alpha=float("nan")), "alpha must be a positive"),
        (lambda: make_partitioner("dirichlet", 2, 10, 0, max_retries=0), "max_retries must be at least 1"),
    ],
)
def test_argument_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_factory_builds_each_scheme():
    assert SCHEMES == ("classes", "shards", "dirichlet", "iid")
    built = [make_partitioner(s, 3, 12, 5) for s in SCHEMES]
    assert [type(p) for p in built] == [ClassesPartitioner, ShardsPartitioner, DirichletPartitioner, IidPartitioner]
    assert all(p.num_clients == 3 and p.samples_per_client == 12 and p.seed == 5 for p in built)
    assert make_partitioner("classes", 3, 12, 5, k=3).k == 3
    assert "k=4" in repr(built[0])


@pytest.mark.parametrize(("scheme", "options"), SETUPS)
def test_flwr_datasets_vocabulary(scheme, options):
    """num_partitions, dataset, is_dataset_assigned, partition_id_to_indices and load_partition, as flwr-datasets
    names them: load_partition(i) is client i's indices of partition(labels), whichever is asked first."""
    labels = balanced_labels()
    options = dict(options)
    size = options.pop("samples_per_client", 60)
    p = make_partitioner(scheme, 12, size, 1, **options)
    assert p.num_partitions == p.num_clients == 12
    assert not p.is_dataset_assigned()
    with pytest.raises(AttributeError, match="no dataset assigned"):
        p.load_partition(0)
    p.dataset = torch.as_tensor(labels)  # labels as a tensor, an array, or anything with a .labels
    assert p.is_dataset_assigned() and np.array_equal(p.dataset, labels)
    expected = make_partitioner(scheme, 12, size, 1, **options).partition(labels)
    assert all(np.array_equal(p.load_partition(i), expected[i]) for i in reversed(range(12)))
    by_id = p.partition_id_to_indices
    assert sorted(by_id) == list(range(12)) and all(np.array_equal(by_id[i], expected[i]) for i in by_id)
    p.load_partition(0)[:] = -1  # a copy: the partition it came from is untouched
    assert np.array_equal(p.load_partition(0), expected[0])
    for bad, error in ((12, IndexError), (-1, ValueError), (True, ValueError), (1.0, ValueError)):
        with pytest.raises(error, match="partition_id"):
            p.load_partition(bad)
    with pytest.raises(ValueError, match="assigned only once"):
        p.dataset = labels


def test_a_dataset_object_can_be_assigned(tmp_path, private_cache):
    write_idx_dataset(tmp_path / "mnist", n_train=240, n_test=20, seed=0)
    train = load_dataset("mnist", tmp_path, train=True)
    p = IidPartitioner(num_clients=4, samples_per_client=30, seed=2)
    p.dataset = train
    idx = p.load_partition(3)
    assert np.array_equal(idx, p.partition(train.labels.numpy())[3])
    assert train.images[torch.as_tensor(idx)].shape == (30, 784)


def test_counts_table_and_heat_map(tmp_path):
    labels = np.arange(400) % 4  # only 4 of the 10 classes occur
    parts = ClassesPartitioner(6, 40, seed=8, k=2).partition(labels)
    counts = label_counts(labels, parts)
    assert isinstance(counts, pd.DataFrame) and counts.shape == (6, 10)
    assert counts.index.name == "client" and counts.columns.name == "class"
    assert (counts.sum(axis=1) == 40).all() and (counts.loc[:, 4:] == 0).all().all()
    out = plot_partition(counts, tmp_path / "partition.png")
    assert out == tmp_path / "partition.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
