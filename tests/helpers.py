"""Helpers the tests share: small IDX data sets, a textbook training reference, and a tiny deployment."""

from __future__ import annotations

import gzip
import signal
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from bladefl_validate.config import RunConfig
    from bladefl_validate.learning.model import ModelSpec

# The magic numbers of the IDX format, written here independently of the reader (bladefl_validate.data).
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049

#: The repository's root, whichever folder of tests/ a test lives in.
REPO = Path(__file__).resolve().parents[1]

class Hang(BaseException):
    """A call that ran past its limit (a BaseException, so that no command line turns it into an answer)."""


@contextmanager
def call_limit(seconds: int) -> Iterator[None]:
    """Fail the call, rather than the whole suite, if it runs past ``seconds`` (SIGALRM; the main thread). A limit
    per call against hangs, not a timing assertion: give one far above any call's real time on a loaded machine."""
    def hang(signum, frame):
        raise Hang(f"the call ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


#: A tiny deployment the test data (conftest.data_root) serves: K_max = 2 with tau(1) = 14 and tau(2) = 2.
SMALL_RUN: dict[str, Any] = dict(N=4, M=1, K=2, t_sum=24.0, alpha=1.0, beta=10.0, samples_per_client=64, hidden=16,
                                 batch_size=32, difficulty_bits=8, eta=0.05)


def small_run(**changes: Any) -> dict[str, Any]:
    """The settings of :data:`SMALL_RUN` with ``changes``, as RunConfig keywords."""
    return {**SMALL_RUN, **changes}


def small_config(**changes: Any) -> RunConfig:
    """The RunConfig of :data:`SMALL_RUN` with ``changes``."""
    from bladefl_validate.config import RunConfig

    return RunConfig(**small_run(**changes))


def run_flags(settings: Mapping[str, Any]) -> list[str]:
    """RunConfig keywords as the options of ``bladefl-validate run`` (``t_sum`` as ``--t-sum``)."""
    flags: list[str] = []
    for name, value in settings.items():
        flags += [f"--{name}" if name in ("N", "M", "K") else "--" + name.replace("_", "-"), str(value)]
    return flags


def cli_args(data_root: Path, *extra: str, **changes: Any) -> list[str]:
    """``run`` options for the tiny deployment with ``changes``, reading ``data_root``, quiet, then ``extra``."""
    return [*run_flags(small_run(**changes)), "--data-dir", str(data_root), "--quiet", *extra]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path below ``folder`` (hidden ones too) with its bytes, None for a folder: compare before and after."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def _write_idx(path: Path, magic: int, array: np.ndarray, gz: bool) -> None:
    """One IDX file: big-endian magic and shape, then the bytes (gzip-compressed with a fixed mtime if ``gz``)."""
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
        _write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", IMAGE_MAGIC, images, gz)
        _write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", LABEL_MAGIC, labels, gz)
    return folder


def write_data_root(root: Path, sizes: Mapping[str, tuple[int, int, int]]) -> Path:
    """A data root holding, for each data set name, ``(n_train, n_test, seed)`` IDX data under ``root/NAME``."""
    for name, (n_train, n_test, seed) in sizes.items():
        write_idx_dataset(root / name, n_train=n_train, n_test=n_test, seed=seed)
    return root


def reference_train_client(spec: ModelSpec, w0: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, epochs: int, lr: float,
                           batch_size: int, perms: Sequence[torch.Tensor]) -> torch.Tensor:
    """Train one client the textbook way (nn.Module, torch.optim.SGD), visiting samples in ``perms[e]``.

    Slow; the reference that ``train_clients`` is tested against. Returns the trained flat vector ``[d]``.
    """
    import torch
    import torch.nn.functional as F

    assert len(perms) == epochs, f"need one permutation per epoch ({epochs}), got {len(perms)}"
    module, linears = _as_module(spec, w0)
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    m = X.shape[0]
    with torch.enable_grad():
        for epoch in range(epochs):
            order = perms[epoch].to(X.device)
            for start in range(0, m, batch_size):
                idx = order[start : start + batch_size]
                optimizer.zero_grad()
                F.cross_entropy(module(X[idx]), Y[idx]).backward()
                optimizer.step()
    w = torch.cat([part for lin in linears for part in (lin.weight.detach().T.reshape(-1), lin.bias.detach())])
    assert w.numel() == spec.dim
    return w


def _as_module(spec: ModelSpec, w: torch.Tensor) -> tuple[torch.nn.Module, list[torch.nn.Linear]]:
    """An ordinary nn.Module holding a copy of the flat MLP or logistic-regression vector ``w``, and its layers."""
    import torch
    from torch import nn

    blocks = [t[0] for t in spec.unflatten(w.detach().reshape(1, -1))]
    if spec.kind == "mlp":
        linears = [nn.Linear(spec.input_dim, spec.hidden), nn.Linear(spec.hidden, spec.num_classes)]
        module: nn.Module = nn.Sequential(linears[0], nn.ReLU(), linears[1])
    else:
        linears = [nn.Linear(spec.input_dim, spec.num_classes)]
        module = linears[0]
    module = module.to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        for lin, weight, bias in zip(linears, blocks[0::2], blocks[1::2]):
            lin.weight.copy_(weight.T)
            lin.bias.copy_(bias)
    return module, linears


def tiny_kstar_design():
    """A K* study design small enough for a test: 4 clients, one data set, 2 seeds, K up to 8."""
    from bladefl_validate.config import RunConfig
    from bladefl_validate.studies.kstar.design import Design

    base = RunConfig(N=4, K=1, samples_per_client=32, hidden=8, batch_size=16, difficulty_bits=2, eta=0.05)
    return Design(
        base=base, datasets=("mnist",), centre={"t_sum": 12.0, "beta": 2.0, "M": 1, "sigma2": 0.05},
        arms={"t_sum": (8.0, 16.0), "M": (0, 2), "sigma2": (0.0, 0.5)},
        box={"t_sum": (8.0, 16.0), "beta": (2.0, 3.0), "M": (0, 2), "sigma2": (0.0, 0.5)},
        off_grid=2, base_seeds=2, figure_seeds=2, seed_step=1, max_seeds=2, full_k_up_to=8,
        pilots=(("centre", None, None), ("arm:t_sum", "t_sum", 16.0), ("arm:M", "M", 2), ("arm:sigma2", "sigma2", 0.5)),
    )
