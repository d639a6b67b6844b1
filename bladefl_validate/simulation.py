"""One BLADE-FL run, steps 1 to 6 of the paper's Section 3.1, written to a run folder.

Each round: honest clients train tau local epochs from the global model (one batched
computation); lazy clients copy a random honest model and add noise; every model enters the
cache pool under its SHA-256; the clients race to mine a block over the round's digests; every
client verifies it against what it downloaded (the same download for all, so one check stands for
all N: they all accept); the block is appended and the models it names are averaged into the next
global model. Optionally the clients screen the pool
for lazy clients before voting (``detect``, see learning/detect.py) and upload CKKS ciphertexts instead of
plain weights (``encrypt``, see learning/encrypt.py).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bladefl_platform.atomic import atomic_directory
from bladefl_platform.errors import InputError

from .config import SIMULATION_VERSION, RunConfig
from .data import Dataset, load_dataset
from .learning.detect import Detection, make_detector, run_precision_recall, write_detection_csv
from .learning.encrypt import CKKSCodec
from .learning.lazy import choose_lazy, lazy_copies
from .chain.anchor import (CONFIG_NAME, DETECTION_NAME, METRICS_NAME, PARTITION_NAME, SUMMARY_NAME, genesis_commits,
                           report_commits, round_commits)
from .chain.ledger import LEDGER_NAME, MANIFEST_NAME, Block, Ledger, Manifest, verify_block
from .chain.merkle import merkle_root
from .chain.mining import mine
from .learning.model import ModelSpec, ModuleSpec, make_spec
from .partition import label_counts, make_partitioner, plot_partition
from .chain.pool import CachePool, bytes_to_weights, weights_to_bytes
from .learning.training import epoch_permutations, evaluate, evaluate_many, fedavg, train_clients
from .chain.verify import BLOB_DIR

__all__ = [
    "RoundMetrics",
    "RoundState",
    "RunResult",
    "simulate",
    "simulate_many",
    "batch_key",
    "run_spec",
    "run_to_folder",
    "METRIC_COLUMNS",
    "SIMULATION_VERSION",
]


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
    spec: ModelSpec | ModuleSpec
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
    partition_counts: pd.DataFrame | None = None  # per-client label counts of the partition
    ledger_lines: list[bytes] | None = None  # the ledger, when it was kept in memory
    codec: CKKSCodec | None = None  # the clients' shared CKKS context (secret key included), if encrypted
    tip: str | None = None  # the run's tip (the digest of chain.json), once written to a run folder

    @property
    def final(self) -> RoundMetrics:
        return self.rounds[-1]

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per round (the columns of metrics.csv), as a data frame indexed by round."""
        rows = [{c: getattr(r, c) for c in METRIC_COLUMNS} for r in self.rounds]
        return pd.DataFrame(rows, columns=list(METRIC_COLUMNS)).set_index("round")

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


def run_spec(config: RunConfig, train: Dataset) -> ModelSpec | ModuleSpec:
    """The model of ``config`` for ``train``'s input shape and classes (InputError when a module does not fit)."""
    return make_spec(config.model, config.hidden, train.input_shape, train.num_classes,
                     data_name=f"data set {config.dataset!r}")


def client_data(config: RunConfig, train: Dataset, device: torch.device):
    """The clients' training data under ``config``'s partition: X [N, m, *input_shape], Y [N, m], and the label
    counts."""
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
    X = train.images[idx].to(device)  # [N, m, *input_shape]
    Y = train.labels[idx].to(device)  # [N, m]
    return X, Y, label_counts(labels, parts)


def batch_key(config: RunConfig) -> tuple:
    """Runs with equal keys can be simulated together (:func:`simulate_many`): same data set, model,
    rounds, local epochs, learning rate, batch size, samples per client and device."""
    return (config.dataset, config.model, config.hidden, config.K, config.tau, config.eta, config.batch_size,
            config.samples_per_client, config.device)


class _Run:
    """One run's state while :func:`simulate_many` advances its batch round by round."""

    def __init__(self, config: RunConfig, folder: Path | None, train: Dataset, spec: ModelSpec | ModuleSpec,
                 device: torch.device):
        self.config = config
        X, self.Y, self.counts = client_data(config, train, device)
        self.X = X.reshape(*X.shape[:2], *spec.input_shape)  # the fused kinds take flat inputs
        self.g = torch.Generator().manual_seed(config.seed)
        self.lazy = choose_lazy(config.N, config.M, self.g)
        lazy_set = set(self.lazy.tolist())
        self.honest = torch.tensor([i for i in range(config.N) if i not in lazy_set], dtype=torch.int64)
        self.w = spec.init(self.g).to(device)
        # Blobs and ledger in the run folder if there is one, else in memory: the same checks either way.
        self.pool = CachePool(None if folder is None else folder / BLOB_DIR)
        self.ledger = Ledger(None if folder is None else folder / LEDGER_NAME)
        self.cipher = CKKSCodec() if config.encrypt == "ckks" else None
        self.detector = None if config.detect == "none" else make_detector(config.detect, config.detect_threshold)
        self.detections: list[Detection] = []
        self.rounds: list[RoundMetrics] = []
        self.sources = self.lazy
        self.mined: Block | None = None  # the round's accepted block, recorded once its metrics are known
        # Block 1 commits to the configuration and the partition, as the run folder will hold them.
        self.genesis = genesis_commits(config.to_json(), partition_csv(self.counts))

    def record(self, metrics: RoundMetrics) -> None:
        """Append the round's block to the ledger, committing to its metrics row (block 1: and to the genesis)."""
        assert self.mined is not None and self.mined.header.index == metrics.round
        commits = round_commits(METRIC_COLUMNS, metric_cells(metrics))
        if metrics.round == 1:
            commits.update(self.genesis)
        self.ledger.append(self.mined, commits)
        self.mined = None

    def union(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The union of the clients' training data, [N·m, *input_shape] and [N·m]."""
        return self.X.reshape(-1, *self.X.shape[2:]), self.Y.reshape(-1)

    def submit(self, W_honest: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Steps 2 to 6 of round ``k`` after the honest clients trained: lazy copies, upload, screening,
        mining, verification by every client and aggregation. Returns the submitted models ``W [N, d]``,
        the new global model and the block's facts."""
        c = self.config
        W = torch.empty((c.N, W_honest.shape[1]), dtype=W_honest.dtype, device=W_honest.device)
        W[self.honest] = W_honest
        if c.M:
            # Lazy clients plagiarize: a random honest model plus noise of variance sigma2.
            W_lazy, copied = lazy_copies(W_honest, c.M, c.sigma2, self.g)
            W[self.lazy] = W_lazy
            self.sources = self.honest[copied.cpu()]
        # Upload to the content-addressed cache pool; every client downloads the digests.
        weights = W.detach().cpu().numpy()
        digests = [self.pool.put(_upload(weights[i], self.cipher)) for i in range(c.N)]
        downloaded = list(digests)
        # Every client screens the pool before voting; all run the same deterministic test, so one stands for all.
        flagged: tuple[int, ...] = ()
        if self.detector is not None:
            pooled = np.stack([_download(self.pool.get(d), self.cipher) for d in downloaded])
            self.detections.append(self.detector(torch.from_numpy(pooled).to(W.device), reference=self.w))
            flagged = tuple(self.detections[-1].flagged_clients())
        # The mining race over the round's Merkle root.
        virtual_time = k * c.round_time
        mined = mine(k, self.ledger.tip_hash(), merkle_root(digests), virtual_time, c.N, c.difficulty_bits)
        block = Block(header=mined.header, digests=tuple(digests), hash=mined.hash)
        # Every client verifies the block against the same download and the same tip, so the N verdicts are
        # one; and the block was mined over exactly these digests on that tip, so it fails only if mining is
        # broken: a bug to assert against, not a vote that could go either way. All N clients accept it.
        ok, why = verify_block(block, self.ledger.tip_hash(), downloaded)
        assert ok, f"round {k}: the block mined over this round's digests fails its own check: {why}"
        self.mined = block
        # Aggregate exactly the models the accepted block names, read back from the pool; with
        # exclude_flagged, minus the flagged ones (all of them if every model was flagged).
        kept = [d for i, d in enumerate(block.digests) if not (c.exclude_flagged and i in flagged)]
        kept = kept or list(block.digests)
        if self.cipher is None:
            accepted = np.stack([bytes_to_weights(self.pool.get(d)) for d in kept])
            w = fedavg(torch.from_numpy(accepted).to(W.device))
        else:
            w = torch.from_numpy(self.cipher.mean([self.pool.get(d) for d in kept])).to(W.device)
        if self.pool.root is None:
            self.pool.forget()  # nobody can audit an in-memory pool later, and a long run's blobs add up
        facts = {"virtual_time": virtual_time, "miner": mined.winner, "hashes": mined.hashes,
                 "nonce": mined.header.nonce, "block_hash": mined.hash, "votes": c.N, "flagged": flagged}
        return W, w, facts


def _evaluate_runs(spec: ModelSpec | ModuleSpec, runs: list[_Run], test: Dataset,
                   device: torch.device) -> list[tuple[float, ...]]:
    """(train loss, train accuracy, test loss, test accuracy) of every run's global model.

    Each model is evaluated on its own training union (stacking the unions would only copy them: evaluation is one
    forward pass per model either way); the shared test set is moved to the device once for all of them."""
    train = [evaluate(spec, r.w, *r.union()) for r in runs]
    X_test = test.images.reshape(len(test), *spec.input_shape).to(device)
    tested = evaluate_many(spec, torch.stack([r.w for r in runs]), X_test, test.labels.to(device))
    return [(*a, *b) for a, b in zip(train, tested)]


def simulate_many(
    configs: Sequence[RunConfig],
    folders: Sequence[Path | None] | None = None,
    data_dir: str | Path | None = None,
    on_round: Callable[[int, RoundMetrics], None] | None = None,
    observer: Callable[[int, RoundState], None] | None = None,
    evaluate_rounds: str = "every",
) -> list[RunResult]:
    """Simulate several runs together, round by round: the honest clients of every run train in one
    batched computation, and each run mines, verifies and aggregates on its own chain.

    The configs must share :func:`batch_key`. Each run's results are those :func:`simulate` gives it
    alone (bit for bit on the CPU): every run draws from its own seeded generator in the same order, and
    each model is evaluated on its own.
    ``folders[i]`` keeps run i's ledger and blobs (None: in memory). ``on_round(i, metrics)`` and
    ``observer(i, state)`` are called for run i after each round. ``wall_seconds`` of a round is the
    batch's round time shared evenly between its runs. With ``evaluate_rounds="final"`` the global
    model is evaluated only after the last round (earlier rounds' losses and accuracies are NaN):
    what a sweep that reads only the final numbers needs.
    """
    configs = list(configs)
    folders = _checked_folders(configs, folders, evaluate_rounds, observer)
    if not configs:
        return []
    first = configs[0]
    first.check_device()
    device = torch.device(first.device)
    train = load_dataset(first.dataset, data_dir, train=True)
    test = load_dataset(first.dataset, data_dir, train=False)
    spec = run_spec(first, train)
    runs = [_Run(c, None if f is None else Path(f), train, spec, device) for c, f in zip(configs, folders)]
    initial = _evaluate_runs(spec, runs, test, device)

    # The honest clients never change, so their data is stacked once for all rounds.
    X_honest = torch.cat([r.X[r.honest] for r in runs])
    Y_honest = torch.cat([r.Y[r.honest] for r in runs])
    sizes = [len(r.honest) for r in runs]
    m, tau_ = first.samples_per_client, first.tau
    for k in range(1, first.K + 1):
        t0 = time.perf_counter()
        # Step 1: local training of every run's honest clients at once, each run's own sample orders.
        perms = torch.cat([epoch_permutations(n, m, tau_, r.g) for r, n in zip(runs, sizes)], dim=1)
        W0 = torch.cat([r.w.expand(n, -1) for r, n in zip(runs, sizes)])
        W_honest = train_clients(spec, W0, X_honest, Y_honest, tau_, first.eta, first.batch_size, perms=perms)
        submitted = []
        for r, W_r in zip(runs, torch.split(W_honest, sizes)):
            W, w, facts = r.submit(W_r, k)
            submitted.append((r.w, W, facts))
            r.w = w
        if evaluate_rounds == "every" or k == first.K:
            evaluated = _evaluate_runs(spec, runs, test, device)
        else:
            evaluated = [(math.nan,) * 4] * len(runs)
        wall = (time.perf_counter() - t0) / len(runs)
        _record_round(k, spec, runs, submitted, evaluated, wall, on_round, observer)
    return [
        RunResult(r.config, r.rounds, sorted(r.lazy.tolist()), init[0], init[3], tuple(r.detections), r.counts,
                  r.ledger.lines if r.ledger.path is None else None, r.cipher)
        for r, init in zip(runs, initial)
    ]



def _checked_folders(configs: list[RunConfig], folders: Sequence[Path | None] | None, evaluate_rounds: str,
                     observer: Callable[[int, RoundState], None] | None) -> list[Path | None]:
    """Each run's folder (None: in memory); InputError unless the runs can be simulated together as asked."""
    if evaluate_rounds not in ("every", "final"):
        raise InputError(f"evaluate_rounds must be 'every' or 'final' (got {evaluate_rounds!r})")
    if evaluate_rounds == "final" and observer is not None:
        raise InputError("an observer needs every round's loss: use evaluate_rounds='every'")
    keys = {batch_key(c) for c in configs}
    if len(keys) > 1:
        raise InputError("runs simulated together must share data set, model, K, tau, eta, batch size, "
                         f"samples per client and device; got {len(keys)} different combinations")
    folders = list(folders) if folders is not None else [None] * len(configs)
    if configs and len(folders) != len(configs):
        raise InputError(f"need one folder (or None) per config: {len(configs)} configs, {len(folders)} folders")
    return folders


def _record_round(k: int, spec: ModelSpec | ModuleSpec, runs: list[_Run], submitted: list, evaluated: list,
                  wall: float, on_round: Callable[[int, RoundMetrics], None] | None,
                  observer: Callable[[int, RoundState], None] | None) -> None:
    """Round ``k``'s metrics appended to each run, and given to ``on_round`` and ``observer``."""
    for i, (r, (w_start, W, facts), (train_loss, train_acc, test_loss, test_acc)) in enumerate(
        zip(runs, submitted, evaluated)
    ):
        metrics = RoundMetrics(round=k, tau=r.config.tau, global_train_loss=train_loss,
                               global_train_accuracy=train_acc, test_loss=test_loss, test_accuracy=test_acc,
                               wall_seconds=wall, **facts)
        r.rounds.append(metrics)
        r.record(metrics)
        if on_round is not None:
            on_round(i, metrics)
        if observer is not None:
            observer(i, RoundState(k, r.config, spec, r.X, r.Y, r.honest, r.lazy, r.sources, w_start, W, r.w,
                                   train_loss))


def simulate(
    config: RunConfig,
    folder: Path | None = None,
    data_dir: str | Path | None = None,
    on_round: Callable[[RoundMetrics], None] | None = None,
    observer: Callable[[RoundState], None] | None = None,
) -> RunResult:
    """Run ``config``; keep its ledger and model blobs in ``folder`` (empty or new), or in memory if None.

    ``on_round`` receives each round's metrics; ``observer``, if given, each round's :class:`RoundState` after it.
    """
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
    return simulate_many(
        [config], [folder], data_dir,
        None if on_round is None else (lambda _, m: on_round(m)),
        None if observer is None else (lambda _, s: observer(s)),
    )[0]


def _upload(weights: np.ndarray, cipher: CKKSCodec | None) -> bytes:
    """The blob a client puts in the pool: its float32 weights, or their CKKS ciphertexts."""
    return weights_to_bytes(weights) if cipher is None else cipher.encrypt(weights)


def _download(blob: bytes, cipher: CKKSCodec | None) -> np.ndarray:
    """A pool blob back as float32 weights (decrypted with the clients' shared key if encrypted)."""
    return bytes_to_weights(blob) if cipher is None else cipher.decrypt(blob)


def metric_cells(metrics: RoundMetrics) -> list[str]:
    """A round's row of metrics.csv, as the text of its cells (lists of clients as ``3;7``)."""
    return [";".join(map(str, v)) if isinstance(v, tuple) else str(v)
            for v in (getattr(metrics, c) for c in METRIC_COLUMNS)]


def partition_csv(counts: pd.DataFrame) -> str:
    """partition.csv's text: the per-client label counts."""
    return counts.to_csv(index_label="client")


def _write_outputs(result: RunResult, folder: Path, key_file: str | None = None) -> str:
    """Write the run's reports and chain.json into ``folder`` (the ledger and blobs are there); return the tip."""
    _write_reports(result, folder)
    tip = _write_manifest(result, folder)
    _write_summary_md(result, folder, tip, key_file)
    return tip


def _write_reports(result: RunResult, folder: Path) -> None:
    """config.json, partition.csv/.png, metrics.csv, summary.json and detection.csv: what the chain commits to."""
    if result.partition_counts is not None:
        (folder / PARTITION_NAME).write_text(partition_csv(result.partition_counts), encoding="utf-8", newline="")
        plot_partition(result.partition_counts, folder / "partition.png")
    (folder / CONFIG_NAME).write_text(result.config.to_json() + "\n", encoding="utf-8")
    with open(folder / METRICS_NAME, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(METRIC_COLUMNS)
        writer.writerows(metric_cells(r) for r in result.rounds)
    (folder / SUMMARY_NAME).write_text(json.dumps(result.summary(), indent=2) + "\n", encoding="utf-8")
    if result.detections:
        write_detection_csv(folder / DETECTION_NAME, result.detections, result.lazy)


def _write_manifest(result: RunResult, folder: Path) -> str:
    """chain.json: the ledger's end and the commitments of the closing reports, as written; return its tip."""
    detection = folder / DETECTION_NAME
    commits = report_commits((folder / SUMMARY_NAME).read_bytes(), (folder / METRICS_NAME).read_bytes(),
                             detection.read_bytes() if detection.exists() else None)
    manifest = Manifest(blocks=len(result.rounds), difficulty_bits=result.config.difficulty_bits,
                        last_block=result.final.block_hash, record=Ledger(folder / LEDGER_NAME).tip_record(),
                        commits=commits)
    (folder / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return manifest.tip


def _write_summary_md(result: RunResult, folder: Path, tip: str, key_file: str | None) -> None:
    c = result.config
    summary = result.summary()
    lines = [
        f"# BLADE-FL run: {c.dataset}, N={c.N}, M={c.M}, K={c.K}, sigma2={c.sigma2:g}, seed={c.seed}",
        "",
        f"- tau = {c.tau} local epochs per block (t_sum={c.t_sum:g}, alpha={c.alpha:g}, beta={c.beta:g})",
        f"- lazy clients: {summary['lazy_clients'] or 'none'}",
        f"- global training loss: {summary['initial_train_loss']:.4f} -> {summary['final_global_train_loss']:.4f}",
        f"- test accuracy: {summary['initial_test_accuracy']:.4f} -> {summary['final_test_accuracy']:.4f}",
        f"- {summary['rounds']} blocks mined at {c.difficulty_bits} bits, {summary['hashes']} hashes, "
        f"{summary['wall_seconds']:.1f} s wall",
        f"- the run's tip `{tip}` anchors the configuration, the partition, every reported number and the ledger: "
        f"keep a copy outside this folder, and audit the run with `bladefl-validate chain verify RUN_DIR --tip {tip}`",
        "",
        "Files: config.json, metrics.csv (a row per round), ledger.jsonl, chain.json (what the ledger must hold; its "
        "digest is the tip) and blobs/ (check them with `bladefl-validate chain verify`), partition.csv and "
        "partition.png.",
    ]
    if c.detect != "none":
        p, r = summary["detection_precision"], summary["detection_recall"]
        lines[-2:-2] = [
            f"- detection `{c.detect}`: precision {'n/a' if p is None else f'{p:.3f}'}, recall "
            f"{'n/a' if r is None else f'{r:.3f}'} over all rounds (detection.csv); flagged clients "
            f"{'left out of' if c.exclude_flagged else 'kept in'} aggregation",
        ]
    if c.encrypt != "none":
        key = (f"the clients' secret key is in {key_file} (mode 0600): whoever can read it can decrypt them"
               if key_file else "the secret key was discarded after the run, so they can never be decrypted again "
               "(`run --keep-key` keeps it)")
        lines[-2:-2] = [f"- uploads encrypted with {c.encrypt.upper()}: blobs/ holds ciphertexts; {key}. metrics.csv "
                        "and the other report files are plaintext"]
    (folder / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_to_folder(
    config: RunConfig,
    out: Path,
    data_dir: str | Path | None = None,
    on_round: Callable[[RoundMetrics], None] | None = None,
    overwrite: bool = False,
    keep_key: bool = False,
) -> RunResult:
    """Run and write the whole run folder atomically: a failed or interrupted run leaves nothing at ``out``.

    With ``keep_key`` (CKKS runs only) the clients' secret key is kept as ``out/ckks-secret.key``, mode 0600.
    """
    from .learning.encrypt import KEY_NAME

    if keep_key and config.encrypt != "ckks":
        raise InputError("--keep-key needs --encrypt ckks: a plaintext run has no key to keep")
    with atomic_directory(out, overwrite=overwrite) as tmp:
        result = simulate(config, tmp, data_dir, on_round)
        if keep_key:
            assert result.codec is not None  # a CKKS run, checked above
            result.codec.write_key(tmp / KEY_NAME)
        tip = _write_outputs(result, tmp, KEY_NAME if keep_key else None)
    return replace(result, tip=tip)
