"""Local training of all clients in one batched computation, a per-client reference, evaluation and FedAvg."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bladefl_theory.errors import InputError

from .model import ModelSpec

__all__ = ["epoch_permutations", "train_clients", "reference_train_client", "evaluate", "fedavg"]


def _check_training_args(epochs: int, lr: float, batch_size: int) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise InputError(f"epochs must be a non-negative integer, got {epochs!r}")
    if not (lr > 0 and lr < float("inf")):
        raise InputError(f"learning rate must be positive and finite, got {lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch size must be a positive integer, got {batch_size!r}")


def epoch_permutations(
    n: int, m: int, epochs: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-epoch, per-client sample orders ``[epochs, n, m]`` (int64), drawn on the generator's device.

    Epoch by epoch, one ``torch.rand(n, m)`` draw argsorted per row: exactly what train_clients consumes.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    perms = [
        torch.argsort(torch.rand(n, m, generator=generator, device=device), dim=1)
        for _ in range(epochs)
    ]
    if not perms:
        return torch.empty(0, n, m, dtype=torch.int64, device=device)
    return torch.stack(perms)


def train_clients(
    spec: ModelSpec,
    W0: torch.Tensor,
    X: torch.Tensor,
    Y: torch.Tensor,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Run ``epochs`` of plain mini-batch SGD (cross-entropy) for n clients at once; returns new ``W [n, d]``.

    ``W0 [n, d]``, ``X [n, m, in]``, ``Y [n, m]``; every client reshuffles its own samples each epoch
    (see epoch_permutations; ``generator=None`` uses torch's global RNG). W0 is not modified.
    """
    _check_training_args(epochs, lr, batch_size)
    if W0.dim() != 2 or W0.shape[1] != spec.dim:
        raise InputError(f"W0 must have shape [n, {spec.dim}], got {list(W0.shape)}")
    n = W0.shape[0]
    if X.dim() != 3 or X.shape[0] != n or X.shape[2] != spec.input_dim:
        raise InputError(f"X must have shape [{n}, m, {spec.input_dim}], got {list(X.shape)}")
    m = X.shape[1]
    if tuple(Y.shape) != (n, m):
        raise InputError(f"Y must have shape [{n}, {m}], got {list(Y.shape)}")

    device = W0.device
    X = X.to(device=device, dtype=W0.dtype)
    Y = Y.to(device=device, dtype=torch.int64)
    perms = epoch_permutations(n, m, epochs, generator).to(device)
    rows = torch.arange(n, device=device).unsqueeze(1)

    W = W0.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        for epoch in range(epochs):
            # One gather per epoch, so every batch below is a contiguous slice.
            Xp = X[rows, perms[epoch]]
            Yp = Y[rows, perms[epoch]]
            for start in range(0, m, batch_size):
                Xb = Xp[:, start : start + batch_size]
                Yb = Yp[:, start : start + batch_size]
                b = Xb.shape[1]
                logits = spec.forward(W, Xb)
                per_sample = F.cross_entropy(
                    logits.reshape(n * b, -1), Yb.reshape(n * b), reduction="none"
                )
                # Clients' parameters are disjoint, so the gradient of the sum of per-client means
                # gives each client exactly the gradient of its own mean loss.
                loss = per_sample.view(n, b).mean(dim=1).sum()
                (grad,) = torch.autograd.grad(loss, W)
                with torch.no_grad():
                    W.sub_(grad, alpha=lr)
    return W.detach()


def _as_module(spec: ModelSpec, w: torch.Tensor) -> nn.Module:
    """An ordinary nn.Module holding a copy of the flat vector w."""
    blocks = spec.unflatten(w.detach().reshape(1, -1))
    if spec.kind == "mlp":
        W1, b1, W2, b2 = (t[0] for t in blocks)
        first = nn.Linear(spec.input_dim, spec.hidden)
        second = nn.Linear(spec.hidden, spec.num_classes)
        module: nn.Module = nn.Sequential(first, nn.ReLU(), second)
        pairs = [(first, W1, b1), (second, W2, b2)]
    else:
        Wl, bl = (t[0] for t in blocks)
        layer = nn.Linear(spec.input_dim, spec.num_classes)
        module = layer
        pairs = [(layer, Wl, bl)]
    module = module.to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        for lin, weight, bias in pairs:
            lin.weight.copy_(weight.T)
            lin.bias.copy_(bias)
    return module


def _module_to_flat(spec: ModelSpec, module: nn.Module) -> torch.Tensor:
    linears = [mod for mod in module.modules() if isinstance(mod, nn.Linear)]
    parts: list[torch.Tensor] = []
    for lin in linears:
        parts.append(lin.weight.detach().T.reshape(-1))
        parts.append(lin.bias.detach().reshape(-1))
    w = torch.cat(parts)
    assert w.numel() == spec.dim
    return w


def reference_train_client(
    spec: ModelSpec,
    w0: torch.Tensor,
    X: torch.Tensor,
    Y: torch.Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    perms: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Train one client the textbook way (nn.Module, torch.optim.SGD), visiting samples in ``perms[e]``.

    Slow; a reference that train_clients is tested against. Returns the trained flat vector ``[d]``.
    """
    _check_training_args(epochs, lr, batch_size)
    if len(perms) != epochs:
        raise InputError(f"need one permutation per epoch ({epochs}), got {len(perms)}")
    module = _as_module(spec, w0)
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    m = X.shape[0]
    with torch.enable_grad():
        for epoch in range(epochs):
            order = perms[epoch].to(X.device)
            for start in range(0, m, batch_size):
                idx = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = F.cross_entropy(module(X[idx]), Y[idx])
                loss.backward()
                optimizer.step()
    return _module_to_flat(spec, module)


@torch.no_grad()
def evaluate(
    spec: ModelSpec, w: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, chunk: int = 8192
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of model ``w [d]`` on ``X [m, in]``, ``Y [m]``."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InputError(f"chunk must be a positive integer, got {chunk!r}")
    if w.dim() != 1 or w.shape[0] != spec.dim:
        raise InputError(f"w must have shape [{spec.dim}], got {list(w.shape)}")
    m = X.shape[0]
    if m == 0 or X.dim() != 2 or tuple(Y.shape) != (m,):
        raise InputError(
            f"need non-empty X [m, {spec.input_dim}] and Y [m], got {list(X.shape)} and {list(Y.shape)}"
        )
    W = w.unsqueeze(0)
    total_loss = 0.0
    correct = 0
    for start in range(0, m, chunk):
        Xc = X[start : start + chunk].to(device=w.device, dtype=w.dtype).unsqueeze(0)
        Yc = Y[start : start + chunk].to(device=w.device, dtype=torch.int64)
        logits = spec.forward(W, Xc)[0]
        # Sums accumulated in float64 so many chunks do not lose precision.
        total_loss += F.cross_entropy(logits, Yc, reduction="sum").double().item()
        correct += int((logits.argmax(dim=1) == Yc).sum().item())
    return total_loss / m, correct / m


def fedavg(W: torch.Tensor) -> torch.Tensor:
    """Equal-weight average ``[d]`` of stacked models ``W [n, d]``."""
    if W.dim() != 2 or W.shape[0] < 1:
        raise InputError(f"fedavg needs stacked models [n >= 1, d], got {list(W.shape)}")
    return W.mean(dim=0)
