"""Models as flat float32 parameter vectors, evaluated for many clients at once with batched matmuls."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bladefl_theory.errors import InputError

__all__ = ["ModelSpec", "make_spec", "KINDS"]

KINDS = ("mlp", "logreg")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a model stored as a flat vector: "mlp" (784-hidden-10, ReLU) or "logreg" (784-10).

    Flat layout, in order: MLP ``W1 [in, hidden], b1 [hidden], W2 [hidden, classes], b2 [classes]``;
    logreg ``W [in, classes], b [classes]``. Weights are stored input-major (the transpose of
    ``nn.Linear.weight``) so that ``X @ W`` needs no transpose. ``hidden`` is ignored for logreg.
    """

    kind: str
    hidden: int = 256
    input_dim: int = 784
    num_classes: int = 10

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"model kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("hidden", "input_dim", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"model {name} must be a positive integer, got {value!r}")

    def layer_shapes(self) -> list[tuple[int, ...]]:
        """Per-client shapes of the parameter blocks, in flat-vector order."""
        i, h, c = self.input_dim, self.hidden, self.num_classes
        if self.kind == "mlp":
            return [(i, h), (h,), (h, c), (c,)]
        return [(i, c), (c,)]

    @property
    def dim(self) -> int:
        """Number of parameters d."""
        return sum(math.prod(s) for s in self.layer_shapes())

    def unflatten(self, W: torch.Tensor) -> list[torch.Tensor]:
        """Views of a stacked ``[n, d]`` tensor as per-layer tensors ``[n, *shape]`` (no copy)."""
        if W.dim() != 2 or W.shape[1] != self.dim:
            raise InputError(f"stacked weights must have shape [n, {self.dim}], got {list(W.shape)}")
        n = W.shape[0]
        views: list[torch.Tensor] = []
        offset = 0
        for shape in self.layer_shapes():
            size = math.prod(shape)
            views.append(W[:, offset : offset + size].view(n, *shape))
            offset += size
        return views

    def forward(self, W: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Logits ``[n, m, classes]`` of n stacked models ``W [n, d]`` on stacked inputs ``X [n, m, in]``."""
        if X.dim() != 3 or X.shape[0] != W.shape[0] or X.shape[2] != self.input_dim:
            raise InputError(
                f"inputs must have shape [{W.shape[0]}, m, {self.input_dim}], got {list(X.shape)}"
            )
        if self.kind == "mlp":
            W1, b1, W2, b2 = self.unflatten(W)
            hidden = torch.relu(torch.baddbmm(b1.unsqueeze(1), X, W1))
            return torch.baddbmm(b2.unsqueeze(1), hidden, W2)
        Wl, bl = self.unflatten(W)
        return torch.baddbmm(bl.unsqueeze(1), X, Wl)

    def init(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A fresh float32 vector ``[d]`` with nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

        Drawn on the generator's device; weights then bias of each layer, layer by layer.
        """
        device = generator.device if generator is not None else torch.device("cpu")
        parts: list[torch.Tensor] = []
        fan_in = self.input_dim
        for shape in self.layer_shapes():
            # A weight block's first axis is its fan-in; the following bias shares that layer's fan-in.
            if len(shape) == 2:
                fan_in = shape[0]
            bound = 1.0 / math.sqrt(fan_in)
            block = torch.empty(math.prod(shape), dtype=torch.float32, device=device)
            parts.append(block.uniform_(-bound, bound, generator=generator))
        return torch.cat(parts)


def make_spec(kind: str, hidden: int = 256) -> ModelSpec:
    """A validated ModelSpec for MNIST-sized inputs (784 features, 10 classes)."""
    return ModelSpec(kind=kind, hidden=hidden)
