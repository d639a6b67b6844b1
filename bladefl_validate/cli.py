"""``bladefl-validate``: run BLADE-FL for real, sweep K, and verify a run's ledger.

Importing this module needs no torch: the simulator and everything else that computes is imported
inside the commands, so ``--help`` and ``--version`` work after a theory-only install (and fast),
and a command that needs torch without it says which extra to install.

Every command checks everything it can before it writes or computes anything (the options, every
run's config, the output folder and the store, the data, the partitions, the memory a run needs and
the scheduler), so bad input is one line and status 2 with nothing written.
"""

from __future__ import annotations

import inspect
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from bladefl_platform.atomic import MARKER, check_replaceable, owned_directory
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
    strict_store,
)
from bladefl_platform.errors import InputError
from bladefl_platform.study import STORE_NAME, StudyRun

from .config import DATASETS, DETECTORS, DEVICES, MAX_CLIENT_EPOCHS, MODELS, RunConfig
from .learning.encrypt import ENCRYPTIONS
from .partition import SCHEMES
from .studies.base import RunStudy
from .studies.detection import DEFAULT_M, DEFAULT_SIGMA2
from .studies.kstar.sequential import VerifyDesign

__all__ = ["cli", "main"]

_DEFAULTS = RunConfig()
_VERIFY = VerifyDesign()

# Owners named in the marker of the output folder of each command that is not a study, and the files each writes.
RUN_OWNER = "bladefl-validate run"
PARTITION_OWNER = "bladefl-validate partition"
RUN_FILES = ("config.json", "metrics.csv", "ledger.jsonl", "chain.json", "blobs/", "partition.csv", "partition.png",
             "summary.md", "summary.json", "detection.csv (with --detect)", "ckks-secret.key (with --keep-key)")
PARTITION_FILES = ("partition.csv", "partition.png")


def load_dataset(name: str, data_dir: Path | str | None = None, train: bool = True):
    """:func:`bladefl_validate.data.load_dataset`, imported on first use (it needs torch)."""
    from .data import load_dataset as load

    return load(name, data_dir, train=train)


class _Registered(click.Choice):
    """The built-in names and those registered in this process (read as the option is parsed, after the plugins)."""

    def __init__(self, builtin: Sequence[str], registered: Callable[[], Sequence[str]]):
        self._builtin, self._registered = tuple(builtin), registered
        super().__init__(builtin)

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return (*self._builtin, *self._registered())

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        pass  # always computed


def _dataset_choice() -> _Registered:
    from . import config

    return _Registered(DATASETS, lambda: tuple(config.REGISTERED_DATASETS))


def _model_choice() -> _Registered:
    from . import config

    return _Registered(MODELS, lambda: tuple(config.REGISTERED_MODELS))


def _run_options(with_k: bool, system: bool = True):
    """The options shared by ``run``, ``sweep-k`` and (without the ``system`` parameters its pilots set: M, sigma2,
    beta, t_sum) ``calibrate``; defaults come from :class:`RunConfig`."""
    d = _DEFAULTS
    options = [
        click.option("--dataset", type=_dataset_choice(), default=d.dataset, show_default=True,
                     help="mnist, fashion-mnist or a data set registered by a module BLADEFL_PLUGINS names."),
        click.option("--N", "N", type=int, default=d.N, show_default=True, help="Clients."),
    ]
    if system:
        options.append(click.option("--M", "M", type=int, default=d.M, show_default=True, help="Lazy clients."))
    if with_k:
        options.append(click.option("--K", "K", type=int, default=d.K, show_default=True, help="Blocks (rounds)."))
    if system:
        options.append(click.option("--sigma2", type=float, default=d.sigma2, show_default=True,
                                    help="Variance of the lazy noise."))
    options.append(click.option("--alpha", type=float, default=d.alpha, show_default=True,
                                help="Time of one local epoch."))
    if system:
        options += [
            click.option("--beta", type=float, default=d.beta, show_default=True, help="Time to mine one block."),
            click.option("--t-sum", "t_sum", type=float, default=d.t_sum, show_default=True,
                         help="Total time budget."),
        ]
    options += [
        click.option("--eta", type=float, default=d.eta, show_default=True, help="Learning rate."),
        click.option("--samples-per-client", type=int, default=d.samples_per_client, show_default=True, help="|D_i|."),
        click.option("--partition", type=click.Choice(SCHEMES), default=d.partition, show_default=True),
        click.option("--classes-per-client", type=int, default=d.classes_per_client, show_default=True,
                     help="k for --partition classes (it must divide |D_i|)."),
        click.option("--dirichlet-alpha", type=float, default=d.dirichlet_alpha, show_default=True,
                     help="Concentration for --partition dirichlet."),
        click.option("--model", type=_model_choice(), default=d.model, show_default=True,
                     help="mlp (inputs-hidden-classes, ReLU), logreg (convex), cnn (McMahan et al.'s two convolutions, "
                          "28x28 inputs) or a model registered by a module BLADEFL_PLUGINS names."),
        click.option("--hidden", type=int, default=d.hidden, show_default=True, help="Hidden units of the MLP."),
        click.option("--batch-size", type=int, default=d.batch_size, show_default=True),
        click.option("--difficulty-bits", type=int, default=d.difficulty_bits, show_default=True,
                     help="Leading zero bits of a valid block hash."),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                     help="Where runs compute: auto is cuda when torch sees a GPU, else cpu. CUDA results are not "
                          "bit-identical to CPU ones, so the result store keeps them apart."),
        _allow_long_option(),
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


def _allow_long_option():
    """``--allow-long``: let a run train beyond the bound on client-epochs (``RunConfig.allow_long``)."""
    return click.option("--allow-long", is_flag=True,
                        help=f"Run even a run of more than {MAX_CLIENT_EPOCHS:,} client-epochs (N*K*tau, about a day "
                             "at the paper's sizes), which is refused otherwise.")


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


def _command(name: str, only: Sequence[str] | None = None) -> str:
    """The command line that reproduces this invocation, from the parsed options (``only`` these, in this order)."""
    ctx = click.get_current_context()
    parts = ["bladefl-validate", name]
    flags = {p.name: p.opts[0] for p in ctx.command.params if isinstance(p, click.Option)}
    for key in only if only is not None else list(ctx.params):
        value = ctx.params[key]
        # Where the work runs and how it is shown do not change the results.
        if value is None or value is False or key in ("quiet", "scheduler", "workers", "store_path", "as_json"):
            continue
        if key == "device":  # the device the runs used, as auto resolved here
            value = RunConfig(device=value).device
        parts += [flags[key]] if value is True else [flags[key], str(value)]
    return shlex.join(parts)


def _run(study: RunStudy, out: Path, store_path: Path | None, scheduler: str | None, workers: int | None, quiet: bool,
         data_dir: Path | None, as_json: bool, command: str | None = None) -> int | None:
    """Run ``study`` through its store and a Dask execution, write its report at ``out``, and print the result."""
    from .studies.base import run

    done: StudyRun = run(study, out, store=store_path, execution=execution_of(scheduler, workers, quiet),
                         data_dir=data_dir, command=command or _command(study.command), strict=strict_store())
    if as_json:
        return emit_json(study.summary(done))
    click.echo(study.text(done))
    return None


class _Owning(click.Command):
    """A command whose --help ends with what it owns in its output, from ``owns()``: called only when that help is
    shown, so that listing the commands imports no study."""

    def __init__(self, *args, owns: Callable[[], str], **kwargs):
        super().__init__(*args, **kwargs)
        self.owns = owns

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        text = self.help
        # Dedented first: the listing appended flush left would otherwise keep the docstring's indentation.
        self.help = f"{inspect.cleandoc(text or '')}\n\n{self.owns()}"
        try:
            super().format_help_text(ctx, formatter)
        finally:
            self.help = text


def _listing(names: Sequence[str]) -> str:
    return ", ".join(names)


def _files_note(files: str, extra: str = "") -> str:
    """What a study whose report files live beside its store owns in --out (``files``: their listing)."""
    return (f"In --out it owns the report files {files} and the marker {MARKER} listing them; {extra}the "
            f"result store (--store, default {STORE_NAME}) lives beside them. A report file it did not write is never "
            "replaced: the command stops before running anything (status 2).")


def _folder_note(what: str, files: Sequence[str], when: str = "", writer: str = "this command") -> str:
    """What a command that replaces its --out whole owns there."""
    return (f"It owns {what}: {_listing(files)}, and the marker {MARKER}. An existing --out is replaced whole{when} "
            f"only if it is empty or the marker says {writer} wrote it and it holds nothing else; otherwise nothing is "
            "written (status 2).")


def _sweep_owns() -> str:
    from .studies.sweep_k import SWEEP_FILES

    return _files_note(_listing(SWEEP_FILES), "runs/ (--keep-runs) and ")


def _gap_owns() -> str:
    from .studies.gap import GAP_FILES

    return _files_note(_listing(GAP_FILES))


def _reproduce_owns() -> str:
    from .studies.reproduce import reproduce_files

    return _files_note(f"{_listing(reproduce_files(('DATASET',)))} (one gap CSV per data set)")


def _detection_owns() -> str:
    from .studies.detection import DETECTION_FILES

    return _folder_note("the report folder --out", DETECTION_FILES, ", once the report is complete,")


def _kstar_owns() -> str:
    return _files_note("README.md, summary.md, held_out.csv, scores.csv, forms.csv, split_half.csv, calibration.csv, "
                       "residuals.csv, measured.csv, kstar.png and curves.png,")


def _resumable(store_help: str):
    """The last options of a study of the run options whose report folder resumes from its store: --store,
    --scheduler, --workers, --out and --json."""

    def decorate(func):
        for option in (json_option, _report_folder(), execution_options, store_option(store_help)):
            func = option(func)
        return func

    return decorate


def _report_folder(help: str = "Report folder; running again with the same folder resumes.", default=None):
    """``--out`` of a study that writes a report folder."""
    # click >= 8.3 counts an explicit default of None as a value given: a required option gets none.
    given = {"required": True} if default is None else {"default": default, "show_default": True}
    return click.option("--out", type=click.Path(file_okay=False, path_type=Path), help=help, **given)


@click.group(
    "bladefl-validate",
    cls=CLIGroup,
    input_errors=("bladefl_validate.data:DataError", "bladefl_validate.partition:PartitionError"),
    extras={**dict.fromkeys(("torch", "torchvision", "pandas", "matplotlib", "dask", "distributed", "tqdm"),
                            "validate"), "tenseal": "encrypt"},
    catch_all=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="bladefl", prog_name="bladefl-validate")
def cli():
    """BLADE-FL for real: clients training on non-IID data, lazy clients, and a proof-of-work ledger.

    \b
    Exit statuses:
      0  success (chain verify: the ledger and every file the run reports hold)
      1  chain verify: something does not hold, or (a format 1 folder) cannot be proven; any
         command: the output could not be written, or an internal error (a bug)
      2  bad input, or a missing dependency: one line; nothing run, nothing written
      130, 143  interrupted (Ctrl-C, SIGTERM); temporaries removed

    With --json a command prints its result as one JSON object on stdout whose "status" is the exit
    status (on 1 and 2 from an error stdout is empty and stderr holds the error line). Messages,
    warnings and progress bars go to stderr: -q keeps warnings and errors only (and no progress
    bars), -v adds debug messages.

    Data sets and models of your own: BLADEFL_PLUGINS names the modules that register them
    (comma-separated, importable), imported before any option is read.
    """
    from .plugins import load_plugins

    load_plugins()


@cli.command("run", cls=_Owning, owns=lambda: _folder_note(
    "the run folder --out", RUN_FILES, ", once the run is complete,", "a run"))
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
    from .simulation import run_to_folder
    from .studies.base import check_runs

    check_runs([config], data_dir)

    bar, show = _round_bar(config.K, quiet)
    with bar, owned_directory(out, RUN_OWNER) as tmp:
        # run_to_folder builds the run beside tmp and swaps it in; owned_directory then marks it and swaps it to out.
        result = run_to_folder(config, tmp, data_dir, show, overwrite=True, keep_key=keep_key)
    s = result.summary()
    if as_json:
        return emit_json({"out": out, "config": config.as_dict(), "summary": s, "tip_hash": result.tip})
    from bladefl_platform.report import fmt

    # A learning rate too large for the problem diverges: its loss is no number (null with --json).
    click.echo(
        f"{out}: K={config.K}, tau={config.tau}, final training loss "
        f"{fmt(s['final_global_train_loss'], spec='.4f', missing='not finite (diverged)')}, "
        f"test accuracy {fmt(s['final_test_accuracy'], spec='.4f', missing='not finite')}"
    )


@cli.command("sweep-k", cls=_Owning, owns=_sweep_owns)
@_run_options(with_k=False)
@seeds_option("1")
@click.option("--keep-runs", is_flag=True, help="Keep every run's folder (ledger and blobs) under OUT/runs/.")
@_resumable(f"Result store [default: OUT/{STORE_NAME}]; finished runs in it are not run again.")
def sweep_k_cmd(seeds, keep_runs, store_path, scheduler, workers, out, quiet, data_dir, as_json, **options):
    """Every K in 1..K_max: final loss and accuracy per K (mean ± std over seeds) and the empirical K*."""
    from .studies.sweep_k import SweepKStudy

    study = SweepKStudy(_config(options, K=1), seeds, out / "runs" if keep_runs else None)
    return _run(study, out, store_path, scheduler, workers, quiet, data_dir, as_json)


@cli.command("detection-report", cls=_Owning, owns=_detection_owns)
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
@_report_folder("Report folder.")
@json_option
def detection_report_cmd(datasets, M, sigma2, seeds, store_path, scheduler, workers, data_dir, quiet, out, as_json):
    """Precision and recall of each lazy-client detector against M and sigma2, and accuracy with exclusion."""
    from .studies.detection import DetectionStudy

    study = DetectionStudy(datasets, M, sigma2, seeds)
    # The store, the workers and the data folder change where runs happen, not their results.
    command = _command(study.command, ("datasets", "M", "sigma2", "seeds", "out"))
    return _run(study, out, store_path, scheduler, workers, quiet, data_dir, as_json, command)


@cli.group("chain")
def chain_group():
    """The ledger of a run folder."""


@chain_group.command("verify")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--difficulty-bits", type=click.IntRange(0, 256), default=None,
              help="Also require every block to declare this difficulty.")
@click.option("--tip", default=None, metavar="HASH",
              help="The run's tip recorded when it finished (chain.json, summary.md), kept elsewhere: it anchors the "
                   "configuration, the partition, every reported number and the ledger, the only check a "
                   "consistently rewritten run folder cannot pass.")
@json_option(help="Print the verdict as one JSON object on stdout, its status the exit status (0 or 1).")
def chain_verify_cmd(run_dir, difficulty_bits, tip, as_json):
    """Check the ledger and every file the run reports against what the chain committed to, and recompute every
    hash, proof of work, Merkle root and blob digest; exit 1 naming the first mismatch, or what a format 1
    folder cannot prove."""
    from .chain.pool import is_digest
    from .chain.verify import verify_run

    if not run_dir.is_dir():
        raise click.BadParameter(f"{run_dir} is not a folder", param_hint="'RUN_DIR'")
    if tip is not None:
        tip = tip.strip().lower()
        if not is_digest(tip):
            raise click.BadParameter("a tip is 64 hexadecimal characters", param_hint="'--tip'")
    report = verify_run(run_dir, difficulty_bits=difficulty_bits, tip=tip)
    if as_json:
        return emit_json({"ok": report.ok, "blocks": report.blocks, "blobs": report.blobs, "error": report.error,
                          "tip": report.tip, "format": report.format, "unproven": list(report.unproven)},
                         0 if report.ok else 1)
    if report.ok:
        anchor = "matches --tip" if tip else "not anchored: pass the tip you kept as --tip"
        click.echo(f"{run_dir}: ok, {report.blocks} blocks, {report.blobs} blobs and every reported file verified, "
                   f"tip {report.tip} ({anchor})")
    else:
        click.echo(f"{run_dir}: {'NOT PROVEN' if report.unproven else 'INVALID'}: {report.error}", err=True)
    return 0 if report.ok else 1


@cli.command("partition", cls=_Owning, owns=lambda: _folder_note("the folder --out", PARTITION_FILES))
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
@json_option
def partition_cmd(out, data_dir, as_json, **options):
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
    if as_json:
        return emit_json({"out": out, "config": config.as_dict(), "files": list(PARTITION_FILES),
                          "counts": counts.to_numpy().tolist()})
    click.echo(counts.to_string())


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
    from .optimum import OptimumOptions
    from .studies.estimate import EstimateStudy

    given = {"max_iter": wstar_max_iter, "loss_floor": wstar_loss_floor}
    optimum = OptimumOptions(**{k: v for k, v in given.items() if v is not None})
    study = EstimateStudy(_config(options), seeds, optimum, name)
    return _run(study, out, store_path, scheduler, workers, quiet, data_dir, as_json)


@cli.command("gap", cls=_Owning, owns=_gap_owns)
@_run_options(with_k=False)
@seeds_option("3")
@click.option("--profile", default=None, help="Profile of constants [default: DATASET-MODEL if shipped, else default].")
@_resumable(f"Result store [default: OUT/{STORE_NAME}].")
def gap_cmd(seeds, profile, store_path, scheduler, workers, out, quiet, data_dir, as_json, **options):
    """Measured F(w^K) − F(w*) over K beside the bound of each variant, with K*, Spearman and a calibration."""
    from .studies.gap import GapStudy

    study = GapStudy(_config(options, K=1), seeds, profile)
    return _run(study, out, store_path, scheduler, workers, quiet, data_dir, as_json)


@cli.command("reproduce", cls=_Owning, owns=_reproduce_owns)
@seeds_option("3", "Seeds per point")
@_datasets_option()
@click.option("--difficulty-bits", type=int, default=_DEFAULTS.difficulty_bits, show_default=True)
@_data_dir_option()
@store_option(f"Result store [default: OUT/{STORE_NAME}].")
@execution_options
@quiet_option()
@_report_folder("Report folder; running again resumes from its store.", Path("reports/paper-reproduction"))
@json_option
def reproduce_cmd(seeds, datasets, difficulty_bits, data_dir, store_path, scheduler, workers, quiet, out, as_json):
    """Reproduce the paper's figures 2 to 4 and its K* values at its settings (N=20, |D_i|=512, t_sum=100)."""
    from .studies.reproduce import ReproduceStudy

    study = ReproduceStudy(RunConfig(difficulty_bits=difficulty_bits), seeds, datasets)
    return _run(study, out, store_path, scheduler, workers, quiet, data_dir, as_json)


@cli.command("calibrate")
@_run_options(with_k=False, system=False)
@click.option("--box", default=None,
              help="The region the pilots span, NAME=LOW:HIGH for t_sum, beta, M and sigma2, e.g. "
                   "t_sum=50:200,beta=2.5:20,M=0:8,sigma2=0:0.3: four pilots, its centre and three corners "
                   "[default: the K* study's four pilots for mnist and fashion-mnist].")
@click.option("--pilot", "pilots", multiple=True,
              help="A pilot setting, t_sum=T,beta=B,M=M,sigma2=S (1 to 4 times; unnamed values: the study's centre), "
                   "instead of --box.")
@click.option("--form", type=click.Choice(("saturating", "drift", "per-round", "printed")), default=None,
              help="The form to fit (see bladefl_theory.forms) [default: the form of the shipped "
                   "DATASET-mlp-calibrated profile, the K* confirmation's choice].")
@seeds_option("8", "Seeds per pilot")
@click.option("--name", default=None, help="Profile name [default: the --out file name without .json].")
@click.option("--max-cpu-hours", type=float, default=None,
              help="Refuse, before any run, a calibration estimated to cost more CPU hours [default: no limit].")
@store_option("Result store for the pilot sweeps (reused and extended) [default: OUT with .sqlite for .json].")
@execution_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Profile to write, NAME.json.")
@json_option
def calibrate_cmd(box, pilots, form, seeds, name, max_cpu_hours, store_path, scheduler, workers, out, as_json, quiet,
                  data_dir, **options):
    """Fit a form to measured loss-over-K sweeps of up to four pilot settings of your system (every option of
    sweep-k but those the pilots set) and write a profile for bladefl-theory. The pilots are checked and the cost
    (runs, client-epochs, CPU hours timed here) stated before any run."""
    from .studies.kstar.study import CalibrateStudy

    study = CalibrateStudy(_config(options, K=1), pilots, form, seeds, name, box=box, max_cpu_hours=max_cpu_hours)
    return _run(study, out, store_path, scheduler, workers, quiet, data_dir, as_json)


def _campaign_options(store: str, measured_only: str, out: str, default_out: Path, store_required: bool = False):
    """The options of a command that measures a campaign through its store and reports on it: --data-dir,
    --store, --measured-only (report on a campaign cut short), --scheduler/--workers, --quiet, --out and --json."""
    def decorate(func):
        for option in reversed((
            _data_dir_option(),
            store_option(store, required=store_required),
            click.option("--measured-only", is_flag=True,
                         help=f"Run nothing: report on what the store holds, {measured_only}."),
            execution_options,
            quiet_option(),
            _report_folder(out, default_out),
            json_option,
        )):
            func = option(func)
        return func
    return decorate


@cli.command("kstar-report", cls=_Owning, owns=_kstar_owns)
@_campaign_options(f"Result store [default: OUT/{STORE_NAME}].",
                   "leaving out the held-out settings not measured yet and saying so",
                   "Report folder; running again resumes from its store.", Path("reports/kstar-prediction"))
def kstar_report_cmd(data_dir, store_path, measured_only, scheduler, workers, quiet, out, as_json):
    """Measure the K* study's design, calibrate on its pilots, and score K* predictions at every held-out setting."""
    from .studies.kstar.study import KStarReportStudy

    study = KStarReportStudy(measured_only=measured_only)
    return _run(study, out, store_path, scheduler, workers, quiet, data_dir, as_json)


def _confirm_owns() -> str:
    from .studies.kstar.report import confirm_files

    *files, profile = confirm_files(None)  # the profiles' names come last
    return (f"In --out it owns the report files {_listing(files)}, one {profile} per data set (the profiles the "
            f"package ships) and the marker {MARKER} listing them. A "
            "report file it did not write is never replaced: the command stops before running anything (status 2).")


@cli.command("kstar-confirm", cls=_Owning, owns=_confirm_owns)
@_campaign_options("The K* study's result store (its runs choose the form; the fresh points' runs are added to it).",
                   "scoring only the fresh points measured so far", "Report folder.",
                   Path("reports/kstar-confirmation"), store_required=True)
def kstar_confirm_cmd(data_dir, store_path, measured_only, scheduler, workers, quiet, out, as_json):
    """Choose the form again on every held-out setting of the K* study and test it on fresh off-grid points."""
    from .studies.kstar.study import ConfirmStudy

    # The profiles name their report folder as given, relative to here when it lies below (as in the repository).
    here = Path.cwd().resolve()
    report = out.resolve().relative_to(here) if out.resolve().is_relative_to(here) else out
    study = ConfirmStudy(measured_only=measured_only, report=report.as_posix())
    # The store is part of what to regenerate from here: it holds the first study's runs, which choose the form.
    command = _command(study.command) + (f" --store {shlex.quote(str(store_path))}" if store_path else "")
    return _run(study, out, store_path, scheduler, workers, quiet, data_dir, as_json, command)


def _verify_owns() -> str:
    from .studies.kstar.verify import VERIFY_FILES

    return _files_note(_listing(VERIFY_FILES))


@cli.command("kstar-verify", cls=_Owning, owns=_verify_owns)
@_run_options(with_k=False)
@click.option("--profile", default=None,
              help="Profile whose K* band to verify [default: the shipped DATASET-MODEL-calibrated].")
@click.option("--tolerance", type=float, default=_VERIFY.tolerance, show_default=True,
              help="Practical tolerance: K within this share of the best K's loss count as equally good.")
@click.option("--confidence", type=float, default=_VERIFY.confidence, show_default=True,
              help="Confidence of the verdict, over all looks and comparisons.")
@click.option("--max-cpu-hours", type=float, default=_VERIFY.max_cpu_hours, show_default=True,
              help="CPU budget (runs in the store count): no batch starts that it cannot pay for.")
@_resumable(f"Result store [default: OUT/{STORE_NAME}]; finished runs in it are not run again. With --strict, a "
            "setting outside the profile's domain is refused too.")
def kstar_verify_cmd(profile, tolerance, confidence, max_cpu_hours, store_path, scheduler, workers, out, quiet,
                     data_dir, as_json, **options):
    """Verify a profile's K* on this system: measure its band, widened by one K, on paired seeds added until the
    best K is settled at --confidence within --tolerance (or the budget ends); see docs/verify.md."""
    from .studies.kstar.verify import KStarVerifyStudy

    design = VerifyDesign(tolerance=tolerance, confidence=confidence, max_cpu_hours=max_cpu_hours)
    study = KStarVerifyStudy(_config(options, K=1), profile, design, strict_store())
    return _run(study, out, store_path, scheduler, workers, quiet, data_dir, as_json)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bladefl-validate`` console script."""
    return cli.main(args=argv, prog_name="bladefl-validate")


if __name__ == "__main__":
    main()
