"""Models as flat float32 parameter vectors, evaluated for many clients at once.

Two kinds of specification, one interface (``dim``, ``forward``, ``init``, ``eval_chunk``):

- :class:`ModelSpec`, the fast path: the MLP and logistic regression with hand-written batched matmuls
  (and a hand-derived backward in :mod:`bladefl_validate.learning.training`);
- :class:`ModuleSpec`, any ``torch.nn.Module`` taking ``[m, *input_shape]`` inputs, called with ``torch.func``
  (``functional_call``). ``--model cnn`` is McMahan et al.'s two-convolution CNN through this path, and
  :func:`register_model` adds a module of your own.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from bladefl_platform.errors import InputError

from .. import config

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

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input: flat, ``(input_dim,)``."""
        return (self.input_dim,)

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
    """Any ``nn.Module`` (made by ``factory``, taking ``[m, *input_shape]``, giving ``[m, num_classes]`` logits) as
    a flat vector.

    Parameters are laid out in ``named_parameters`` order, each flattened. The module must have no buffers
    that change in training (no batch norm): clients share nothing but their parameters. It is checked as the spec
    is made, on one batch of zeros of the input shape: InputError, one line, when it does not fit.
    """

    kind: str
    factory: Callable[[], nn.Module]
    input_shape: tuple[int, ...] = (784,)
    num_classes: int = 10
    eval_chunk: int = 1024
    #: The data set the inputs come from, as error messages name it.
    data_name: str = "MNIST-shaped data"
    _template: nn.Module = field(init=False, repr=False)
    _shapes: tuple[tuple[str, tuple[int, ...]], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        module = self.factory()
        if not isinstance(module, nn.Module):
            raise InputError(f"model {self.kind!r}: its factory made a {type(module).__name__}, not a torch nn.Module")
        if any(True for _ in module.buffers()):
            raise InputError(f"model {self.kind!r}: modules with buffers (batch norm ...) are not supported")
        self._check_fits(module)
        object.__setattr__(self, "_template", module.to("meta"))
        object.__setattr__(self, "_shapes", tuple((n, tuple(p.shape)) for n, p in module.named_parameters()))

    def _check_fits(self, module: nn.Module) -> None:
        """InputError, one line, unless ``module`` maps a batch of two zero inputs to ``[2, num_classes]`` logits."""
        shape = [2, *self.input_shape]
        try:
            with torch.no_grad():
                out = module(torch.zeros(shape))
        except Exception as exc:  # whatever the module raises is the user's error, reported as one line
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise InputError(f"model {self.kind!r} does not fit {self.data_name}: a batch {shape} fails: "
                             f"{reason}") from None
        want = (2, self.num_classes)
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        if got != want:
            raise InputError(f"model {self.kind!r} does not fit {self.data_name}: a batch {shape} gives {got}, "
                             f"it must give logits {list(want)}")

    @property
    def input_dim(self) -> int:
        """The number of input features (the product of ``input_shape``)."""
        return math.prod(self.input_shape)

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

    def call(self, parameters: dict[str, torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        """Logits ``[m, classes]`` of the module with ``parameters`` (by name) on ``X [m, *input_shape]``."""
        return torch.func.functional_call(self._template, parameters, (X,))

    def logits_one(self, w: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Logits ``[m, classes]`` of one flat model ``w [d]`` on ``X [m, *input_shape]``."""
        return self.call(self.unflatten_one(w), X)

    def forward(self, W: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Logits ``[n, m, classes]`` of n stacked models ``W [n, d]`` on stacked inputs ``X [n, m, *input_shape]``."""
        if X.dim() != 2 + len(self.input_shape) or X.shape[0] != W.shape[0] or tuple(X.shape[2:]) != self.input_shape:
            raise InputError(f"inputs must have shape [{W.shape[0]}, m, {', '.join(map(str, self.input_shape))}], "
                             f"got {list(X.shape)}")
        if W.shape[0] == 1:  # one model: the module as is (vmap would batch its kernels for nothing)
            return self.logits_one(W[0], X[0]).unsqueeze(0)
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


def register_model(kind: str, factory: Callable[[], nn.Module], dataset: str | None = None) -> None:
    """Make ``RunConfig(model=kind)`` train modules made by ``factory`` (an nn.Module on ``[m, *input_shape]``).

    The module is checked on one batch of ``dataset``'s shape (default: MNIST's flat 784 pixels); a run checks it
    again on its own data set before it starts. Register in a module every process imports (Dask workers too):
    ``BLADEFL_PLUGINS`` (:mod:`bladefl_validate.plugins`).
    """
    global KINDS
    if kind in _FUSED or kind in config.MODELS:
        raise InputError(f"{kind!r} is a built-in model kind")
    if dataset is None:
        spec = ModuleSpec(kind, factory)  # checks the module now, not in the middle of a run
    else:
        from ..data import load_dataset

        train = load_dataset(dataset, train=True, download=False)
        spec = ModuleSpec(kind, factory, train.input_shape, train.num_classes, data_name=f"data set {dataset!r}")
    _MODULES[kind] = factory
    KINDS = (*_FUSED, *_MODULES)
    config.REGISTERED_MODELS[kind] = _fingerprint(spec)


def _fingerprint(spec: ModuleSpec) -> str:
    """A short SHA-256 of a module's class, source (where Python has it) and parameter shapes."""
    cls = type(spec.factory())
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # defined interactively
        source = repr(spec.factory())
    text = repr((cls.__module__, cls.__qualname__, source, spec._shapes))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_spec(kind: str, hidden: int = 256, input_shape: Sequence[int] = (784,), num_classes: int = 10,
              data_name: str = "MNIST-shaped data") -> ModelSpec | ModuleSpec:
    """The specification of a model kind for inputs of ``input_shape`` (default MNIST's 784 pixels) and
    ``num_classes`` classes; a module kind is checked on one batch of that shape (InputError when it does not fit).

    ``hidden`` is the MLP's width; module kinds ignore it. The fused kinds flatten their inputs.
    """
    if kind in _MODULES:
        return ModuleSpec(kind, _MODULES[kind], tuple(input_shape), num_classes, data_name=data_name)
    return ModelSpec(kind=kind, hidden=hidden, input_dim=math.prod(input_shape), num_classes=num_classes)
