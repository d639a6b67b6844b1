"""MNIST and Fashion-MNIST as flat, normalized tensors, read from local IDX files; and data sets of your own
(:func:`register_dataset`: tensors of any input shape, or a torchvision-style data set).

Data is looked for under a root folder (argument, ``BLADEFL_DATA`` or the user cache folder) in three layouts:
the four IDX files (gzip-compressed or not) in ``<root>/<name>/`` or in ``<root>`` itself, or torchvision's own
``<root>/MNIST/raw/`` / ``<root>/FashionMNIST/raw/``. The files are read here, checked as they are read (magic
number, shapes, 28x28 images, labels 0..9, whole gzip streams); torchvision is used only to download into the
cache folder when nothing is found locally.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bladefl_platform.errors import InputError

from . import config
from .config import DATASETS, DataInfo  # defined there, where a run's settings are checked without torch

# The four files every MNIST-style reader expects, without the ".gz".
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# Per-pixel mean and standard deviation of the training set, after scaling to [0, 1].
NORMALIZATION: dict[str, tuple[float, float]] = {
    "mnist": (0.1307, 0.3081),
    "fashion-mnist": (0.2860, 0.3530),
}

_TORCHVISION_CLASS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_IMAGE_MAGIC = 2051
_LABEL_MAGIC = 2049


class DataError(Exception):
    """The data set cannot be found or read; the message is one line."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a data set: ``images`` float32 ``[n, *input_shape]`` (MNIST's: [n, 784], normalized), ``labels``
    int64 [n] in 0..num_classes-1.

    Loads are cached in-process and the tensors are shared between callers: do not modify them in place.
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    train: bool
    num_classes: int = 10

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample (MNIST's: ``(784,)``)."""
        return tuple(int(s) for s in self.images.shape[1:])


def _user_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "bladefl"


def _download_root() -> Path:
    env = os.environ.get("BLADEFL_CACHE")
    return Path(env).expanduser() if env else _user_cache_dir()


def resolve_data_root(data_dir: str | Path | None) -> Path:
    """The folder to look for data in: ``data_dir``, else ``$BLADEFL_DATA``, else the user cache folder."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get("BLADEFL_DATA")
    if env:
        return Path(env).expanduser()
    return _user_cache_dir()


def _canonical_name(name: str) -> str:
    if name in _REGISTERED:
        return name
    key = re.sub(r"[^a-z0-9]", "", str(name).lower())
    for known in DATASETS:
        if key == re.sub(r"[^a-z0-9]", "", known):
            return known
    raise DataError(f"unknown data set {name!r}; known: {', '.join((*DATASETS, *_REGISTERED))}")


def _idx_file(folder: Path, base: str) -> Path | None:
    """The file holding ``base`` in ``folder``: compressed first, then uncompressed."""
    for candidate in (folder / f"{base}.gz", folder / base):
        if candidate.is_file():
            return candidate
    return None


def _idx_set(folder: Path) -> tuple[Path, ...] | None:
    files = [_idx_file(folder, base) for base in IDX_FILES]
    if any(f is None for f in files):
        return None
    return tuple(f for f in files if f is not None)


def _names_other_dataset(folder: Path, name: str) -> bool:
    # A bare folder called "fashion-mnist" must not be read as MNIST (and vice versa) just because it holds IDX files.
    key = re.sub(r"[^a-z0-9]", "", folder.name.lower())
    return any(key == re.sub(r"[^a-z0-9]", "", other) for other in DATASETS if other != name)


def _raw_complete(raw: Path) -> bool:
    return all((raw / base).is_file() for base in IDX_FILES)


def _candidates(name: str, root: Path) -> list[str]:
    bare = f"{root} (skipped: named for another data set)" if _names_other_dataset(root, name) else str(root)
    return [str(root / name), bare, str(root / _TORCHVISION_CLASS[name] / "raw")]


def _find_source(name: str, root: Path) -> tuple[Path, ...] | None:
    """The four IDX files of ``name`` under ``root`` (IDX_FILES order), in the first layout that has them all."""
    cls = _TORCHVISION_CLASS[name]
    for folder in (root / name, root):
        if folder == root and _names_other_dataset(root, name):
            continue
        files = _idx_set(folder)
        if files is not None:
            return tuple(f.resolve() for f in files)
    raw = root / cls / "raw"
    if _raw_complete(raw):
        return tuple((raw / base).resolve() for base in IDX_FILES)
    return None


def _read_idx(path: Path, magic: int, ndim: int, name: str) -> np.ndarray:
    """The array in one IDX file (gzip-compressed or not), checked: DataError naming the file otherwise."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read {name} file {path}: {_one_line(exc)}") from None
    head = 4 + 4 * ndim
    if len(data) < head:
        raise DataError(f"{path} is not an IDX file of {name}: only {len(data)} bytes")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{path} is not an IDX file of {name}: magic number {found}, expected {magic}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape, dtype=np.int64))
    if len(data) - head != size:
        raise DataError(f"{path}: the header says {'x'.join(map(str, shape))} bytes of data, the file holds "
                        f"{len(data) - head}")
    return np.frombuffer(data, dtype=np.uint8, offset=head).reshape(shape)


def _read_split(name: str, files: tuple[Path, ...], train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [n, 28, 28] and labels [n] of one split from the four IDX files (IDX_FILES order)."""
    images_path, labels_path = files[0:2] if train else files[2:4]
    images = _read_idx(images_path, _IMAGE_MAGIC, 3, name)
    labels = _read_idx(labels_path, _LABEL_MAGIC, 1, name)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, {name} has 28x28")
    if labels.size and int(labels.max()) > 9:
        raise DataError(f"{labels_path}: label {int(labels.max())} is not a class of {name} (0..9)")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _download(name: str, root: Path) -> tuple[Path, ...]:
    """Download ``name`` with torchvision into ``root``; the four IDX files it wrote."""
    import torchvision.datasets  # deferred: importing torchvision costs about two seconds

    cls = getattr(torchvision.datasets, _TORCHVISION_CLASS[name])
    cls(str(root), train=True, download=True)
    raw = root / _TORCHVISION_CLASS[name] / "raw"
    return tuple(raw / base for base in IDX_FILES)


def _to_dataset(name: str, train: bool, data: torch.Tensor, targets: torch.Tensor, where: Path) -> Dataset:
    if data.ndim != 3 or data.dtype != torch.uint8 or targets.ndim != 1:
        raise DataError(f"{name} in {where} has unexpected shapes {tuple(data.shape)} / {tuple(targets.shape)}")
    if data.shape[0] != targets.shape[0]:
        raise DataError(f"{name} in {where}: {data.shape[0]} images but {targets.shape[0]} labels")
    mean, std = NORMALIZATION[name]
    images = data.reshape(data.shape[0], -1).to(torch.float32)
    images.div_(255.0).sub_(mean).div_(std)
    return Dataset(images=images, labels=targets.to(torch.int64).contiguous(), name=name, train=train)


def _stat_signature(files: tuple[Path, ...]) -> tuple[tuple[int, int], ...]:
    return tuple((st.st_size, st.st_mtime_ns) for st in (path.stat() for path in files))


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, files: tuple[Path, ...], signature: tuple[tuple[int, int], ...], train: bool) -> Dataset:
    del signature  # only part of the cache key: a changed source file is read afresh
    data, targets = _read_split(name, files, train)
    return _to_dataset(name, train, data, targets, files[0].parent)


def load_dataset(
    name: str, data_dir: str | Path | None = None, train: bool = True, *, download: bool = True
) -> Dataset:
    """One split of MNIST or Fashion-MNIST, found under :func:`resolve_data_root`; cached in-process (or of a data set
    registered in this process: :func:`register_dataset`).

    If nothing is found locally and ``download`` is true, torchvision's download into the cache folder is tried.
    """
    name = _canonical_name(name)
    if name in _REGISTERED:
        return _REGISTERED[name][0 if train else 1]
    root = resolve_data_root(data_dir)
    source = _find_source(name, root)
    if source is not None:
        return _load_cached(name, source, _stat_signature(source), bool(train))

    looked = ", ".join(_candidates(name, root))
    expected = ", ".join(f"{base}[.gz]" for base in IDX_FILES)
    message = f"no {name} data found: looked in {looked} for {expected}"
    if not download:
        raise DataError(message)
    cache = _download_root()
    try:
        files = _download(name, cache)
    except Exception as exc:  # torchvision raises anything from RuntimeError to URLError when offline
        raise DataError(f"{message}; download into {cache} failed: {_one_line(exc)}") from None
    return _load_cached(name, files, _stat_signature(files), bool(train))


#: Data sets registered in this process: name -> (train split, test split).
_REGISTERED: dict[str, tuple[Dataset, Dataset]] = {}


def register_dataset(name: str, train: Any, test: Any = None) -> DataInfo:
    """Make ``RunConfig(dataset=name)`` train on ``train`` and test on ``test`` (default: on ``train``).

    Each split is a pair ``(inputs, labels)`` of tensors or arrays (inputs of any shape ``[n, ...]``), or a
    torchvision-style data set (``len(ds)`` and ``ds[i] -> (input, label)``). Inputs are used as given (normalize
    them first) as float32; labels may be any values, the classes are their sorted distinct values. Register in a
    module every process imports (``BLADEFL_PLUGINS``, see :mod:`bladefl_validate.plugins`). Returns what a run's
    settings are checked against: the input shape, the classes and a fingerprint of the data.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name) or name in DATASETS:
        raise InputError(f"a data set's name must be new, lower-case letters, digits, '-', '_' or '.' (got {name!r})")
    x_train, y_train = _split_arrays(train, "train")
    x_test, y_test = (x_train, y_train) if test is None else _split_arrays(test, "test")
    if x_test.shape[1:] != x_train.shape[1:]:
        raise InputError(f"data set {name!r}: test inputs are {list(x_test.shape[1:])}, train inputs "
                         f"{list(x_train.shape[1:])}")
    classes, codes = np.unique(np.concatenate([y_train, y_test]), return_inverse=True)
    if classes.size < 2:
        raise InputError(f"data set {name!r}: the labels hold {classes.size} class(es), training needs at least 2")
    labels = torch.from_numpy(codes.astype(np.int64))
    splits = (Dataset(x_train, labels[: len(y_train)].clone(), name, True, int(classes.size)),
              Dataset(x_test, labels[len(y_train):].clone(), name, False, int(classes.size)))
    info = DataInfo(splits[0].input_shape, int(classes.size), _fingerprint(splits))
    _REGISTERED[name] = splits
    config.REGISTERED_DATASETS[name] = info
    return info


def _split_arrays(split: Any, which: str) -> tuple[torch.Tensor, np.ndarray]:
    """Inputs float32 ``[n, ...]`` and 1-D labels of one split, from a pair or a torchvision-style data set."""
    if isinstance(split, tuple) and len(split) == 2:
        inputs, labels = split
    elif hasattr(split, "__len__") and hasattr(split, "__getitem__"):
        items = [split[i] for i in range(len(split))]
        inputs = torch.stack([torch.as_tensor(np.asarray(x)) for x, _ in items]) if items else torch.empty(0)
        labels = [y for _, y in items]
    else:
        raise InputError(f"the {which} split must be (inputs, labels) or a data set with len() and [i] -> (x, y)")
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if x.dim() < 2 or x.shape[0] == 0 or y.shape != (x.shape[0],):
        raise InputError(f"the {which} split needs inputs [n >= 1, ...] and n labels, got inputs {list(x.shape)} "
                         f"and labels {list(y.shape)}")
    x = x.detach().to(device="cpu", dtype=torch.float32).contiguous()
    if not bool(torch.isfinite(x).all()):
        raise InputError(f"the {which} split's inputs are not all finite")
    return x, y


def _fingerprint(splits: tuple[Dataset, Dataset]) -> str:
    """A short SHA-256 of both splits' inputs and labels: a stored result is reused only for the same data."""
    digest = hashlib.sha256()
    for split in splits:
        digest.update(repr((split.input_shape, split.num_classes, len(split))).encode())
        digest.update(split.images.numpy().tobytes())
        digest.update(split.labels.numpy().tobytes())
    return digest.hexdigest()[:16]


def clear_cache() -> None:
    """Forget every data set loaded in this process."""
    _load_cached.cache_clear()

