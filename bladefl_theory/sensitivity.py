"""Sensitivity of K* and the bound to one or two parameters, with a verdict on the paper's Remark 3.

A study (:class:`SensitivityStudy`, the command ``bladefl-theory sensitivity``) that owns its report folder
whole; its tasks are chunks of K* solves, run through Dask only for large grids and never stored.
numpy, pandas, the solvers and the plotting are imported where they are used: the command line reads
:data:`REPORT_FILES` and :func:`parse_vary` from here before any of them is needed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bladefl_platform.errors import InputError
from bladefl_platform.execution import Execution, TaskKind, TaskOutcome, one_by_one
from bladefl_platform.study import Layout, Runner, Study, StudyRun, Tasks

from .params import VARIANTS, ParameterError, Params
from .timemodel import k_max

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["REPORT_FILES", "MAX_VALUES", "MAX_GRID_POINTS", "MAX_K_EVALUATIONS", "parse_vary", "SensitivityResult",
           "SensitivityStudy", "sweep", "remark3_verdict", "write_report"]

_INT_PARAMS = ("N", "M")
#: The files :func:`write_report` writes.
REPORT_FILES = ("sensitivity.csv", "README.md", "kstar.png", "bound.png")


#: Most values one ``--vary`` may list or span.
MAX_VALUES = 10_000
#: Most grid points (the product of the varied lists) one sweep may solve.
MAX_GRID_POINTS = 100_000
#: Most integer-search evaluations one sweep may do: the sum of K_max over its grid and variants.
MAX_K_EVALUATIONS = 50_000_000


def parse_vary(spec: str) -> tuple[str, list[float | int]]:
    """Parse ``NAME=a:b`` (integers a..b), ``NAME=a:b:step`` (inclusive) or ``NAME=v1,v2,...``.

    A range's size is computed from its ends and step before any value is built.
    """
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or not values.strip():
        raise InputError(f"--vary {_show(spec)}: expected NAME=a:b, NAME=a:b:step or NAME=v1,v2,...")
    if name not in Params.names():
        raise InputError(f"--vary {_show(spec)}: unknown parameter {name!r}; known: {', '.join(Params.names())}")
    is_int = name in _INT_PARAMS
    kind = "integers" if is_int else "numbers"
    if ":" in values:
        parts = [_exact(x, spec, name, kind) for x in values.split(":")]
        if len(parts) == 2:
            if not is_int:
                raise InputError(f"--vary {_show(spec)}: a float parameter needs a step, NAME=a:b:step")
            parts.append(Fraction(1))
        if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
            raise InputError(f"--vary {_show(spec)}: a range must be a:b or a:b:step with a <= b and step > 0")
        count = math.floor((parts[1] - parts[0]) / parts[2]) + 1
        if count > MAX_VALUES:
            raise InputError(f"--vary {_show(spec)}: {count} values, at most {MAX_VALUES}")
        grid = [parts[0] + i * parts[2] for i in range(count)]
        if is_int and any(v.denominator != 1 for v in grid):
            raise InputError(f"--vary {_show(spec)}: {name} takes integers")
        return name, [int(v) if is_int else float(v) for v in grid]
    items = values.split(",")
    if len(items) > MAX_VALUES:
        raise InputError(f"--vary {_show(spec)}: {len(items)} values, at most {MAX_VALUES}")
    try:
        out = [int(v.strip()) if is_int else float(v.strip()) for v in items]
    except ValueError:
        raise InputError(f"--vary {_show(spec)}: {name} takes {kind}") from None
    if not is_int and not all(math.isfinite(v) for v in out):
        raise InputError(f"--vary {_show(spec)}: {name} takes finite numbers")
    return name, out


def _exact(text: str, spec: str, name: str, kind: str) -> Fraction:
    text = text.strip()
    try:
        return Fraction(int(text))
    except ValueError:
        pass
    # float() before Fraction(): Fraction('1e999999999') would build a billion-digit integer.
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--vary {_show(spec)}: {name} takes {kind}") from None
    if not math.isfinite(value):
        raise InputError(f"--vary {_show(spec)}: the ends and step of a range must be finite numbers a float can hold")
    try:
        return Fraction(text)
    except ValueError:
        return Fraction(value)


def _show(spec: str) -> str:
    return repr(spec) if len(spec) <= 60 else repr(spec[:57] + "...")


@dataclass(frozen=True)
class SensitivityResult:
    """K* and the bound at every grid point, for each variant."""

    base: Params
    varied: dict[str, list]
    frame: pd.DataFrame

    def verdicts(self) -> dict[str, str]:
        return {v: remark3_verdict(self.frame[self.frame.variant == v], list(self.varied), self.base)
                for v in self.frame.variant.unique()}


#: Grids with more K* solves than this run through dask.distributed (see :mod:`bladefl_platform.execution`).
LARGE_GRID = 2000
_CHUNK = 250


def _solve_chunk(config: Mapping[str, Any], context: Mapping[str, Any]) -> dict:
    """K* at a chunk of grid points (a task for a Dask worker, or run inline for small grids)."""
    from .solvers import kstar

    base = Params(**config["base"])
    rows = []
    for change in config["points"]:
        params = base.replace(**change)
        r = kstar(params, config["variant"], cross_check=False)
        rows.append(
            {
                "variant": config["variant"],
                **change,
                "lazy_ratio": params.M / params.N,
                "k_star": r.k_star,
                "k_star_continuous": r.k_star_continuous,
                "tau": r.tau,
                "bound": r.bound,
                "feasible_lo": r.feasible[0] if r.feasible else None,
                "feasible_hi": r.feasible[1] if r.feasible else None,
                "k_max": r.k_max,
                "status": r.status,
            }
        )
    return {"rows": rows}


#: A chunk of K* solves, as a task (never stored: it takes less time than a store lookup would save).
_SOLVE = TaskKind("sensitivity", "1", one_by_one(_solve_chunk))


def sweep(
    base: Params,
    varied: dict[str, list],
    variants: tuple[str, ...] = VARIANTS,
    execution: Execution | None = None,
) -> SensitivityResult:
    """Solve K* (closed form and integer search) at every point of the grid ``varied`` over ``base``.

    Grids larger than :data:`LARGE_GRID` solves run through dask.distributed (``execution``).
    """
    return SensitivityStudy(base, varied, variants).compute(execution=execution or Execution())


class SensitivityStudy(Study[SensitivityResult]):
    """K* and the bound at every point of the grid ``varied`` (one or two parameters) over ``base``, per variant."""

    prog = "bladefl-theory"
    command = "sensitivity"
    layout = Layout.FOLDER

    def __init__(self, base: Params, varied: dict[str, list], variants: tuple[str, ...] = VARIANTS):
        if not 1 <= len(varied) <= 2:
            raise InputError("vary one or two parameters")
        self.base, self.varied, self.variants = base, dict(varied), tuple(variants)
        names = list(varied)
        size = math.prod(len(v) for v in varied.values())
        if size > MAX_GRID_POINTS:
            raise InputError(f"the grid has {size} points, at most {MAX_GRID_POINTS}: vary fewer values")
        points = []
        evaluations = 0
        for values in itertools.product(*varied.values()):
            change = dict(zip(names, values))
            try:
                params = base.replace(**change)
            except ParameterError as exc:
                desc = ", ".join(f"{k}={v}" for k, v in change.items())
                raise ParameterError(exc.parameter, f"grid point {desc}: {exc}") from None
            points.append(change)
            evaluations += len(variants) * k_max(params.t_sum, params.alpha, params.beta)
        if evaluations > MAX_K_EVALUATIONS:
            raise InputError(
                f"the grid needs {evaluations} bound evaluations (K = 1..K_max at every point), "
                f"at most {MAX_K_EVALUATIONS}: vary fewer values or use a smaller t_sum/(alpha+beta)"
            )
        self.points = points

    def outputs(self, out: Path) -> Sequence[str]:
        return REPORT_FILES

    def tasks(self) -> list[Tasks]:
        chunks = [{"base": self.base.as_dict(), "variant": v, "points": self.points[i : i + _CHUNK]}
                  for v in self.variants for i in range(0, len(self.points), _CHUNK)]
        return [Tasks(_SOLVE, chunks, "sensitivity")]

    def measure(self, run: Runner) -> list[TaskOutcome]:
        if len(self.points) * len(self.variants) > LARGE_GRID:
            return super().measure(run)
        # A small grid solves here in less time than a Dask cluster takes to start.
        chunks = self.tasks()[0].configs
        return [TaskOutcome(results=[_solve_chunk(c, {}) for c in chunks], skipped=0, ran=len(chunks))]

    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> SensitivityResult:
        import pandas as pd

        frame = pd.DataFrame([row for chunk in outcomes[0].results for row in chunk["rows"]])
        frame["k_star"] = frame["k_star"].astype("Int64")
        frame["tau"] = frame["tau"].astype("Int64")
        return SensitivityResult(base=self.base, varied=self.varied, frame=frame)

    def report(self, result: SensitivityResult, target: Path, command: str) -> None:
        write_report(result, target, command)

    def summary(self, run: StudyRun[SensitivityResult]) -> dict[str, Any]:
        r = run.result
        return {"out": run.out, "files": list(REPORT_FILES), "params": self.base.as_dict(), "varied": self.varied,
                "verdicts": r.verdicts(), "rows": r.frame}

    def text(self, run: StudyRun[SensitivityResult]) -> str:
        return "\n".join(f"Remark 3 ({v}): {text}" for v, text in run.result.verdicts().items())


def remark3_verdict(frame: pd.DataFrame, varied: list[str], base: Params) -> str:
    """Does K* decrease as M or sigma2 grows (Remark 3)? One sentence, from one variant's rows."""
    import numpy as np

    lazy_params = [n for n in varied if n in ("M", "sigma2")]
    if not lazy_params:
        return "not assessed: neither M nor sigma2 is varied"
    parts = []
    for name in lazy_params:
        others = [n for n in varied if n != name]
        groups = frame.groupby(others) if others else [((), frame)]
        cont_dec = cont_const = int_nonincreasing = True
        int_moves = False
        lost = assessed = 0
        for _, g in groups:
            g = g.sort_values(name)
            m = g["M"].iloc[0] if "M" in g else base.M
            if name == "sigma2" and m == 0:
                continue  # sigma2 enters only through sqrt(M): nothing to assess without lazy clients
            ok = g[g.k_star.notna()]
            lost += len(g) - len(ok)
            kc = ok.k_star_continuous.to_numpy(dtype=float)
            ki = ok.k_star.to_numpy(dtype=float)
            if len(ok) < 2:
                continue
            assessed += 1
            dk = np.diff(kc)
            cont_dec &= bool(np.all(dk < 0))
            cont_const &= bool(np.all(np.abs(dk) <= 1e-9 * np.maximum(1, np.abs(kc[1:]))))
            int_nonincreasing &= bool(np.all(np.diff(ki) <= 0))
            int_moves |= bool(ki[0] != ki[-1])
        feasible = frame[frame.k_star.notna()]
        span = ""
        if len(feasible):
            span = (
                f" (continuous K* from {feasible.k_star_continuous.max():.3f} "
                f"to {feasible.k_star_continuous.min():.3f}, "
                f"integer K* in {sorted(set(int(k) for k in feasible.k_star))})"
            )
        if not assessed:
            verdict = f"not assessed in {name}: no two values of {name} (with M > 0 for sigma2) give a finite bound"
        elif cont_const:
            verdict = f"does not hold in {name}: K* does not change with {name}"
        elif cont_dec and int_nonincreasing and int_moves:
            verdict = f"holds in {name}: K* decreases as {name} grows"
        elif cont_dec and int_nonincreasing:
            verdict = f"holds only weakly in {name}: the continuous K* decreases but the integer K* does not move"
        else:
            verdict = f"does not hold in {name}: K* is not monotone decreasing in {name}"
        if lost:
            verdict += f"; {lost} grid points have no finite bound"
        parts.append(verdict + span)
    return "; ".join(parts)


def write_report(result: SensitivityResult, out_dir: Path, command: str) -> list[Path]:
    """Write ``sensitivity.csv``, ``README.md`` and PNG figures into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    csv_path, readme, kstar_png, bound_png = (out_dir / name for name in REPORT_FILES)
    result.frame.to_csv(csv_path, index=False)
    _kstar_figure(result, kstar_png)
    _bound_figure(result, bound_png)
    readme.write_text(_readme(result, command), encoding="utf-8")
    return [csv_path, kstar_png, bound_png, readme]


def _spread(values: list, most: int) -> list:
    """At most ``most`` of ``values``, evenly spread over them (a readable figure)."""
    import numpy as np

    if len(values) <= most:
        return values
    return [values[i] for i in np.linspace(0, len(values) - 1, most).round().astype(int)]


def _axes_names(result: SensitivityResult) -> tuple[str, str | None]:
    """The first varied parameter (the x axis) and the second, if any (one line per value)."""
    names = list(result.varied)
    return names[0], names[1] if len(names) > 1 else None


def _kstar_figure(result: SensitivityResult, path: Path) -> None:
    """K* (integer and continuous) against the first varied parameter, one line per value of the second."""
    from bladefl_platform.report import legend, new_figure, save_figure

    frame, (first, second) = result.frame, _axes_names(result)
    variants = list(frame.variant.unique())
    x_col = "lazy_ratio" if first == "M" else first
    fig, axes = new_figure(5.5 * len(variants), 4, 1, len(variants), sharey=True)
    lines_for = _spread(result.varied[second], 8) if second else [None]
    for ax, variant in zip(axes[0], variants):
        sub = frame[frame.variant == variant]
        groups = [(key, g) for key, g in sub.groupby(second) if key in lines_for] if second else [(None, sub)]
        for key, g in groups:
            label = f"{second}={key:g}" if second else None
            ax.plot(g[x_col], g["k_star_continuous"], "-", label=None if label is None else f"{label} (continuous)")
            ax.plot(g[x_col], g["k_star"].astype(float), "o", color=ax.lines[-1].get_color(), label=label)
        ax.set_title(f"K* ({variant})")
        ax.set_xlabel("M/N" if first == "M" else first)
        ax.set_ylabel("K*")
        ax.grid(alpha=0.3)
        if second:
            legend(ax, fontsize=7)
    save_figure(fig, path)


def _bound_figure(result: SensitivityResult, path: Path) -> None:
    """The bound against K for up to six values of the first varied parameter (the second at its first value)."""
    import numpy as np

    from bladefl_platform.report import k_axis, legend, new_figure, save_figure

    from .bound import bound_value

    frame, (first, second) = result.frame, _axes_names(result)
    variants = list(frame.variant.unique())
    fig, axes = new_figure(5.5 * len(variants), 4, 1, len(variants))
    fixed = {second: result.varied[second][0]} if second else {}
    ks = np.arange(1, int(frame.k_max.max()) + 1)
    for ax, variant in zip(axes[0], variants):
        for v in _spread(result.varied[first], 6):
            b = np.asarray(bound_value(ks, result.base.replace(**{first: v}, **fixed), variant), dtype=float)
            ax.plot(ks, np.where(np.isfinite(b), b, np.nan), "o-", ms=3, label=f"{first}={v:g}")
        ax.set_title(f"bound vs K ({variant})" + (f", {second}={fixed[second]:g}" if second else ""))
        k_axis(ax, list(ks))
        ax.set_ylabel("bound on F(w^K) - F(w*)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        legend(ax, fontsize=7)
    save_figure(fig, path)


def _readme(result: SensitivityResult, command: str) -> str:
    """The report's README.md: what was varied from what, Remark 3's verdicts, the figures and the table."""
    from bladefl_platform.report import regenerate

    names = list(result.varied)
    base = ", ".join(f"{k}={v:g}" for k, v in result.base.as_dict().items() if k not in names)
    lines = ["# Sensitivity of K* to " + " and ".join(names), "",
             *regenerate(command, "Generated by `bladefl-theory sensitivity`; regenerate with:"),
             f"Base parameters (any not varied): {base}.", "",
             "## Remark 3 (K* decreases as M/N or sigma2 grows)", "",
             *(f"- **{v}**: {text}." for v, text in result.verdicts().items()), "",
             "`printed` is eq. (6) verbatim; `per-round` multiplies the lazy term by K (see the README).", "",
             *_figures_and_table(result)]
    return "\n".join(lines) + "\n"


def _figures_and_table(result: SensitivityResult) -> list[str]:
    """The README's figures and its table of K* per varied value."""
    from bladefl_platform.report import markdown_table

    cols = ["variant", *result.varied, "k_star", "k_star_continuous", "tau", "bound"]
    return ["## Figures", "", "![K* against the varied parameter](kstar.png)", "",
            "![The bound against K](bound.png)", "", "## Table", "",
            "Full data: `sensitivity.csv`. K* is the integer minimizer of the bound over K = 1..K_max; "
            "empty where no K has a finite bound.", "",
            markdown_table(result.frame[cols], digits=4)]
