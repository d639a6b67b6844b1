"""Batched local training vs a per-client reference, evaluation, FedAvg and lazy copies."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import reference_train_client
from scipy import stats
from torch import nn

from bladefl_platform.errors import InputError
from bladefl_validate.learning.lazy import choose_lazy, lazy_copies
from bladefl_validate.learning.model import ModelSpec, make_spec
from bladefl_validate.learning.training import epoch_permutations, evaluate, fedavg, train_clients

# Significance level for the statistical checks; every test is seeded, so they are deterministic anyway.
ALPHA = 1e-6


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _blobs(n: int, m: int, seed: int, spread: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable synthetic data: 10 well-separated class centres in 784 dims plus small noise."""
    g = _gen(seed)
    centres = torch.randn(10, 784, generator=g) / math.sqrt(784) * 3.0
    Y = torch.randint(10, (n, m), generator=g)
    X = centres[Y] + spread / math.sqrt(784) * torch.randn(n, m, 784, generator=g)
    return X, Y


def _stacked_init(spec: ModelSpec, n: int, seed: int) -> torch.Tensor:
    g = _gen(seed)
    return torch.stack([spec.init(g) for _ in range(n)])


# ---------------------------------------------------------------- model


def test_spec_dims_and_validation() -> None:
    assert make_spec("mlp", 256).dim == 784 * 256 + 256 + 256 * 10 + 10
    assert make_spec("logreg").dim == 784 * 10 + 10
    for bad in [("resnet", 256), ("mlp", 0), ("mlp", 2.5), ("mlp", True)]:
        with pytest.raises(ValueError):
            make_spec(*bad)  # type: ignore[arg-type]


def test_unflatten_views_and_init_bounds() -> None:
    spec = make_spec("mlp", 16)
    w = spec.init(_gen(0))
    assert w.dtype == torch.float32 and w.shape == (spec.dim,)
    W = torch.stack([w, 2 * w])
    W1, b1, W2, b2 = spec.unflatten(W)
    assert W1.shape == (2, 784, 16) and b1.shape == (2, 16)
    assert W2.shape == (2, 16, 10) and b2.shape == (2, 10)
    assert W1.data_ptr() == W.data_ptr()  # a view, not a copy
    assert torch.equal(b2[1], 2 * w[-10:])
    assert W1[0].abs().max() <= 1 / math.sqrt(784) and b1[0].abs().max() <= 1 / math.sqrt(784)
    assert W2[0].abs().max() <= 1 / math.sqrt(16) and b2[0].abs().max() <= 1 / math.sqrt(16)
    assert W2[0].abs().max() > 0.9 / math.sqrt(16)  # the bounds are actually used
    assert torch.equal(spec.init(_gen(0)), w)
    with pytest.raises(ValueError):
        spec.unflatten(W[:, :-1])


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("kind", ["mlp", "logreg"])
def test_batched_training_matches_reference(kind: str) -> None:
    spec = make_spec(kind, 256)
    n, m, epochs, lr, bs = 3, 150, 2, 0.1, 64  # m not a multiple of the batch size
    X, Y = _blobs(n, m, seed=1)
    W0 = _stacked_init(spec, n, seed=2)
    W0_copy = W0.clone()
    W = train_clients(spec, W0, X, Y, epochs, lr, bs, generator=_gen(3))
    assert torch.equal(W0, W0_copy)
    perms = epoch_permutations(n, m, epochs, _gen(3))
    assert perms.shape == (epochs, n, m)
    assert not torch.equal(perms[0, 0], perms[0, 1]) and not torch.equal(perms[0, 0], perms[1, 0])
    for i in range(n):
        ref = reference_train_client(spec, W0[i], X[i], Y[i], epochs, lr, bs, list(perms[:, i]))
        assert not torch.allclose(ref, W0[i], atol=1e-3)  # training did move the weights
        torch.testing.assert_close(W[i], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk_bytes", [1, 2 * 4 * (784 * 8 + 8 + 8 * 10 + 10), 1 << 40])
def test_chunked_training_matches_reference(monkeypatch: pytest.MonkeyPatch, chunk_bytes: int) -> None:
    # One client, two clients, or all five per chunk; the global model given as an expanded view.
    import bladefl_validate.learning.training as training

    monkeypatch.setattr(training, "_CHUNK_BYTES", chunk_bytes)
    spec = make_spec("mlp", 8)
    n, m, epochs, lr, bs = 5, 70, 3, 0.2, 32
    X, Y = _blobs(n, m, seed=20)
    w0 = spec.init(_gen(21))
    W = train_clients(spec, w0.expand(n, -1), X, Y, epochs, lr, bs, generator=_gen(22))
    assert W.shape == (n, spec.dim) and W.is_contiguous()
    perms = epoch_permutations(n, m, epochs, _gen(22))
    for i in range(n):
        ref = reference_train_client(spec, w0, X[i], Y[i], epochs, lr, bs, list(perms[:, i]))
        torch.testing.assert_close(W[i], ref, atol=1e-5, rtol=1e-5)


def test_training_is_deterministic_per_seed() -> None:
    spec = make_spec("mlp", 32)
    X, Y = _blobs(4, 100, seed=4)
    W0 = _stacked_init(spec, 4, seed=5)
    a = train_clients(spec, W0, X, Y, 2, 0.05, 32, generator=_gen(6))
    b = train_clients(spec, W0, X, Y, 2, 0.05, 32, generator=_gen(6))
    c = train_clients(spec, W0, X, Y, 2, 0.05, 32, generator=_gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(train_clients(spec, W0, X, Y, 0, 0.05, 32, generator=_gen(6)), W0)


@pytest.mark.parametrize("kind", ["mlp", "logreg"])
def test_training_lowers_loss(kind: str) -> None:
    spec = make_spec(kind, 64)
    n, m = 3, 200
    X, Y = _blobs(n, m, seed=8)
    W0 = _stacked_init(spec, n, seed=9)
    W = train_clients(spec, W0, X, Y, 5, 0.5, 32, generator=_gen(10))
    for i in range(n):
        before, _ = evaluate(spec, W0[i], X[i], Y[i])
        after, acc = evaluate(spec, W[i], X[i], Y[i])
        assert after < 0.5 * before
        assert acc > 0.9


def test_training_rejects_bad_inputs() -> None:
    spec = make_spec("logreg")
    X, Y = _blobs(2, 10, seed=0)
    W0 = _stacked_init(spec, 2, seed=0)
    with pytest.raises(ValueError):
        train_clients(spec, W0[:1], X, Y, 1, 0.1)
    with pytest.raises(ValueError):
        train_clients(spec, W0, X, Y[:, :5], 1, 0.1)
    with pytest.raises(ValueError):
        train_clients(spec, W0, X, Y, 1, 0.0)
    with pytest.raises(ValueError):
        train_clients(spec, W0, X, Y, 1, 0.1, batch_size=0)
    with pytest.raises(ValueError):
        train_clients(spec, W0, X, Y, -1, 0.1)


# ---------------------------------------------------------------- evaluate and fedavg


def test_evaluate_perfect_and_trivial_models() -> None:
    spec = make_spec("logreg")
    m = 1000
    Y = torch.randint(10, (m,), generator=_gen(11))
    X = torch.zeros(m, 784)
    X[torch.arange(m), Y] = 1.0  # feature j is on exactly when the label is j
    w = torch.zeros(spec.dim)
    Wl, _ = spec.unflatten(w.unsqueeze(0))
    Wl[0, :10, :10] = 5.0 * torch.eye(10)
    loss, acc = evaluate(spec, w, X, Y, chunk=64)
    assert acc == 1.0
    assert loss == pytest.approx(math.log1p(9 * math.exp(-5.0)), rel=1e-4)

    zero = torch.zeros(spec.dim)  # uniform logits: loss ln 10; argmax ties go to class 0
    loss, acc = evaluate(spec, zero, X, Y, chunk=300)
    assert loss == pytest.approx(math.log(10), rel=1e-6)
    assert acc == pytest.approx((Y == 0).float().mean().item())


def test_evaluate_is_independent_of_chunking() -> None:
    spec = make_spec("mlp", 32)
    X, Y = _blobs(1, 500, seed=12)
    w = spec.init(_gen(13))
    loss_a, acc_a = evaluate(spec, w, X[0], Y[0], chunk=7)
    loss_b, acc_b = evaluate(spec, w, X[0], Y[0])
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    assert acc_a == acc_b


def test_fedavg() -> None:
    W = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, -3.0], [2.0, 5.0, 0.0]])
    torch.testing.assert_close(fedavg(W), torch.tensor([2.0, 3.0, 0.0]))
    torch.testing.assert_close(fedavg(W[:1]), W[0])
    with pytest.raises(ValueError):
        fedavg(torch.zeros(0, 3))


# ---------------------------------------------------------------- lazy clients


def test_choose_lazy() -> None:
    lazy = choose_lazy(20, 6, _gen(14))
    assert lazy.dtype == torch.int64 and lazy.shape == (6,)
    assert torch.equal(lazy, torch.sort(lazy).values)
    assert len(set(lazy.tolist())) == 6 and 0 <= lazy.min() and lazy.max() < 20
    assert torch.equal(lazy, choose_lazy(20, 6, _gen(14)))
    assert choose_lazy(5, 0, _gen(0)).numel() == 0
    assert torch.equal(choose_lazy(5, 5, _gen(0)), torch.arange(5))
    for N, M in [(5, 6), (5, -1), (-1, 0), (5, 1.5)]:
        with pytest.raises(ValueError):
            choose_lazy(N, M, _gen(0))  # type: ignore[arg-type]


def test_lazy_sources_are_uniform_over_honest() -> None:
    h, draws = 7, 14000
    W_honest = torch.arange(h, dtype=torch.float32).unsqueeze(1)
    W_lazy, sources = lazy_copies(W_honest, draws, 0.0, _gen(15))
    assert sources.min() >= 0 and sources.max() < h
    assert torch.equal(W_lazy, W_honest[sources])
    counts = torch.bincount(sources, minlength=h).double()
    expected = draws / h
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < stats.chi2.ppf(1 - ALPHA, df=h - 1)


def test_lazy_noise_has_variance_sigma2() -> None:
    h, num_lazy, d, sigma2 = 5, 4, 50_000, 0.09
    W_honest = torch.randn(h, d, generator=_gen(16))
    W_lazy, sources = lazy_copies(W_honest, num_lazy, sigma2, _gen(17))
    assert W_lazy.shape == (num_lazy, d) and W_lazy.dtype == torch.float32
    noise = (W_lazy.double() - W_honest[sources].double()).flatten()
    k = noise.numel()
    z = stats.norm.ppf(1 - ALPHA / 2)
    # Mean: normal with sd sqrt(sigma2 / k). Variance: (k-1) s^2 / sigma2 ~ chi2(k-1), two-sided.
    assert abs(noise.mean().item()) < z * math.sqrt(sigma2 / k)
    scaled = (k - 1) * noise.var().item() / sigma2
    assert stats.chi2.ppf(ALPHA / 2, k - 1) < scaled < stats.chi2.ppf(1 - ALPHA / 2, k - 1)
    # Each lazy client has its own independent noise (not one draw re-added to the slice).
    per_client = noise.view(num_lazy, d)
    corr = torch.corrcoef(per_client)
    off_diag = corr[~torch.eye(num_lazy, dtype=torch.bool)]
    assert off_diag.abs().max().item() < z / math.sqrt(d)


def test_lazy_zero_variance_is_exact_copy_and_same_sources() -> None:
    W_honest = torch.randn(6, 100, generator=_gen(18))
    exact, src0 = lazy_copies(W_honest, 10, 0.0, _gen(19))
    noisy, src1 = lazy_copies(W_honest, 10, 0.5, _gen(19))
    assert torch.equal(exact, W_honest[src0])
    assert torch.equal(src0, src1)
    assert not torch.equal(noisy, exact)
    empty, src = lazy_copies(W_honest, 0, 0.5, _gen(0))
    assert empty.shape == (0, 100) and src.numel() == 0


def test_lazy_rejects_bad_inputs() -> None:
    W_honest = torch.zeros(3, 4)
    for sigma2 in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            lazy_copies(W_honest, 2, sigma2, _gen(0))
    with pytest.raises(ValueError):
        lazy_copies(torch.zeros(0, 4), 2, 0.1, _gen(0))
    with pytest.raises(ValueError):
        lazy_copies(W_honest, -1, 0.1, _gen(0))


# ---------------------------------------------------------------- any nn.Module through torch.func


class _SmallMLP(nn.Module):
    def __init__(self, hidden: int = 16):
        super().__init__()
        self.l1, self.l2 = nn.Linear(784, hidden), nn.Linear(hidden, 10)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))


def test_generic_module_path_equals_the_fused_mlp():
    from bladefl_validate.learning.model import ModuleSpec

    fused, generic = make_spec("mlp", 16), ModuleSpec("mlp-module", _SmallMLP)
    assert generic.dim == fused.dim
    n, m = 3, 40
    g = torch.Generator().manual_seed(0)
    X, Y = torch.rand(n, m, 784, generator=g), torch.randint(10, (n, m), generator=g)
    w = fused.init(_gen(1))

    def to_module(W):  # the fused layout is input-major, nn.Linear's output-major
        A1, a1, A2, a2 = fused.unflatten(W)
        return torch.cat([A1.transpose(1, 2).reshape(len(W), -1), a1, A2.transpose(1, 2).reshape(len(W), -1), a2], 1)

    perms = epoch_permutations(n, m, 2, _gen(2))
    a = train_clients(fused, w.expand(n, -1), X, Y, 2, 0.1, 16, perms=perms)
    b = train_clients(generic, to_module(w[None]).expand(n, -1), X, Y, 2, 0.1, 16, perms=perms)
    assert torch.allclose(to_module(a), b, atol=1e-6)
    assert evaluate(generic, b[0], X[0], Y[0]) == pytest.approx(evaluate(fused, a[0], X[0], Y[0]), rel=1e-5)


@pytest.mark.usefixtures("private_cache", "registry")
def test_cnn_and_a_registered_module_train_through_the_generic_path(data_root):
    from bladefl_validate.config import RunConfig
    from bladefl_validate.learning.model import register_model
    from bladefl_validate.simulation import simulate

    cnn = make_spec("cnn")
    assert cnn.dim == 1_663_370  # McMahan et al.'s CNN on 28x28 inputs
    w = cnn.init(_gen(0))
    assert torch.equal(w, cnn.init(_gen(0)))  # seeded by the run's generator
    register_model("small-mlp", _SmallMLP)
    for kind in ("cnn", "small-mlp"):
        config = RunConfig(model=kind, N=3, M=1, K=1, t_sum=12.0, beta=10.0, samples_per_client=16, batch_size=8,
                           difficulty_bits=2, eta=0.05)
        r = simulate(config, None, data_root)
        # Two local epochs on learnable data lower the loss (seeded: cnn 2.28 -> 2.07, small-mlp 2.39 -> 1.40).
        assert r.final.global_train_loss < 0.95 * r.initial_train_loss, kind
    with pytest.raises(InputError, match="built-in"):
        register_model("mlp", _SmallMLP)
