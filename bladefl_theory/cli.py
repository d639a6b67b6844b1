"""``bladefl-theory``: K*, the bound, its convexity certificate, the formulas and sensitivity reports.

Each command imports what it computes with when it runs (sympy, scipy, pandas, cvxpy, Dask), so that
``--version``, ``--help`` and the commands that do not need a library start without it.
"""

from __future__ import annotations

import logging
import math
import shlex
from pathlib import Path

import click

from bladefl_platform.atomic import MARKER
from bladefl_platform.cli import CLIGroup, emit_json, execution_of, execution_options, json_option, quiet_option
from bladefl_platform.errors import CommandFailed, InputError
from bladefl_platform.execution import MAX_LOCAL_WORKERS
from bladefl_platform.study import run_study

from .params import LEARNING_CONSTANTS, MAX_GRID_POINTS, VARIANTS, Params
from .profiles import PROFILE_DEFAULTS, Profile, load_profile
from .question import DEFAULT_PROFILE, EXIT_NO_FINITE, KStar, kstar
from .sensitivity import REPORT_FILES

__all__ = ["cli", "main", "param_options", "params_from_options"]

log = logging.getLogger("bladefl_theory")

#: Exit status when no K has a finite bound.
EXIT_NO_FINITE_BOUND = EXIT_NO_FINITE
#: Most local Dask workers sensitivity starts: more would only compete for the cores.
MAX_WORKERS = MAX_LOCAL_WORKERS

_FLOAT_HELP = {
    "sigma2": "variance of the lazy clients' noise",
    "alpha": "time of one local epoch",
    "beta": "time to mine one block",
    "t_sum": "total time budget",
    "eta": "learning rate",
    "L": "smoothness constant",
    "xi": "Lipschitz constant",
    "delta": "gradient divergence",
    "epsilon": "optimality-gap floor of Lemma 1",
    "phi": "(1 − eta·L/2)/‖w0 − w*‖",
    "theta": "degradation from plagiarism ‖w_no-lazy − w_lazy‖",
}


#: The profile ``kstar`` uses unless told otherwise (the one :func:`bladefl_theory.kstar` uses).
KSTAR_PROFILE = DEFAULT_PROFILE


def param_options(func=None, *, profile: str = "default"):
    """Add --N --M --sigma2 ... --theta and --profile to a command; defaults come from the profile."""
    if func is None:
        return lambda f: param_options(f, profile=profile)
    options = [
        click.option("--profile", default=profile, show_default=True, help="Shipped profile name or JSON path."),
        click.option("--N", "N", type=int, default=None, help="Clients [default: the profile's, else 20]."),
        click.option("--M", "M", type=int, default=None, help="Lazy clients [default: 0]."),
    ]
    defaults = Params()
    for name, text in _FLOAT_HELP.items():
        flag = "--t-sum" if name == "t_sum" else f"--{name}"
        where = "from the profile" if name in LEARNING_CONSTANTS else f"{getattr(defaults, name):g}"
        if name in PROFILE_DEFAULTS:
            where = f"the profile's, else {where}"
        help_text = f"{text[0].upper()}{text[1:]} [default: {where}]."
        options.append(click.option(flag, name, type=float, default=None, help=help_text))
    for option in reversed(options):
        func = option(func)
    return func


def params_from_options(options: dict, profile: Profile | None = None) -> Params:
    """Params from the profile (``profile``, else the one --profile names) and any flag given (flags win)."""
    named = options.pop("profile", None)
    profile = profile or load_profile(named)
    given = {k: options.pop(k) for k in Params.names() if options.get(k) is not None}
    for k in Params.names():
        options.pop(k, None)
    params = profile.params(**{**profile.defaults(given), **given})
    log.debug("profile %s; parameters %s", profile.name, params.as_dict())
    return params


def _variant_option(default: str | None = "per-round"):
    return click.option(
        "--variant",
        type=click.Choice(VARIANTS),
        default=default,
        show_default=True,
        help="per-round: lazy term enters each of the K rounds; printed: eq. (6) verbatim.",
    )


def _fmt(x) -> str:
    return "-" if x is None else (f"{x:.6g}" if isinstance(x, float) else str(x))


@click.group(
    "bladefl-theory",
    cls=CLIGroup,
    catch_all=True,
    extras={**dict.fromkeys(("pandas", "matplotlib", "dask", "distributed", "tqdm"), "reports"), "cvxpy": "cvxpy"},
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="bladefl", prog_name="bladefl-theory")
def cli():
    """The BLADE-FL convergence bound with lazy clients, and the number of blocks K* that minimizes it.

    \b
    Exit statuses:
      0  success
      1  the output could not be written, or an internal error (a bug)
      2  bad input: one line naming the parameter and the rule; nothing written
      3  no finite bound: kstar and bound, at no K in 1..K_max;
         convexity, at no real K in [1, t_sum/(alpha+beta)]

    With --json a command prints its result as one JSON object on stdout whose "status" is the exit
    status (0 or 3; on 1 and 2 stdout is empty and stderr holds the error line). Messages, warnings
    and progress bars go to stderr: -q keeps warnings and errors only, -v adds debug messages.
    """


@cli.command("kstar")
@param_options(profile=KSTAR_PROFILE)
@click.option("--variant", type=click.Choice(VARIANTS), default=None,
              help="Form of the paper's bound for a bound profile: per-round (lazy term in each of the K rounds) or "
                   "printed (eq. 6 verbatim) [default: the profile's].")
@click.option("--model", default=None,
              help="Your model (mlp, logreg, ...): compared with the profile's, for a warning.")
@click.option("--samples-per-client", type=int, default=None,
              help="Your |D_i|: compared with the profile's, for a warning.")
@click.option("--check", is_flag=True,
              help="With a bound profile: cross-check the closed form and the integer search with cvxpy's "
                   "exponential-cone program (imports cvxpy, about a second).")
@json_option
def kstar_cmd(variant, model, samples_per_client, check, as_json, **options):
    """The optimal number of blocks K*, the band of K as good within the profile's error, and every K's value.

    By default with the calibrated profile mnist-mlp-calibrated: a prediction of the final loss fitted to
    measured sweeps and validated on settings it never saw. With a bound profile (default, mnist-mlp, ...):
    the paper's bound. The same answer as bladefl_theory.kstar(...) in Python.
    """
    profile = options.pop("profile")
    answer = kstar(profile, variant=variant, check=check, model=model, samples_per_client=samples_per_client,
                   **options)
    log.debug("profile %s; parameters %s", answer.profile, {**answer.system, **answer.constants})
    if as_json:  # the warnings are in the object
        emit_json(answer.as_dict(), answer.status)
    else:
        for line in answer.warnings:
            log.warning(line)
        _echo_kstar(answer)
    if answer.status:
        raise CommandFailed(answer.message, answer.status)


_SOLVER_NAMES = {"closed-form": "closed form", "cvxpy": "cvxpy", "integer": "integer search"}


def _echo_kstar(a: KStar) -> None:
    """The answer as text: the profile's record, K* and its band, the bound's solvers if any, and every K."""
    what, label = ("the paper's bound", "bound at K*") if a.solver else ("predicted final loss F(w^K)",
                                                                         "predicted loss")
    lines = [a.record_line, a.system_note and f"note: {a.system_note}",
             f"form               {a.form} (profile {a.profile}; {what})", f"K*                 {_fmt(a.k_star)}",
             f"tau at K*          {_fmt(a.tau)} local epochs per block", f"{label:<18} {_fmt(a.value)}"]
    if a.tolerance:
        lines.append(f"K* band            {' '.join(map(str, a.band))}  ({'bound' if a.solver else 'predicted loss'} "
                     f"within {a.tolerance:.1%} of its minimum, the calibration's error)")
    lines.append(f"K_max              {a.k_max}")
    if a.solver:
        r = a.solver
        feasible = f"[{r.feasible[0]:.4g}, {r.feasible[1]:.4g}]" if r.feasible else "empty"
        ran = ", ".join(_SOLVER_NAMES[m] for m in r.solvers)
        lines += [f"continuous K*      {_fmt(r.k_star_continuous)}", f"feasible K         {feasible}  (D(K) > 0)",
                  f"solvers agree      {'yes' if r.solvers_agree else 'NO'} ({ran})",
                  *(f"note: {note}" for note in r.notes)]
    heading = "bound" if a.solver else "predicted loss"
    lines += ["", f"{'K':>4} {'tau':>5} {heading:>15}"]
    for row in a.table():
        mark = "  <- K*" if row["K"] == a.k_star else ("  (band)" if row["in_band"] and a.tolerance else "")
        lines.append(f"{row['K']:>4} {row['tau']:>5} {_fmt(row['value']):>15}{mark}")
    click.echo("\n".join(line for line in lines if line is not None))


def _parse_k_list(text: str | None, k_max: int) -> list[int]:
    if text is None:
        return list(range(1, k_max + 1))
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--K {text!r}: expected integers separated by commas, e.g. 1,3,5") from None
    bad = [k for k in ks if not 1 <= k <= k_max]
    if not ks or bad:
        raise InputError(f"--K: every K must be in 1..K_max = {k_max} (got {bad[0] if bad else 'none'})")
    return ks


@cli.command("bound")
@param_options
@_variant_option()
@click.option("--K", "k_list", default=None, help="Blocks to evaluate, e.g. 1,3,5 [default: 1..K_max].")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@json_option
def bound_cmd(variant, k_list, as_csv, as_json, **options):
    """The bound on F(w^K) − F(w*) for each K (empty where D(K) <= 0), and its self-consistent form.

    Exits with status 3 when no K in 1..K_max has a finite bound, as kstar does, whichever K
    --K selects; when only the selected K have none, the table says where the bound is finite.
    """
    if as_csv and as_json:
        raise InputError("--csv and --json exclude each other")
    profile = load_profile(options.pop("profile"))
    params = params_from_options(options, profile)
    from . import bound as _bound
    from .solvers import explain_no_integer, finite_integers
    from .timemodel import k_max, tau

    ks = _parse_k_list(k_list, k_max(params.t_sum, params.alpha, params.beta))
    values = [float(_bound.bound_value(k, params, variant)) for k in ks]
    sc = [float(_bound.bound_self_consistent(k, params, variant)) for k in ks]
    rows = [
        {"K": k, "tau": tau(k, params.t_sum, params.alpha, params.beta), "bound": b if math.isfinite(b) else None,
         "bound_self_consistent": c if math.isfinite(c) else None}
        for k, b, c in zip(ks, values, sc)
    ]
    any_finite = any(r["bound"] is not None for r in rows)
    finite = None if any_finite else finite_integers(params, variant)
    status = EXIT_NO_FINITE_BOUND if not any_finite and finite is None else 0
    if as_json:
        emit_json({"variant": variant, "profile": profile.name, "params": params.as_dict(), "rows": rows}, status)
    elif as_csv:
        click.echo("K,tau,bound,bound_self_consistent")
        for r in rows:
            cells = ("" if r[c] is None else repr(r[c]) for c in ("bound", "bound_self_consistent"))
            click.echo(f"{r['K']},{r['tau']},{','.join(cells)}")
    if not (as_json or as_csv):
        click.echo(f"{'K':>4} {'tau':>5} {'bound':>12} {'self-consistent':>16}")
        for r in rows:
            click.echo(f"{r['K']:>4} {r['tau']:>5} {_fmt(r['bound']):>12} {_fmt(r['bound_self_consistent']):>16}")
        click.echo("self-consistent: epsilon set to the bound itself (epsilon drops out)")
        click.echo(f"profile: {profile.name} (the paper's bound; kstar's default profile, {KSTAR_PROFILE}, is a "
                   "calibrated form)")
        if finite is not None:
            click.echo(f"no finite bound at the K asked for; the bound is finite only for K = {finite[0]}..{finite[1]}")
    if status:
        raise CommandFailed(explain_no_integer(params, variant), EXIT_NO_FINITE_BOUND)


@cli.command("convexity")
@param_options
@_variant_option()
@click.option(
    "--grid", default=4001, show_default=True, type=click.IntRange(3, MAX_GRID_POINTS),
    help="Grid points for the numeric check."
)
@json_option
def convexity_cmd(variant, grid, as_json, **options):
    """Certificate that the bound is convex in K where it is finite (Remark 1).

    Exits with status 3 when D(K) > 0 at no real K in [1, t_sum/(alpha+beta)].
    """
    from .convexity import certify
    from .solvers import explain_infeasible

    params = params_from_options(options)
    c = certify(params, variant, grid_points=grid)
    status = EXIT_NO_FINITE_BOUND if c.feasible is None else 0
    if as_json:
        emit_json(c.as_dict(), status)
    else:
        click.echo(f"variant: {variant}")
        click.echo(f"K range: [{c.k_range[0]:g}, {c.k_range[1]:.6g}] (tau >= 1)")
        click.echo("d2D/dK2 = " + c.second_derivative_latex)
        click.echo(
            f"symbolic: D is concave in K (every factor of -d2D/dK2 is positive): "
            f"{'proved' if c.denominator_concave_symbolic else 'NOT proved'}"
        )
        click.echo("so 1/D is convex wherever D > 0 ((1/D)'' = (2 D'^2 - D D'')/D^3 > 0)")
        feas = f"[{c.feasible[0]:.6g}, {c.feasible[1]:.6g}]" if c.feasible else "empty"
        click.echo(f"feasible interval {{K : D(K) > 0}}: {feas}")
        click.echo(
            f"grid ({c.grid_points} points): max second difference of D = {c.max_second_difference_D:.3g}"
            + (f"; min second difference of the bound = {c.min_second_difference_bound:.3g}"
               if c.min_second_difference_bound is not None else "")
        )
        click.echo(f"convex on the feasible interval: {'yes' if c.holds else 'no'}")
        for f in c.failures:
            click.echo(f"where it fails: {f}")
    if status:
        raise CommandFailed(explain_infeasible(params, variant), EXIT_NO_FINITE_BOUND)


@cli.command("formula")
@click.option("--format", "fmt", type=click.Choice(["latex", "pretty"]), default="pretty", show_default=True)
@click.option("--expand/--no-expand", default=False, help="Substitute gamma and lambda by their definitions.")
@json_option(help="Print the formulas as one JSON object on stdout: each one's name, title, text in --format "
                  "and LaTeX.")
def formula_cmd(fmt, expand, as_json):
    """Lemma 1, Theorem 1 (printed) and the per-round variant."""
    from . import bound as _bound

    render = _bound.to_latex if fmt == "latex" else _bound.to_pretty
    items = [
        ("lemma1", "Lemma 1 (eq. 5), no lazy clients", _bound.lemma1(expand)),
        ("printed", "Theorem 1 (eq. 6), printed", _bound.theorem1("printed", expand)),
        ("per-round", "Theorem 1, per-round variant (lazy term times K)", _bound.theorem1("per-round", expand)),
    ]
    where = None if expand else "gamma = (t_sum - K*beta)/alpha and lambda = eta*L + 1"
    if as_json:
        emit_json({"format": fmt, "expand": expand, "where": where,
                   "formulas": [{"name": n, "title": t, "text": render(e), "latex": _bound.to_latex(e)}
                                for n, t, e in items]})
        return
    for _, title, expr in items:
        click.echo(f"{title}:")
        click.echo(render(expr))
        click.echo("")
    if where:
        click.echo(f"where {where}")


@cli.command("sensitivity")
@param_options
@click.option("--vary", "vary", multiple=True, required=True,
              help="NAME=a:b, NAME=a:b:step or NAME=v1,v2 (once or twice).")
@_variant_option(default=None)
@click.option(
    "--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/sensitivity"),
    show_default=True,
)
@execution_options(scheduler="Dask scheduler tcp://HOST:PORT for large grids [default: a local cluster].",
                   workers=f"Local Dask workers for large grids, at most {MAX_WORKERS} (4 per core) "
                           "[default: one per core].")
@quiet_option("No progress bar.")
@json_option
def sensitivity_cmd(vary, variant, out, scheduler, workers, quiet, as_json, **options):
    """Vary one or two parameters; write CSV, a markdown report and PNGs into --out.

    It owns the files {files} and the marker {marker} that lists them. An existing --out
    is replaced whole, once the report is complete, only if it is empty or that marker says
    this command wrote it and it holds nothing else; otherwise nothing is written (status 2).
    """
    from .sensitivity import SensitivityStudy, parse_vary

    if len(vary) > 2:
        raise InputError("--vary: at most two parameters")
    varied = dict(parse_vary(v) for v in vary)
    if len(varied) != len(vary):
        raise InputError("--vary: each parameter at most once")
    params = params_from_options(options)
    study = SensitivityStudy(params, varied, (variant,) if variant else VARIANTS)
    done = run_study(study, out, execution=execution_of(scheduler, workers, quiet),
                     command=_command_line(vary, variant, out))
    for name in REPORT_FILES:
        log.info("wrote %s", out / name)
    if as_json:
        emit_json(study.summary(done))
        return
    click.echo(study.text(done))


sensitivity_cmd.help = (sensitivity_cmd.help or "").format(files=", ".join(REPORT_FILES), marker=MARKER)


def _command_line(vary, variant, out) -> str:
    """The command that regenerates this report, from the parsed options."""
    ctx = click.get_current_context()
    parts = ["bladefl-theory", "sensitivity"]
    for name, value in ctx.params.items():
        if name in ("vary", "variant", "out", "scheduler", "workers", "quiet", "as_json") or value in (None, False):
            continue
        if name == "profile" and value == "default":
            continue
        flag = "--t-sum" if name == "t_sum" else f"--{name}"
        parts += [flag, str(value)]
    for v in vary:
        parts += ["--vary", v]
    if variant:
        parts += ["--variant", variant]
    parts += ["--out", str(out)]
    return " ".join(shlex.quote(p) for p in parts)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bladefl-theory`` console script."""
    return cli.main(args=argv, prog_name="bladefl-theory")


if __name__ == "__main__":
    main()
