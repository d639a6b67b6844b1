"""One BLADE-FL run, steps 1 to 6 of the paper's Section 3.1, written to a run folder.

Each round: honest clients train tau local epochs from the global model (one batched
computation); lazy clients copy a random honest model and add noise; every model enters the
cache pool under its SHA-256; the clients race to mine a block over the round's digests; every
client verifies it against what it downloaded; with a majority the block is appended and the
models it names are averaged into the next global model. Optionally the clients screen the pool
for lazy clients before voting (``detect``, see detect.py) and upload CKKS ciphertexts instead of
plain weights (``encrypt``, see encrypt.py).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bladefl_theory.atomic import atomic_directory
from bladefl_theory.errors import CommandFailed

from .config import RunConfig
from .data import Dataset, load_dataset
from .detect import Detection, make_detector, run_precision_recall, write_detection_csv
from .encrypt import CKKSCodec
from .lazy import choose_lazy, lazy_copies
from .ledger import LEDGER_NAME, Block, Ledger, majority_accepts, verify_block
from .merkle import merkle_root
from .mining import mine
from .model import ModelSpec, make_spec
from .partition import label_counts, make_partitioner, plot_partition
from .pool import CachePool, bytes_to_weights, weights_to_bytes
from .training import evaluate, fedavg, train_clients
from .verify import BLOB_DIR

__all__ = ["RoundMetrics", "RoundState", "RunResult", "simulate", "run_to_folder", "METRIC_COLUMNS"]

METRIC_COLUMNS = (
    "round",
    "tau",
    "global_train_loss",
    "global_train_accuracy",
    "test_loss",
    "test_accuracy",
    "virtual_time",
    "wall_seconds",
    "miner",
    "hashes",
    "nonce",
    "block_hash",
    "votes",
    "flagged",
)


@dataclass(frozen=True)
class RoundMetrics:
    """What one round measured (``wall_seconds`` is real time, ``virtual_time`` the time model's)."""

    round: int
    tau: int
    global_train_loss: float
    global_train_accuracy: float
    test_loss: float
    test_accuracy: float
    virtual_time: float
    wall_seconds: float
    miner: int
    hashes: int
    nonce: int
    block_hash: str
    votes: int
    flagged: tuple[int, ...] = ()  # clients the screening flagged (empty without --detect)


@dataclass(frozen=True)
class RoundState:
    """What an observer of :func:`simulate` sees after round ``round``'s aggregation.

    The tensors are the run's own (on its device): read them, never modify them in place.
    ``sources[j]`` is the client whose model lazy client ``lazy[j]`` copied; ``W[sources[j]]`` is
    that model before the noise, ``W[lazy[j]]`` what the lazy client submitted.
    """

    round: int
    config: RunConfig
    spec: ModelSpec
    X: torch.Tensor  # [N, m, in] every client's training data
    Y: torch.Tensor  # [N, m]
    honest: torch.Tensor  # client ids, int64
    lazy: torch.Tensor  # client ids, int64
    sources: torch.Tensor  # [M] client ids the lazy clients copied
    w_start: torch.Tensor  # [d] the global model the round started from
    W: torch.Tensor  # [N, d] the models the clients submitted
    w: torch.Tensor  # [d] the new global model (FedAvg of the accepted block)
    global_train_loss: float  # F(w) on the union of the clients' data


@dataclass(frozen=True)
class RunResult:
    """A finished run: its config, per-round metrics, the lazy clients and the initial loss."""

    config: RunConfig
    rounds: list[RoundMetrics]
    lazy: list[int]
    initial_train_loss: float
    initial_test_accuracy: float
    detections: tuple[Detection, ...] = ()  # one per round with --detect

    @property
    def final(self) -> RoundMetrics:
        return self.rounds[-1]

    def summary(self) -> dict:
        f = self.final
        return {
            "rounds": len(self.rounds),
            "tau": self.config.tau,
            "lazy_clients": self.lazy,
            "initial_train_loss": self.initial_train_loss,
            "initial_test_accuracy": self.initial_test_accuracy,
            "final_global_train_loss": f.global_train_loss,
            "final_test_loss": f.test_loss,
            "final_test_accuracy": f.test_accuracy,
            "virtual_time": f.virtual_time,
            "wall_seconds": sum(r.wall_seconds for r in self.rounds),
            "hashes": sum(r.hashes for r in self.rounds),
            **self._detection_summary(),
        }

    def _detection_summary(self) -> dict:
        if self.config.detect == "none":
            return {}
        precision, recall = run_precision_recall(self.detections, self.lazy)
        return {"detection_precision": None if precision != precision else precision,
                "detection_recall": None if recall != recall else recall}


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def client_data(config: RunConfig, train: Dataset, device: torch.device):
    """The clients' training data under ``config``'s partition: X [N, m, in], Y [N, m], and the label counts."""
    partitioner = make_partitioner(
        config.partition,
        num_clients=config.N,
        samples_per_client=config.samples_per_client,
        seed=config.seed,
        **config.partition_options(),
    )
    labels = train.labels.numpy()
    parts = partitioner.partition(labels)
    idx = torch.as_tensor(np.stack(parts), dtype=torch.int64)
    X = train.images[idx].to(device)  # [N, m, 784]
    Y = train.labels[idx].to(device)  # [N, m]
    return X, Y, label_counts(labels, parts)


def simulate(
    config: RunConfig,
    folder: Path,
    data_dir: str | Path | None = None,
    on_round: Callable[[RoundMetrics], None] | None = None,
    observer: Callable[[RoundState], None] | None = None,
) -> RunResult:
    """Run ``config`` and keep its ledger and model blobs in ``folder`` (which must be empty or new).

    ``observer``, if given, receives each round's :class:`RoundState` after ``on_round``.
    """
    device = _device()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train = load_dataset(config.dataset, data_dir, train=True)
    test = load_dataset(config.dataset, data_dir, train=False)
    X, Y, counts = client_data(config, train, device)
    counts.to_csv(folder / "partition.csv", index_label="client")
    plot_partition(counts, folder / "partition.png")
    X_union, Y_union = X.reshape(-1, X.shape[-1]), Y.reshape(-1)
    X_test, Y_test = test.images.to(device), test.labels.to(device)

    g = torch.Generator().manual_seed(config.seed)
    spec = make_spec(config.model, config.hidden)
    lazy = choose_lazy(config.N, config.M, g)
    lazy_set = set(lazy.tolist())
    honest = torch.tensor([i for i in range(config.N) if i not in lazy_set], dtype=torch.int64)
    w = spec.init(g).to(device)

    pool = CachePool(folder / BLOB_DIR)
    ledger = Ledger(folder / LEDGER_NAME)
    init_loss, _ = evaluate(spec, w, X_union, Y_union)
    _, init_acc = evaluate(spec, w, X_test, Y_test)

    cipher = CKKSCodec() if config.encrypt == "ckks" else None
    detector = None if config.detect == "none" else make_detector(config.detect, config.detect_threshold)
    detections: list[Detection] = []

    rounds: list[RoundMetrics] = []
    tau_ = config.tau
    for k in range(1, config.K + 1):
        t0 = time.perf_counter()
        w_start = w
        # Step 1: local training of the honest clients, all at once.
        W_honest = train_clients(
            spec, w.expand(len(honest), -1), X[honest], Y[honest], tau_, config.eta, config.batch_size, g
        )
        # Lazy clients plagiarize: a random honest model plus noise of variance sigma2.
        W = torch.empty((config.N, spec.dim), dtype=W_honest.dtype, device=device)
        W[honest] = W_honest
        if config.M:
            W_lazy, copied = lazy_copies(W_honest, config.M, config.sigma2, g)
            W[lazy] = W_lazy
            sources = honest[copied.cpu()]
        # Step 2: upload to the content-addressed cache pool; step 3: every client downloads the digests.
        weights = W.detach().cpu().numpy()
        digests = [pool.put(_upload(weights[i], cipher)) for i in range(config.N)]
        downloaded = list(digests)
        # Every client screens the pool before voting; all run the same deterministic test, so one stands for all.
        flagged: tuple[int, ...] = ()
        if detector is not None:
            pooled = np.stack([_download(pool.get(d), cipher) for d in downloaded])
            detections.append(detector(torch.from_numpy(pooled).to(device), reference=w))
            flagged = tuple(detections[-1].flagged_clients())
        # Step 4: the mining race over the round's Merkle root.
        virtual_time = k * config.round_time
        mined = mine(k, ledger.tip_hash(), merkle_root(digests), virtual_time, config.N, config.difficulty_bits)
        block = Block(header=mined.header, digests=tuple(digests), hash=mined.hash)
        # Step 5: every client verifies; a majority appends the block.
        votes = [verify_block(block, ledger.tip_hash(), downloaded)[0] for _ in range(config.N)]
        if not majority_accepts(votes):
            raise CommandFailed(f"round {k}: block rejected by {votes.count(False)} of {config.N} clients", 1)
        ledger.append(block)
        # Step 6: aggregate exactly the models the accepted block names, read back from the pool; with
        # exclude_flagged, minus the flagged ones (all of them if every model was flagged).
        kept = [d for i, d in enumerate(block.digests) if not (config.exclude_flagged and i in flagged)]
        kept = kept or list(block.digests)
        if cipher is None:
            accepted = np.stack([bytes_to_weights(pool.get(d)) for d in kept])
            w = fedavg(torch.from_numpy(accepted).to(device))
        else:
            w = torch.from_numpy(cipher.mean([pool.get(d) for d in kept])).to(device)
        train_loss, train_acc = evaluate(spec, w, X_union, Y_union)
        test_loss, test_acc = evaluate(spec, w, X_test, Y_test)
        metrics = RoundMetrics(
            round=k,
            tau=tau_,
            global_train_loss=train_loss,
            global_train_accuracy=train_acc,
            test_loss=test_loss,
            test_accuracy=test_acc,
            virtual_time=virtual_time,
            wall_seconds=time.perf_counter() - t0,
            miner=mined.winner,
            hashes=mined.hashes,
            nonce=mined.header.nonce,
            block_hash=mined.hash,
            votes=sum(votes),
            flagged=flagged,
        )
        rounds.append(metrics)
        if on_round is not None:
            on_round(metrics)
        if observer is not None:
            observer(RoundState(k, config, spec, X, Y, honest, lazy, sources if config.M else lazy, w_start, W,
                                w, train_loss))
    return RunResult(config, rounds, sorted(lazy_set), init_loss, init_acc, tuple(detections))


def _upload(weights: np.ndarray, cipher: CKKSCodec | None) -> bytes:
    """The blob a client puts in the pool: its float32 weights, or their CKKS ciphertexts."""
    return weights_to_bytes(weights) if cipher is None else cipher.encrypt(weights)


def _download(blob: bytes, cipher: CKKSCodec | None) -> np.ndarray:
    """A pool blob back as float32 weights (decrypted with the clients' shared key if encrypted)."""
    return bytes_to_weights(blob) if cipher is None else cipher.decrypt(blob)


def _cell(value: object) -> object:
    """A metrics.csv cell: lists of clients as ``3;7``."""
    return ";".join(map(str, value)) if isinstance(value, tuple) else value


def _write_outputs(result: RunResult, folder: Path) -> None:
    (folder / "config.json").write_text(result.config.to_json() + "\n", encoding="utf-8")
    with open(folder / "metrics.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(METRIC_COLUMNS)
        for r in result.rounds:
            writer.writerow([_cell(getattr(r, c)) for c in METRIC_COLUMNS])
    summary = result.summary()
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if result.detections:
        write_detection_csv(folder / "detection.csv", result.detections, result.lazy)
    c = result.config
    lines = [
        f"# BLADE-FL run: {c.dataset}, N={c.N}, M={c.M}, K={c.K}, sigma2={c.sigma2:g}, seed={c.seed}",
        "",
        f"- tau = {c.tau} local epochs per block (t_sum={c.t_sum:g}, alpha={c.alpha:g}, beta={c.beta:g})",
        f"- lazy clients: {summary['lazy_clients'] or 'none'}",
        f"- global training loss: {summary['initial_train_loss']:.4f} -> {summary['final_global_train_loss']:.4f}",
        f"- test accuracy: {summary['initial_test_accuracy']:.4f} -> {summary['final_test_accuracy']:.4f}",
        f"- {summary['rounds']} blocks mined at {c.difficulty_bits} bits, {summary['hashes']} hashes, "
        f"{summary['wall_seconds']:.1f} s wall",
        "",
        "Files: config.json, metrics.csv (a row per round), ledger.jsonl and blobs/ (check them with "
        "`bladefl-validate chain verify`), partition.csv and partition.png.",
    ]
    if c.detect != "none":
        p, r = summary["detection_precision"], summary["detection_recall"]
        lines[-2:-2] = [
            f"- detection `{c.detect}`: precision {'n/a' if p is None else f'{p:.3f}'}, recall "
            f"{'n/a' if r is None else f'{r:.3f}'} over all rounds (detection.csv); flagged clients "
            f"{'left out of' if c.exclude_flagged else 'kept in'} aggregation",
        ]
    if c.encrypt != "none":
        lines[-2:-2] = [f"- uploads encrypted with {c.encrypt.upper()}: blobs/ holds ciphertexts"]
    (folder / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_to_folder(
    config: RunConfig,
    out: Path,
    data_dir: str | Path | None = None,
    on_round: Callable[[RoundMetrics], None] | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Run and write the whole run folder atomically: a failed or interrupted run leaves nothing at ``out``."""
    with atomic_directory(out, overwrite=overwrite) as tmp:
        result = simulate(config, tmp, data_dir, on_round)
        _write_outputs(result, tmp)
    return result
