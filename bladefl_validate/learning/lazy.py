"""Lazy clients: which ones are lazy, and the noisy copies of honest models they submit."""

from __future__ import annotations

import math

import torch

from bladefl_platform.errors import InputError

__all__ = ["choose_lazy", "lazy_copies"]


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def choose_lazy(N: int, M: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """M distinct client indices out of N, sorted (int64, on the generator's device): a run's lazy clients."""
    if not _is_count(N) or not _is_count(M) or M > N:
        raise InputError(f"need integers 0 <= M <= N for the lazy clients, got N={N!r}, M={M!r}")
    device = generator.device if generator is not None else torch.device("cpu")
    chosen = torch.randperm(N, generator=generator, device=device)[:M]
    return torch.sort(chosen).values


def lazy_copies(
    W_honest: torch.Tensor,
    num_lazy: int,
    sigma2: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Models of ``num_lazy`` lazy clients: each a uniformly random honest row of ``W_honest [h, d]``
    plus i.i.d. N(0, sigma2) noise.

    Returns ``(W_lazy [num_lazy, d], sources [num_lazy])``, sources indexing rows of W_honest.
    The paper calls sigma2 a variance, and so does this function: the noise std is sqrt(sigma2).
    The authors' public code instead passed it as a standard deviation, re-added noise to the whole
    lazy slice once per lazy client, and let a lazy client copy an already-lazy one; none of that
    is done here: every lazy client gets one independent noise draw on top of an honest model.
    Random draws (sources, then noise) are the same whatever sigma2 is, so runs differing only in
    sigma2 pick the same sources; sigma2 = 0 returns exact copies.
    """
    if W_honest.dim() != 2 or W_honest.shape[0] < 1:
        raise InputError(f"need at least one honest model, W_honest [h >= 1, d]; got {list(W_honest.shape)}")
    if not _is_count(num_lazy):
        raise InputError(f"num_lazy must be a non-negative integer, got {num_lazy!r}")
    sigma2 = float(sigma2)
    if not (sigma2 >= 0 and math.isfinite(sigma2)):
        raise InputError(f"noise variance sigma2 must be finite and >= 0, got {sigma2!r}")
    h, d = W_honest.shape
    gen_device = generator.device if generator is not None else torch.device("cpu")
    sources = torch.randint(h, (num_lazy,), generator=generator, device=gen_device)
    noise = torch.randn(num_lazy, d, generator=generator, device=gen_device, dtype=W_honest.dtype)
    sources = sources.to(W_honest.device)
    W_lazy = W_honest[sources].detach().clone()
    if sigma2 > 0:
        W_lazy.add_(noise.to(W_honest.device), alpha=math.sqrt(sigma2))
    return W_lazy, sources
