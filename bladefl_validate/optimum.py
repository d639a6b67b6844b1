"""w*, the centralized optimum on the union of a run's clients' data: the one search for it.

:func:`find_optimum` is the one search for w*: full-batch L-BFGS (strong Wolfe line search) from the
run's initial model w0, stopped by :class:`OptimumOptions`' rule. Started from w0 so that, where the
minimizers form a set (softmax's shift invariance, the MLP's symmetries), the one reached is the one
the quasi-Newton path from w0 finds. The estimates (:mod:`bladefl_validate.studies.estimate`) use it
per seed, and the F(w*) tasks (:func:`bladefl_validate.tasks.optimum_task`) on each seed's
partition: the same data set, N, |D_i|, scheme and seed as the run, so the union is the data F(w^k)
is measured on.

Importing this module needs no torch: the search imports it when it runs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np

from bladefl_platform.checks import FINITE, Interval, Options, validate
from bladefl_platform.errors import InputError

if TYPE_CHECKING:
    import torch

    from .learning.model import ModelSpec, ModuleSpec

__all__ = ["OptimumOptions", "Optimum", "find_optimum"]


#: What each option of :class:`OptimumOptions` must be.
_OPTION_CONSTRAINTS: dict[str, list] = {
    **{name: [Real, FINITE, Interval(Real, 0, None)] for name in ("rtol", "loss_floor", "gtol")},
    **{name: [Integral, Interval(Integral, 1, None)] for name in ("window", "max_iter", "history_size")},
    "dtype": [Options(options=("auto", "float32", "float64"))],
}


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
        # Named as the messages say them: "w* option window must be ...".
        validate({f"w* option {k}": v for k, v in dataclasses.asdict(self).items()},
                 {f"w* option {k}": c for k, c in _OPTION_CONSTRAINTS.items()})

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
    import torch

    from .learning.training import evaluate

    if w0.dim() != 1 or w0.shape[0] != spec.dim:
        raise InputError(f"w0 must have shape [{spec.dim}], got {list(w0.shape)}")
    if tuple(X.shape[1:]) != spec.input_shape or X.shape[0] == 0 or tuple(Y.shape) != (X.shape[0],):
        raise InputError(f"need X [n, {', '.join(map(str, spec.input_shape))}] and Y [n], got {list(X.shape)} and "
                         f"{list(Y.shape)}")
    dtype = getattr(torch, options.dtype_for(spec))
    origin = w0.detach().to(dtype)
    w = origin.clone().requires_grad_(True)
    search = _LBFGSPath(spec, w, X.to(device=w.device, dtype=dtype).unsqueeze(0),
                        Y.to(device=w.device, dtype=torch.int64), options.history_size)
    history: list[float] = []
    path: list[tuple[int, float, float]] = []
    it = 0
    while True:
        start = w.detach().clone()
        mark = len(search.evals)
        stalled = False
        if it < options.max_iter:
            stalled = search.step(start)
        else:
            search.closure()
        f, g = search.evals[mark]
        history.append(f)
        path.append((it, f, float(torch.linalg.vector_norm(start - origin).item())))
        if not math.isfinite(f):
            raise InputError(f"centralized training for w* diverged (F = {f}) at iteration {it}")
        reason = _stop_reason(options, history, f, g, stalled)
        if reason is not None:
            break
        it += 1
    w_star = start.to(w0.dtype)
    loss, _ = evaluate(spec, w_star, X, Y)
    return Optimum(w=w_star, loss=loss, grad_norm=g, distance=float(torch.linalg.vector_norm(start - origin).item()),
                   iterations=it, evaluations=len(search.evals), reason=reason, path=_thin(path, 12),
                   restarts=search.restarts)


def _stop_reason(options: OptimumOptions, history: list[float], f: float, g: float, stalled: bool) -> str | None:
    """Why the search stops at the iterate of loss ``f`` and gradient norm ``g`` (None: it goes on), by
    :class:`OptimumOptions`' rule in its order; ``history`` holds F at every iterate so far, this one last."""
    it = len(history) - 1
    if f <= options.loss_floor:
        return "loss-floor"
    if g <= options.gtol:
        return "gradient"
    if it >= options.window and history[it - options.window] - f <= options.rtol * history[it - options.window]:
        return "relative-change"
    if stalled:
        return "stalled"
    if it >= options.max_iter:
        return "max-iterations"
    return None


class _LBFGSPath:
    """L-BFGS on the mean cross-entropy, one iteration per step, with every evaluation's (F, ‖∇F‖) recorded."""

    def __init__(self, spec: ModelSpec | ModuleSpec, w: torch.Tensor, Xs: torch.Tensor, Ys: torch.Tensor,
                 history_size: int):
        self.spec, self.w, self.Xs, self.Ys, self.history_size = spec, w, Xs, Ys, history_size
        self.evals: list[tuple[float, float]] = []
        self.restarts = 0  # memory resets after a step that did not move
        self.opt = self._fresh()

    def _fresh(self) -> torch.optim.LBFGS:
        import torch

        return torch.optim.LBFGS(
            # One iteration per step, but the line search needs its own budget: torch's default
            # max_eval (max_iter·5/4 = 1) would leave it none, and a rejected first trial means no move.
            [self.w], lr=1.0, max_iter=1, max_eval=1 + _LINE_SEARCH_EVALS, history_size=self.history_size,
            line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0,
        )

    def closure(self) -> torch.Tensor:
        """F at the current iterate, its gradient left in ``w.grad`` (the first evaluation of a step is there)."""
        import torch.nn.functional as F

        self.opt.zero_grad()
        loss = F.cross_entropy(self.spec.forward(self.w.unsqueeze(0), self.Xs)[0], self.Ys)
        loss.backward()
        assert self.w.grad is not None  # backward() has just set it
        self.evals.append((float(loss.item()), float(self.w.grad.norm().item())))
        return loss

    def step(self, start: torch.Tensor) -> bool:
        """One iteration from ``start``, the current iterate; True if it stalled (not even steepest descent moved)."""
        import torch

        self.opt.step(self.closure)
        if not torch.equal(self.w.detach(), start):
            return False
        # No move (the quasi-Newton direction failed the line search, e.g. at a ReLU kink):
        # forget the curvature pairs and retry from steepest descent; stop if that fails too.
        self.opt = self._fresh()
        self.restarts += 1
        self.opt.step(self.closure)
        return torch.equal(self.w.detach(), start)


def _thin(path: list, k: int) -> list:
    """At most ``k`` entries of ``path``, log-spaced, always keeping the first and the last."""
    if len(path) <= k:
        return list(path)
    idx = sorted({0, len(path) - 1, *np.unique(np.geomspace(1, len(path) - 1, k - 1).astype(int)).tolist()})
    return [path[i] for i in idx]
