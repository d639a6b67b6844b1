"""Local training of all clients in one batched computation, evaluation and FedAvg.

The MLP and logistic regression train through a hand-derived fused backward (the fast path); any other
module (:class:`~bladefl_validate.learning.model.ModuleSpec`) through the generic path: on a CPU client by client
(autograd on views of each client's row, measured faster there than batching: benchmarks/bench.py), elsewhere
``vmap(grad(loss))`` over every stacked client at once, of every run trained together (a GPU's gain). All are plain
mini-batch SGD on the mean cross-entropy of each client's batch.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from bladefl_platform.errors import InputError

from .model import ModelSpec, ModuleSpec

__all__ = ["epoch_permutations", "train_clients", "evaluate", "evaluate_many", "fedavg"]


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
    spec: ModelSpec | ModuleSpec,
    W0: torch.Tensor,
    X: torch.Tensor,
    Y: torch.Tensor,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    perms: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run ``epochs`` of plain mini-batch SGD (cross-entropy) for n clients at once; returns new ``W [n, d]``.

    ``W0 [n, d]``, ``X [n, m, *spec.input_shape]``, ``Y [n, m]``; every client reshuffles its own samples each epoch
    (see epoch_permutations; ``generator=None`` uses torch's global RNG), or visits them in the
    given ``perms [epochs, n, m]`` (then ``generator`` is not used): that is how the clients of
    several runs, each with its own generator, train together. W0 is not modified.
    """
    _check_training_args(epochs, lr, batch_size)
    n, m = _clients_and_samples(spec, W0, X, Y)
    device = W0.device
    X = X.to(device=device, dtype=W0.dtype)
    Y = Y.to(device=device, dtype=torch.int64)
    if perms is None:
        perms = epoch_permutations(n, m, epochs, generator)
    elif tuple(perms.shape) != (epochs, n, m):
        raise InputError(f"perms must have shape [{epochs}, {n}, {m}], got {list(perms.shape)}")
    perms = perms.to(device)

    if epochs == 0 or n == 0:
        return W0.detach().clone(memory_format=torch.contiguous_format)
    src = W0.detach() if W0.stride(-1) == 1 else W0.detach().contiguous()  # e.g. w.expand(n, -1) as is
    W = torch.empty((n, spec.dim), dtype=W0.dtype, device=device)
    # Rows of the flattened data: client i's sample j is row i*m + j; index_select copies whole rows.
    X_rows, Y_rows = X.reshape(n * m, *spec.input_shape), Y.reshape(n * m)
    offsets = (torch.arange(n, device=device) * m).unsqueeze(1)
    # Clients are independent, so they train a chunk at a time: on a CPU a chunk's weights stay in
    # cache across its steps instead of streaming all n models from memory at every step.
    chunk = n if device.type != "cpu" else max(1, _CHUNK_BYTES // (spec.dim * W.element_size()))
    if isinstance(spec, ModuleSpec):
        W.copy_(src)
        train = _train_modules_each if device.type == "cpu" else _train_modules_vmapped
        train(spec, W, X_rows, Y_rows, perms + offsets.unsqueeze(0), lr, batch_size)
        return W
    return _train_fused(spec, src, X_rows, Y_rows, perms, offsets, m, epochs, lr, batch_size, W, chunk)


def _clients_and_samples(spec: ModelSpec | ModuleSpec, W0: torch.Tensor, X: torch.Tensor,
                         Y: torch.Tensor) -> tuple[int, int]:
    """n clients and m samples each; InputError unless ``W0 [n, d]``, ``X [n, m, *input_shape]`` and ``Y [n, m]``
    fit."""
    if W0.dim() != 2 or W0.shape[1] != spec.dim:
        raise InputError(f"W0 must have shape [n, {spec.dim}], got {list(W0.shape)}")
    n = W0.shape[0]
    if X.dim() != 2 + len(spec.input_shape) or X.shape[0] != n or tuple(X.shape[2:]) != spec.input_shape:
        raise InputError(f"X must have shape [{n}, m, {', '.join(map(str, spec.input_shape))}], got {list(X.shape)}")
    m = X.shape[1]
    if tuple(Y.shape) != (n, m):
        raise InputError(f"Y must have shape [{n}, {m}], got {list(Y.shape)}")
    return n, m


def _train_fused(spec: ModelSpec, src, X_rows, Y_rows, perms, offsets, m, epochs, lr, batch_size, W, chunk):
    """The fused kinds' SGD, ``chunk`` clients at a time, into ``W`` (see :func:`train_clients`)."""
    n = W.shape[0]
    with torch.no_grad():
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            # Per-layer copies of the chunk's weights, trained in place, then written to W.
            blocks = [_working_copy(v) for v in spec.unflatten(src[lo:hi])]
            layers = list(zip(blocks[0::2], blocks[1::2]))
            for epoch in range(epochs):
                order = perms[epoch, lo:hi] + offsets[lo:hi]
                for start in range(0, m, batch_size):
                    # Gathering each batch (not the whole epoch) keeps it in cache for its step.
                    idx = order[:, start : start + batch_size]
                    b = idx.shape[1]
                    Xb = X_rows.index_select(0, idx.reshape(-1)).view(hi - lo, b, -1)
                    Yb = Y_rows.index_select(0, idx.reshape(-1)).view(hi - lo, b)
                    _sgd_step(layers, Xb, Yb, lr)
            for view, block in zip(spec.unflatten(W[lo:hi]), blocks):
                view.copy_(block)
    return W


def _train_modules_vmapped(spec: ModuleSpec, W: torch.Tensor, X_rows: torch.Tensor, Y_rows: torch.Tensor,
                           orders: torch.Tensor, lr: float, batch_size: int) -> None:
    """The generic path off the CPU: every client's SGD step at once, ``vmap(grad(loss))``; trains ``W`` in place.

    ``orders [epochs, n, m]`` are rows of ``X_rows``/``Y_rows``, client by client."""

    def loss(w, x, y):
        return F.cross_entropy(spec.logits_one(w, x), y)

    step = torch.func.vmap(torch.func.grad(loss))
    n, m = orders.shape[1:]
    with torch.no_grad():
        for order in orders:
            for start in range(0, m, batch_size):
                idx = order[:, start : start + batch_size]
                b = idx.shape[1]
                Xb = X_rows.index_select(0, idx.reshape(-1)).view(n, b, *spec.input_shape)
                Yb = Y_rows.index_select(0, idx.reshape(-1)).view(n, b)
                W.sub_(step(W, Xb, Yb), alpha=lr)


def _train_modules_each(spec: ModuleSpec, W: torch.Tensor, X_rows: torch.Tensor, Y_rows: torch.Tensor,
                        orders: torch.Tensor, lr: float, batch_size: int) -> None:
    """The generic path on a CPU: client by client, autograd on views of the client's row of ``W`` (trained in
    place), as a per-client loop computes it but without copying a module or an optimizer per client.

    A client's result depends on nothing but its own data and order, so runs trained together stay bit-identical to
    runs trained alone."""
    m = orders.shape[2]
    with torch.enable_grad():
        for i in range(orders.shape[1]):
            leaves = {name: view.detach().requires_grad_(True) for name, view in spec.unflatten_one(W[i]).items()}
            params = list(leaves.values())
            for order in orders[:, i]:
                for start in range(0, m, batch_size):
                    idx = order[start : start + batch_size]
                    loss = F.cross_entropy(spec.call(leaves, X_rows.index_select(0, idx)), Y_rows.index_select(0, idx))
                    grads = torch.autograd.grad(loss, params)
                    with torch.no_grad():
                        torch._foreach_add_(params, grads, alpha=-lr)


#: Bytes of model weights trained together on a CPU (see train_clients); measured in benchmarks/.
_CHUNK_BYTES = 8 << 20
#: Weights with fewer outputs than this are kept out-major (nn.Linear's layout) while training:
#: MKL's batched GEMMs with 10 output columns run about 4x faster that way (benchmarks/README.md).
_NARROW = 64


def _working_copy(block: torch.Tensor) -> torch.Tensor:
    """A private copy of a ``[n, in, out]`` weight (or ``[n, out]`` bias) block, as the same logical view.

    Narrow weights are stored out-major and returned as the transposed view; _sgd_step updates
    whichever orientation is contiguous.
    """
    if block.dim() == 3 and block.shape[2] < _NARROW:
        return block.transpose(1, 2).clone(memory_format=torch.contiguous_format).transpose(1, 2)
    return block.clone(memory_format=torch.contiguous_format)


def _sgd_step(layers: list[tuple[torch.Tensor, torch.Tensor]], Xb: torch.Tensor, Yb: torch.Tensor, lr: float) -> None:
    """One SGD step on the mean cross-entropy of each client's batch, updating ``layers`` in place.

    ``layers`` are the ``(W [n, in, out], b [n, out])`` pairs of ModelSpec.forward, ReLU between them.
    Backpropagation by hand, with each weight update fused into the GEMM that computes its gradient
    (``W.baddbmm_(A^T, G, alpha=-lr)``): no gradient tensor is written and read back, and nothing is
    recorded for autograd. Equal to autograd + SGD up to float rounding (tests/validate/learning/test_training.py).
    """
    n, b = Yb.shape
    acts = [Xb]
    last = len(layers) - 1
    for j, (Wj, bj) in enumerate(layers):
        z = torch.baddbmm(bj.unsqueeze(1), acts[-1], Wj)
        if j < last:
            z.clamp_min_(0.0)
        acts.append(z)
    # d(mean cross-entropy)/d(logits) = (softmax - onehot) / b for each client's own batch.
    G = torch.softmax(acts[-1], dim=2)
    G.scatter_add_(2, Yb.unsqueeze(2), G.new_full((n, b, 1), -1.0))
    G.mul_(1.0 / b)
    for j in range(last, -1, -1):
        Wj, bj = layers[j]
        A = acts[j]
        if j:  # the gradient into the previous layer, before Wj changes
            # ReLU's backward, as autograd computes it (one fused pass; masked_fill_ is ~10x slower).
            G_prev = torch.ops.aten.threshold_backward(torch.bmm(G, Wj.transpose(1, 2)), A, 0.0)
        if Wj.is_contiguous():
            Wj.baddbmm_(A.transpose(1, 2), G, alpha=-lr)
        else:  # stored out-major (_working_copy): the same update on the contiguous transpose
            Wj.transpose(1, 2).baddbmm_(G.transpose(1, 2), A, alpha=-lr)
        bj.sub_(G.sum(dim=1), alpha=lr)
        if j:
            G = G_prev


def evaluate(
    spec: ModelSpec | ModuleSpec, w: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, chunk: int | None = None
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of model ``w [d]`` on ``X [m, *spec.input_shape]``, ``Y [m]``."""
    if w.dim() != 1 or w.shape[0] != spec.dim:
        raise InputError(f"w must have shape [{spec.dim}], got {list(w.shape)}")
    return evaluate_many(spec, w.unsqueeze(0), X, Y, chunk)[0]


@torch.no_grad()
def evaluate_many(
    spec: ModelSpec | ModuleSpec, W: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, chunk: int | None = None
) -> list[tuple[float, float]]:
    """Mean loss and accuracy of each of R models ``W [R, d]``.

    Every model on the same data (``X [m, *input_shape]``, ``Y [m]``) or each on its own (``X [R, m, *input_shape]``,
    ``Y [R, m]``). A model's numbers do not depend on the others it is evaluated with, bit for bit.
    """
    chunk = spec.eval_chunk if chunk is None else chunk
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InputError(f"chunk must be a positive integer, got {chunk!r}")
    if W.dim() != 2 or W.shape[1] != spec.dim:
        raise InputError(f"W must have shape [R, {spec.dim}], got {list(W.shape)}")
    R, k = W.shape[0], len(spec.input_shape)
    shared = X.dim() == 1 + k
    m = X.shape[-1 - k] if X.dim() > k else 0
    want_y = (m,) if shared else (R, m)
    sample = ", ".join(map(str, spec.input_shape))
    if (m == 0 or X.dim() not in (1 + k, 2 + k) or tuple(X.shape[X.dim() - k:]) != spec.input_shape
            or (not shared and X.shape[0] != R) or tuple(Y.shape) != want_y):
        raise InputError(
            f"need non-empty X [m, {sample}] or [{R}, m, {sample}] and Y to match, "
            f"got {list(X.shape)} and {list(Y.shape)}"
        )
    total_loss = [0.0] * R
    correct = [0] * R
    for start in range(0, m, chunk):
        Xc = X.narrow(X.dim() - 1 - k, start, min(chunk, m - start)).to(device=W.device, dtype=W.dtype)
        Yc = Y[..., start : start + chunk].to(device=W.device, dtype=torch.int64)
        if shared:
            Xc, Yc = Xc.unsqueeze(0).expand(R, *Xc.shape), Yc.unsqueeze(0).expand(R, -1)
        for r in range(R):
            # One forward pass per model: a batched product over R models rounds its float32 sums differently for
            # different R, which made a run's loss depend on the runs it was simulated with (in the 7th digit).
            logits = spec.forward(W[r : r + 1], Xc[r : r + 1])[0]
            # The chunk's sum as for a single model; chunks accumulate in float64.
            total_loss[r] += F.cross_entropy(logits, Yc[r], reduction="sum").double().item()
            correct[r] += int((logits.argmax(dim=1) == Yc[r]).sum())
    return [(total_loss[r] / m, correct[r] / m) for r in range(R)]


def fedavg(W: torch.Tensor) -> torch.Tensor:
    """Equal-weight average ``[d]`` of stacked models ``W [n, d]``."""
    if W.dim() != 2 or W.shape[0] < 1:
        raise InputError(f"fedavg needs stacked models [n >= 1, d], got {list(W.shape)}")
    return W.mean(dim=0)
