"""The theory's question and the validator's run share one System: the same fields, defaults and rules, and the
run's stored-result keys unchanged by the sharing."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bladefl_platform.checks import ConstraintError
from bladefl_theory import Params
from bladefl_theory.system import SYSTEM_DEFAULTS, SYSTEM_PARAMETERS, System
from bladefl_validate.config import RunConfig
from bladefl_validate.tasks import RUN

REPORTS = Path(__file__).resolve().parents[2] / "reports"

#: A config's dict as it was before the deployment's settings moved into System (keys and their order).
ORDER = ["dataset", "N", "M", "K", "sigma2", "alpha", "beta", "t_sum", "eta", "samples_per_client", "partition",
         "classes_per_client", "dirichlet_alpha", "model", "hidden", "batch_size", "difficulty_bits", "seed", "detect",
         "detect_threshold", "exclude_flagged", "encrypt"]


def test_params_and_runconfig_are_systems_with_its_defaults():
    for cls in (Params, RunConfig):
        assert issubclass(cls, System)
        assert {n: getattr(cls(), n) for n in SYSTEM_PARAMETERS} == SYSTEM_DEFAULTS
    assert SYSTEM_DEFAULTS == {"N": 20, "M": 0, "sigma2": 0.01, "alpha": 1.0, "beta": 10.0, "t_sum": 100.0,
                               "eta": 0.01}
    assert RunConfig(M=3, sigma2=0.2).theory_params().system() == Params(M=3, sigma2=0.2).system()


@pytest.mark.parametrize("cls", [System, Params, RunConfig])
@pytest.mark.parametrize("changes, message", [({"M": 20}, "0 <= M <= N-1 = 19"),
                                              ({"N": 1}, "N must be an integer >= 2"),
                                              ({"t_sum": 5.0, "K": 1}, r"t_sum must be >= alpha \+ beta = 11")])
def test_one_set_of_system_rules(cls, changes, message):
    names = {f.name for f in dataclasses.fields(cls)}
    with pytest.raises(ConstraintError, match=message):
        cls(**{k: v for k, v in changes.items() if k in names})


def test_a_configs_dict_and_keys_are_unchanged():
    assert list(RunConfig().as_dict()) == ORDER
    # Pinned before System: the store keys of three runs.
    assert RUN.key(RunConfig().as_dict()) == "7abcfe43bd77ffde4f8affbaf3beea771a7d7a889f87eaca6415447b9b4e2420"
    rc = RunConfig(dataset="fashion-mnist", M=4, sigma2=0.1, K=3, partition="dirichlet", detect="nn", seed=5)
    assert RUN.key(rc.as_dict()) == "23466194557d9988786324574d4a9e51d1e34a0b3ef5a0d305d29d475c389c01"
    rc = RunConfig(N=5, M=2, t_sum=50.0, K=2, model="logreg")
    assert RUN.key(rc.as_dict()) == "7739a4f52b51b000c28a13437f4bb4d52d27cc8cad8c29ba44c43d53f3baf7bd"


@pytest.mark.parametrize("store", sorted(REPORTS.glob("*/results.sqlite")), ids=lambda p: p.parent.name)
def test_every_committed_run_keeps_its_key(store):
    before = sorted(p.name for p in store.parent.iterdir())
    # immutable: read the committed file as it is, leaving no -wal or -shm file beside it.
    with closing(sqlite3.connect(f"file:{store}?mode=ro&immutable=1", uri=True)) as conn:
        rows = conn.execute("SELECT key, config, version FROM results WHERE kind = ?", (RUN.name,)).fetchall()
    assert sorted(p.name for p in store.parent.iterdir()) == before
    assert rows
    for key, config, version in rows:
        assert RUN.key(RunConfig.from_dict(json.loads(config)).as_dict()) == key
        assert version == RUN.version
