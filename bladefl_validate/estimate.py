"""Estimate the bound's learning constants L, xi, delta, theta, phi and epsilon from real runs.

Following Wang et al. (2019) and their code, as summarized in the project's theory notes. After
round k's aggregation (the start of round k+1), with w_i the model client i submitted and w the
new global model, on client i's own data D_i:

- ``L_i  = ‖∇F_i(w_i) − ∇F_i(w)‖ / ‖w_i − w‖``      (smoothness, Assumption 1.3)
- ``xi_i = |F_i(w_i) − F_i(w)| / ‖w_i − w‖``         (Lipschitz constant of F_i, Assumption 1.2)
- ``delta_i = ‖∇F_i(w) − ∇F(w)‖``, ``∇F = Σ|D_i|∇F_i / Σ|D_i|``   (gradient divergence, Definition 1)

Every seed runs twice, with the same partition, initial model w0 and w*: once *clean* (M = 0) and
once as configured (M lazy clients at sigma2). L, xi and delta are Lemma 1's constants, properties of
the learning problem, so they come from the clean run: with lazy clients the noisy copies enter the
global model w, ‖w_i − w‖ is dominated by that noise, and the ratios measure the loss along a random
direction (on MNIST's MLP that made L about ten times too small). A round's L and xi are the
|D_i|-weighted means over the clients, its delta the weighted mean of delta_i. The constants are the
medians of the per-round values over rounds and seeds.

- ``theta``: for each lazy client, ‖(its own tau local epochs from the round's starting global
  model on its own data) − (the honest model it copied)‖. The noise is left out: it has its own
  term, xi·sqrt(M)/N·sigma2, in Theorem 1 (Remark 2 separates the two). The distance to the
  submitted, noisy model is kept too (``theta_submitted``). Median over lazy clients, rounds, seeds,
  from the run with lazy clients.
- ``w*``: full-batch L-BFGS (strong Wolfe line search) from the run's initial model w0 on the union
  of the clients' data, stopped by :class:`OptimumOptions`' rule. Started from w0 so that, where
  the minimizers form a set (softmax's shift invariance, the MLP's symmetries), the one reached is
  the one the quasi-Newton path from w0 finds.
- ``phi = (1 − eta·L/2) / ‖w0 − w*‖²`` per seed (Wang et al.'s omega = 1/‖w0 − w*‖²; the paper's
  Lemma 1 prints ‖w0 − w*‖ with no square), with L the estimate above; median over seeds.
- ``epsilon``: Wang et al.'s proof needs F(w) − F(w*) ≥ epsilon along the run, so per seed the
  minimum over rounds of F(w^k) − F(w*) (F on the union of the clients' data, as the run's
  ``global_train_loss``) in the run with lazy clients, the system Theorem 1 bounds; median over
  seeds. The clean run's minimum is recorded as ``epsilon_clean``.

:func:`simulate` runs unchanged; an observer receives each round's state, so the estimates come
from exactly the runs ``bladefl-validate run`` makes with the same seeds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bladefl_platform.atomic import atomic_write_text, check_writable
from bladefl_platform.errors import InputError
from bladefl_platform.execution import Execution, run_tasks
from bladefl_platform.store import ResultStore
from bladefl_theory.profiles import CONSTANT_NAMES

from .config import RunConfig
from .learning.model import ModelSpec, ModuleSpec, make_spec
from .simulation import RoundState, simulate
from .tasks import ESTIMATE, task_context
from .learning.training import evaluate, train_clients

__all__ = [
    "OptimumOptions",
    "Optimum",
    "ClientEstimates",
    "EstimateResult",
    "client_estimates",
    "lazy_theta",
    "find_optimum",
    "spread",
    "estimate_constants",
    "estimate_configs",
    "estimate_result",
    "estimate_seed",
    "write_estimate",
    "check_profile_path",
    "samples_path_for",
]

#: Columns of :attr:`EstimateResult.samples`, one row per (seed, round, client).
SAMPLE_COLUMNS = (
    "seed",
    "M",
    "round",
    "client",
    "lazy",
    "source",
    "samples",
    "distance",
    "L",
    "xi",
    "delta",
    "grad_norm",
    "theta",
    "theta_submitted",
    "loss_local",
    "loss_global",
    "global_train_loss",
    "gap",
)


# ---------------------------------------------------------------------------------------------
# The estimators on one round's models, batched over clients.


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


# ---------------------------------------------------------------------------------------------
# w*: centralized training on the union of the clients' data.


@dataclass(frozen=True)
class OptimumOptions:
    """The stopping rule of the centralized training that finds w* (checked at every L-BFGS iterate).

    In order: F(w) ≤ ``loss_floor`` (the data are interpolated: cross-entropy's infimum 0 is not
    attained, the path runs off to infinity, and the first iterate this close to 0 stands for w*);
    ‖∇F(w)‖ ≤ ``gtol``; the relative decrease of F over the last ``window`` iterations ≤ ``rtol``;
    else ``max_iter`` iterations (then not converged). A step that does not move resets the L-BFGS
    memory; if steepest descent does not move either, the search stops as ``stalled`` (not converged).
    ``dtype`` "auto" is float64 for logreg and float32 for the MLP (float64 triples its cost).
    """

    rtol: float = 1e-4
    window: int = 10
    loss_floor: float = 1e-6
    gtol: float = 1e-8
    max_iter: int = 2000
    history_size: int = 20
    dtype: str = "auto"

    def __post_init__(self) -> None:
        for name in ("rtol", "loss_floor", "gtol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 and math.isfinite(v)):
                raise InputError(f"w* option {name} must be a finite number >= 0 (got {v!r})")
        for name in ("window", "max_iter", "history_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"w* option {name} must be a positive integer (got {v!r})")
        if self.dtype not in ("auto", "float32", "float64"):
            raise InputError(f"w* option dtype must be auto, float32 or float64 (got {self.dtype!r})")

    def dtype_for(self, spec: ModelSpec | ModuleSpec) -> str:
        if self.dtype != "auto":
            return self.dtype
        return "float64" if spec.kind == "logreg" else "float32"

    def describe(self, spec: ModelSpec | ModuleSpec | None = None) -> str:
        dtype = self.dtype_for(spec) if spec is not None else self.dtype
        return (
            f"full-batch L-BFGS (strong Wolfe, history {self.history_size}, {dtype}) from w0 on the union of the "
            f"clients' data; stop at the first iterate with F <= {self.loss_floor:g} (loss-floor), or "
            f"||grad F|| <= {self.gtol:g} (gradient), or relative decrease of F over the last {self.window} "
            f"iterations <= {self.rtol:g} (relative-change); else after {self.max_iter} iterations (not converged); "
            "a step "
            "that does not move resets the L-BFGS memory, and if steepest descent does not move either the search "
            "stops (stalled, not converged)"
        )


@dataclass(frozen=True)
class Optimum:
    """The centralized optimum w* and how it was reached."""

    w: torch.Tensor  # [d], float32 like the run's models
    loss: float  # F(w*) on the union, measured as the run measures F(w^k)
    grad_norm: float
    distance: float  # ‖w0 − w*‖
    iterations: int
    evaluations: int
    reason: str  # loss-floor | gradient | relative-change | stalled | max-iterations
    path: list[tuple[int, float, float]] = field(default_factory=list)  # (iteration, F, ‖w − w0‖)
    restarts: int = 0  # L-BFGS memory resets after a step that did not move

    @property
    def converged(self) -> bool:
        return self.reason not in ("max-iterations", "stalled")

    @property
    def interpolates(self) -> bool:
        """The loss went to ~0: no finite minimizer, so ‖w0 − w*‖ depends on the loss floor."""
        return self.reason == "loss-floor"


#: Function evaluations the strong Wolfe line search may spend per L-BFGS iteration (torch's max_ls).
_LINE_SEARCH_EVALS = 25


def find_optimum(
    spec: ModelSpec | ModuleSpec, w0: torch.Tensor, X: torch.Tensor, Y: torch.Tensor,
    options: OptimumOptions = OptimumOptions(),
) -> Optimum:
    """w* of the mean cross-entropy on ``X [n, in]``, ``Y [n]``: L-BFGS from ``w0 [d]``, stopped by ``options``."""
    if w0.dim() != 1 or w0.shape[0] != spec.dim:
        raise InputError(f"w0 must have shape [{spec.dim}], got {list(w0.shape)}")
    if X.dim() != 2 or X.shape[0] == 0 or tuple(Y.shape) != (X.shape[0],):
        raise InputError(f"need X [n, {spec.input_dim}] and Y [n], got {list(X.shape)} and {list(Y.shape)}")
    dtype = getattr(torch, options.dtype_for(spec))
    origin = w0.detach().to(dtype)
    w = origin.clone().requires_grad_(True)
    Xs = X.to(device=w.device, dtype=dtype).unsqueeze(0)
    Ys = Y.to(device=w.device, dtype=torch.int64)

    def fresh_optimizer() -> torch.optim.LBFGS:
        return torch.optim.LBFGS(
            # One iteration per step, but the line search needs its own budget: torch's default
            # max_eval (max_iter·5/4 = 1) would leave it none, and a rejected first trial means no move.
            [w], lr=1.0, max_iter=1, max_eval=1 + _LINE_SEARCH_EVALS, history_size=options.history_size,
            line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0,
        )

    opt = fresh_optimizer()
    evals: list[tuple[float, float]] = []
    restarts = 0

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(spec.forward(w.unsqueeze(0), Xs)[0], Ys)
        loss.backward()
        evals.append((float(loss.item()), float(w.grad.norm().item())))
        return loss

    history: list[float] = []
    path: list[tuple[int, float, float]] = []
    reason = "max-iterations"
    it = 0
    while True:
        start = w.detach().clone()
        mark = len(evals)
        stalled = False
        if it < options.max_iter:
            opt.step(closure)  # its first evaluation is at the current iterate
            if torch.equal(w.detach(), start):
                # No move (the quasi-Newton direction failed the line search, e.g. at a ReLU kink):
                # forget the curvature pairs and retry from steepest descent; stop if that fails too.
                opt = fresh_optimizer()
                restarts += 1
                opt.step(closure)
                stalled = torch.equal(w.detach(), start)
        else:
            closure()
        f, g = evals[mark]
        history.append(f)
        path.append((it, f, float(torch.linalg.vector_norm(start - origin).item())))
        if not math.isfinite(f):
            raise InputError(f"centralized training for w* diverged (F = {f}) at iteration {it}")
        if f <= options.loss_floor:
            reason = "loss-floor"
        elif g <= options.gtol:
            reason = "gradient"
        elif it >= options.window and history[it - options.window] - f <= options.rtol * history[it - options.window]:
            reason = "relative-change"
        elif stalled:
            reason = "stalled"
        elif it >= options.max_iter:
            reason = "max-iterations"
        else:
            it += 1
            continue
        break
    w_star = start.to(w0.dtype)
    loss, _ = evaluate(spec, w_star, X, Y)
    return Optimum(
        w=w_star,
        loss=loss,
        grad_norm=g,
        distance=float(torch.linalg.vector_norm(start - origin).item()),
        iterations=it,
        evaluations=len(evals),
        reason=reason,
        path=_thin(path, 12),
        restarts=restarts,
    )


def _thin(path: list, k: int) -> list:
    """At most ``k`` entries of ``path``, log-spaced, always keeping the first and the last."""
    if len(path) <= k:
        return list(path)
    idx = sorted({0, len(path) - 1, *np.unique(np.geomspace(1, len(path) - 1, k - 1).astype(int)).tolist()})
    return [path[i] for i in idx]


# ---------------------------------------------------------------------------------------------
# Runs, the observer and the summary.


def spread(values: Sequence[float] | pd.Series | np.ndarray) -> dict[str, float | int | None]:
    """Median, quartiles, IQR, min, max and count of the finite values (None where there are none)."""
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"median": None, "q1": None, "q3": None, "iqr": None, "min": None, "max": None, "n": 0}
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {
        "median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
        "min": float(a.min()), "max": float(a.max()), "n": int(a.size),
    }


def _theta_generator(seed: int, round_: int) -> torch.Generator:
    """A generator for the lazy clients' counterfactual training, apart from the run's own stream."""
    state = np.random.SeedSequence([seed, round_, 0x7E7A]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


class _Observer:
    """Receives every round's state of one run and keeps the per-client samples."""

    def __init__(self, seed: int, M: int, dtype: torch.dtype, progress: Callable[[str], None] | None):
        self.seed = seed
        self.M = M
        self.dtype = dtype
        self.progress = progress
        self.rows: list[dict[str, Any]] = []
        self.w0: torch.Tensor | None = None
        self.state: RoundState | None = None

    def __call__(self, s: RoundState) -> None:
        if s.round == 1:
            self.w0 = s.w_start.detach().clone()
        self.state = s
        c = s.config
        est = client_estimates(s.spec, s.W, s.w, s.X, s.Y, dtype=self.dtype)
        theta = torch.full((c.N,), float("nan"), dtype=torch.float64)
        theta_sub = theta.clone()
        source = torch.full((c.N,), -1, dtype=torch.int64)
        if len(s.lazy):
            lazy_ids = s.lazy.to(s.W.device)
            t, ts = lazy_theta(
                s.spec, s.w_start, s.W[s.sources.to(s.W.device)], s.W[lazy_ids], s.X[lazy_ids], s.Y[lazy_ids],
                c.tau, c.eta, c.batch_size, _theta_generator(self.seed, s.round),
            )
            theta[s.lazy] = t.cpu()
            theta_sub[s.lazy] = ts.cpu()
            source[s.lazy] = s.sources.cpu()
        lazy_mask = torch.zeros(c.N, dtype=torch.bool)
        lazy_mask[s.lazy] = True
        cols = {name: getattr(est, name).detach().cpu().numpy() for name in
                ("distance", "L", "xi", "delta", "grad_norm", "loss_local", "loss_global")}
        m = int(s.X.shape[1])
        for i in range(c.N):
            self.rows.append({
                "seed": self.seed, "M": self.M, "round": s.round, "client": i, "lazy": bool(lazy_mask[i]),
                "source": int(source[i]),
                "samples": m, **{k: float(v[i]) for k, v in cols.items()},
                "theta": float(theta[i]), "theta_submitted": float(theta_sub[i]),
                "global_train_loss": float(s.global_train_loss),
            })
        if self.progress is not None:
            honest = ~lazy_mask.numpy()
            lazy_part = f", theta {np.nanmedian(theta.numpy()):.4g}" if len(s.lazy) else ""
            self.progress(
                f"seed {self.seed} M={self.M} round {s.round}/{c.K}: F(w) {s.global_train_loss:.4f}, "
                f"L {np.average(cols['L'][honest]):.4g}, xi {np.average(cols['xi'][honest]):.4g}, "
                f"delta {np.average(cols['delta']):.4g}{lazy_part}"
            )


def _weighted(df: pd.DataFrame, column: str) -> float:
    ok = np.isfinite(df[column].to_numpy(dtype=float))
    if not ok.any():
        return float("nan")
    return float(np.average(df[column].to_numpy(dtype=float)[ok], weights=df["samples"].to_numpy(dtype=float)[ok]))


@dataclass(frozen=True)
class EstimateResult:
    """Raw samples, per-round and per-seed values, and the six constants with their spread."""

    config: RunConfig  # the run settings (its seed is the first seed's)
    seeds: list[int]
    samples: pd.DataFrame  # one row per (seed, round, client): SAMPLE_COLUMNS
    rounds: pd.DataFrame  # one row per (seed, round): weighted L, xi, delta; median theta; F(w^k) and the gap
    per_seed: pd.DataFrame  # one row per seed: w*, ‖w0 − w*‖, F(w*), epsilon, phi
    constants: dict[str, float]
    spreads: dict[str, dict[str, Any]]
    optimum_options: OptimumOptions
    wall_seconds: float

    @property
    def eta_L(self) -> float:
        return self.config.eta * self.constants["L"]

    @property
    def f_star(self) -> float:
        """Median over seeds of F(w*)."""
        return float(self.per_seed["F_w_star"].median())

    def summary(self) -> pd.DataFrame:
        """A row per constant: the estimate (median) and its spread."""
        rows = []
        for name in CONSTANT_NAMES:
            s = self.spreads[name]
            rows.append({"constant": name, "estimate": self.constants[name],
                         **{k: s[k] for k in ("q1", "q3", "iqr", "min", "max", "n")}, "over": s["over"]})
        return pd.DataFrame(rows).set_index("constant")

    def profile(self, name: str, command: str | None = None, samples_file: str | None = None) -> dict[str, Any]:
        """The profile JSON content that ``bladefl_theory.profiles.load_profile`` reads."""
        bad = [n for n in CONSTANT_NAMES if not math.isfinite(self.constants[n])]
        if bad:
            raise InputError(
                f"cannot write a profile: no estimate of {', '.join(bad)}"
                + (" (theta needs lazy clients: M >= 1)" if "theta" in bad and self.config.M == 0 else "")
            )
        c = self.config
        eta_L = self.eta_L
        holds = eta_L < 1
        opt = self.optimum_options
        interpolates = bool(self.per_seed["interpolates"].all())
        notes = [
            "phi = (1 - eta*L/2)/||w0 - w*||^2 with the square of Wang et al. 2019 (omega = 1/||w0 - w*||^2); "
            "the paper's Lemma 1 prints ||w0 - w*|| without the square.",
            f"L, xi, delta and phi come from clean runs (M=0) with the same seeds, partition and w0; theta and epsilon "
            f"from the runs with M={c.M} lazy clients at sigma2={c.sigma2:g}. "
            "With lazy clients the noise in the global "
            "model dominates ||w_i - w|| and the ratios L_i, xi_i would measure a random direction.",
            "L and xi: |D_i|-weighted means over the clients of each clean round; delta: the weighted mean of delta_i; "
            "medians over rounds and seeds.",
            "theta: ||own tau-epoch training from the round's global model on the lazy client's data - the copied "
            "honest model||, noise excluded (Theorem 1 has a separate sigma2 term); theta_with_noise gives the "
            "distance to the submitted noisy model.",
            "epsilon: per seed the minimum over rounds of F(w^k) - F(w*) in the run with lazy clients (Wang et al. "
            "need F - F(w*) >= epsilon along the run; they bound the auxiliary centralized sequence, here the global "
            "models are used); median over seeds. epsilon_clean gives the same for the clean runs.",
        ]
        if interpolates:
            notes.append(
                "The union of the clients' data is interpolated (training loss -> 0: separable for logreg): "
                "cross-entropy has no finite minimizer, F(w*) = inf F = 0 is approached but not attained, and "
                f"w* is the first L-BFGS iterate with F <= {opt.loss_floor:g}; ||w0 - w*|| and so phi depend on "
                "that threshold (see optimum.per_seed[].path)."
            )
        unconverged = [int(r["seed"]) for _, r in self.per_seed.iterrows() if not r["converged"]]
        if unconverged:
            notes.append(
                f"The search for w* did not converge for seed(s) {unconverged} (see optimum.per_seed[].stopped_by): "
                "there F(w*) over-estimates inf F, so epsilon is under-estimated, and ||w0 - w*|| is a lower bound."
            )
        if holds:
            notes.append(f"eta*L = {eta_L:.4g} < 1: Lemma 1's condition holds at eta = {c.eta:g}.")
        else:
            notes.append(
                f"eta*L = {eta_L:.4g} >= 1 violates Lemma 1's condition at eta = {c.eta:g}: "
                "bladefl_theory.Params rejects this profile (recorded as estimated, not adjusted)."
            )
        if self.constants["phi"] <= 0:
            notes.append("phi <= 0 because eta*L >= 2: the bound cannot be finite.")
        per_seed = []
        for _, r in self.per_seed.iterrows():
            per_seed.append({
                "seed": int(r["seed"]), "F_w_star": _num(r["F_w_star"]), "distance_w0_w_star": _num(r["distance"]),
                "grad_norm": _num(r["grad_norm"]), "iterations": int(r["iterations"]),
                "evaluations": int(r["evaluations"]), "restarts": int(r["restarts"]), "stopped_by": r["reason"],
                "converged": bool(r["converged"]),
                "epsilon": _num(r["epsilon"]), "epsilon_clean": _num(r["epsilon_clean"]), "phi": _num(r["phi"]),
                "path": [[int(i), _num(f), _num(d)] for i, f, d in r["path"]],
            })
        spreads = {n: {k: _num(v) if isinstance(v, float) else v for k, v in s.items()}
                   for n, s in self.spreads.items()}
        extra = {
            "theta_with_noise": {**spread(self.samples["theta_submitted"]), "over": self.spreads["theta"]["over"],
                                 "note": "distance to the submitted (noisy) model; not used"},
            "epsilon_clean": {**spread(self.per_seed["epsilon_clean"]), "over": f"{len(self.seeds)} seeds",
                              "note": "epsilon of the clean runs (M=0); not used"},
            "xi_grad_norm": {**spread(self.rounds.loc[self.rounds["M"] == 0, "xi_grad_norm"]),
                             "over": self.spreads["xi"]["over"],
                             "note": "weighted mean over honest clients of ||grad F_i(w)||, a pointwise lower bound "
                                     "on the Lipschitz constant; not used"},
        }
        for key, value in extra.items():
            spreads[key] = {k: _num(v) if isinstance(v, float) else v for k, v in value.items()}
        run = {k: v for k, v in c.as_dict().items() if k != "seed"}
        description = (
            f"Estimated from real runs ({c.dataset}, {c.model}, N={c.N}, K={c.K}, tau={c.tau}, "
            f"|D_i|={c.samples_per_client}, {len(self.seeds)} seed(s)) after Wang et al. 2019: L, xi, delta, phi from "
            f"clean runs (M=0), theta and epsilon from runs with M={c.M}, sigma2={c.sigma2:g}; medians over rounds "
            f"and seeds. eta*L = {eta_L:.3g} "
            + ("< 1 (Lemma 1's condition holds)." if holds else ">= 1: VIOLATES Lemma 1's condition eta*L < 1, "
               "so bladefl-theory rejects it at this eta.")
            + " phi uses ||w0 - w*||^2 (Wang et al.); the paper prints no square."
            + (" No finite minimizer (the union is interpolated): w* is the first iterate with "
               f"F <= {opt.loss_floor:g}." if interpolates else "")
        )
        provenance: dict[str, Any] = {
            "method": "estimated",
            "command": command,
            "package": "bladefl",
            "version": _package_version(),
            "torch": torch.__version__,
            "dataset": c.dataset,
            "model": c.model if c.model != "mlp" else f"mlp (784-{c.hidden}-10, ReLU)",
            "seeds": list(self.seeds),
            "run": run,
            "eta": c.eta,
            "eta_L": _num(eta_L),
            "lemma1_condition_eta_L_lt_1": holds,
            "F_w_star": _num(self.f_star),
            "spread": spreads,
            "optimum": {
                "method": opt.describe(make_spec(c.model, c.hidden)),
                "options": {**{k: getattr(opt, k) for k in ("rtol", "window", "loss_floor", "gtol", "max_iter",
                                                            "history_size")},
                            "dtype": opt.dtype_for(make_spec(c.model, c.hidden))},
                "F_w_star_median": _num(self.f_star),
                "interpolates": interpolates,
                "per_seed": per_seed,
            },
            "estimators": {
                "L": "median over the clean runs' (M=0) rounds and seeds of sum_i |D_i| L_i / sum_i |D_i|, "
                     "L_i = ||grad F_i(w_i) - grad F_i(w)|| / ||w_i - w||",
                "xi": "same, xi_i = |F_i(w_i) - F_i(w)| / ||w_i - w||",
                "delta": "median over the clean runs' rounds and seeds of sum_i |D_i| ||grad F_i(w) - grad F(w)|| "
                         "/ sum_i |D_i|",
                "theta": "median over lazy clients, rounds and seeds of ||own training - copied model|| (runs with "
                         "lazy clients)",
                "phi": "median over seeds of (1 - eta*L/2)/||w0 - w*||^2",
                "epsilon": "median over seeds of min over rounds k of F(w^k) - F(w*) (runs with lazy clients)",
                "when": "after each round's aggregation (the start of the next): w_i = client i's submitted model, "
                        "w = the new global model, on client i's data",
            },
            "notes": notes,
            "wall_seconds": round(self.wall_seconds, 1),
        }
        if samples_file is not None:
            provenance["samples_csv"] = samples_file
        return {
            "name": name,
            "description": description,
            "constants": {n: _sig(self.constants[n]) for n in CONSTANT_NAMES},
            "provenance": provenance,
        }


def _package_version() -> str:
    """``bladefl_validate.__version__`` (the distribution's version if the package is imported as a namespace,
    as a stale editable install does)."""
    import bladefl_validate

    found = getattr(bladefl_validate, "__version__", None)
    if found is None:
        from importlib.metadata import version

        found = version("bladefl")
    return str(found)


def _sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def _num(x: Any) -> float | None:
    """A JSON-safe number: None for NaN or infinity, 6 significant digits otherwise."""
    x = float(x)
    return _sig(x) if math.isfinite(x) else None


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    out = list(seeds)
    if not out:
        raise InputError("need at least one seed")
    for s in out:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise InputError(f"seeds must be non-negative integers (got {s!r})")
    if len(set(out)) != len(out):
        raise InputError(f"seeds must be distinct (got {out})")
    return [int(s) for s in out]


def _observed_run(config: RunConfig, dtype: torch.dtype, context: Mapping[str, Any]) -> _Observer:
    """Run ``config`` (ledger and blobs in memory) with an observer on every round; return the observer."""
    observer = _Observer(config.seed, config.M, dtype, context.get("progress"))
    simulate(config, None, context.get("data_dir"), observer=observer)
    return observer


def estimate_seed(config: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """One seed's clean and lazy runs, observed every round, and its w* (a task for a Dask worker, or inline).

    ``config`` holds everything that decides the result (so the store keys it): ``run``, a RunConfig dict;
    ``optimum``, the w* search's options; ``dtype``, the estimators' float type.
    """
    run_config = RunConfig.from_dict(dict(config["run"]))
    optimum = OptimumOptions(**config["optimum"])
    dtype = getattr(torch, config["dtype"])
    seed, progress = run_config.seed, context.get("progress")
    clean = _observed_run(run_config.replace(M=0), dtype, context)
    lazy = _observed_run(run_config, dtype, context) if run_config.M else clean
    s, w0, lazy_state, lazy_w0 = clean.state, clean.w0, lazy.state, lazy.w0
    assert s is not None and w0 is not None and lazy_state is not None and lazy_w0 is not None  # every run has rounds
    # The seed alone draws the partition and w0 (the lazy draw takes the same random numbers for any M).
    if not torch.equal(w0, lazy_w0) or not torch.equal(s.X, lazy_state.X):
        raise RuntimeError(f"seed {seed}: the clean and the lazy run differ in w0 or data")
    X_union = s.X.reshape(-1, s.X.shape[-1])
    Y_union = s.Y.reshape(-1)
    if progress is not None:
        progress(f"seed {seed}: centralized training for w* ({optimum.dtype_for(s.spec)} L-BFGS)")
    opt = find_optimum(s.spec, w0, X_union, Y_union, optimum)
    if progress is not None:
        progress(f"seed {seed}: w* after {opt.iterations} iterations ({opt.reason}), F(w*) {opt.loss:.4g}, "
                 f"||w0 - w*|| {opt.distance:.4g}")
    observers = [clean] if lazy is clean else [clean, lazy]
    rows = [r for o in observers for r in o.rows]
    for r in rows:
        r["gap"] = r["global_train_loss"] - opt.loss

    def smallest_gap(observer: _Observer) -> float:
        return float(min(r["gap"] for r in observer.rows if r["client"] == 0))

    seed_row = {
        "seed": seed, "F_w_star": opt.loss, "distance": opt.distance, "grad_norm": opt.grad_norm,
        "iterations": opt.iterations, "evaluations": opt.evaluations, "restarts": opt.restarts, "reason": opt.reason,
        "converged": opt.converged, "interpolates": opt.interpolates, "path": opt.path,
        "epsilon": smallest_gap(lazy), "epsilon_clean": smallest_gap(clean),
    }
    return {"rows": rows, "seed_row": seed_row}


def estimate_constants(
    config: RunConfig,
    seeds: Sequence[int],
    data_dir: str | Path | None = None,
    *,
    optimum: OptimumOptions = OptimumOptions(),
    dtype: torch.dtype = torch.float64,
    progress: Callable[[str], None] | None = None,
    execution: Execution | None = None,
    store: ResultStore | None = None,
) -> EstimateResult:
    """Run ``config`` and its clean twin (M = 0) once per seed, observe every round, find w* per seed, and
    estimate the six constants: L, xi, delta and phi from the clean runs, theta and epsilon from ``config``'s.

    With ``execution`` the seeds run as tasks through dask.distributed, each recorded in ``store`` (a seed
    already there is not run again); without, in this process.

    ``config.seed`` is replaced by each seed in turn. Each run's ledger and blobs live in memory, as long as
    the run. ``progress`` receives one-line messages (in this process only).
    """
    t_start = time.perf_counter()
    configs = estimate_configs(config, seeds, optimum, dtype)
    context = task_context(data_dir)
    if execution is None:
        outcomes = [estimate_seed(c, {**context, "progress": progress}) for c in configs]
    else:
        outcomes = run_tasks(ESTIMATE, configs, store, context, execution, "estimate").results
    return estimate_result(config, seeds, optimum, outcomes, time.perf_counter() - t_start)


def estimate_configs(config: RunConfig, seeds: Sequence[int], optimum: OptimumOptions = OptimumOptions(),
                     dtype: torch.dtype = torch.float64) -> list[dict[str, Any]]:
    """The tasks of an estimate (:data:`bladefl_validate.tasks.ESTIMATE`), one per seed: everything that decides a
    seed's result, so that the store keys it."""
    if not isinstance(config, RunConfig):
        raise InputError(f"config must be a RunConfig (got {type(config).__name__})")
    return [{"run": config.replace(seed=seed).as_dict(), "optimum": dataclasses.asdict(optimum),
             "dtype": str(dtype).removeprefix("torch.")} for seed in _check_seeds(seeds)]


def estimate_result(config: RunConfig, seeds: Sequence[int], optimum: OptimumOptions, outcomes: Sequence[dict],
                    wall_seconds: float) -> EstimateResult:
    """The six constants and their spread from the seeds' tasks' results (:func:`estimate_seed`), in seed order."""
    seed_list = _check_seeds(seeds)
    rows = [r for o in outcomes for r in o["rows"]]
    seed_rows = [o["seed_row"] for o in outcomes]

    samples = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    round_rows = []
    for (seed, M, k), g in samples.groupby(["seed", "M", "round"], sort=True):
        honest = g[~g["lazy"]]
        lazy = g[g["lazy"]]
        round_rows.append({
            "seed": seed, "M": M, "round": k, "L": _weighted(honest, "L"), "xi": _weighted(honest, "xi"),
            "delta": _weighted(g, "delta"), "xi_grad_norm": _weighted(honest, "grad_norm"),
            "theta": float(lazy["theta"].median()) if len(lazy) else float("nan"),
            "theta_submitted": float(lazy["theta_submitted"].median()) if len(lazy) else float("nan"),
            "global_train_loss": float(g["global_train_loss"].iloc[0]), "gap": float(g["gap"].iloc[0]),
        })
    rounds = pd.DataFrame(round_rows)
    per_seed = pd.DataFrame(seed_rows)

    clean = rounds[rounds["M"] == 0]
    over_rounds = f"{len(clean)} rounds of the clean runs, M=0 ({config.K} per seed x {len(seed_list)} seeds)"
    spreads: dict[str, dict[str, Any]] = {
        "L": {**spread(clean["L"]), "over": over_rounds},
        "xi": {**spread(clean["xi"]), "over": over_rounds},
        "delta": {**spread(clean["delta"]), "over": over_rounds},
        "theta": {**spread(samples.loc[samples["lazy"], "theta"]),
                  "over": f"lazy clients x rounds x seeds of the runs with M={config.M}"},
    }
    constants = {n: (spreads[n]["median"] if spreads[n]["median"] is not None else float("nan"))
                 for n in ("L", "xi", "delta", "theta")}
    L = constants["L"]
    per_seed["phi"] = [(1 - config.eta * L / 2) / d**2 if d > 0 else float("nan") for d in per_seed["distance"]]
    spreads["phi"] = {**spread(per_seed["phi"]), "over": f"{len(seed_list)} seeds"}
    spreads["epsilon"] = {**spread(per_seed["epsilon"]),
                          "over": f"{len(seed_list)} seeds "
                                  f"(each the minimum over the rounds of its run with M={config.M})"}
    for n in ("phi", "epsilon"):
        constants[n] = spreads[n]["median"] if spreads[n]["median"] is not None else float("nan")
    return EstimateResult(
        config=config.replace(seed=seed_list[0]),
        seeds=seed_list,
        samples=samples,
        rounds=rounds,
        per_seed=per_seed,
        constants={n: float(constants[n]) for n in CONSTANT_NAMES},
        spreads=spreads,
        optimum_options=optimum,
        wall_seconds=wall_seconds,
    )


# ---------------------------------------------------------------------------------------------
# Output.


def samples_path_for(profile_path: str | Path) -> Path:
    """``NAME.samples.csv`` beside ``NAME.json``."""
    p = Path(profile_path)
    stem = p.name[: -len(".json")] if p.name.endswith(".json") else p.name
    return p.with_name(stem + ".samples.csv")


def check_profile_path(out: str | Path) -> Path:
    """``out`` as a Path if a profile JSON file (``NAME.json``, not a folder) and its samples CSV can be written
    there; InputError otherwise. Checked before anything is computed; creates nothing."""
    out = Path(out)
    if not out.name.endswith(".json") or out.name == ".json":
        raise InputError(f"--out must name a .json file (got {str(out)!r})")
    if out.is_dir():
        raise InputError(f"--out {str(out)!r} is a folder; give a .json file path")
    samples = samples_path_for(out)
    if samples.is_dir():
        raise InputError(f"{samples} is a folder, and --out {str(out)!r} writes its samples there")
    folder = Path(os.path.abspath(out)).parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"--out {str(out)!r}: cannot write there ({folder} is not a folder)")
    check_writable(folder, out)
    return out


def write_estimate(
    result: EstimateResult, out: str | Path, name: str | None = None, command: str | None = None
) -> tuple[Path, Path]:
    """Write the profile JSON at ``out`` (a ``.json`` path) and the raw samples CSV beside it, each atomically.

    Returns ``(profile_path, samples_path)``. The CSV is written first, so a profile never names a missing file.
    """
    out = check_profile_path(out)
    samples_path = samples_path_for(out)
    profile = result.profile(name or out.name[: -len(".json")], command, samples_path.name)
    text = json.dumps(profile, indent=2, allow_nan=False) + "\n"
    atomic_write_text(samples_path, result.samples.to_csv(index=False, float_format="%.9g"))
    atomic_write_text(out, text)
    return out, samples_path
