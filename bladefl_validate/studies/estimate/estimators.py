"""Wang et al.'s estimators of L, xi, delta and theta on one round's models, batched over clients.

After round k's aggregation, with w_i the model client i submitted and w the new global model, on
client i's own data D_i:

- ``L_i  = ‖∇F_i(w_i) − ∇F_i(w)‖ / ‖w_i − w‖``      (smoothness, Assumption 1.3)
- ``xi_i = |F_i(w_i) − F_i(w)| / ‖w_i − w‖``         (Lipschitz constant of F_i, Assumption 1.2)
- ``delta_i = ‖∇F_i(w) − ∇F(w)‖``, ``∇F = Σ|D_i|∇F_i / Σ|D_i|``   (gradient divergence, Definition 1)
- ``theta`` of a lazy client: ‖its own tau local epochs from the round's starting global model on its
  own data − the honest model it copied‖ (the noise has its own term in Theorem 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bladefl_platform.errors import InputError

from ...learning.model import ModelSpec, ModuleSpec
from ...learning.training import train_clients

__all__ = ["ClientEstimates", "client_estimates", "lazy_theta"]


@dataclass(frozen=True)
class ClientEstimates:
    """Per-client estimates of one round (tensors ``[n]``, float64, on the models' device)."""

    distance: torch.Tensor  # ‖w_i − w‖
    L: torch.Tensor  # ‖∇F_i(w_i) − ∇F_i(w)‖ / ‖w_i − w‖ (NaN where w_i = w)
    xi: torch.Tensor  # |F_i(w_i) − F_i(w)| / ‖w_i − w‖ (NaN where w_i = w)
    delta: torch.Tensor  # ‖∇F_i(w) − ∇F(w)‖
    grad_norm: torch.Tensor  # ‖∇F_i(w)‖, a pointwise lower bound on the Lipschitz constant xi
    loss_local: torch.Tensor  # F_i(w_i)
    loss_global: torch.Tensor  # F_i(w)


def _client_losses_and_grads(
    spec: ModelSpec | ModuleSpec, W: torch.Tensor, X: torch.Tensor, Y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each client's mean cross-entropy on its own data and its gradient: ``[n]`` and ``[n, d]``.

    One batched forward/backward over the stacked weights: the clients' parameters are disjoint,
    so the gradient of the sum of the per-client means is every client's own gradient.
    """
    n, m = Y.shape
    W = W.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = spec.forward(W, X)
        losses = F.cross_entropy(logits.reshape(n * m, -1), Y.reshape(n * m), reduction="none").view(n, m).mean(dim=1)
        (grads,) = torch.autograd.grad(losses.sum(), W)
    return losses.detach(), grads


def client_estimates(
    spec: ModelSpec | ModuleSpec,
    W_local: torch.Tensor,
    w: torch.Tensor,
    X: torch.Tensor,
    Y: torch.Tensor,
    sizes: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> ClientEstimates:
    """Wang et al.'s L_i, xi_i and delta_i for n clients at once.

    ``W_local [n, d]`` the clients' last local models, ``w [d]`` the global model, ``X [n, m, in]``,
    ``Y [n, m]`` each client's data; ``sizes [n]`` the |D_i| weighting ∇F (default: all equal to m).
    Computed in ``dtype`` (float64 by default: the differences of gradients are small).
    """
    if W_local.dim() != 2 or W_local.shape[1] != spec.dim:
        raise InputError(f"W_local must have shape [n, {spec.dim}], got {list(W_local.shape)}")
    if w.dim() != 1 or w.shape[0] != spec.dim:
        raise InputError(f"w must have shape [{spec.dim}], got {list(w.shape)}")
    n = W_local.shape[0]
    if X.dim() != 3 or X.shape[0] != n or tuple(Y.shape) != tuple(X.shape[:2]):
        raise InputError(f"need X [{n}, m, in] and Y [{n}, m], got {list(X.shape)} and {list(Y.shape)}")
    device = W_local.device
    X = X.to(device=device, dtype=dtype)
    Y = Y.to(device=device, dtype=torch.int64)
    W_local = W_local.to(dtype)
    W_global = w.to(device=device, dtype=dtype).unsqueeze(0).expand(n, -1)
    if sizes is None:
        sizes = torch.full((n,), float(X.shape[1]), dtype=dtype, device=device)
    sizes = sizes.to(device=device, dtype=dtype)

    loss_local, grad_local = _client_losses_and_grads(spec, W_local, X, Y)
    loss_global, grad_global = _client_losses_and_grads(spec, W_global, X, Y)
    distance = torch.linalg.vector_norm(W_local - W_global, dim=1)
    nan = torch.full_like(distance, float("nan"))
    positive = distance > 0
    L = torch.where(positive, torch.linalg.vector_norm(grad_local - grad_global, dim=1) / distance, nan)
    xi = torch.where(positive, (loss_local - loss_global).abs() / distance, nan)
    grad_F = (sizes.unsqueeze(1) * grad_global).sum(dim=0) / sizes.sum()
    delta = torch.linalg.vector_norm(grad_global - grad_F, dim=1)
    grad_norm = torch.linalg.vector_norm(grad_global, dim=1)
    return ClientEstimates(distance, L, xi, delta, grad_norm, loss_local, loss_global)


def lazy_theta(
    spec: ModelSpec | ModuleSpec,
    w_start: torch.Tensor,
    W_copied: torch.Tensor,
    W_submitted: torch.Tensor,
    X: torch.Tensor,
    Y: torch.Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """theta for each lazy client: ``(‖own − copied‖, ‖own − submitted‖)``, each ``[M]`` float64.

    ``own`` is what the lazy client would have trained: ``epochs`` local epochs of the run's SGD
    from ``w_start`` on its own data ``X [M, m, in]``, ``Y [M, m]`` (one batched computation, its
    own ``generator`` so the run's random stream is untouched). ``W_copied [M, d]`` are the honest
    models the lazy clients copied, ``W_submitted [M, d]`` what they submitted (copy + noise).
    """
    M = W_copied.shape[0]
    if W_submitted.shape != W_copied.shape or X.shape[0] != M:
        raise InputError(
            f"need W_copied, W_submitted [M, d] and X [M, m, in] with the same M, got "
            f"{list(W_copied.shape)}, {list(W_submitted.shape)}, {list(X.shape)}"
        )
    if M == 0:
        empty = torch.empty(0, dtype=torch.float64, device=W_copied.device)
        return empty, empty.clone()
    own = train_clients(spec, w_start.detach().unsqueeze(0).expand(M, -1), X, Y, epochs, lr, batch_size, generator)
    own = own.to(torch.float64)
    theta = torch.linalg.vector_norm(own - W_copied.to(torch.float64), dim=1)
    theta_submitted = torch.linalg.vector_norm(own - W_submitted.to(torch.float64), dim=1)
    return theta, theta_submitted
