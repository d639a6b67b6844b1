"""Shared fixtures and hypothesis settings."""

from __future__ import annotations

import os

import pytest
from helpers import write_data_root
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A folder with small MNIST-format IDX files under mnist/ (tests/helpers.py writes them)."""
    return write_data_root(tmp_path_factory.mktemp("data"), {"mnist": (1200, 300, 0)})


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Stage datasets in a folder of this test's own, never in the user's cache."""
    monkeypatch.setenv("BLADEFL_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def cluster_address():
    """The address of a local Dask cluster of two worker processes, one thread each, for a test module."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as c:
        yield c.scheduler_address


@pytest.fixture
def registry(monkeypatch):
    """Models and data sets registered in a test are unregistered after it: no later test sees them."""
    import bladefl_validate.config as config_module
    import bladefl_validate.data as data_module
    import bladefl_validate.learning.model as model_module

    monkeypatch.setattr(model_module, "_MODULES", dict(model_module._MODULES))
    monkeypatch.setattr(model_module, "KINDS", model_module.KINDS)
    monkeypatch.setattr(config_module, "REGISTERED_MODELS", dict(config_module.REGISTERED_MODELS))
    monkeypatch.setattr(data_module, "_REGISTERED", dict(data_module._REGISTERED))
    monkeypatch.setattr(config_module, "REGISTERED_DATASETS", dict(config_module.REGISTERED_DATASETS))
