"""``bladefl-validate``: run BLADE-FL for real, sweep K, and verify a run's ledger."""

from __future__ import annotations

import json
import math
import shlex
import sys
from pathlib import Path

import click

from bladefl_theory.atomic import atomic_directory, atomic_files, atomic_write_text
from bladefl_theory.clitools import CLIGroup
from bladefl_theory.execution import Execution
from bladefl_theory.profiles import load_profile
from bladefl_theory.store import ResultStore

from .config import RunConfig
from .data import DATASETS, DataError, load_dataset
from .detect import DETECTORS
from .detection_report import (
    DEFAULT_M,
    DEFAULT_SIGMA2,
    SETTING,
    check_grid,
    run_detection_report,
    write_detection_report,
)
from .encrypt import ENCRYPTIONS
from .model import KINDS
from .partition import SCHEMES, PartitionError
from .pool import is_digest
from .simulate import RoundMetrics, run_to_folder
from .sweep import sweep_k, write_sweep_report
from .verify import verify_run

__all__ = ["cli", "main"]

_DEFAULTS = RunConfig()


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
                     help="k for --partition classes."),
        click.option("--dirichlet-alpha", type=float, default=d.dirichlet_alpha, show_default=True,
                     help="Concentration for --partition dirichlet."),
        click.option("--model", type=click.Choice(KINDS), default=d.model, show_default=True,
                     help="mlp (784-hidden-10, ReLU), logreg (convex) or cnn (McMahan et al.'s two convolutions)."),
        click.option("--hidden", type=int, default=d.hidden, show_default=True, help="Hidden units of the MLP."),
        click.option("--batch-size", type=int, default=d.batch_size, show_default=True),
        click.option("--difficulty-bits", type=int, default=d.difficulty_bits, show_default=True,
                     help="Leading zero bits of a valid block hash."),
        click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                     help="Data root [default: $BLADEFL_DATA, else a user cache folder]."),
        click.option("--quiet", is_flag=True, help="No progress lines."),
    ]

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _config(options: dict, **extra) -> RunConfig:
    names = set(RunConfig.__dataclass_fields__)
    return RunConfig(**{k: v for k, v in options.items() if k in names}, **extra)


def _round_bar(total: int, quiet: bool):
    """A progress bar over rounds (silent under --quiet or when stderr is not a terminal), and its update hook."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="rounds", unit="block", disable=quiet or not sys.stderr.isatty(), file=sys.stderr)

    def show(m: RoundMetrics) -> None:
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
        if value is None or value is False or key in ("quiet", "scheduler", "workers", "store_path"):
            continue
        parts += [flags[key]] if value is True else [flags[key], str(value)]
    return " ".join(shlex.quote(p) for p in parts + extra)


@click.group(
    "bladefl-validate",
    cls=CLIGroup,
    input_errors=(DataError, PartitionError),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="bladefl", prog_name="bladefl-validate")
def cli():
    """BLADE-FL for real: clients training on non-IID data, lazy clients, and a proof-of-work ledger."""


@cli.command("run")
@_run_options(with_k=True)
@click.option("--seed", type=int, default=0, show_default=True)
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
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder (new).")
def run_cmd(out, quiet, data_dir, keep_key, **options):
    """One run: K rounds of training, uploading, mining, verification and aggregation."""
    config = _config(options)
    bar, show = _round_bar(config.K, quiet)
    with bar:
        result = run_to_folder(config, out, data_dir, show, keep_key=keep_key)
    s = result.summary()
    click.echo(
        f"{out}: K={config.K}, tau={config.tau}, final training loss {s['final_global_train_loss']:.4f}, "
        f"test accuracy {s['final_test_accuracy']:.4f}"
    )


def _execution_options(func):
    """--scheduler and --workers for commands that run many simulations."""
    func = click.option("--workers", type=int, default=None,
                        help="Worker processes of the local Dask cluster [default: one per core].")(func)
    func = click.option("--scheduler", default=None,
                        help="Address of an existing Dask scheduler, tcp://HOST:PORT [default: a local cluster].")(func)
    return func


@cli.command("sweep-k")
@_run_options(with_k=False)
@click.option("--seeds", default="0", show_default=True, help="Seeds: a count (3 means 0,1,2) or a list 0,5,7.")
@click.option("--keep-runs", is_flag=True, help="Keep every run's folder (ledger and blobs) under OUT/runs/.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Result store [default: OUT/results.sqlite]; finished runs in it are not run again.")
@_execution_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Report folder; running again with the same folder resumes.")
def sweep_k_cmd(seeds, keep_runs, store_path, scheduler, workers, out, quiet, data_dir, **options):
    """Every K in 1..K_max: final loss and accuracy per K (mean ± std over seeds) and the empirical K*."""
    seed_list = _parse_seeds(seeds)
    base = _config(options, K=1)
    execution = Execution(scheduler=scheduler, workers=workers, progress=False if quiet else None)
    load_dataset(base.dataset, data_dir, train=True)  # fail here, before anything is written, if data is missing
    out.mkdir(parents=True, exist_ok=True)
    with ResultStore(store_path or out / "results.sqlite") as store:
        result = sweep_k(base, seed_list, data_dir, out / "runs" if keep_runs else None, store, execution)
    with atomic_files(out) as tmp:
        write_sweep_report(result, tmp, _command("sweep-k", []))
    if result.skipped:
        click.echo(f"{result.skipped} of {len(result.runs)} runs were already in the store", err=True)
    click.echo(f"{out}: empirical K* = {result.k_star}")
    for k, row in result.per_k.iterrows():
        click.echo(
            f"K={k} tau={int(row['tau'])} loss {row['final_global_train_loss_mean']:.4f} "
            f"acc {row['final_test_accuracy_mean']:.4f}"
        )


def _parse_seeds(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: a count or a comma-separated list of integers", param_hint="'--seeds'")
    if len(values) == 1:
        if values[0] < 1:
            raise click.BadParameter("a count of seeds must be at least 1", param_hint="'--seeds'")
        return list(range(values[0]))
    if any(v < 0 for v in values) or len(set(values)) != len(values):
        raise click.BadParameter("seeds must be distinct non-negative integers", param_hint="'--seeds'")
    return values


def _parse_list(text: str, convert, option: str) -> list:
    try:
        values = [convert(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: a comma-separated list", param_hint=f"'{option}'") from None
    if not values or len(set(values)) != len(values):
        raise click.BadParameter(f"{text!r}: a non-empty list of distinct values", param_hint=f"'{option}'")
    return values


@cli.command("detection-report")
@click.option("--datasets", default=",".join(DATASETS), show_default=True, help="Comma-separated datasets.")
@click.option("--M", "M", default=",".join(map(str, DEFAULT_M)), show_default=True, help="Lazy clients, e.g. 2,4,6.")
@click.option("--sigma2", default=",".join(f"{s:g}" for s in DEFAULT_SIGMA2), show_default=True,
              help="Noise variances.")
@click.option("--seeds", default="1", show_default=True, help="Seeds: a count (3 means 0,1,2) or a list 0,5,7.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Result store to resume from [default: none].")
@_execution_options
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data root [default: $BLADEFL_DATA, else a user cache folder].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Report folder.")
def detection_report_cmd(datasets, M, sigma2, seeds, store_path, scheduler, workers, data_dir, quiet, out):
    """Precision and recall of each lazy-client detector against M and sigma2, and accuracy with exclusion."""
    dataset_list = _parse_list(datasets, str, "--datasets")
    for d in dataset_list:
        if d not in DATASETS:
            raise click.BadParameter(f"{d!r} is not one of {', '.join(DATASETS)}", param_hint="'--datasets'")
    Ms = _parse_list(M, int, "--M")
    sigma2s = _parse_list(sigma2, float, "--sigma2")
    seed_list = _parse_seeds(seeds)
    check_grid(RunConfig(**SETTING), dataset_list, Ms, sigma2s, seed_list)
    execution = Execution(scheduler=scheduler, workers=workers, progress=False if quiet else None)
    for d in dataset_list:
        load_dataset(d, data_dir, train=True)  # fail before running anything if data is missing
    if store_path is not None:
        with ResultStore(store_path) as store:
            report = run_detection_report(dataset_list, Ms, sigma2s, seed_list, data_dir, store, execution)
    else:
        report = run_detection_report(dataset_list, Ms, sigma2s, seed_list, data_dir, None, execution)
    with atomic_directory(out, overwrite=True) as tmp:
        # The store, the workers and the data folder change where runs happen, not their results.
        command = shlex.join(["bladefl-validate", "detection-report", "--datasets", datasets, "--M", M,
                              "--sigma2", sigma2, "--seeds", seeds, "--out", str(out)])
        write_detection_report(report, tmp, command)
    click.echo(f"{out}: {len(report.runs)} runs")
    for _, row in report.breakdown().iterrows():
        at = row["breaks_down_at"]
        click.echo(f"{row['dataset']} {row['detector']} M={row['M']}: F1 < 0.5 from sigma2 = "
                   f"{'none in the grid' if at != at else format(at, 'g')}")


@cli.group("chain")
def chain_group():
    """The ledger of a run folder."""


@chain_group.command("verify")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--difficulty-bits", type=int, default=None, help="Also require every block to declare this difficulty.")
@click.option("--tip", default=None, metavar="HASH",
              help="The tip hash recorded when the run finished (chain.json, summary.md), kept elsewhere: the only "
                   "check a consistently rewritten run folder cannot pass.")
@click.option("--json", "as_json", is_flag=True)
def chain_verify_cmd(run_dir, difficulty_bits, tip, as_json):
    """Check the ledger against chain.json, config.json and metrics.csv, and recompute every hash, proof of
    work, Merkle root and blob digest; exit 1 naming the first mismatch."""
    if not run_dir.is_dir():
        raise click.BadParameter(f"{run_dir} is not a folder", param_hint="'RUN_DIR'")
    if tip is not None:
        tip = tip.strip().lower()
        if not is_digest(tip):
            raise click.BadParameter("a block hash is 64 hexadecimal characters", param_hint="'--tip'")
    report = verify_run(run_dir, difficulty_bits=difficulty_bits, tip=tip)
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "blocks": report.blocks, "blobs": report.blobs, "error": report.error,
                               "tip": report.tip}))
    elif report.ok:
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
@click.option("--classes-per-client", type=int, default=_DEFAULTS.classes_per_client, show_default=True)
@click.option("--dirichlet-alpha", type=float, default=_DEFAULTS.dirichlet_alpha, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def partition_cmd(out, data_dir, **options):
    """Per-client label counts of a partition, as CSV and a PNG heat map."""
    from .data import load_dataset
    from .partition import label_counts, make_partitioner, plot_partition
    config = _config(options)
    train = load_dataset(config.dataset, data_dir, train=True)
    labels = train.labels.numpy()
    parts = make_partitioner(
        config.partition, num_clients=config.N, samples_per_client=config.samples_per_client, seed=config.seed,
        **config.partition_options(),
    ).partition(labels)
    counts = label_counts(labels, parts)
    with atomic_directory(out, overwrite=True) as tmp:
        counts.to_csv(tmp / "partition.csv", index_label="client")
        plot_partition(counts, tmp / "partition.png")
    click.echo(counts.to_string())


@cli.command("estimate")
@_run_options(with_k=True)
@click.option("--seeds", default="3", show_default=True, help="Seeds: a count (3 means 0,1,2) or a list 0,5,7.")
@click.option("--name", default=None, help="Profile name [default: the --out file name without .json].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Profile to write, NAME.json; the raw samples go to NAME.samples.csv beside it.")
@click.option("--wstar-max-iter", type=int, default=None,
              help="Most L-BFGS iterations of the centralized training that finds w* [default: 2000].")
@click.option("--wstar-loss-floor", type=float, default=None,
              help="w* is the first iterate with a loss this low; cross-entropy on interpolated data never reaches 0 "
                   "[default: 1e-6].")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Result store; seeds in it are not run again [default: NAME.results.sqlite beside --out].")
@_execution_options
def estimate_cmd(seeds, name, out, wstar_max_iter, wstar_loss_floor, store_path, scheduler, workers, quiet, data_dir,
                 **options):
    """Estimate L, xi, delta, phi (clean M=0 runs) and theta, epsilon (runs with --M lazy clients); write a profile."""
    from bladefl_theory.errors import InputError

    from .estimate import OptimumOptions, check_profile_path, estimate_constants, write_estimate

    seed_list = _parse_seeds(seeds)
    config = _config(options)
    check_profile_path(out)
    given = {"max_iter": wstar_max_iter, "loss_floor": wstar_loss_floor}
    optimum = OptimumOptions(**{k: v for k, v in given.items() if v is not None})
    if config.M < 1:
        raise InputError(f"--M must be >= 1: theta is measured on lazy clients (got M={config.M})")
    load_dataset(config.dataset, data_dir, train=True)  # fail here, before any run, if data is missing
    execution = Execution(scheduler=scheduler, workers=workers, progress=False if quiet else None)
    store_path = store_path or out.with_name(out.name.removesuffix(".json") + ".results.sqlite")
    with ResultStore(store_path) as store:
        result = estimate_constants(config, seed_list, data_dir, optimum=optimum, execution=execution, store=store)
    profile_path, samples_path = write_estimate(result, out, name=name, command=_command("estimate", []))
    click.echo(f"{'constant':>8} {'median':>11} {'q1':>11} {'q3':>11} {'min':>11} {'max':>11}  over")
    for constant, row in result.summary().iterrows():
        cells = " ".join(f"{row[k]:>11.4g}" if row[k] is not None else f"{'-':>11}" for k in ("estimate", "q1", "q3", "min", "max"))
        click.echo(f"{constant:>8} {cells}  {row['over']}")
    verdict = "< 1, Lemma 1's condition holds" if result.eta_L < 1 else ">= 1, VIOLATES Lemma 1's condition"
    click.echo(f"eta*L = {result.eta_L:.4g} ({verdict}); F(w*) = {result.f_star:.4g}")
    click.echo(f"wrote {profile_path} and {samples_path}")


@cli.command("gap")
@_run_options(with_k=False)
@click.option("--seeds", default="3", show_default=True, help="Seeds: a count (3 means 0,1,2) or a list 0,5,7.")
@click.option("--profile", default=None, help="Profile of constants [default: DATASET-MODEL if shipped, else default].")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Result store [default: OUT/results.sqlite].")
@_execution_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Report folder; running again with the same folder resumes.")
def gap_cmd(seeds, profile, store_path, scheduler, workers, out, quiet, data_dir, **options):
    """Measured F(w^K) − F(w*) over K beside the bound of each variant, with K*, Spearman and a calibration."""

    from .gap import analyse_gap, write_gap_report
    from .optimum import optima
    from .reproduce import profile_for

    seed_list = _parse_seeds(seeds)
    base = _config(options, K=1)
    prof = load_profile(profile) if profile else profile_for(base.dataset, base.model)
    params = base.theory_params(prof)
    execution = Execution(scheduler=scheduler, workers=workers, progress=False if quiet else None)
    load_dataset(base.dataset, data_dir, train=True)
    out.mkdir(parents=True, exist_ok=True)
    with ResultStore(store_path or out / "results.sqlite") as store:
        sweep = sweep_k(base, seed_list, data_dir, None, store, execution)
        f_star = [r["f_star"] for r in optima(base, seed_list, data_dir, store, execution).results]
    result = analyse_gap(sweep.per_k, sum(f_star) / len(f_star), params)
    title = f"{base.dataset}, M={base.M}, sigma2={base.sigma2:g}, profile {prof.name}"
    with atomic_files(out) as tmp:
        write_gap_report(result, tmp, title, _command("gap", []), seed_list)
    click.echo(f"{out}: measured K* = {result.k_star_measured}")
    for v, f in result.fits.items():
        click.echo(f"{v}: bound's K* = {f.k_star_bound}, Spearman = {f.spearman}, R2 of the calibration = {f.r2}")


@cli.command("reproduce")
@click.option("--seeds", default="3", show_default=True, help="Seeds per point: a count or a list.")
@click.option("--datasets", default=",".join(DATASETS), show_default=True, help="Comma-separated datasets.")
@click.option("--difficulty-bits", type=int, default=_DEFAULTS.difficulty_bits, show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data root [default: $BLADEFL_DATA, else a user cache folder].")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Result store [default: OUT/results.sqlite].")
@_execution_options
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/paper-reproduction"),
              show_default=True, help="Report folder; running again resumes from its store.")
def reproduce_cmd(seeds, datasets, difficulty_bits, data_dir, store_path, scheduler, workers, quiet, out):
    """Reproduce the paper's figures 2 to 4 and its K* values at its settings (N=20, |D_i|=512, t_sum=100)."""
    from .reproduce import reproduce, write_reproduction

    seed_list = _parse_seeds(seeds)
    names = [d.strip() for d in datasets.split(",") if d.strip()]
    unknown = [d for d in names if d not in DATASETS]
    if unknown or not names:
        raise click.BadParameter(f"unknown dataset {unknown[0] if unknown else '(none)'}; known: {', '.join(DATASETS)}",
                                 param_hint="'--datasets'")
    base = RunConfig(difficulty_bits=difficulty_bits)
    for d in names:
        load_dataset(d, data_dir, train=True)
    execution = Execution(scheduler=scheduler, workers=workers, progress=False if quiet else None)
    out.mkdir(parents=True, exist_ok=True)
    with ResultStore(store_path or out / "results.sqlite") as store:
        rep = reproduce(base, seed_list, data_dir, store, execution, tuple(names))
    with atomic_files(out) as tmp:
        write_reproduction(rep, tmp, _command("reproduce", []))
    click.echo(rep.kstar_table.to_string(index=False))


@cli.command("calibrate")
@click.option("--dataset", type=click.Choice(DATASETS), default=_DEFAULTS.dataset, show_default=True)
@click.option("--pilot", "pilots", multiple=True,
              help="A pilot setting, t_sum=T,beta=B,M=M,sigma2=S (1 to 4 times; unnamed values: the study's centre) "
                   "[default: the K* study's four pilots].")
@click.option("--form", type=click.Choice(("drift", "per-round", "printed")), default="drift", show_default=True,
              help="The form to fit (see bladefl_theory.forms).")
@click.option("--seeds", default="4", show_default=True, help="Seeds per pilot: a count (4 means 0..3) or a list 0,5,7.")
@click.option("--name", default=None, help="Profile name [default: the --out file name without .json].")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data root [default: $BLADEFL_DATA, else a user cache folder].")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Result store for the pilot sweeps (reused and extended).")
@_execution_options
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Profile to write, NAME.json.")
def calibrate_cmd(dataset, pilots, form, seeds, name, data_dir, store_path, scheduler, workers, quiet, out):
    """Fit a form to measured loss-over-K sweeps of up to four pilot settings and write a profile for bladefl-theory."""
    from bladefl_theory.errors import InputError

    from .estimate import check_profile_path
    from .studies.kstar_design import DESIGN
    from .studies.kstar_prediction import calibrate_pilots, check_pilots, parse_pilot, pilot_settings, profile_document

    check_profile_path(out)
    base = DESIGN.base
    points = [parse_pilot(p, dict(DESIGN.centre)) for p in pilots] or [s.system() for s in pilot_settings(DESIGN, dataset)]
    check_pilots(DESIGN, dataset, base.replace(dataset=dataset), points)
    for p in points:
        base.replace(dataset=dataset, t_sum=float(p["t_sum"]), beta=float(p["beta"]), M=int(p["M"]),
                     sigma2=float(p["sigma2"]))  # each pilot is a valid deployment
    seed_list = _parse_seeds(seeds)
    fixed = None
    if form != "drift":
        fixed = {"epsilon": load_profile(f"{dataset}-{base.model}").constants["epsilon"]}
    load_dataset(dataset, data_dir, train=True)
    execution = Execution(scheduler=scheduler, workers=workers, progress=False if quiet else None)
    with ResultStore(store_path) as store:
        cal, settings = calibrate_pilots(store, base.replace(dataset=dataset), dataset, points, seed_list, form,
                                         str(data_dir) if data_dir else None, execution, fixed=fixed)
    if not cal.success:
        raise InputError(f"calibration failed: {cal.message}")
    doc = profile_document(cal, name or out.stem, dataset, base, {s.label: len(seed_list) for s in settings},
                           _command("calibrate", []))
    atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
    click.echo(f"{'constant':>8} {'value':>11} {'spread':>8}")
    for k, v in cal.constants.items():
        click.echo(f"{k:>8} {v:>11.4g} {math.expm1(cal.spread[k]) if cal.spread[k] == cal.spread[k] else float('nan'):>8.1%}")
    click.echo(f"rms log error on the pilots {cal.rms_log_error:.4f}; K* band tolerance {cal.tolerance:.2%}")
    click.echo(f"wrote {out}")


@cli.command("kstar-report")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data root [default: $BLADEFL_DATA, else a user cache folder].")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Result store [default: OUT/results.sqlite].")
@_execution_options
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/kstar-prediction"),
              show_default=True, help="Report folder; running again resumes from its store.")
def kstar_report_cmd(data_dir, store_path, scheduler, workers, quiet, out):
    """Measure the K* study's design, calibrate on its pilots, and score K* predictions at every held-out setting."""
    from .studies.kstar_design import DESIGN
    from .studies.kstar_prediction import run_study
    from .studies.kstar_report import write_report

    for d in DESIGN.datasets:
        load_dataset(d, data_dir, train=True)  # fail here, before anything runs, if data is missing
    execution = Execution(scheduler=scheduler, workers=workers, progress=False if quiet else None)
    out.mkdir(parents=True, exist_ok=True)
    with ResultStore(store_path or out / "results.sqlite") as store:
        analyses, frame = run_study(store, DESIGN, str(data_dir) if data_dir else None, execution)
    campaign = {"runs": len(frame), "cpu_hours": float(frame.cpu_seconds.sum()) / 3600}
    with atomic_files(out) as tmp:
        write_report(analyses, frame, DESIGN, tmp, _command("kstar-report", []), campaign)
    for a in analyses:
        s = a.scores()
        for row in s.itertuples():
            click.echo(f"{a.dataset:14s} {row.predictor:28s} hit {row.hit_rate:6.1%}  median regret "
                       f"{row.median_regret:6.2%}  worst {row.worst_regret:6.2%}  ({row.answered}/{row.settings})")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bladefl-validate`` console script."""
    return cli.main(args=argv, prog_name="bladefl-validate")


if __name__ == "__main__":
    main()
