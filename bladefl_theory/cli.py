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
from .profiles import load_profile
from .sensitivity import REPORT_FILES

__all__ = ["cli", "main", "param_options", "params_from_options"]

log = logging.getLogger("bladefl_theory")

#: Exit status when no K has a finite bound.
EXIT_NO_FINITE_BOUND = 3
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


#: The profile ``kstar`` uses unless told otherwise: calibrated on measured sweeps, validated on held-out settings.
KSTAR_PROFILE = "mnist-mlp-calibrated"


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


def params_from_options(options: dict) -> Params:
    """Params from the profile and any flag given (flags win)."""
    profile = load_profile(options.pop("profile"))
    given = {k: options.pop(k) for k in Params.names() if options.get(k) is not None}
    for k in Params.names():
        options.pop(k, None)
    params = profile.params(**{**_profile_system(profile), **given})
    log.debug("profile %s; parameters %s", profile.name, params.as_dict())
    return params


#: The parameters a profile's system gives their defaults (M and sigma2, the question asked, never come from it).
PROFILE_DEFAULTS = ("N", "alpha", "beta", "t_sum", "eta")


def _profile_system(profile) -> dict:
    """The system a profile was estimated or calibrated for (N, alpha, beta, t_sum, eta, as far as it records
    them): the defaults where flags are silent."""
    return {k: profile.system[k] for k in PROFILE_DEFAULTS if k in profile.system}


def _echo_note(profile, taken: dict) -> None:
    note = system_note(profile, taken)
    if note:
        click.echo(f"note: {note}")


def profile_defaults(profile, options: dict) -> dict:
    """The values of the profile's system that stand where ``options`` give no flag."""
    return {k: v for k, v in _profile_system(profile).items() if options.get(k) is None}


def system_note(profile, taken: dict) -> str | None:
    """One line saying which defaults came from the profile, if any differs from the paper's (None otherwise)."""
    from .params import SYSTEM_DEFAULTS

    differ = {k: v for k, v in taken.items() if v != SYSTEM_DEFAULTS[k]}
    if not differ:
        return None
    labels = {"samples_per_client": "|D_i|"}
    record = ", ".join(str(v) if k in ("dataset", "model") else f"{labels.get(k, k)}={v:g}"
                       for k, v in profile.system.items())
    used = ", ".join(f"{k}={v:g}" for k, v in differ.items())
    return f"{used} from profile {profile.name}, which was measured on {record} (flags override)"


def domain_warnings(profile, system: dict) -> list[str]:
    """One line per parameter outside the region the profile was calibrated and validated on."""
    domain = profile.domain or {}
    recorded = profile.system
    out = []
    for name, value in system.items():
        if value is None or name not in ("N", "alpha", "eta", "model", "samples_per_client") or name not in recorded:
            continue
        if value != recorded[name]:
            out.append(f"{name}={value}, but profile {profile.name} was measured at {name}={recorded[name]}: "
                       "the prediction extrapolates")
    for name, (lo, hi) in (domain.get("box") or {}).items():
        if name in system and not lo <= system[name] <= hi:
            out.append(f"{name}={system[name]:g} lies outside the range profile {profile.name} was validated on "
                       f"({lo:g}..{hi:g}): the prediction extrapolates")
    return out


def validation_line(profile) -> str | None:
    """How well the profile predicted settings it never saw, in one line (None if it was never validated)."""
    v = profile.validation
    if not v:
        return None
    where = v.get("settings", "held-out settings")
    line = (f"profile {profile.name} ({profile.form}): K* inside the measured plausible set at {v['hits']} of "
            f"{v['held_out']} {where} it never saw ({v['hit_rate']:.0%}), regret median {_pct(v['median_regret'])}, "
            f"worst {_pct(v['worst_regret'])}")
    fresh = v.get("fresh_measurement")
    if fresh:
        line += (f"; a fresh measurement of each, held against half its seeds: {fresh['hit_rate']:.0%}, "
                 f"{_pct(fresh['median_regret'])}, {_pct(fresh['worst_regret'])}")
    return line + (f" ({v['report']})" if v.get("report") else "")


def _pct(x) -> str:
    return "—" if x is None else f"{x:.1%}"


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
    the paper's bound.
    """
    profile = load_profile(options["profile"])
    yours = {"model": model, "samples_per_client": samples_per_client}
    if not profile.is_bound:
        if check:
            raise InputError(f"--check cross-checks the solvers of the paper's bound; profile {profile.name} holds "
                             f"the {profile.form} form (use --profile default for the bound)")
        return _kstar_calibrated(profile, variant, as_json, options, yours)
    from .solvers import solve_kstar

    variant = variant or profile.form
    taken = profile_defaults(profile, options)
    params = params_from_options(options)
    r = solve_kstar(params, variant, check=check)
    band = _band(r.bounds, profile.tolerance)
    system = {n: getattr(params, n) for n in ("N", "M", "sigma2", "alpha", "beta", "t_sum", "eta")}
    notes = domain_warnings(profile, {**system, **yours})
    if profile.provenance.get("method") == "calibrated":
        notes.append(f"profile {profile.name} is hand-calibrated (its constants were set, not measured); "
                     f"{KSTAR_PROFILE} was calibrated on measured sweeps and validated on held-out settings")
    if not as_json:  # with --json the warnings are in the object
        for line in notes:
            log.warning(line)
    status = 0 if r.success else EXIT_NO_FINITE_BOUND
    if as_json:
        result = r.as_dict()
        result["solver_status"] = result.pop("status")
        emit_json({**result, "form": variant, "profile": profile.name, "k_star_band": band, "warnings": notes,
                   "validation": profile.validation, "profile_system": profile.system, "from_profile": taken}, status)
    else:
        if validation_line(profile):
            click.echo(validation_line(profile))
        _echo_note(profile, taken)
        click.echo(f"variant            {variant}")
        click.echo(f"K*                 {_fmt(r.k_star)}")
        click.echo(f"tau at K*          {_fmt(r.tau)} local epochs per block")
        click.echo(f"continuous K*      {_fmt(r.k_star_continuous)}")
        click.echo(f"bound at K*        {_fmt(r.bound)}")
        if profile.tolerance:
            click.echo(f"K* band            {' '.join(map(str, band))}  (bound within {profile.tolerance:.1%} of its "
                       "minimum, the calibration's error)")
        feas = f"[{r.feasible[0]:.4g}, {r.feasible[1]:.4g}]" if r.feasible else "empty"
        click.echo(f"feasible K         {feas}  (D(K) > 0)")
        click.echo(f"K_max              {r.k_max}")
        ran = ", ".join({"closed-form": "closed form", "cvxpy": "cvxpy", "integer": "integer search"}[m]
                        for m in r.solvers)
        click.echo(f"solvers agree      {'yes' if r.solvers_agree else 'NO'} ({ran})")
        for note in r.notes:
            click.echo(f"note: {note}")
        click.echo("")
        click.echo(f"{'K':>4} {'tau':>5} {'bound':>12}  feasible")
        for row in r.table():
            mark = "  <- K*" if row["K"] == r.k_star else ""
            feasible = "yes" if row["feasible"] else "no"
            click.echo(f"{row['K']:>4} {row['tau']:>5} {_fmt(row['bound']):>12}  {feasible}{mark}")
    if status:
        hint = " (`bladefl-theory bound` also prints the self-consistent bound, which needs no epsilon)"
        raise CommandFailed(r.message + (hint if r.k_star is None else ""), EXIT_NO_FINITE_BOUND)


def _band(values, tolerance: float) -> list[int]:
    """Every K whose value is within a relative ``tolerance`` of the smallest finite one."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return []
    best = min(finite)
    return [k for k, v in enumerate(values, start=1) if math.isfinite(v) and v <= best * (1 + tolerance)]


def _kstar_calibrated(profile, variant, as_json: bool, options: dict, yours: dict) -> None:
    """kstar with a profile of a calibrated form (drift, saturating) rather than the bound."""
    from .forms import form_kstar
    from .params import SYSTEM_DEFAULTS, SYSTEM_PARAMETERS, check_system

    if variant is not None:
        raise InputError(f"--variant chooses a form of the paper's bound; profile {profile.name} holds the "
                         f"{profile.form} form (use --profile default for the bound)")
    bound_flags = [n for n in LEARNING_CONSTANTS if options.get(n) is not None]
    if bound_flags:
        raise InputError(f"--{bound_flags[0]} is a constant of the paper's bound; profile {profile.name} holds the "
                         f"{profile.form} form's constants ({', '.join(profile.constants)})")
    taken = profile_defaults(profile, options)
    system = {**SYSTEM_DEFAULTS, **taken, **{n: options[n] for n in SYSTEM_PARAMETERS if options.get(n) is not None}}
    check_system(*(system[n] for n in SYSTEM_PARAMETERS))
    system = {n: system[n] for n in SYSTEM_PARAMETERS}
    r = form_kstar(profile.form, system, profile.constants, profile.tolerance)
    warnings = domain_warnings(profile, {**system, **yours})
    if not as_json:  # with --json the warnings are in the object
        for line in warnings:
            log.warning(line)
    at_end = r.k_star in (1, r.k_max)
    message = "K* at an end of the K range" if at_end else "K* inside the K range"
    if as_json:
        emit_json({
            "form": profile.form, "profile": profile.name, "k_star": r.k_star, "tau": r.tau, "predicted_loss": r.value,
            "k_star_band": list(r.band), "tolerance": r.tolerance, "k_max": r.k_max, "params": system,
            "constants": profile.constants, "success": True, "at_end": at_end, "message": message,
            "validation": profile.validation, "warnings": warnings, "profile_system": profile.system,
            "from_profile": taken, "table": [{**row, "tau": _tau(row["K"], system)} for row in r.table()],
        })
        return
    validated = validation_line(profile)
    if validated:
        click.echo(validated)
    _echo_note(profile, taken)
    click.echo(f"form               {profile.form} (profile {profile.name}; predicted final loss F(w^K))")
    click.echo(f"K*                 {r.k_star}")
    click.echo(f"tau at K*          {r.tau} local epochs per block")
    click.echo(f"predicted loss     {_fmt(r.value)}")
    click.echo(f"K* band            {' '.join(map(str, r.band))}  (predicted loss within {r.tolerance:.1%} of its "
               "minimum, the calibration's error)")
    click.echo(f"K_max              {r.k_max}")
    click.echo("")
    click.echo(f"{'K':>4} {'tau':>5} {'predicted loss':>15}")
    for row in r.table():
        mark = "  <- K*" if row["K"] == r.k_star else ("  (band)" if row["in_band"] else "")
        click.echo(f"{row['K']:>4} {_tau(row['K'], system):>5} {_fmt(row['value']):>15}{mark}")


def _tau(k: int, system: dict) -> int:
    from .timemodel import tau

    return tau(k, system["t_sum"], system["alpha"], system["beta"])


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
    params = params_from_options(options)
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
        emit_json({"variant": variant, "params": params.as_dict(), "rows": rows}, status)
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
