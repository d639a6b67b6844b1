"""The benchmark suite: local training, a full sweep-k, the theory's solvers and proof of work.

Run from the repository root:

    python benchmarks/bench.py [--quick] [--json] [--skip SECTION ...]

``--quick`` finishes in under two minutes (fewer repetitions, a reduced and labelled sweep);
``--json`` prints one JSON object. Every measurement warms up first, repeats, and reports the
median; measurements that are compared with each other (batched vs loop, miner vs hashlib)
are interleaved repetition by repetition so that a change in machine load hits both alike.
The machine, torch's thread count and the load average before and after are part of the output:
on a shared machine, numbers taken under load are not comparable with numbers taken without.

Sections (each a function, reusable on tiny sizes, see tests/test_bench.py):

1. ``train``: client-epochs/s and samples/s of ``bladefl_validate.learning.training.train_clients``
   against a per-client loop written the way typical FL code is (a deep copy of an nn.Module,
   torch.optim.SGD and a torch DataLoader per client), MLP-256 on MNIST-shaped synthetic data;
   the achieved GFLOP/s against this machine's fp32 matmul peak (``torch.mm``, measured here).
   ``generic``: the generic (module) path of ``train_clients`` against the same per-client loop, interleaved, for
   a small CNN on CIFAR-shaped [3, 32, 32] data and for the MLP as an nn.Module (the issue's setting: 8 clients x
   256 samples, one epoch); the old vmapped path beside them. Ratios are loop time / path time (> 1: faster).
2. ``sweep``: whole sweeps (``bladefl_validate.studies.sweep_k.sweep_k`` over K = 1..9, N = 20, MNIST) end to
   end: against their training alone at the trainer's rate, as a share of the matmul peak, 6 seeds
   against 1, against the per-client loop, and the largest worker's memory (needs ``BLADEFL_DATA``;
   ``--quick`` runs a reduced sweep, t_sum = 33).
3. ``theory``: K* per call (closed form, integer search, cvxpy) and bound evaluations per second
   on a 10^6-point grid, through ``bench_theory``'s functions.
4. ``pow``: hashes/s of ``bladefl_validate.chain.mining.mine`` against a plain hashlib loop.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_theory  # noqa: E402  (benchmarks/ is not a package)

from bladefl_theory import Params  # noqa: E402
from bladefl_platform.errors import InputError  # noqa: E402
from bladefl_validate.chain.mining import BlockHeader, MiningError, header_prefix, mine  # noqa: E402
from bladefl_validate.learning.model import ModelSpec, ModuleSpec, make_spec  # noqa: E402
from bladefl_validate.learning import training  # noqa: E402
from bladefl_validate.learning.training import train_clients  # noqa: E402

SECTIONS = ("train", "generic", "sweep", "theory", "pow", "encrypt")

#: Sizes per mode. "tiny" is for the smoke test only: its numbers mean nothing.
SIZES: dict[str, dict] = {
    "full": dict(
        generic_n=8, generic_samples=256, generic_repeats=5,
        train_ns=(20, 100), samples=512, batch=64, hidden=256, epochs=2, train_repeats=5,
        mm_sizes=(1024, 2048, 4096), mm_repeats=7,
        closed_calls=2000, integer_calls=500, cvxpy_calls=20, grid_points=1_000_000, theory_repeats=5,
        pow_seconds=1.0, pow_repeats=5, sweep="full", ckks_hidden=256, ckks_clients=20,
    ),
    "quick": dict(
        generic_n=8, generic_samples=256, generic_repeats=3,
        train_ns=(20, 100), samples=512, batch=64, hidden=256, epochs=1, train_repeats=3,
        mm_sizes=(1024, 2048), mm_repeats=5,
        closed_calls=500, integer_calls=100, cvxpy_calls=5, grid_points=1_000_000, theory_repeats=3,
        pow_seconds=0.5, pow_repeats=3, sweep="reduced", ckks_hidden=256, ckks_clients=20,
    ),
    "tiny": dict(
        generic_n=2, generic_samples=16, generic_repeats=1,
        train_ns=(20, 100), samples=64, batch=64, hidden=32, epochs=1, train_repeats=1,
        mm_sizes=(128,), mm_repeats=1,
        closed_calls=10, integer_calls=5, cvxpy_calls=1, grid_points=20_000, theory_repeats=1,
        pow_seconds=0.02, pow_repeats=1, sweep="skip", ckks_hidden=4, ckks_clients=2,
    ),
}


# --------------------------------------------------------------------------- helpers


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: bool = True) -> dict[str, list[float]]:
    """Wall seconds of each function, run in turn ``repeats`` times (after one warm-up round)."""
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return times


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return None


# --------------------------------------------------------------------------- 1. training


def mlp_flops_per_sample(spec: ModelSpec) -> int:
    """Matmul FLOPs one training sample needs (multiply and add counted as 2).

    Forward: every weight once (2·weights). Backward: the weight gradients (2·weights) and the
    gradient flowing into the hidden layer (2·hidden·classes); nothing needs the gradient with
    respect to the input pixels, so it is not counted (neither implementation computes it). Bias,
    ReLU, softmax and the SGD update are O(params) per batch, not per sample, and are left out.
    This is about 4·params; the 6·params rule of thumb would report 1.5× more.
    """
    weights = sum(a * b for a, b in (s for s in spec.layer_shapes() if len(s) == 2))
    backprop_into_hidden = 2 * spec.hidden * spec.num_classes if spec.kind == "mlp" else 0
    return 4 * weights + backprop_into_hidden


def _mlp_module(spec: ModelSpec) -> nn.Module:
    return nn.Sequential(nn.Linear(spec.input_dim, spec.hidden), nn.ReLU(), nn.Linear(spec.hidden, spec.num_classes))


def loop_train(
    global_model: nn.Module, X: torch.Tensor, Y: torch.Tensor, epochs: int, lr: float, batch_size: int, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    """The baseline: typical per-client FL code. Each client deep-copies the global nn.Module and
    trains it with its own torch.optim.SGD and shuffling DataLoader; returns the state dicts."""
    states = []
    for i in range(X.shape[0]):
        model = copy.deepcopy(global_model)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        loader = DataLoader(
            TensorDataset(X[i], Y[i]), batch_size=batch_size, shuffle=True,
            generator=torch.Generator().manual_seed(seed + i),
        )
        for _ in range(epochs):
            for xb, yb in loader:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                optimizer.step()
        states.append(model.state_dict())
    return states


def matmul_peak(sizes: tuple[int, ...], repeats: int) -> dict:
    """fp32 GFLOP/s of square ``torch.mm`` (2·n³ FLOPs) at each size, median of ``repeats``; the peak is the best."""
    per_size = {}
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        out = torch.empty(n, n)
        reps = max(min(3, repeats), min(repeats, int(repeats * (2048 / n) ** 3)))  # big sizes: fewer, each is long
        times = interleaved({"mm": lambda: torch.mm(a, b, out=out)}, reps)["mm"]
        per_size[n] = 2 * n**3 / statistics.median(times) / 1e9
    return {"matmul_peak_gflops": max(per_size.values()), "matmul_gflops_by_size": per_size}


def training_shape_gemm(spec: ModelSpec, n: int, batch: int, repeats: int) -> float:
    """GFLOP/s of the two big GEMMs of one batched step alone (forward X·W1 and the update W1 -= X^T·G).

    At the chunk of clients train_clients trains together (``_CHUNK_BYTES`` of weights). The training
    is these GEMMs plus small element-wise work and the small layer, so this is its practical ceiling.
    """
    n = min(n, max(1, training._CHUNK_BYTES // (spec.dim * 4)))
    g = torch.Generator().manual_seed(0)
    X = torch.rand(n, batch, spec.input_dim, generator=g)
    W = torch.rand(n, spec.input_dim, spec.hidden, generator=g)
    G = torch.rand(n, batch, spec.hidden, generator=g)

    def both() -> None:
        torch.bmm(X, W)
        W.baddbmm_(X.transpose(1, 2), G, alpha=-1e-12)

    times = interleaved({"gemm": both}, repeats)["gemm"]
    return 2 * 2 * n * batch * spec.input_dim * spec.hidden / statistics.median(times) / 1e9


def bench_training(n: int, samples: int, batch: int, hidden: int, epochs: int, repeats: int) -> dict:
    """Batched train_clients against the per-client loop, same data, epochs and learning rate."""
    spec = make_spec("mlp", hidden)
    g = torch.Generator().manual_seed(n)
    X = torch.rand(n, samples, spec.input_dim, generator=g)
    Y = torch.randint(spec.num_classes, (n, samples), generator=g)
    w = spec.init(g)
    module = _mlp_module(spec)
    lr = 0.01

    def batched() -> None:
        train_clients(spec, w.expand(n, -1), X, Y, epochs, lr, batch, torch.Generator().manual_seed(1))

    def loop() -> None:
        loop_train(module, X, Y, epochs, lr, batch)

    # Warm-up: one batched call, and the loop on two clients (the full loop is the slow part).
    batched()
    loop_train(module, X[:2], Y[:2], 1, lr, batch)
    times = interleaved({"batched": batched, "loop": loop}, repeats, warmup=False)
    t_b, t_l = statistics.median(times["batched"]), statistics.median(times["loop"])
    client_epochs = n * epochs
    flops = mlp_flops_per_sample(spec) * client_epochs * samples
    return {
        "n": n,
        "batched_seconds": times["batched"],
        "loop_seconds": times["loop"],
        "batched_client_epochs_per_s": client_epochs / t_b,
        "loop_client_epochs_per_s": client_epochs / t_l,
        "batched_samples_per_s": client_epochs * samples / t_b,
        "loop_samples_per_s": client_epochs * samples / t_l,
        "batched_gflops": flops / t_b / 1e9,
        "loop_gflops": flops / t_l / 1e9,
        "speedup": t_l / t_b,
    }


def section_train(sizes: dict) -> dict:
    out: dict = {}
    peak = matmul_peak(sizes["mm_sizes"], sizes["mm_repeats"])
    out.update(peak)
    spec = make_spec("mlp", sizes["hidden"])
    out["train_flops_per_sample"] = mlp_flops_per_sample(spec)
    for n in sizes["train_ns"]:
        r = bench_training(n, sizes["samples"], sizes["batch"], sizes["hidden"], sizes["epochs"],
                           sizes["train_repeats"])
        out[f"train_speedup_vs_loop_n{n}"] = r["speedup"]
        out[f"train_client_epochs_per_s_n{n}"] = r["batched_client_epochs_per_s"]
        out[f"train_samples_per_s_n{n}"] = r["batched_samples_per_s"]
        out[f"loop_client_epochs_per_s_n{n}"] = r["loop_client_epochs_per_s"]
        out[f"loop_samples_per_s_n{n}"] = r["loop_samples_per_s"]
        out[f"train_gflops_n{n}"] = r["batched_gflops"]
        out[f"loop_gflops_n{n}"] = r["loop_gflops"]
        out[f"train_gemm_ceiling_gflops_n{n}"] = training_shape_gemm(spec, n, sizes["batch"], sizes["mm_repeats"])
    first = sizes["train_ns"][0]
    out["train_gflops"] = out[f"train_gflops_n{first}"]  # at the paper's N = 20
    out["train_fraction_of_peak"] = out["train_gflops"] / out["matmul_peak_gflops"]
    out["train_setup"] = (
        f"MLP-{sizes['hidden']}, synthetic MNIST-shaped data, {sizes['samples']} samples/client, batch "
        f"{sizes['batch']}, {sizes['epochs']} epoch(s) per call, median of {sizes['train_repeats']}"
    )
    return out


class CifarCNN(nn.Module):
    """A small CNN for CIFAR-shaped [3, 32, 32] inputs: two 3x3 convolutions (16, 32 channels) with pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def bench_generic(factory: Callable[[], nn.Module], shape: tuple[int, ...], n: int, samples: int, batch: int,
                  repeats: int) -> dict:
    """The generic path of train_clients (and the vmapped one) against the per-client loop, interleaved."""
    spec = ModuleSpec("bench", factory, shape, 10)
    g = torch.Generator().manual_seed(n)
    X = torch.randn(n, samples, *shape, generator=g)
    Y = torch.randint(10, (n, samples), generator=g)
    w = spec.init(g)
    module = factory()
    orders = training.epoch_permutations(n, samples, 1, g) + (torch.arange(n) * samples).view(1, n, 1)
    rows = X.reshape(n * samples, *shape), Y.reshape(-1)

    def vmapped() -> None:
        training._train_modules_vmapped(spec, w.expand(n, -1).clone(), *rows, orders, 0.01, batch)

    times = interleaved({
        "generic": lambda: train_clients(spec, w.expand(n, -1), X, Y, 1, 0.01, batch, torch.Generator().manual_seed(1)),
        "loop": lambda: loop_train(module, X, Y, 1, 0.01, batch),
        "vmapped": vmapped,
    }, repeats)
    t = {name: statistics.median(v) for name, v in times.items()}
    return {"generic_vs_loop": t["loop"] / t["generic"], "vmapped_vs_loop": t["loop"] / t["vmapped"],
            "generic_client_epochs_per_s": n / t["generic"], "loop_client_epochs_per_s": n / t["loop"]}


def section_generic(sizes: dict) -> dict:
    """The generic path against the loop for the CIFAR-shaped CNN and the MLP as a module, with the load average."""
    n, samples, repeats = sizes["generic_n"], sizes["generic_samples"], sizes["generic_repeats"]
    out: dict = {"generic_load_average_before": load_average()}
    models = {"cnn": (CifarCNN, (3, 32, 32)), "mlp": (lambda: _mlp_module(make_spec("mlp", sizes["hidden"])), (784,))}
    for name, (factory, shape) in models.items():
        for key, value in bench_generic(factory, shape, n, samples, sizes["batch"], repeats).items():
            out[f"{key}_{name}"] = value
    out["generic_load_average_after"] = load_average()
    out["generic_setup"] = (f"{n} clients x {samples} samples, batch {sizes['batch']}, 1 epoch, median of {repeats} "
                            "interleaved; CNN: two 3x3 convolutions on [3, 32, 32]; MLP-"
                            f"{sizes['hidden']} as an nn.Module on [784]")
    return out


# --------------------------------------------------------------------------- 2. sweep-k


def _children_peak_rss_mb() -> float:
    """The largest resident set of any finished child process (the sweep's Dask workers), in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux


def section_sweep(mode: str, data_dir: str | None, train: dict) -> dict:
    """Whole sweeps through their default execution (a local Dask cluster, workers started inside the time).

    (a) one default sweep-k end to end; (b) its training alone at the trainer's measured rate (section 1,
    N = 20, all cores); (c) a/b; (d) a 6-seed sweep against the 1-seed one, interleaved 1, 6, 1; (e) the
    sweep's client-epochs per second against the per-client loop's training-only rate; the largest worker.
    ``mode``: full (K = 1..9, t_sum = 100), reduced (t_sum = 33, K = 1..3) or skip.
    """
    keys = ("sweep_k_seconds", "sweep_training_only_seconds", "sweep_fraction_of_peak", "sweep_6_seeds_ratio",
            "sweep_vs_loop_speedup", "peak_rss_mb")
    if mode == "skip":
        return {**dict.fromkeys(keys), "sweep_k_note": "skipped (tiny sizes)"}
    if not data_dir:
        return {**dict.fromkeys(keys), "sweep_k_note": "skipped: BLADEFL_DATA is not set"}
    from bladefl_validate.config import RunConfig
    from bladefl_validate.studies.sweep_k import sweep_k

    if mode == "full":
        base = RunConfig(dataset="mnist", N=20, K=1)
        label = "full: K=1..9, N=20, MNIST, paper defaults (t_sum=100)"
    else:
        base = RunConfig(dataset="mnist", N=20, K=1, t_sum=33.0)
        label = "reduced (--quick): t_sum=33 so K=1..3 (tau 23, 6, 1), N=20, MNIST"
    client_epochs = sum(base.N * k * base.replace(K=k).tau for k in range(1, base.k_max + 1))
    spec = make_spec(base.model, base.hidden)
    useful_flops = mlp_flops_per_sample(spec) * client_epochs * base.samples_per_client

    def sweep(seeds: int) -> float:
        return timed(lambda: sweep_k(base, list(range(seeds)), data_dir=data_dir))

    one = [sweep(1)]
    peak_one = _children_peak_rss_mb()
    six = sweep(6)
    one.append(sweep(1))
    t1 = statistics.median(one)
    out = {
        "sweep_k_seconds": t1,
        "sweep_k_note": label + "; 1-seed sweeps before and after the 6-seed one, median "
                                "(workers start inside the time)",
        "sweep_k_seconds_runs": one,
        "sweep_6_seeds_seconds": six,
        "sweep_6_seeds_ratio": six / t1,
        "sweep_client_epochs": client_epochs,
        "sweep_client_epochs_per_s": client_epochs / t1,
        "peak_rss_mb": peak_one,
        "peak_rss_mb_6_seeds": _children_peak_rss_mb(),
    }
    rate = train.get("train_client_epochs_per_s_n20")
    peak = train.get("matmul_peak_gflops")
    loop = train.get("loop_client_epochs_per_s_n20")
    out["sweep_training_only_seconds"] = client_epochs / rate if rate else None
    out["sweep_over_training_only"] = t1 / out["sweep_training_only_seconds"] if rate else None
    out["sweep_fraction_of_peak"] = useful_flops / t1 / 1e9 / peak if peak else None
    out["sweep_vs_loop_speedup"] = client_epochs / t1 / loop if loop else None
    if not rate:
        out["sweep_k_note"] += "; training-only, peak and loop figures need the train section"
    if mode != "full":
        out["sweep_k_reduced_seconds"] = out.pop("sweep_k_seconds")
        out["sweep_k_seconds"] = None
    return out


# --------------------------------------------------------------------------- 3. theory


def section_theory(sizes: dict) -> dict:
    p = Params(M=4, sigma2=0.1)
    r = sizes["theory_repeats"]
    return {
        "kstar_closed_form_us": bench_theory.kstar_per_call(p, "closed-form", sizes["closed_calls"], r) * 1e6,
        "kstar_integer_us": bench_theory.kstar_per_call(p, "integer", sizes["integer_calls"], r) * 1e6,
        "kstar_cvxpy_ms": bench_theory.kstar_per_call(p, "cvxpy", sizes["cvxpy_calls"], min(r, 3)) * 1e3,
        "grid_points_per_s": bench_theory.grid_rate(sizes["grid_points"], r),
    }


# --------------------------------------------------------------------------- 4. proof of work

_POW_ARGS = dict(index=1, prev_hash="0" * 64, merkle_root="ab" * 32, timestamp=10.0)
_POW_MINERS = 20


def _mine_budget(hashes: int) -> None:
    """``hashes`` hashes of the 20-miner race: 64 difficulty bits never succeed, the budget stops it."""
    try:
        mine(**_POW_ARGS, n_miners=_POW_MINERS, difficulty_bits=64, max_hashes=hashes)
    except MiningError:
        return
    raise AssertionError("a 64-bit block was found")  # pragma: no cover - probability ~ hashes / 2**64


def _hashlib_loop(prefix: bytes, hashes: int) -> None:
    """The plain loop: build the full header bytes for each nonce and hash them with hashlib.sha256."""
    sha256, pack = hashlib.sha256, struct.Struct(">Q").pack
    for nonce in range(hashes):
        sha256(prefix + pack(nonce)).digest()


def section_pow(sizes: dict) -> dict:
    header = BlockHeader(**_POW_ARGS, difficulty_bits=64, miner=0, nonce=0)
    prefix = header_prefix(header)
    # Calibrate the hash count so that one miner call lasts about pow_seconds.
    probe = 20_000
    rate = probe / timed(lambda: _mine_budget(probe))
    hashes = max(probe, int(rate * sizes["pow_seconds"]))
    times = interleaved(
        {"miner": lambda: _mine_budget(hashes), "hashlib": lambda: _hashlib_loop(prefix, hashes)},
        sizes["pow_repeats"],
    )
    miner_rate = hashes / statistics.median(times["miner"])
    plain_rate = hashes / statistics.median(times["hashlib"])
    return {
        "pow_hashes_per_s": miner_rate,
        "pow_hashlib_hashes_per_s": plain_rate,
        "pow_hash_ratio_vs_hashlib": miner_rate / plain_rate,
        "pow_hashes_per_call": hashes,
        "pow_header_bytes": len(prefix) + 8,
    }


def section_encrypt(sizes: dict) -> dict:
    """CKKS overhead of one round (encrypt every model, average on ciphertexts, decrypt).

    MLP-256, N = 20 unless tiny.
    """
    try:
        from bladefl_validate.learning.encrypt import measure_overhead
        from bladefl_validate.learning.model import make_spec

        o = measure_overhead(make_spec("mlp", sizes["ckks_hidden"]).dim, sizes["ckks_clients"])
    except (ImportError, InputError) as exc:  # tenseal is an optional extra
        return {"ckks_round_seconds": None, "ckks_note": f"skipped: {exc}"}
    return {
        "ckks_round_seconds": o.encrypt_seconds + o.aggregate_seconds + o.decrypt_seconds,
        "ckks_encrypt_seconds": o.encrypt_seconds,
        "ckks_aggregate_seconds": o.aggregate_seconds,
        "ckks_decrypt_seconds": o.decrypt_seconds,
        "ckks_blob_bytes": o.blob_bytes,
    }


# --------------------------------------------------------------------------- driver


def run(mode: str = "full", skip: tuple[str, ...] = (), sizes: dict | None = None, data_dir: str | None = None) -> dict:
    """All sections not in ``skip`` at the sizes of ``mode`` (or ``sizes``); one flat dict."""
    sizes = dict(SIZES[mode] if sizes is None else sizes)
    result: dict = {"mode": mode, "machine": machine_info(), "load_average_before": load_average()}
    t0 = time.perf_counter()
    sections: dict[str, Callable[[], dict]] = {
        "train": lambda: section_train(sizes),
        "generic": lambda: section_generic(sizes),
        "theory": lambda: section_theory(sizes),
        "pow": lambda: section_pow(sizes),
        "sweep": lambda: section_sweep(sizes["sweep"], data_dir, result),
        "encrypt": lambda: section_encrypt(sizes),
    }
    result["section_seconds"] = {}
    for name, fn in sections.items():
        if name in skip:
            continue
        t = time.perf_counter()
        result.update(fn())
        result["section_seconds"][name] = round(time.perf_counter() - t, 1)
    if "sweep" in skip:
        result.update(section_sweep("skip", None, {}))
        result["sweep_k_note"] = "skipped (--skip sweep)"
    result["bench_seconds"] = time.perf_counter() - t0
    result["load_average_after"] = load_average()
    busiest = max((la[0] for la in (result["load_average_before"], result["load_average_after"]) if la), default=0.0)
    cores = os.cpu_count() or 1
    if busiest > 0.5 * cores:
        result["load_warning"] = (
            f"1-minute load average reached {busiest:g} on {cores} logical CPUs: other processes competed for "
            "the cores, so absolute rates are low and noisy (torch's OpenMP threads suffer most); ratios of "
            "interleaved measurements hold up better. Re-run on an idle machine, or with --threads 1."
        )
    return result


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and value and isinstance(value[0], float) and len(value) > 3:
        return "[" + ", ".join(f"{v:.3g}" for v in value) + "]"
    return str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="under two minutes: fewer repetitions, a reduced sweep")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to leave out")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run("quick" if args.quick else "full", tuple(args.skip), data_dir=os.environ.get("BLADEFL_DATA") or None)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        if isinstance(value, dict):
            for k, v in value.items():
                print(f"{key + '.' + str(k):<44s} {_fmt(v)}")
        else:
            print(f"{key:<44s} {_fmt(value)}")


if __name__ == "__main__":
    main()
