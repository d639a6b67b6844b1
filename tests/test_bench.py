"""Smoke test of benchmarks/bench.py on tiny sizes: it runs and reports every key. No timing is checked."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch
from helpers import REPO

BENCH = REPO / "benchmarks" / "bench.py"

REQUIRED = [
    "train_speedup_vs_loop_n20",
    "train_speedup_vs_loop_n100",
    "train_gflops",
    "matmul_peak_gflops",
    "sweep_k_seconds",
    "kstar_closed_form_us",
    "kstar_cvxpy_ms",
    "grid_points_per_s",
    "pow_hashes_per_s",
    "pow_hash_ratio_vs_hashlib",
    "generic_vs_loop_cnn",
    "generic_vs_loop_mlp",
    "vmapped_vs_loop_cnn",
]
#: The sweep's figures: present always, null when the sweep is skipped.
SWEEP_KEYS = [
    "sweep_k_seconds",
    "sweep_training_only_seconds",
    "sweep_fraction_of_peak",
    "sweep_6_seeds_ratio",
    "sweep_vs_loop_speedup",
    "peak_rss_mb",
]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bladefl_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # One thread: on a loaded machine, tiny ops on several OpenMP threads can stall for many ms each.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(threads)


def test_bench_reports_every_key_on_tiny_sizes(bench) -> None:
    result = bench.run("tiny")
    json.loads(json.dumps(result))  # one JSON object
    for key in REQUIRED + SWEEP_KEYS:
        assert key in result, key
    assert all(result[k] is None for k in SWEEP_KEYS) and "skipped" in result["sweep_k_note"]
    for key in REQUIRED:
        if key not in SWEEP_KEYS:
            assert isinstance(result[key], float) and math.isfinite(result[key]) and result[key] > 0, key


def test_sweep_is_skipped_without_data(bench) -> None:
    out = bench.section_sweep("full", None, {})
    assert all(out[k] is None for k in SWEEP_KEYS) and "BLADEFL_DATA" in out["sweep_k_note"]


def test_flop_count_and_loop_baseline(bench) -> None:
    spec = bench.make_spec("mlp", 256)
    assert bench.mlp_flops_per_sample(spec) == 4 * (784 * 256 + 256 * 10) + 2 * 256 * 10
    # The baseline trains every client: its models differ from the global one and from each other.
    small = bench.make_spec("mlp", 8)
    torch.manual_seed(0)
    module = bench._mlp_module(small)
    X, Y = torch.rand(3, 40, 784), torch.randint(10, (3, 40))
    states = bench.loop_train(module, X, Y, epochs=1, lr=0.5, batch_size=16)
    assert len(states) == 3
    w = module.state_dict()["0.weight"]
    assert not torch.equal(states[0]["0.weight"], w)
    assert not torch.equal(states[0]["0.weight"], states[1]["0.weight"])
