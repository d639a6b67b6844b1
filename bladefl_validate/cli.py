"""``bladefl-validate``: run BLADE-FL for real, sweep K, and verify a run's ledger."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from bladefl_theory.atomic import atomic_directory, atomic_files
from bladefl_theory.clitools import CLIGroup
from bladefl_theory.execution import Execution
from bladefl_theory.store import ResultStore

from .config import RunConfig
from .data import DATASETS, DataError, load_dataset
from .model import KINDS
from .partition import SCHEMES, PartitionError
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
                     help="mlp (784-hidden-10, ReLU) or logreg (convex)."),
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
    for key, value in ctx.params.items():
        if value is None or value is False or key in ("quiet",):
            continue
        flag = "--" + key.replace("_", "-") if key not in ("N", "M", "K") else f"--{key}"
        parts += [flag] if value is True else [flag, str(value)]
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
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder (new).")
def run_cmd(out, quiet, data_dir, **options):
    """One run: K rounds of training, uploading, mining, verification and aggregation."""
    config = _config(options)
    bar, show = _round_bar(config.K, quiet)
    with bar:
        result = run_to_folder(config, out, data_dir, show)
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


@cli.group("chain")
def chain_group():
    """The ledger of a run folder."""


@chain_group.command("verify")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--difficulty-bits", type=int, default=None, help="Require every block to declare this difficulty.")
@click.option("--json", "as_json", is_flag=True)
def chain_verify_cmd(run_dir, difficulty_bits, as_json):
    """Recompute every hash, proof of work, Merkle root and blob digest; exit 1 naming the first bad one."""
    if not run_dir.is_dir():
        raise click.BadParameter(f"{run_dir} is not a folder", param_hint="'RUN_DIR'")
    if difficulty_bits is None and (run_dir / "config.json").is_file():
        try:
            difficulty_bits = int(json.loads((run_dir / "config.json").read_text())["difficulty_bits"])
        except (ValueError, KeyError, TypeError):
            difficulty_bits = None
    report = verify_run(run_dir, difficulty_bits=difficulty_bits)
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "blocks": report.blocks, "blobs": report.blobs, "error": report.error}))
    elif report.ok:
        click.echo(f"{run_dir}: ok, {report.blocks} blocks, {report.blobs} blobs verified")
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bladefl-validate`` console script."""
    return cli.main(args=argv, prog_name="bladefl-validate")


if __name__ == "__main__":
    main()
