"""RunConfig refuses, with the rule it breaks, every setting a run would otherwise crash on."""

from __future__ import annotations

import pytest

from bladefl_platform.errors import InputError
from bladefl_validate import config as config_module
from bladefl_validate.config import MAX_SEED, MAX_SIGMA2, RunConfig


@pytest.mark.parametrize("changes, message", [
    ({"classes_per_client": 3}, r"classes_per_client \(k=3\) must divide samples_per_client \(512\)"),
    ({"classes_per_client": 5, "samples_per_client": 64}, "must divide samples_per_client"),
    ({"classes_per_client": 11, "samples_per_client": 550}, "at most 10"),
    ({"partition": "shards", "samples_per_client": 63}, "divisible by 2 for partition shards"),
    ({"partition": "dirichlet", "dirichlet_alpha": float("inf")}, "dirichlet_alpha must be a positive finite"),
    ({"partition": "dirichlet", "dirichlet_alpha": float("nan")}, "dirichlet_alpha must be a positive finite"),
    ({"dirichlet_alpha": 0.0}, "dirichlet_alpha"),
    ({"seed": 2**64}, r"seed must be an integer in 0..2\*\*64-1"),
    ({"seed": -1}, "seed must be"),
    ({"M": 1, "sigma2": 1e300}, "sigma2 must be at most 1e\\+60: models are float32"),
    ({"M": 1, "sigma2": 1e61}, "sigma2 must be at most"),
])
def test_rules(changes, message):
    with pytest.raises(InputError, match=message):
        RunConfig(**changes)


def test_what_the_rules_still_allow():
    RunConfig(classes_per_client=3, partition="iid")  # k only matters for the classes scheme
    RunConfig(classes_per_client=3, samples_per_client=510)
    RunConfig(partition="shards", samples_per_client=64)
    RunConfig(seed=MAX_SEED)
    RunConfig(M=1, sigma2=MAX_SIGMA2)
    RunConfig(partition="dirichlet", dirichlet_alpha=1e300)


def test_every_allowed_seed_seeds_torch_and_numpy():
    import numpy as np
    import torch

    for seed in (0, 2**63, MAX_SEED):
        torch.Generator().manual_seed(RunConfig(seed=seed).seed)
        np.random.default_rng(RunConfig(seed=seed).seed)


def test_the_noise_at_the_largest_sigma2_stays_finite():
    import torch

    from bladefl_validate.learning.lazy import lazy_copies
    from bladefl_validate.learning.training import fedavg

    W = torch.zeros(3, 1000)
    W_lazy, _ = lazy_copies(W, 2, MAX_SIGMA2, torch.Generator().manual_seed(0))
    assert torch.isfinite(W_lazy).all() and torch.isfinite(fedavg(torch.cat([W, W_lazy]))).all()


def test_memory_a_run_needs():
    from bladefl_validate.learning.model import make_spec

    for model, hidden in (("mlp", 256), ("mlp", 3_000_000), ("logreg", 77)):
        assert RunConfig(model=model, hidden=hidden).model_dim == make_spec(model, hidden).dim
    # A module kind's size is not known without torch: only its data count towards the bound.
    cnn = RunConfig(model="cnn")
    assert cnn.model_dim is None and cnn.memory_needed() == 4 * 20 * 512 * 784 < 2 * 20 * make_spec("cnn").dim * 4
    big = RunConfig(hidden=3_000_000)
    assert big.memory_needed() > 2 * 20 * 2_385_000_010 * 4
    with pytest.raises(InputError, match=r"needs at least 381.\d GB of memory .* this machine has 16.0 GB"):
        big.check_memory(16 * 10**9)
    RunConfig().check_memory(16 * 10**9)
    assert config_module.machine_memory() > 10**8


def test_the_vocabulary_matches_the_modules_that_implement_it():
    from bladefl_validate import data, partition
    from bladefl_validate.learning import detect, model

    assert config_module.MODELS + tuple(config_module.REGISTERED_MODELS) == model.KINDS
    assert config_module.DETECTORS == detect.DETECTORS
    assert data.DATASETS is config_module.DATASETS and set(data.NORMALIZATION) == set(config_module.DATASETS)
    assert partition.SHARDS_PER_CLIENT == partition.ShardsPartitioner(1, 2).shards_per_client
