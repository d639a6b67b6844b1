"""Models as flat float32 parameter vectors, evaluated for many clients at once.

Two kinds of specification, one interface (``dim``, ``forward``, ``init``, ``eval_chunk``):

- :class:`ModelSpec`, the fast path: the MLP and logistic regression with hand-written batched matmuls
  (and a hand-derived backward in :mod:`bladefl_validate.learning.training`);
- :class:`ModuleSpec`, any ``torch.nn.Module`` taking ``[m, 784]`` inputs: batched over clients with
  ``torch.func`` (``functional_call`` under ``vmap``). ``--model cnn`` is McMahan et al.'s two-convolution
  CNN through this path, and :func:`register_model` adds a module of your own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from bladefl_platform.errors import InputError

__all__ = ["ModelSpec", "ModuleSpec", "CNN", "make_spec", "register_model", "KINDS"]

#: The fused fast path's kinds; :func:`register_model` adds module kinds ("cnn" ships).
_FUSED = ("mlp", "logreg")


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
    #: Samples per evaluation chunk (the logits of a chunk are held at once).
    eval_chunk: int = 8192

    def __post_init__(self) -> None:
        if self.kind not in _FUSED:
            raise InputError(f"model kind must be one of {', '.join(_FUSED)}, got {self.kind!r}")
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


class CNN(nn.Module):
    """McMahan et al.'s CNN for MNIST: two 5x5 convolutions (32, 64 channels, each followed by ReLU and 2x2
    max pooling), a 512-unit ReLU layer and 10 outputs (1,663,370 parameters). Takes flat ``[m, 784]`` inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * 7 * 7, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 1, 28, 28)
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


@dataclass(frozen=True, eq=False)
class ModuleSpec:
    """Any ``nn.Module`` (made by ``factory``, taking ``[m, 784]``, giving ``[m, 10]`` logits) as a flat vector.

    Parameters are laid out in ``named_parameters`` order, each flattened. The module must have no buffers
    that change in training (no batch norm): clients share nothing but their parameters.
    """

    kind: str
    factory: Callable[[], nn.Module]
    input_dim: int = 784
    num_classes: int = 10
    eval_chunk: int = 1024
    _template: nn.Module = field(init=False, repr=False)
    _shapes: tuple[tuple[str, tuple[int, ...]], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        module = self.factory()
        if any(True for _ in module.buffers()):
            raise InputError(f"model {self.kind!r}: modules with buffers (batch norm ...) are not supported")
        object.__setattr__(self, "_template", module.to("meta"))
        object.__setattr__(self, "_shapes", tuple((n, tuple(p.shape)) for n, p in module.named_parameters()))

    @property
    def dim(self) -> int:
        """Number of parameters d."""
        return sum(math.prod(s) for _, s in self._shapes)

    def unflatten_one(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of one flat vector ``[d]`` as the module's named parameters."""
        out, offset = {}, 0
        for name, shape in self._shapes:
            size = math.prod(shape)
            out[name] = w[offset : offset + size].view(shape)
            offset += size
        return out

    def logits_one(self, w: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Logits ``[m, classes]`` of one flat model ``w [d]`` on ``X [m, in]``."""
        return torch.func.functional_call(self._template, self.unflatten_one(w), (X,))

    def forward(self, W: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Logits ``[n, m, classes]`` of n stacked models ``W [n, d]`` on stacked inputs ``X [n, m, in]``."""
        if X.dim() != 3 or X.shape[0] != W.shape[0] or X.shape[2] != self.input_dim:
            raise InputError(f"inputs must have shape [{W.shape[0]}, m, {self.input_dim}], got {list(X.shape)}")
        return torch.func.vmap(self.logits_one)(W, X)

    def init(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A fresh float32 vector ``[d]``: the module's own initialization, seeded by one draw of ``generator``."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.factory()
        device = generator.device if generator is not None else torch.device("cpu")
        return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).to(device=device, dtype=torch.float32)


_MODULES: dict[str, Callable[[], nn.Module]] = {"cnn": CNN}
#: Every model kind ``--model`` accepts.
KINDS: tuple[str, ...] = (*_FUSED, *_MODULES)


def register_model(kind: str, factory: Callable[[], nn.Module]) -> None:
    """Make ``RunConfig(model=kind)`` train modules made by ``factory`` (any nn.Module on ``[m, 784]`` inputs).

    Register in a module every process imports (Dask workers too), e.g. the one that builds your configs.
    """
    global KINDS
    if kind in _FUSED:
        raise InputError(f"{kind!r} is a built-in model kind")
    from .. import config

    ModuleSpec(kind, factory)  # checks the module now, not in the middle of a run
    _MODULES[kind] = factory
    KINDS = (*_FUSED, *_MODULES)
    if kind not in config.REGISTERED_MODELS:
        config.REGISTERED_MODELS.append(kind)


def make_spec(kind: str, hidden: int = 256) -> ModelSpec | ModuleSpec:
    """The specification of a model kind for MNIST-sized inputs (784 features, 10 classes).

    ``hidden`` is the MLP's width; module kinds ignore it.
    """
    if kind in _MODULES:
        return ModuleSpec(kind, _MODULES[kind])
    return ModelSpec(kind=kind, hidden=hidden)
