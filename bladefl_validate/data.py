"""MNIST and Fashion-MNIST as flat, normalized tensors, read through torchvision from local IDX files.

Data is looked for under a root folder (argument, ``BLADEFL_DATA`` or the user cache folder) in three layouts:
the four IDX files (gzip-compressed or not) in ``<root>/<name>/`` or in ``<root>`` itself, or torchvision's own
``<root>/MNIST/raw/`` / ``<root>/FashionMNIST/raw/``. Files outside torchvision's layout are decompressed once into
a staging folder under ``BLADEFL_CACHE`` (default: the user cache folder), because torchvision reads nothing else.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DATASETS = ("mnist", "fashion-mnist")

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
    """One split of a data set: ``images`` float32 [n, 784] (normalized), ``labels`` int64 [n].

    Loads are cached in-process and the tensors are shared between callers: do not modify them in place.
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    train: bool

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _user_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "bladefl"


def _staging_root() -> Path:
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
    key = re.sub(r"[^a-z0-9]", "", str(name).lower())
    for known in DATASETS:
        if key == re.sub(r"[^a-z0-9]", "", known):
            return known
    raise DataError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")


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


@dataclass(frozen=True)
class _Source:
    """Where the data was found: either IDX files to stage, or a torchvision root to read directly."""

    files: tuple[Path, ...] | None  # IDX files in IDX_FILES order, to be staged
    torchvision_root: Path | None  # a folder holding <Class>/raw/ with the uncompressed files


def _candidates(name: str, root: Path) -> list[str]:
    bare = f"{root} (skipped: named for another data set)" if _names_other_dataset(root, name) else str(root)
    return [str(root / name), bare, str(root / _TORCHVISION_CLASS[name] / "raw")]


def _find_source(name: str, root: Path) -> _Source | None:
    cls = _TORCHVISION_CLASS[name]
    for folder in (root / name, root):
        if folder == root and _names_other_dataset(root, name):
            continue
        files = _idx_set(folder)
        if files is not None:
            return _Source(files=tuple(f.resolve() for f in files), torchvision_root=None)
    if _raw_complete(root / cls / "raw"):
        return _Source(files=None, torchvision_root=root.resolve())
    return None


def _sha256_files(files: tuple[Path, ...]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _stage(name: str, files: tuple[Path, ...]) -> Path:
    """Decompressed copies of ``files`` in torchvision's layout under the staging root; returns that root."""
    key = _sha256_files(files)[:16]
    stage_root = _staging_root() / "staged" / f"{name}-{key}"
    raw = stage_root / _TORCHVISION_CLASS[name] / "raw"
    try:
        raw.mkdir(parents=True, exist_ok=True)
        for base, src in zip(IDX_FILES, files):
            target = raw / base
            if target.is_file():
                continue  # written atomically, so present means complete
            fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{base}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    opener = gzip.open if src.suffix == ".gz" else open
                    with opener(src, "rb") as inp:
                        shutil.copyfileobj(inp, out, 1 << 20)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot stage {name} from {files[0].parent} into {raw}: {_one_line(exc)}") from exc
    return stage_root


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _torchvision_split(name: str, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets  # deferred: importing torchvision costs about a second

    cls = getattr(torchvision.datasets, _TORCHVISION_CLASS[name])
    ds = cls(str(root), train=train, download=download)
    return ds.data, ds.targets


def _to_dataset(name: str, train: bool, data: torch.Tensor, targets: torch.Tensor, where: Path) -> Dataset:
    if data.ndim != 3 or data.dtype != torch.uint8 or targets.ndim != 1:
        raise DataError(f"{name} in {where} has unexpected shapes {tuple(data.shape)} / {tuple(targets.shape)}")
    if data.shape[0] != targets.shape[0]:
        raise DataError(f"{name} in {where}: {data.shape[0]} images but {targets.shape[0]} labels")
    mean, std = NORMALIZATION[name]
    images = data.reshape(data.shape[0], -1).to(torch.float32)
    images.div_(255.0).sub_(mean).div_(std)
    return Dataset(images=images, labels=targets.to(torch.int64).contiguous(), name=name, train=train)


def _stat_signature(name: str, source: _Source) -> tuple[tuple[int, int], ...]:
    if source.files is not None:
        paths = list(source.files)
    else:
        assert source.torchvision_root is not None
        raw = source.torchvision_root / _TORCHVISION_CLASS[name] / "raw"
        paths = [raw / base for base in IDX_FILES]
    return tuple((st.st_size, st.st_mtime_ns) for st in (path.stat() for path in paths))


@functools.lru_cache(maxsize=8)
def _load_cached(
    name: str, source: _Source, signature: tuple[tuple[int, int], ...], train: bool, download: bool
) -> Dataset:
    del signature  # only part of the cache key: a changed source file is loaded (and staged) afresh
    if source.files is not None:
        tv_root, where = _stage(name, source.files), source.files[0].parent
    else:
        assert source.torchvision_root is not None
        tv_root = where = source.torchvision_root
    try:
        data, targets = _torchvision_split(name, tv_root, train, download)
    except DataError:
        raise
    except (RuntimeError, AssertionError, TypeError, ValueError, OSError, EOFError) as exc:
        verb = "download" if download else "read"
        raise DataError(f"cannot {verb} {name} ({'train' if train else 'test'}) from {where}: {_one_line(exc)}") \
            from exc
    return _to_dataset(name, train, data, targets, where)


def load_dataset(
    name: str, data_dir: str | Path | None = None, train: bool = True, *, download: bool = True
) -> Dataset:
    """One split of MNIST or Fashion-MNIST, found under :func:`resolve_data_root`; cached in-process.

    If nothing is found locally and ``download`` is true, torchvision's download into the cache folder is tried.
    """
    name = _canonical_name(name)
    root = resolve_data_root(data_dir)
    source = _find_source(name, root)
    if source is not None:
        return _load_cached(name, source, _stat_signature(name, source), bool(train), False)

    looked = ", ".join(_candidates(name, root))
    expected = ", ".join(f"{base}[.gz]" for base in IDX_FILES)
    message = f"no {name} data found: looked in {looked} for {expected}"
    if not download:
        raise DataError(message)
    cache = _staging_root()
    try:
        return _load_cached(name, _Source(files=None, torchvision_root=cache), (), bool(train), True)
    except DataError as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise DataError(f"{message}; download into {cache} failed: {_one_line(cause)}") from exc


def clear_cache() -> None:
    """Forget every data set loaded in this process."""
    _load_cached.cache_clear()


def _write_idx(path: Path, magic: int, array: np.ndarray, gz: bool) -> None:
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


def write_idx_dataset(folder: Path, n_train: int, n_test: int, seed: int, gz: bool = True) -> Path:
    """Write the four IDX files of a small random MNIST-like data set into ``folder``; returns ``folder``.

    Labels cover all 10 classes (each split needs at least 10 samples). Each image is noise plus a bright band whose
    rows depend on the label, so a model can learn the data.
    """
    if n_train < 10 or n_test < 10:
        raise ValueError(f"each split needs at least 10 samples to cover 10 classes (got {n_train}, {n_test})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 64, size=(n, 28, 28), dtype=np.uint8)
        top = 2 + 2 * labels.astype(np.int64)
        rows = np.arange(28)
        band = (rows[None, :] >= top[:, None]) & (rows[None, :] < top[:, None] + 4)  # [n, 28]
        band = band[:, :, None] & ((rows >= 4) & (rows < 24))[None, None, :]
        images[band] = rng.integers(192, 256, size=int(band.sum()), dtype=np.uint8)
        _write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", _IMAGE_MAGIC, images, gz)
        _write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", _LABEL_MAGIC, labels, gz)
    return folder
