"""``bladefl-validate``: run BLADE-FL for real, sweep K, and verify a run's ledger.

Importing this module needs no torch: the simulator and everything else that computes is imported
inside the commands, so ``--help`` and ``--version`` work after a theory-only install (and fast),
and a command that needs torch without it says which extra to install.

Every command checks everything it can before it writes or computes anything (the options, every
run's config, the output folder and the store, the data, the partitions, the memory a run needs and
the scheduler), so bad input is one line and status 2 with nothing written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from bladefl_platform.atomic import (
    MARKER,
    atomic_write_text,
    check_files_replaceable,
    check_replaceable,
    created_folder,
    owned_directory,
    owned_files,
    remove_stale_temporaries,
)
from bladefl_platform.cli import (
    CLIGroup,
    ListType,
    data_dir_option,
    emit_json,
    execution_of,
    execution_options,
    hide_progress,
    json_option,
    quiet_option,
    seeds_option,
    store_option,
)
from bladefl_platform.errors import InputError
from bladefl_platform.execution import Execution
from bladefl_platform.report import fmt, text_table
from bladefl_theory.profiles import load_profile
from bladefl_platform.store import ResultStore, check_store, opened_store

from .config import DATASETS, DETECTORS, DEVICES, MODELS, RunConfig, check_device
from .detection_report import DEFAULT_M, DEFAULT_SIGMA2, SETTING, check_grid
from .encrypt import ENCRYPTIONS
from .partition import SCHEMES

__all__ = ["cli", "main"]

log = logging.getLogger("bladefl_validate")

_DEFAULTS = RunConfig()

#: Most runs one sweep makes (K_max times the seeds): beyond that the time budget, not the sweep, is wrong.
MAX_SWEEP_RUNS = 100_000
#: The store a command that keeps one in its report folder uses by default.
STORE_NAME = "results.sqlite"

# Owners named in the marker of each command's output folder, and the report files each writes.
RUN_OWNER = "bladefl-validate run"
PARTITION_OWNER = "bladefl-validate partition"
DETECTION_OWNER = "bladefl-validate detection-report"
SWEEP_OWNER = "bladefl-validate sweep-k"
GAP_OWNER = "bladefl-validate gap"
REPRODUCE_OWNER = "bladefl-validate reproduce"
KSTAR_OWNER = "bladefl-validate kstar-report"
RUN_FILES = ("config.json", "metrics.csv", "ledger.jsonl", "chain.json", "blobs/", "partition.csv", "partition.png",
             "summary.md", "summary.json", "detection.csv (with --detect)", "ckks-secret.key (with --keep-key)")
PARTITION_FILES = ("partition.csv", "partition.png")
DETECTION_FILES = ("README.md", "runs.csv", "cells.csv", "breakdown.csv", "detection.png", "accuracy.png")
SWEEP_FILES = ("README.md", "runs.csv", "per_k.csv", "loss.png", "accuracy.png")
GAP_FILES = ("README.md", "gap.csv", "gap.png")


def reproduce_files(datasets: Sequence[str]) -> tuple[str, ...]:
    """The report files ``reproduce`` writes for these data sets."""
    return ("README.md", "runs.csv", "per_k.csv", "f_star.csv", "kstar.csv", "fig2.png", "fig3.png", "fig4.png",
            *(f"gap-{d}.csv" for d in datasets))


def load_dataset(name: str, data_dir: Path | str | None = None, train: bool = True):
    """:func:`bladefl_validate.data.load_dataset`, imported on first use (it needs torch)."""
    from .data import load_dataset as load

    return load(name, data_dir, train=train)


def _run_options(with_k: bool):
    """The options shared by ``run`` and ``sweep-k``; defaults come from :class:`RunConfig`."""
    d = _DEFAULTS
    options = [
        click.option("--dataset", type=click.Choice(DATASETS), default=d.dataset, show_default=True),
        click.option("--N", "N", type=int, default=d.N, show_default=True, help="Clients."),
        click.option("--M", "M", type=int, default=d.M, show_default=True, help="Lazy clients."),
    ]
    if with_k:
        options.append(click.option("--K", "K", type=int, default=d.K, show_default=True, help="Blocks (rounds)."))
    options += [
        click.option("--sigma2", type=float, default=d.sigma2, show_default=True, help="Variance of the lazy noise."),
        click.option("--alpha", type=float, default=d.alpha, show_default=True, help="Time of one local epoch."),
        click.option("--beta", type=float, default=d.beta, show_default=True, help="Time to mine one block."),
        click.option("--t-sum", "t_sum", type=float, default=d.t_sum, show_default=True, help="Total time budget."),
        click.option("--eta", type=float, default=d.eta, show_default=True, help="Learning rate."),
        click.option("--samples-per-client", type=int, default=d.samples_per_client, show_default=True, help="|D_i|."),
        click.option("--partition", type=click.Choice(SCHEMES), default=d.partition, show_default=True),
        click.option("--classes-per-client", type=int, default=d.classes_per_client, show_default=True,
                     help="k for --partition classes (it must divide |D_i|)."),
        click.option("--dirichlet-alpha", type=float, default=d.dirichlet_alpha, show_default=True,
                     help="Concentration for --partition dirichlet."),
        click.option("--model", type=click.Choice(MODELS), default=d.model, show_default=True,
                     help="mlp (784-hidden-10, ReLU), logreg (convex) or cnn (McMahan et al.'s two convolutions)."),
        click.option("--hidden", type=int, default=d.hidden, show_default=True, help="Hidden units of the MLP."),
        click.option("--batch-size", type=int, default=d.batch_size, show_default=True),
        click.option("--difficulty-bits", type=int, default=d.difficulty_bits, show_default=True,
                     help="Leading zero bits of a valid block hash."),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                     help="Where runs compute: auto is cuda when torch sees a GPU, else cpu. CUDA results are not "
                          "bit-identical to CPU ones, so the result store keeps them apart."),
        _data_dir_option(),
        quiet_option("No progress lines."),
    ]

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _config(options: dict, **extra) -> RunConfig:
    names = set(RunConfig.__dataclass_fields__)
    return RunConfig(**{k: v for k, v in options.items() if k in names}, **extra)


def _data_dir_option():
    """``--data-dir``, as the validator's commands describe it."""
    return data_dir_option("Data root [default: $BLADEFL_DATA, else a user cache folder].")


def _datasets_option():
    """``--datasets`` of the commands that run a grid over data sets."""
    return click.option("--datasets", type=ListType(choices=DATASETS), default=",".join(DATASETS), show_default=True,
                        help="Comma-separated datasets.")


def _round_bar(total: int, quiet: bool):
    """A progress bar over rounds (silent under --quiet or when stderr is not a terminal), and its update hook."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="rounds", unit="block", disable=hide_progress(quiet) or not sys.stderr.isatty(),
               file=sys.stderr)

    def show(m) -> None:
        bar.set_postfix(loss=f"{m.global_train_loss:.4f}", acc=f"{m.test_accuracy:.3f}", miner=m.miner, hashes=m.hashes)
        bar.update(1)

    return bar, show


def _command(name: str, extra: list[str]) -> str:
    """The command line that reproduces this invocation, from the parsed options."""
    ctx = click.get_current_context()
    parts = ["bladefl-validate", name]
    flags = {p.name: p.opts[0] for p in ctx.command.params if isinstance(p, click.Option)}
    for key, value in ctx.params.items():
        # Where the work runs and how it is shown do not change the results.
        if value is None or value is False or key in ("quiet", "scheduler", "workers", "store_path", "as_json"):
            continue
        if key == "device":  # the device the runs used, as auto resolved here
            value = RunConfig(device=value).device
        parts += [flags[key]] if value is True else [flags[key], str(value)]
    return " ".join(shlex.quote(p) for p in parts + extra)


def _check_sweep_size(base: RunConfig, seeds: Sequence[int]) -> None:
    runs = base.k_max * len(seeds)
    if runs > MAX_SWEEP_RUNS:
        raise InputError(f"a sweep over K = 1..{base.k_max} and {len(seeds)} seed(s) is {runs:,} runs, more than "
                         f"{MAX_SWEEP_RUNS:,}: lower t_sum or raise alpha + beta")


def _check_report_folder(out: Path, owner: str, files: Sequence[str], store: Path | None) -> None:
    """Before anything runs: ``owner`` may write ``files`` into ``out``, and ``store`` is a usable result store."""
    check_files_replaceable(out, owner, files)
    if store is not None:
        if Path(store).absolute().parent == Path(out).absolute() and Path(store).name in (*files, MARKER):
            raise InputError(f"--store {store} is one of the report files of --out; give another file")
        check_store(store)


def _check_store_outside(store: Path | None, out: Path) -> None:
    """A command that replaces ``out`` whole would take a store inside it along."""
    if store is not None and Path(out).absolute() in Path(store).absolute().parents:
        raise InputError(f"--store {store} is inside --out {out}, which is replaced whole: keep the store elsewhere")


def _prepare(configs: Sequence[RunConfig], data_dir: Path | None, execution: Execution | None = None) -> None:
    """Everything about ``configs`` that can fail before a run starts: one run fits in this machine's memory (if the
    runs are local; ``execution`` None means this process), the data sets load, each partition can be drawn, and the
    scheduler answers; a cuda device exists (if the runs are local)."""
    from .partition import make_partitioner

    local = execution is None or execution.scheduler is None
    if local:
        for device in dict.fromkeys(c.device for c in configs):
            check_device(device)
    seen: set[tuple] = set()
    for c in configs:
        key = (c.N, c.model, c.hidden, c.samples_per_client)
        if local and key not in seen:
            c.check_memory()
        seen.add(key)
    for d in dict.fromkeys(c.dataset for c in configs):
        load_dataset(d, data_dir, train=True)
        load_dataset(d, data_dir, train=False)
    seen = set()
    for c in configs:
        split = (c.dataset, c.N, c.samples_per_client, c.partition, tuple(sorted(c.partition_options().items())))
        if split in seen:
            continue
        seen.add(split)
        labels = load_dataset(c.dataset, data_dir, train=True).labels.numpy()
        make_partitioner(c.partition, num_clients=c.N, samples_per_client=c.samples_per_client, seed=c.seed,
                         **c.partition_options()).partition(labels)
    if execution is not None:
        execution.check_reachable()


def _owns(command: click.Command, text: str) -> None:
    """Append what ``command`` owns in its output folder to its --help."""
    command.help = f"{(command.help or '').rstrip()}\n\n{text}"


def _listing(names: Sequence[str]) -> str:
    return ", ".join(names)


@click.group(
    "bladefl-validate",
    cls=CLIGroup,
    input_errors=("bladefl_validate.data:DataError", "bladefl_validate.partition:PartitionError"),
    extras={"torch": "validate", "torchvision": "validate", "tenseal": "encrypt"},
    catch_all=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="bladefl", prog_name="bladefl-validate")
def cli():
    """BLADE-FL for real: clients training on non-IID data, lazy clients, and a proof-of-work ledger.

    \b
    Exit statuses:
      0  success (chain verify: the ledger holds)
      1  chain verify: the ledger does not hold; any command: the output could not be
         written, or an internal error (a bug)
      2  bad input, or a missing dependency: one line; nothing run, nothing written
      130, 143  interrupted (Ctrl-C, SIGTERM); temporaries removed

    With --json a command prints its result as one JSON object on stdout whose "status" is the exit
    status (on 1 and 2 from an error stdout is empty and stderr holds the error line). Messages,
    warnings and progress bars go to stderr: -q keeps warnings and errors only (and no progress
    bars), -v adds debug messages.
    """


@cli.command("run")
@_run_options(with_k=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run, 0..2**64-1.")
@click.option("--detect", type=click.Choice(("none", *DETECTORS)), default="none", show_default=True,
              help="Screen the cache pool each round for lazy clients (detection.csv).")
@click.option("--detect-threshold", type=float, default=None,
              help="Flag below this score [default: the detector's own].")
@click.option("--exclude-flagged", is_flag=True, help="Leave flagged clients out of aggregation.")
@click.option("--encrypt", type=click.Choice(ENCRYPTIONS), default="none", show_default=True,
              help="Encrypt uploads with CKKS (needs the 'encrypt' extra).")
@click.option("--keep-key", is_flag=True,
              help="With --encrypt ckks: keep the clients' secret key as RUN_DIR/ckks-secret.key (mode 0600) so the "
                   "blobs can be decrypted later [default: discarded after the run].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder: new, empty, or an earlier run's folder, which is replaced.")
@json_option
def run_cmd(out, quiet, data_dir, keep_key, as_json, **options):
    """One run: K rounds of training, uploading, mining, verification and aggregation."""
    config = _config(options)
    if keep_key and config.encrypt != "ckks":
        raise InputError("--keep-key needs --encrypt ckks: a plaintext run has no key to keep")
    check_replaceable(out, RUN_OWNER)
    _prepare([config], data_dir)
    from .simulation import run_to_folder

    bar, show = _round_bar(config.K, quiet)
    with bar, owned_directory(out, RUN_OWNER) as tmp:
        # run_to_folder builds the run beside tmp and swaps it in; owned_directory then marks it and swaps it to out.
        result = run_to_folder(config, tmp, data_dir, show, overwrite=True, keep_key=keep_key)
    s = result.summary()
    if as_json:
        return emit_json({"out": out, "config": config.as_dict(), "summary": s, "tip_hash": result.final.block_hash})
    click.echo(
        f"{out}: K={config.K}, tau={config.tau}, final training loss {s['final_global_train_loss']:.4f}, "
        f"test accuracy {s['final_test_accuracy']:.4f}"
    )


_owns(run_cmd, f"It owns the run folder --out: {_listing(RUN_FILES)}, and the marker {MARKER}. An existing --out is "
               f"replaced whole, once the run is complete, only if it is empty or the marker says a run wrote it and "
               f"it holds nothing else; otherwise nothing is written (status 2).")


@cli.command("sweep-k")
@_run_options(with_k=False)
@seeds_option("1")
@click.option("--keep-runs", is_flag=True, help="Keep every run's folder (ledger and blobs) under OUT/runs/.")
@store_option(f"Result store [default: OUT/{STORE_NAME}]; finished runs in it are not run again.")
@execution_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Report folder; running again with the same folder resumes.")
@json_option
def sweep_k_cmd(seeds, keep_runs, store_path, scheduler, workers, out, quiet, data_dir, as_json, **options):
    """Every K in 1..K_max: final loss and accuracy per K (mean ± std over seeds) and the empirical K*."""
    base = _config(options, K=1)
    _check_sweep_size(base, seeds)
    from .sweep import sweep_configs, sweep_k, write_sweep_report

    configs = sweep_configs(base, seeds)
    execution = execution_of(scheduler, workers, quiet)
    store_path = store_path or out / STORE_NAME
    _check_report_folder(out, SWEEP_OWNER, SWEEP_FILES, store_path)
    _prepare(configs, data_dir, execution)
    runs_dir = out / "runs" if keep_runs else None
    with contextlib.ExitStack() as stack:
        if runs_dir is not None:
            stack.enter_context(created_folder(runs_dir))
            # Folders of runs a killed sweep was writing; again at the end, for those of this sweep's workers.
            remove_stale_temporaries(runs_dir)
            stack.callback(remove_stale_temporaries, runs_dir)
        store = stack.enter_context(opened_store(store_path))
        result = sweep_k(base, list(seeds), data_dir, runs_dir, store, execution)
        with owned_files(out, SWEEP_OWNER) as tmp:
            write_sweep_report(result, tmp, _command("sweep-k", []))
    if result.skipped:
        log.info("%d of %d runs were already in the store", result.skipped, len(result.runs))
    if as_json:
        return emit_json({"out": out, "k_star": result.k_star, "seeds": list(seeds), "runs": len(result.runs),
                          "skipped": result.skipped, "per_k": result.per_k.reset_index()})
    click.echo(f"{out}: empirical K* = {result.k_star}")
    for k, row in result.per_k.iterrows():
        click.echo(
            f"K={k} tau={int(row['tau'])} loss {row['final_global_train_loss_mean']:.4f} "
            f"acc {row['final_test_accuracy_mean']:.4f}"
        )


_STORE_NOTE = (f"the result store (--store, default {STORE_NAME}) lives beside them. A report file it did not write is "
               f"never replaced: the command stops before running anything (status 2).")
_owns(sweep_k_cmd, f"In --out it owns the report files {_listing(SWEEP_FILES)} and the marker {MARKER} listing them; "
                   f"runs/ (--keep-runs) and {_STORE_NOTE}")


@cli.command("detection-report")
@_datasets_option()
@click.option("--M", "M", type=ListType(int), default=",".join(map(str, DEFAULT_M)), show_default=True,
              help="Lazy clients, e.g. 2,4,6.")
@click.option("--sigma2", type=ListType(float), default=",".join(f"{s:g}" for s in DEFAULT_SIGMA2), show_default=True,
              help="Noise variances.")
@seeds_option("1")
@store_option("Result store to resume from, outside --out [default: none].")
@execution_options
@_data_dir_option()
@quiet_option("No progress bar.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Report folder.")
@json_option
def detection_report_cmd(datasets, M, sigma2, seeds, store_path, scheduler, workers, data_dir, quiet, out, as_json):
    """Precision and recall of each lazy-client detector against M and sigma2, and accuracy with exclusion."""
    dataset_list, Ms, sigma2s = list(datasets), list(M), list(sigma2)
    base = RunConfig(**SETTING)
    check_grid(base, dataset_list, Ms, sigma2s, list(seeds))
    execution = execution_of(scheduler, workers, quiet)
    check_replaceable(out, DETECTION_OWNER)
    _check_store_outside(store_path, out)
    if store_path is not None:
        check_store(store_path)
    _prepare([base.replace(dataset=d, seed=seeds[0]) for d in dataset_list], data_dir, execution)
    from .detection_report import run_detection_report, write_detection_report

    with contextlib.ExitStack() as stack:
        store = stack.enter_context(opened_store(store_path)) if store_path is not None else None
        report = run_detection_report(dataset_list, Ms, sigma2s, list(seeds), data_dir, store, execution)
    with owned_directory(out, DETECTION_OWNER) as tmp:
        # The store, the workers and the data folder change where runs happen, not their results.
        command = shlex.join(["bladefl-validate", "detection-report", "--datasets", datasets.text, "--M", M.text,
                              "--sigma2", sigma2.text, "--seeds", seeds.text, "--out", str(out)])
        write_detection_report(report, tmp, command)
    if as_json:
        return emit_json({"out": out, "runs": len(report.runs), "breakdown": report.breakdown(), "cells": report.cells})
    click.echo(f"{out}: {len(report.runs)} runs")
    for _, row in report.breakdown().iterrows():
        at = row["breaks_down_at"]
        click.echo(f"{row['dataset']} {row['detector']} M={row['M']}: F1 < 0.5 from sigma2 = "
                   f"{'none in the grid' if at != at else format(at, 'g')}")


_owns(detection_report_cmd, f"It owns the report folder --out: {_listing(DETECTION_FILES)}, and the marker {MARKER}. "
                            f"An existing --out is replaced whole, once the report is complete, only if it is empty or "
                            f"the marker says this command wrote it and it holds nothing else; otherwise nothing is "
                            f"written (status 2).")


@cli.group("chain")
def chain_group():
    """The ledger of a run folder."""


@chain_group.command("verify")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--difficulty-bits", type=click.IntRange(0, 256), default=None,
              help="Also require every block to declare this difficulty.")
@click.option("--tip", default=None, metavar="HASH",
              help="The tip hash recorded when the run finished (chain.json, summary.md), kept elsewhere: the only "
                   "check a consistently rewritten run folder cannot pass.")
@json_option(help="Print the verdict as one JSON object on stdout, its status the exit status (0 or 1).")
def chain_verify_cmd(run_dir, difficulty_bits, tip, as_json):
    """Check the ledger against chain.json, config.json and metrics.csv, and recompute every hash, proof of
    work, Merkle root and blob digest; exit 1 naming the first mismatch."""
    from .pool import is_digest
    from .verify import verify_run

    if not run_dir.is_dir():
        raise click.BadParameter(f"{run_dir} is not a folder", param_hint="'RUN_DIR'")
    if tip is not None:
        tip = tip.strip().lower()
        if not is_digest(tip):
            raise click.BadParameter("a block hash is 64 hexadecimal characters", param_hint="'--tip'")
    report = verify_run(run_dir, difficulty_bits=difficulty_bits, tip=tip)
    if as_json:
        return emit_json({"ok": report.ok, "blocks": report.blocks, "blobs": report.blobs, "error": report.error,
                          "tip": report.tip}, 0 if report.ok else 1)
    if report.ok:
        anchor = "matches --tip" if tip else "not anchored: pass the tip you kept as --tip"
        click.echo(f"{run_dir}: ok, {report.blocks} blocks, {report.blobs} blobs verified, tip {report.tip} ({anchor})")
    else:
        click.echo(f"{run_dir}: INVALID: {report.error}", err=True)
    return 0 if report.ok else 1


@cli.command("partition")
@click.option("--dataset", type=click.Choice(DATASETS), default=_DEFAULTS.dataset, show_default=True)
@click.option("--N", "N", type=int, default=_DEFAULTS.N, show_default=True)
@click.option("--samples-per-client", type=int, default=_DEFAULTS.samples_per_client, show_default=True)
@click.option("--partition", type=click.Choice(SCHEMES), default=_DEFAULTS.partition, show_default=True)
@click.option("--classes-per-client", type=int, default=_DEFAULTS.classes_per_client, show_default=True,
              help="k for --partition classes (it must divide --samples-per-client).")
@click.option("--dirichlet-alpha", type=float, default=_DEFAULTS.dirichlet_alpha, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the partition, 0..2**64-1.")
@data_dir_option()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def partition_cmd(out, data_dir, **options):
    """Per-client label counts of a partition, as CSV and a PNG heat map."""
    from .partition import label_counts, make_partitioner, plot_partition

    config = _config(options)
    check_replaceable(out, PARTITION_OWNER)
    train = load_dataset(config.dataset, data_dir, train=True)
    labels = train.labels.numpy()
    parts = make_partitioner(
        config.partition, num_clients=config.N, samples_per_client=config.samples_per_client, seed=config.seed,
        **config.partition_options(),
    ).partition(labels)
    counts = label_counts(labels, parts)
    with owned_directory(out, PARTITION_OWNER) as tmp:
        counts.to_csv(tmp / "partition.csv", index_label="client")
        plot_partition(counts, tmp / "partition.png")
    click.echo(counts.to_string())


_owns(partition_cmd, f"It owns the folder --out: {_listing(PARTITION_FILES)}, and the marker {MARKER}. An existing "
                     f"--out is replaced whole only if it is empty or the marker says this command wrote it and it "
                     f"holds nothing else; otherwise nothing is written (status 2).")


@cli.command("estimate")
@_run_options(with_k=True)
@seeds_option("3")
@click.option("--name", default=None, help="Profile name [default: the --out file name without .json].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Profile to write, NAME.json; the raw samples go to NAME.samples.csv beside it.")
@click.option("--wstar-max-iter", type=int, default=None,
              help="Most L-BFGS iterations of the centralized training that finds w* [default: 2000].")
@click.option("--wstar-loss-floor", type=float, default=None,
              help="w* is the first iterate with a loss this low; cross-entropy on interpolated data never reaches 0 "
                   "[default: 1e-6].")
@store_option("Result store; seeds in it are not run again [default: NAME.results.sqlite beside --out].")
@execution_options
@json_option
def estimate_cmd(seeds, name, out, wstar_max_iter, wstar_loss_floor, store_path, scheduler, workers, quiet, data_dir,
                 as_json, **options):
    """Estimate L, xi, delta, phi (clean M=0 runs) and theta, epsilon (runs with --M lazy clients); write a profile."""
    from .estimate import OptimumOptions, check_profile_path, estimate_constants, samples_path_for, write_estimate

    config = _config(options)
    if config.M < 1:
        raise InputError(f"--M must be >= 1: theta is measured on lazy clients (got M={config.M})")
    configs = [config.replace(seed=s) for s in seeds]
    check_profile_path(out)
    given = {"max_iter": wstar_max_iter, "loss_floor": wstar_loss_floor}
    optimum = OptimumOptions(**{k: v for k, v in given.items() if v is not None})
    execution = execution_of(scheduler, workers, quiet)
    store_path = store_path or out.with_name(out.name.removesuffix(".json") + ".results.sqlite")
    if Path(store_path).absolute() in (out.absolute(), samples_path_for(out).absolute()):
        raise InputError(f"--store {store_path} is the profile or its samples file; give another file")
    check_store(store_path)
    _prepare(configs, data_dir, execution)
    with opened_store(store_path) as store:
        result = estimate_constants(config, list(seeds), data_dir, optimum=optimum, execution=execution, store=store)
    profile_path, samples_path = write_estimate(result, out, name=name, command=_command("estimate", []))
    log.info("wrote %s and %s", profile_path, samples_path)
    summary = result.summary()
    if as_json:
        return emit_json({"profile": profile_path, "samples": samples_path, "seeds": list(seeds),
                          "constants": result.constants, "summary": summary.reset_index(), "eta_L": result.eta_L,
                          "lemma1_condition_holds": bool(result.eta_L < 1), "f_star": result.f_star})
    click.echo(f"{'constant':>8} {'median':>11} {'q1':>11} {'q3':>11} {'min':>11} {'max':>11}  over")
    for constant, row in summary.iterrows():
        cells = " ".join(f"{fmt(row[k]) or '—':>11}" for k in ("estimate", "q1", "q3", "min", "max"))
        click.echo(f"{constant:>8} {cells}  {row['over']}")
    verdict = "< 1, Lemma 1's condition holds" if result.eta_L < 1 else ">= 1, VIOLATES Lemma 1's condition"
    click.echo(f"eta*L = {fmt(result.eta_L)} ({verdict}); F(w*) = {fmt(result.f_star)}")


@cli.command("gap")
@_run_options(with_k=False)
@seeds_option("3")
@click.option("--profile", default=None, help="Profile of constants [default: DATASET-MODEL if shipped, else default].")
@store_option(f"Result store [default: OUT/{STORE_NAME}].")
@execution_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Report folder; running again with the same folder resumes.")
@json_option
def gap_cmd(seeds, profile, store_path, scheduler, workers, out, quiet, data_dir, as_json, **options):
    """Measured F(w^K) − F(w*) over K beside the bound of each variant, with K*, Spearman and a calibration."""

    from .gap import analyse_gap, write_gap_report
    from .optimum import optima
    from .reproduce import profile_for
    from .sweep import sweep_configs, sweep_k

    base = _config(options, K=1)
    prof = load_profile(profile) if profile else profile_for(base.dataset, base.model)
    params = base.theory_params(prof)
    _check_sweep_size(base, seeds)
    configs = sweep_configs(base, seeds)
    optimum_configs = [base.replace(M=0, seed=s) for s in seeds]
    execution = execution_of(scheduler, workers, quiet)
    store_path = store_path or out / STORE_NAME
    _check_report_folder(out, GAP_OWNER, GAP_FILES, store_path)
    _prepare(configs + optimum_configs, data_dir, execution)
    with opened_store(store_path) as store:
        sweep = sweep_k(base, list(seeds), data_dir, None, store, execution)
        f_star = [r["f_star"] for r in optima(base, list(seeds), data_dir, store, execution).results]
    result = analyse_gap(sweep.per_k, sum(f_star) / len(f_star), params)
    title = f"{base.dataset}, M={base.M}, sigma2={base.sigma2:g}, profile {prof.name}"
    with owned_files(out, GAP_OWNER) as tmp:
        write_gap_report(result, tmp, title, _command("gap", []), list(seeds))
    if as_json:
        return emit_json({"out": out, "profile": prof.name, "seeds": list(seeds), "f_star": result.f_star,
                          "k_star_measured": result.k_star_measured,
                          "fits": {v: dataclasses.asdict(f) for v, f in result.fits.items()},
                          "table": result.table.reset_index()})
    click.echo(f"{out}: measured K* = {result.k_star_measured}, F(w*) = {fmt(result.f_star)} (profile {prof.name})")
    click.echo(f"{'form':<14} {'bound K*':>8} {'Spearman':>9} {'R2 of the calibration':>22}")
    for v, f in result.fits.items():
        click.echo(f"{v:<14} {fmt(f.k_star_bound) or '—':>8} {fmt(f.spearman, 3) or '—':>9} {fmt(f.r2, 3) or '—':>22}")
    click.echo("—: no K with a finite bound (K*), or fewer than 3 K with a finite, varying bound (Spearman, R2)")


_owns(gap_cmd, f"In --out it owns the report files {_listing(GAP_FILES)} and the marker {MARKER} listing them; "
               f"{_STORE_NOTE}")


@cli.command("reproduce")
@seeds_option("3", "Seeds per point")
@_datasets_option()
@click.option("--difficulty-bits", type=int, default=_DEFAULTS.difficulty_bits, show_default=True)
@_data_dir_option()
@store_option(f"Result store [default: OUT/{STORE_NAME}].")
@execution_options
@quiet_option()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/paper-reproduction"),
              show_default=True, help="Report folder; running again resumes from its store.")
@json_option
def reproduce_cmd(seeds, datasets, difficulty_bits, data_dir, store_path, scheduler, workers, quiet, out, as_json):
    """Reproduce the paper's figures 2 to 4 and its K* values at its settings (N=20, |D_i|=512, t_sum=100)."""
    names = list(datasets)
    base = RunConfig(difficulty_bits=difficulty_bits)
    configs = [base.replace(dataset=d, seed=s) for d in names for s in seeds]
    execution = execution_of(scheduler, workers, quiet)
    store_path = store_path or out / STORE_NAME
    _check_report_folder(out, REPRODUCE_OWNER, reproduce_files(names), store_path)
    _prepare(configs, data_dir, execution)
    from .reproduce import reproduce, write_reproduction

    with opened_store(store_path) as store:
        rep = reproduce(base, list(seeds), data_dir, store, execution, tuple(names))
    with owned_files(out, REPRODUCE_OWNER) as tmp:
        write_reproduction(rep, tmp, _command("reproduce", []))
    if rep.skipped:
        log.info("%d of %d runs were already in the store", rep.skipped, rep.skipped + rep.ran)
    if as_json:
        return emit_json({"out": out, "datasets": names, "seeds": list(seeds), "profiles": rep.profiles,
                          "ran": rep.ran, "skipped": rep.skipped, "kstar": rep.kstar_table})
    click.echo(text_table(rep.kstar_table))


_owns(reproduce_cmd, f"In --out it owns the report files {_listing(reproduce_files(('DATASET',)))} (one gap CSV per "
                     f"data set) and the marker {MARKER} listing them; {_STORE_NOTE}")


@cli.command("calibrate")
@click.option("--dataset", type=click.Choice(DATASETS), default=_DEFAULTS.dataset, show_default=True)
@click.option("--pilot", "pilots", multiple=True,
              help="A pilot setting, t_sum=T,beta=B,M=M,sigma2=S (1 to 4 times; unnamed values: the study's centre) "
                   "[default: the K* study's four pilots].")
@click.option("--form", type=click.Choice(("drift", "per-round", "printed")), default="drift", show_default=True,
              help="The form to fit (see bladefl_theory.forms).")
@seeds_option("4", "Seeds per pilot")
@click.option("--name", default=None, help="Profile name [default: the --out file name without .json].")
@_data_dir_option()
@store_option("Result store for the pilot sweeps (reused and extended).", required=True)
@execution_options
@quiet_option()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Profile to write, NAME.json.")
@json_option
def calibrate_cmd(dataset, pilots, form, seeds, name, data_dir, store_path, scheduler, workers, quiet, out, as_json):
    """Fit a form to measured loss-over-K sweeps of up to four pilot settings and write a profile for bladefl-theory."""
    from bladefl_platform.errors import InputError

    from .estimate import check_profile_path
    from .studies.kstar_design import DESIGN
    from .studies.kstar_prediction import calibrate_pilots, check_pilots, parse_pilot, pilot_settings, profile_document

    check_profile_path(out)
    base = DESIGN.base
    points = ([parse_pilot(p, dict(DESIGN.centre)) for p in pilots]
              or [s.system() for s in pilot_settings(DESIGN, dataset)])
    check_pilots(DESIGN, dataset, base.replace(dataset=dataset), points)
    for p in points:
        base.replace(dataset=dataset, t_sum=float(p["t_sum"]), beta=float(p["beta"]), M=int(p["M"]),
                     sigma2=float(p["sigma2"]))  # each pilot is a valid deployment
    seed_list = seeds
    fixed = None
    if form != "drift":
        fixed = {"epsilon": load_profile(f"{dataset}-{base.model}").constants["epsilon"]}
    load_dataset(dataset, data_dir, train=True)
    execution = execution_of(scheduler, workers, quiet)
    with ResultStore(store_path) as store:
        cal, settings = calibrate_pilots(store, base.replace(dataset=dataset), dataset, points, seed_list, form,
                                         str(data_dir) if data_dir else None, execution, fixed=fixed)
    if not cal.success:
        raise InputError(f"calibration failed: {cal.message}")
    doc = profile_document(cal, name or out.stem, dataset, base, {s.label: len(seed_list) for s in settings},
                           _command("calibrate", []))
    atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
    log.info("wrote %s", out)
    # The spread is the std of log(constant) over bootstrap refits: as a relative error, exp(std) - 1 (NaN without).
    spread = {k: math.expm1(s) if math.isfinite(s) else None for k, s in cal.spread.items()}
    if as_json:
        return emit_json({"profile": out, "name": doc.get("name", name or out.stem), "form": form,
                          "dataset": dataset, "pilots": points, "seeds": list(seed_list), "constants": cal.constants,
                          "relative_spread": spread, "rms_log_error": cal.rms_log_error, "tolerance": cal.tolerance})
    click.echo(f"{'constant':>8} {'value':>11} {'spread':>8}")
    for k, v in cal.constants.items():
        click.echo(f"{k:>8} {fmt(v):>11} {'—' if spread.get(k) is None else format(spread[k], '.1%'):>8}")
    click.echo(f"rms log error on the pilots {cal.rms_log_error:.4f}; K* band tolerance {cal.tolerance:.2%}")


@cli.command("kstar-report")
@_data_dir_option()
@store_option(f"Result store [default: OUT/{STORE_NAME}].")
@click.option("--measured-only", is_flag=True,
              help="Run nothing: report on what the store holds (a campaign cut short), leaving out the held-out "
                   "settings not measured yet and saying so.")
@execution_options
@quiet_option()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/kstar-prediction"),
              show_default=True, help="Report folder; running again resumes from its store.")
@json_option
def kstar_report_cmd(data_dir, store_path, measured_only, scheduler, workers, quiet, out, as_json):
    """Measure the K* study's design, calibrate on its pilots, and score K* predictions at every held-out setting."""
    from .studies.kstar_design import DESIGN
    from .studies.kstar_prediction import analyse_measured, run_study
    from .studies.kstar_report import report_files, write_report

    execution = execution_of(scheduler, workers, quiet)
    store_path = store_path or out / STORE_NAME
    _check_report_folder(out, KSTAR_OWNER, report_files(DESIGN), store_path)
    if measured_only:
        if not store_path.is_file():
            raise InputError(f"--measured-only reports on a store, and {store_path} does not exist")
        with opened_store(store_path) as store:
            analyses, frame, progress = analyse_measured(store, DESIGN)
    else:
        _prepare([DESIGN.base.replace(dataset=d) for d in DESIGN.datasets], data_dir, execution)
        with opened_store(store_path) as store:
            analyses, frame = run_study(store, DESIGN, str(data_dir) if data_dir else None, execution)
        progress = None
    campaign = {"runs": len(frame), "cpu_hours": float(frame.cpu_seconds.sum()) / 3600, "progress": progress}
    with owned_files(out, KSTAR_OWNER) as tmp:
        choice = write_report(analyses, frame, DESIGN, tmp, _command("kstar-report", []), campaign)
    scores = [{**row, "part": part or "all"} for part in (None, "off-grid") for a in analyses
              for row in a.scores(part).to_dict(orient="records")]
    if as_json:
        states = list(progress.values()) if progress else []
        campaign = {**campaign, "progress": {s: states.count(s) for s in dict.fromkeys(states)} if progress else None}
        return emit_json({"out": out, "measured_only": measured_only, "campaign": campaign, "form": choice.form,
                          "scores": scores})
    click.echo(f"shipped form: {choice.form} (chosen on the arms; the off-grid points are the test)")
    for row in scores:
        click.echo(f"{row['dataset']:14s} {row['part']:8s} {row['predictor']:28s} hit {_percent(row['hit_rate'])}  "
                   f"median regret {_percent(row['median_regret'])}  worst {_percent(row['worst_regret'])}  "
                   f"({row['answered']}/{row['settings']})")


_owns(kstar_report_cmd, "In --out it owns the report files README.md, held_out.csv, scores.csv, forms.csv, "
                        "split_half.csv, calibration.csv, residuals.csv, measured.csv, kstar.png, curves.png and one "
                        f"DATASET-MODEL-calibrated.json per data set, and the marker {MARKER} listing them; "
                        f"{_STORE_NOTE}")


def _percent(x: float) -> str:
    return "     —" if x != x else f"{x:6.1%}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bladefl-validate`` console script."""
    return cli.main(args=argv, prog_name="bladefl-validate")


if __name__ == "__main__":
    main()
