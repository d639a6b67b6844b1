"""A golden run pins what the simulator computes, so that a change of results cannot go unnoticed.

Stored results are reused only under the same ``SIMULATION_VERSION`` (the result store's key). If this
test fails after a change to the simulator, the change alters results: bump SIMULATION_VERSION in
bladefl_validate/config.py (stored runs then compute again) and pin the new numbers here.
"""

import platform
import warnings

import pytest
import torch

from bladefl_validate.config import RunConfig
from bladefl_validate.simulation import SIMULATION_VERSION, simulate

pytestmark = pytest.mark.usefixtures("private_cache")

#: Pinned under SIMULATION_VERSION "2" with torch 2.14.1; the losses to float32's last digits anywhere.
PINNED = {
    "version": "2",
    "initial_train_loss": 2.3429603576660156,
    "losses": [2.184616804122925, 1.9920268058776855],
    "lazy": [2],
}


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")), "")
    except OSError:
        return ""


#: The exact bits of a run, per platform: floating-point kernels round differently with the CPU's vendor and
#: vector width (torch and MKL dispatch on both), and every model's bytes enter its digest, hence the Merkle
#: root, the block hash and the race's winner.
BITS = {
    ("x86_64", "2.14.1", "GenuineIntel", "AVX512"): {
        "losses": [2.184616804122925, 1.9920265674591064],
        "test_accuracy": [0.22333333333333333, 0.14],
        "miners": [3, 2],
        "block_hashes": [
            "00ac21e15eae3d16a7a61fab1b10ab0b0c64f1c5d4ea5dab4b030612abca2ea0",
            "00bb3fed4b33097f9421a1e2ad0ff4ae070e761d23c935fd91c1e774a54a4bc0",
        ],
    },
}


def _platform() -> tuple[str, ...] | None:
    if torch.cuda.is_available():
        return None
    return (platform.machine(), torch.__version__.split("+")[0], _cpu_vendor(), torch.backends.cpu.get_cpu_capability())


def test_golden_run_matches_the_pinned_results(data_root):
    config = RunConfig(N=4, M=1, K=2, t_sum=24.0, alpha=1.0, beta=10.0, samples_per_client=64, hidden=16,
                       batch_size=32, difficulty_bits=8, eta=0.05, sigma2=0.1, seed=3)
    r = simulate(config, None, data_root)
    hint = "the simulator's results changed: bump SIMULATION_VERSION and pin the new numbers in this test"
    assert SIMULATION_VERSION == PINNED["version"], "SIMULATION_VERSION changed: pin the new golden numbers"
    assert r.lazy == PINNED["lazy"], hint
    assert r.initial_train_loss == pytest.approx(PINNED["initial_train_loss"], rel=1e-6), hint
    assert [m.global_train_loss for m in r.rounds] == pytest.approx(PINNED["losses"], rel=1e-5), hint
    bits = BITS.get(_platform())
    if bits is None:
        warnings.warn(f"no pinned bits for platform {_platform()}: checked to float32 rounding only")
        return
    assert [m.global_train_loss for m in r.rounds] == bits["losses"], hint
    assert [m.test_accuracy for m in r.rounds] == bits["test_accuracy"], hint
    assert [m.block_hash for m in r.rounds] == bits["block_hashes"], hint
    assert [m.miner for m in r.rounds] == bits["miners"], hint
