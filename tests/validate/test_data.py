"""Data loading from small IDX files the tests write (checked as read)."""

from __future__ import annotations

import gzip
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from helpers import write_idx_dataset

from bladefl_validate.data import (
    DATASETS,
    NORMALIZATION,
    DataError,
    clear_cache,
    load_dataset,
    resolve_data_root,
)

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache, no user cache in $HOME, no network: torchvision's download fails at once."""
    monkeypatch.setenv("BLADEFL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried a mirror, got: offline (test)")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    clear_cache()
    yield
    clear_cache()


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    magic, ndim = int.from_bytes(data[:4], "big"), data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    assert magic in (2049, 2051)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


# ---------------------------------------------------------------- write_idx_dataset


def test_write_idx_dataset_writes_valid_big_endian_files(tmp_path):
    folder = write_idx_dataset(tmp_path / "d", n_train=40, n_test=20, seed=3)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{f}.gz" for f in FILES)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "rb") as fh:
        head = fh.read(16)
    assert head[:4] == (2051).to_bytes(4, "big") and head[4:8] == (40).to_bytes(4, "big")
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "rb") as fh:
        assert fh.read(8) == (2049).to_bytes(4, "big") + (20).to_bytes(4, "big")
    labels = _read_idx(folder / "train-labels-idx1-ubyte.gz")
    assert set(labels.tolist()) == set(range(10))
    again = write_idx_dataset(tmp_path / "e", n_train=40, n_test=20, seed=3)
    assert (again / "train-images-idx3-ubyte.gz").read_bytes() == (folder / "train-images-idx3-ubyte.gz").read_bytes()
    with pytest.raises(ValueError, match="at least 10"):
        write_idx_dataset(tmp_path / "f", n_train=9, n_test=20, seed=0)


# ---------------------------------------------------------------- load_dataset


@pytest.mark.parametrize("train", [True, False])
def test_load_from_named_subfolder_round_trips(tmp_path, train):
    root = tmp_path / "root"
    folder = write_idx_dataset(root / "mnist", n_train=60, n_test=20, seed=1)
    ds = load_dataset("mnist", root, train=train)
    split = "train" if train else "t10k"
    raw_images = _read_idx(folder / f"{split}-images-idx3-ubyte.gz")
    raw_labels = _read_idx(folder / f"{split}-labels-idx1-ubyte.gz")
    n = 60 if train else 20
    assert ds.images.shape == (n, 784) and ds.images.dtype == torch.float32
    assert ds.labels.shape == (n,) and ds.labels.dtype == torch.int64
    assert len(ds) == n and ds.name == "mnist" and ds.train is train
    assert ds.labels.tolist() == raw_labels.tolist()
    mean, std = NORMALIZATION["mnist"]
    expected = (torch.from_numpy(raw_images.reshape(n, 784).astype(np.float32)) / 255 - mean) / std
    torch.testing.assert_close(ds.images, expected)


def test_load_from_bare_uncompressed_folder(tmp_path):
    folder = write_idx_dataset(tmp_path / "fashion-mnist", n_train=30, n_test=10, seed=2, gz=False)
    ds = load_dataset("fashion-mnist", folder)
    assert ds.images.shape == (30, 784)
    assert ds.labels.tolist() == _read_idx(folder / "train-labels-idx1-ubyte").tolist()
    mean, std = NORMALIZATION["fashion-mnist"]
    assert float(ds.images.min()) == pytest.approx(-mean / std, abs=1e-5)  # the noise includes pixel value 0


def test_name_spellings(tmp_path):
    write_idx_dataset(tmp_path / "fashion-mnist", n_train=20, n_test=10, seed=2)
    assert load_dataset("Fashion_MNIST", tmp_path).name == "fashion-mnist"
    with pytest.raises(DataError, match="unknown data set 'kmnist'; known: mnist, fashion-mnist"):
        load_dataset("kmnist", tmp_path)
    assert DATASETS == ("mnist", "fashion-mnist")


def test_bare_folder_named_for_the_other_dataset_is_not_read(tmp_path):
    folder = write_idx_dataset(tmp_path / "fashion-mnist", n_train=20, n_test=10, seed=2)
    with pytest.raises(DataError, match="skipped: named for another data set"):
        load_dataset("mnist", folder, download=False)


def test_torchvision_layout_is_read(tmp_path):
    write_idx_dataset(tmp_path / "tv" / "MNIST" / "raw", n_train=20, n_test=10, seed=4, gz=False)
    ds = load_dataset("mnist", tmp_path / "tv", train=False)
    assert ds.images.shape == (10, 784)
    assert not (tmp_path / "cache").exists()  # read in place: nothing copied anywhere


def test_loads_are_cached_and_a_changed_source_is_read_again(tmp_path):
    root = tmp_path / "root"
    write_idx_dataset(root / "mnist", n_train=20, n_test=10, seed=5)
    first = load_dataset("mnist", root)
    assert load_dataset("mnist", root) is first  # in-process cache
    expected = _read_idx(root / "mnist" / "train-images-idx3-ubyte.gz").reshape(20, -1).astype(np.float32)
    mean, std = NORMALIZATION["mnist"]
    assert torch.allclose(first.images, torch.from_numpy((expected / 255.0 - mean) / std))
    time.sleep(0.01)
    write_idx_dataset(root / "mnist", n_train=20, n_test=10, seed=7)
    new = load_dataset("mnist", root)
    assert not torch.equal(first.images, new.images)
    assert not (tmp_path / "cache").exists()


def test_read_only_source_is_left_untouched(tmp_path):
    folder = write_idx_dataset(tmp_path / "ro" / "mnist", n_train=20, n_test=10, seed=8)
    before = sorted(p.name for p in folder.iterdir())
    paths = [*folder.iterdir(), folder, folder.parent]
    for p in paths:
        p.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        ds = load_dataset("mnist", tmp_path / "ro")
    finally:
        for p in paths:
            p.chmod(stat.S_IRWXU)
    assert ds.images.shape == (20, 784)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["mnist"]


def test_missing_data_lists_the_places_looked(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root)
    message = str(info.value)
    assert "\n" not in message
    for place in (root / "mnist", root, root / "MNIST" / "raw"):
        assert str(place) in message
    for name in FILES:
        assert name in message
    assert "download into" in message and "offline (test)" in message
    with pytest.raises(DataError, match="no fashion-mnist data found") as info:
        load_dataset("fashion-mnist", root, download=False)
    assert "download" not in str(info.value)


def test_incomplete_folder_is_not_used(tmp_path):
    folder = write_idx_dataset(tmp_path / "mnist", n_train=20, n_test=10, seed=9)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="no mnist data found"):
        load_dataset("mnist", tmp_path, download=False)


def _write_raw_idx(path: Path, magic: int, shape: tuple[int, ...], payload: bytes) -> None:
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + payload)


def test_corrupt_files_are_data_errors_naming_the_file(tmp_path):
    folder = write_idx_dataset(tmp_path / "mnist", n_train=20, n_test=10, seed=10)
    labels_path = folder / "train-labels-idx1-ubyte.gz"
    images_path = folder / "train-images-idx3-ubyte.gz"
    labels = _read_idx(labels_path)
    images = _read_idx(images_path)

    def expect(match):
        clear_cache()
        with pytest.raises(DataError, match=match) as info:
            load_dataset("mnist", tmp_path)
        assert "\n" not in str(info.value)
        write_idx_dataset(folder, n_train=20, n_test=10, seed=10)

    labels_path.write_bytes(b"not gzip at all")
    expect(f"cannot read mnist file {labels_path}")
    good = labels_path.read_bytes()
    labels_path.write_bytes(good[:12] + bytes(b ^ 0xFF for b in good[12:40]) + good[40:])  # a corrupt deflate stream
    expect("cannot read mnist file")
    _write_raw_idx(labels_path, 2049, (19,), labels[:19].tobytes())  # 19 labels for 20 images
    expect("20 images but 19 labels")
    _write_raw_idx(labels_path, 1234, (20,), labels.tobytes())
    expect(f"{labels_path} is not an IDX file of mnist: magic number 1234, expected 2049")
    _write_raw_idx(labels_path, 2049, (20,), (labels + 10).tobytes())
    expect("label 1[0-9] is not a class of mnist")
    _write_raw_idx(images_path, 2051, (20, 14, 56), images.tobytes())
    expect("images are 14x56, mnist has 28x28")
    _write_raw_idx(images_path, 2051, (20, 28, 28), images.tobytes()[:-5])
    expect("the header says 20x28x28 bytes of data, the file holds")


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("BLADEFL_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root(str(tmp_path / "arg")) == tmp_path / "arg"
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.delenv("BLADEFL_DATA")
    assert resolve_data_root(None) == tmp_path / "xdg" / "bladefl"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_root(None) == Path.home() / ".cache" / "bladefl"


def test_env_var_is_honoured(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "env" / "mnist", n_train=20, n_test=10, seed=11)
    monkeypatch.setenv("BLADEFL_DATA", str(tmp_path / "env"))
    assert load_dataset("mnist").images.shape == (20, 784)


def test_real_mnist_from_env():
    """CI sets BLADEFL_DATA; then the real data must load (a missing file fails here, it is not skipped)."""
    if "BLADEFL_DATA" not in os.environ:
        pytest.skip("BLADEFL_DATA is not set: no real data sets on this machine")
    train = load_dataset("mnist")
    test = load_dataset("mnist", train=False)
    assert train.images.shape == (60000, 784) and test.images.shape == (10000, 784)
    assert torch.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    # The usual normalization constants are the training set's own statistics.
    assert abs(float(train.images.mean())) < 1e-3 and abs(float(train.images.std()) - 1) < 1e-3
    fashion = load_dataset("fashion-mnist", train=False)
    assert fashion.images.shape == (10000, 784)
    assert torch.bincount(fashion.labels).tolist() == [1000] * 10
