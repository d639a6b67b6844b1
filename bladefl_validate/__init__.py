"""BLADE-FL for real: N clients training on non-IID data, lazy clients, and a SHA-256 proof-of-work ledger.

The Python API (imported on first use, so ``import bladefl_validate`` stays light)::

    from bladefl_validate import RunConfig, simulate, sweep_k
    result = simulate(RunConfig(M=4, sigma2=0.1, K=5), data_dir="../shared/datasets")
    result.metrics                      # one row per round, a pandas DataFrame
    sweep = sweep_k(RunConfig(K=1), seeds=[0, 1], data_dir="../shared/datasets")
    sweep.per_k, sweep.k_star           # mean ± std per K, the empirical K*
    cal = calibrate(RunConfig(N=50), box="t_sum=50:200,beta=2.5:20,M=0:8,sigma2=0:0.3")
    save_profile(cal.profile, "my-system.json")   # bladefl_theory.profiles.load_profile reads it
"""

from importlib import import_module

from bladefl_theory import __version__  # defined once, in pyproject.toml

#: Public names and the modules that define them.
_API = {
    "RunConfig": "config",
    "RunResult": "simulation",
    "simulate": "simulation",
    "simulate_many": "simulation",
    "run_to_folder": "simulation",
    "SweepResult": "studies.sweep_k",
    "sweep_k": "studies.sweep_k",
    "estimate_constants": "studies.estimate",
    "measure_gap": "studies.gap",
    "verify_run": "chain.verify",
    "calibrate": "studies.kstar.study",
    "save_profile": "studies.kstar.study",
    "register_dataset": "data",
    "register_model": "learning.model",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
