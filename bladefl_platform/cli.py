"""Command-line plumbing shared by ``bladefl-theory`` and ``bladefl-validate``.

Every error reaches the user as one line on stderr: status 2 for bad input, the command's own
status (3 for "no finite bound") when it cannot produce a result. Never a traceback. SIGTERM
(``kill``, ``timeout``) unwinds a command as Ctrl-C does, so its temporaries are removed.

Results go to stdout: a table for people, or with ``--json`` (:func:`json_option`) one strict JSON
object (:func:`emit_json`) whose ``status`` is the exit status. Everything else (what the command is
doing, warnings) goes through :mod:`logging`, one logger per package (:data:`LOGGERS`), to stderr:
info by default, warnings and errors only with ``-q``, debug too with ``-v`` (options of every
:class:`CLIGroup`).

The options that several commands share are declared here once each (:func:`seeds_option`,
:func:`store_option`, :func:`execution_options`, :func:`data_dir_option`, :func:`quiet_option`,
:func:`json_option`, and comma-separated lists through :class:`ListType`); a command passes the
help text that says what the option means to it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from .errors import CommandFailed, InputError, missing_extra
from .execution import MAX_LOCAL_WORKERS, Execution

__all__ = ["EXIT_INTERNAL", "EXIT_TERMINATED", "LOGGERS", "MAX_SEED", "MAX_SEEDS", "CLIGroup", "ListType", "Parsed",
           "SeedsType", "Terminated", "data_dir_option", "emit_json", "execution_options", "fail", "json_option",
           "json_ready", "json_text", "parse_seeds", "execution_of", "hide_progress", "quiet_option", "seeds_option",
           "store_option", "strict_store", "verbosity"]

#: The loggers the command line configures, one per package.
LOGGERS = ("bladefl_platform", "bladefl_theory", "bladefl_validate")

log = logging.getLogger(__name__.partition(".")[0])


def fail(prog: str, message: str, code: int) -> int:
    """Print one line ``prog: error: message`` to stderr and return ``code``."""
    line = " ".join(str(message).split())
    click.echo(f"{prog}: error: {line}", err=True)
    return code


#: Exit status when the output cannot be written or a command fails in a way it did not foresee.
EXIT_INTERNAL = 1
#: Exit status of a command stopped by SIGTERM (128 + 15, as the shell reports a process it killed).
EXIT_TERMINATED = 128 + signal.SIGTERM
#: Set to 1 to see the traceback of an unforeseen error instead of its one line.
TRACEBACK_VARIABLE = "BLADEFL_TRACEBACK"


def json_ready(obj: Any) -> Any:
    """``obj`` with only what strict JSON holds: a number beyond float range (inf, nan) and a missing value
    (None, pandas' NA) become null, numpy scalars Python numbers, a path a string, a tuple a list and a
    data frame a list of row objects."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    pandas = sys.modules.get("pandas")  # never imported: nothing can be of its types
    if pandas is not None:
        if isinstance(obj, pandas.DataFrame):
            return [json_ready(row) for row in obj.to_dict(orient="records")]
        if isinstance(obj, pandas.Series):
            return json_ready(obj.to_dict())
        if obj is pandas.NA or obj is pandas.NaT:
            return None
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(obj, numpy.generic):
            return json_ready(obj.item())
        if isinstance(obj, numpy.ndarray):
            return json_ready(obj.tolist())
    raise TypeError(f"{type(obj).__name__} is not JSON-ready")


def json_text(obj: Any) -> str:
    """Strict JSON (no NaN, no Infinity) of ``obj`` through :func:`json_ready`."""
    return json.dumps(json_ready(obj), indent=2, allow_nan=False)


def emit_json(obj: Mapping[str, Any], status: int = 0) -> int:
    """Print ``obj`` as one JSON object on stdout, ``status`` (the command's exit status) first; return ``status``.

    A command that then fails with a status of its own (3: no finite answer) passes that status here.
    """
    click.echo(json_text({"status": status, **{k: v for k, v in obj.items() if k != "status"}}))
    return status


def json_option(func=None, *, help: str = "Print the result as one JSON object on stdout, its status the exit status."):
    """The ``--json`` flag of a command that computes results (the command receives it as ``as_json``)."""
    if func is None:
        return lambda f: json_option(f, help=help)
    return click.option("--json", "as_json", is_flag=True, help=help)(func)


#: Most seeds a command takes: each is a run (or a run per K) of its own.
MAX_SEEDS = 1000
#: Largest seed: numpy's and torch's generators take 64-bit seeds.
MAX_SEED = 2**64 - 1


class Parsed(list):
    """A list parsed from an option, remembering the text it came from (the command line a report records)."""

    def __init__(self, values: Sequence[Any], text: str):
        super().__init__(values)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def parse_seeds(text: str) -> Parsed:
    """``--seeds``: a count (``3`` means 0, 1, 2), or a comma-separated list (``0,5,7``; ``0,`` is seed 0 alone)."""
    items = [x.strip() for x in text.split(",")]
    try:
        values = [int(x) for x in items if x]
    except ValueError:
        raise InputError(f"{_short(text)}: a count or a comma-separated list of integers") from None
    if not values:
        raise InputError("give a count of seeds (3 means 0,1,2) or a list such as 0,5,7")
    if "," not in text:
        count = values[0]
        if not 1 <= count <= MAX_SEEDS:
            raise InputError(f"a count of seeds must be in 1..{MAX_SEEDS} (got {count}); "
                             "to name seed 0 alone, write 0,")
        return Parsed(range(count), text)
    if len(values) > MAX_SEEDS:
        raise InputError(f"at most {MAX_SEEDS} seeds (got {len(values)})")
    if any(not 0 <= v <= MAX_SEED for v in values) or len(set(values)) != len(values):
        raise InputError("seeds must be distinct integers in 0..2**64-1")
    return Parsed(values, text)


class SeedsType(click.ParamType):
    """The type of ``--seeds`` (:func:`parse_seeds`): the command receives a :class:`Parsed` list of seeds."""

    name = "seeds"

    def convert(self, value, param, ctx):
        if isinstance(value, Parsed):
            return value
        try:
            return parse_seeds(str(value))
        except InputError as exc:
            self.fail(str(exc), param, ctx)


def seeds_option(default: str, what: str = "Seeds"):
    """``--seeds``, for commands that repeat runs over seeds; ``what`` names them (``Seeds per point``)."""
    return click.option("--seeds", type=SeedsType(), default=default, show_default=True,
                        help=f"{what}: a count (3 means 0,1,2) or a list such as 0,5,7 (0, is seed 0 alone); "
                             f"at most {MAX_SEEDS}.")


class ListType(click.ParamType):
    """A comma-separated list of distinct values, each through ``convert`` (and one of ``choices``, if given)."""

    name = "text"  # the metavar --help shows, as for a plain text option

    def __init__(self, convert: Callable[[str], Any] = str, choices: Sequence[Any] | None = None):
        self.item = convert
        self.choices = tuple(choices) if choices is not None else None

    def convert(self, value, param, ctx):
        if isinstance(value, Parsed):
            return value
        text = str(value)
        try:
            values = [self.item(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError:
            self.fail(f"{_short(text)}: a comma-separated list", param, ctx)
        if not values or len(set(values)) != len(values):
            self.fail(f"{_short(text)}: a non-empty list of distinct values", param, ctx)
        for v in values:
            if self.choices is not None and v not in self.choices:
                self.fail(f"{_short(str(v))} is not one of {', '.join(map(str, self.choices))}", param, ctx)
        return Parsed(values, text)


def store_option(help: str, required: bool = False):
    """``--store``, the result store of a command whose tasks are recorded (the command receives ``store_path``), and
    ``--strict``: refuse a stored result that does not match its digest (:func:`strict_store`) instead of running its
    task again."""
    def decorate(func):
        func = click.option("--strict", is_flag=True, expose_value=False, callback=_remember_strict,
                            help="Refuse a stored result that does not match its digest (edited by hand, or corrupt) "
                                 "instead of warning and running its task again (status 2).")(func)
        # click >= 8.3 counts an explicit default of None as a value given: a required option gets none.
        given: dict[str, Any] = {"required": True} if required else {"default": None}
        return click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), help=help,
                            **given)(func)
    return decorate


_STRICT_KEY = "bladefl.strict_store"


def _remember_strict(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value:
        ctx.meta[_STRICT_KEY] = True


def strict_store() -> bool:
    """Whether the command was given ``--strict`` (see :func:`store_option`); False outside a command."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(_STRICT_KEY))


#: How the validator's commands describe --scheduler and --workers.
SCHEDULER_HELP = "Address of an existing Dask scheduler, tcp://HOST:PORT [default: a local cluster]."
WORKERS_HELP = f"Worker processes of the local Dask cluster, at most {MAX_LOCAL_WORKERS} [default: one per core]."


def execution_options(func=None, *, scheduler: str = SCHEDULER_HELP, workers: str = WORKERS_HELP):
    """``--scheduler`` and ``--workers``: where a command's tasks run (an :class:`~.execution.Execution`)."""
    if func is None:
        return lambda f: execution_options(f, scheduler=scheduler, workers=workers)
    func = click.option("--workers", type=click.IntRange(1, MAX_LOCAL_WORKERS), default=None, help=workers)(func)
    return click.option("--scheduler", default=None, help=scheduler)(func)


def data_dir_option(help: str | None = None):
    """``--data-dir``, the folder a command reads its data from."""
    return click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=help)


def quiet_option(help: str = "No progress bars."):
    """``--quiet``: no progress bars (as the group's ``-q`` also does; see :func:`hide_progress`)."""
    return click.option("--quiet", is_flag=True, help=help)


def hide_progress(quiet: bool) -> bool:
    """No progress bars: the command's ``--quiet``, or the group's ``-q``."""
    return quiet or verbosity() < 0


def execution_of(scheduler: str | None, workers: int | None, quiet: bool) -> Execution:
    """Where a command's tasks run, from ``--scheduler``, ``--workers`` and ``--quiet`` (or ``-q``)."""
    return Execution(scheduler=scheduler, workers=workers, progress=False if hide_progress(quiet) else None)


class _EchoHandler(logging.Handler):
    """One line per record on the stderr of the moment (click's test runner replaces it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # noqa: BLE001 - logging's own rule: a failed record is reported, never raised
            self.handleError(record)


class _LineFormatter(logging.Formatter):
    """An info message as it is; any other level prefixed with its name (``warning: ...``, ``debug: ...``)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno == logging.INFO else f"{record.levelname.lower()}: {message}"


_VERBOSITY_KEY = "bladefl.verbosity"


def verbosity() -> int:
    """-1 with ``-q``, 0 by default, 1 with ``-v`` (0 outside a command)."""
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().meta.get(_VERBOSITY_KEY, 0) if ctx is not None else 0


def _level(v: int) -> int:
    return logging.WARNING if v < 0 else (logging.INFO if v == 0 else logging.DEBUG)


@contextlib.contextmanager
def _logging_to_stderr() -> Iterator[None]:
    """For the block, the packages' loggers write to stderr at info level (``-q``/``-v`` change it); restored after."""
    handler = _EchoHandler()
    handler.setFormatter(_LineFormatter())
    loggers = [logging.getLogger(name) for name in LOGGERS]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, level in zip(loggers, before):
            logger.removeHandler(handler)
            logger.setLevel(level)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bladefl")
    except PackageNotFoundError:
        return "(not installed)"


def _remember_verbosity(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value:
        ctx.meta.setdefault("bladefl.verbosity_flags", []).append(param.name)
        if ctx.parent is not None:  # after the subcommand: the group has set the level already
            _apply_verbosity(ctx)


def _apply_verbosity(ctx: click.Context) -> None:
    """Set the packages' log level from every -q/-v given so far, before or after the subcommand."""
    flags = set(ctx.meta.get("bladefl.verbosity_flags", []))
    if len(flags) > 1:
        raise click.UsageError("-v/--verbose and -q/--quiet exclude each other")
    v = {"log_verbose": 1, "log_quiet": -1}[flags.pop()] if flags else 0
    ctx.meta[_VERBOSITY_KEY] = v
    for name in LOGGERS:
        logging.getLogger(name).setLevel(_level(v))
    if v > 0 and not ctx.meta.get("bladefl.header_logged"):
        ctx.meta["bladefl.header_logged"] = True
        root = ctx.find_root()
        log.debug("%s %s, Python %s", root.command_path, _version(), sys.version.split()[0])


def _verbosity_options(taken: set[str]) -> list[click.Option]:
    """-v/--verbose and -q/--quiet, leaving out any of these names a command already uses for itself."""
    # Named apart from a command's own --quiet (no progress bars), which would otherwise share their value.
    specs = ((["-v", "--verbose"], "log_verbose", "Log what the command does in detail (debug messages) on stderr."),
             (["-q", "--quiet"], "log_quiet",
              "Only warnings and errors on stderr: no info messages, no progress bars."))
    return [click.Option([*free, name], is_flag=True, expose_value=False, callback=_remember_verbosity, help=help_text)
            for decls, name, help_text in specs if (free := [d for d in decls if d not in taken])]


def _accept_verbosity_after(command: click.Command) -> None:
    """Let every subcommand of ``command`` take -q/-v too (``bladefl-theory kstar -q``), once."""
    for sub in getattr(command, "commands", {}).values():
        if not getattr(sub, "_bladefl_verbosity", False):
            taken = {opt for p in sub.params for opt in getattr(p, "opts", [])}
            sub.params += _verbosity_options(taken)
            sub._bladefl_verbosity = True  # type: ignore[attr-defined]
        _accept_verbosity_after(sub)


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM; a BaseException, like KeyboardInterrupt, so cleanup runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """For the block, SIGTERM raises :class:`Terminated` (main thread only); the old handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class CLIGroup(click.Group):
    """A click group whose errors are one line and whose exit statuses follow the project's rules.

    Subclasses (or ``input_errors=``) name further exception types that count as bad input, as
    classes or as ``"module:Name"`` (looked up only if that module was imported, so a command-line
    module need not import heavy modules to name their errors). ``extras`` maps a top-level module
    to the optional dependency set that provides it: a command that needs one that is missing
    fails with one line saying what to install (status 2). With ``catch_all=True`` any other
    exception (a closed pipe, a full disk, a bug) is one line too, with status 1
    (:data:`EXIT_INTERNAL`); ``BLADEFL_TRACEBACK=1`` shows the traceback.
    """

    def __init__(
        self,
        *args: Any,
        input_errors: tuple[type[BaseException] | str, ...] = (),
        catch_all: bool = False,
        extras: Mapping[str, str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.params += _verbosity_options(set())
        self.input_errors = (InputError, *input_errors)
        self.catch_all = catch_all
        self.extras = dict(extras or {})

    def _input_error_types(self) -> tuple[type[BaseException], ...]:
        types = []
        for entry in self.input_errors:
            if isinstance(entry, str):
                module, _, name = entry.partition(":")
                if module not in sys.modules:
                    continue  # never imported, so nothing raised can be of its types
                entry = getattr(importlib.import_module(module), name)
            types.append(entry)
        return tuple(types)

    def invoke(self, ctx: click.Context) -> Any:
        _apply_verbosity(ctx)
        return super().invoke(ctx)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        prog = prog_name or self.name or "bladefl"
        _accept_verbosity_after(self)
        try:
            with _terminate_as_interrupt(), _logging_to_stderr():
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.ClickException as exc:
            code = fail(prog, exc.format_message(), 2)
        except click.Abort:
            code = fail(prog, "aborted", 130)
        except Terminated:
            code = fail(prog, "terminated", EXIT_TERMINATED)
        except CommandFailed as exc:
            code = fail(prog, str(exc), exc.code)
        except Exception as exc:
            if isinstance(exc, self._input_error_types()):
                code = fail(prog, str(exc), 2)
            elif isinstance(exc, ModuleNotFoundError) and self._extra_for(exc) is not None:
                code = fail(prog, str(missing_extra(exc.name or "", self._extra_for(exc) or "")), 2)
            elif not self.catch_all or os.environ.get(TRACEBACK_VARIABLE) == "1":
                raise
            else:
                code = _unforeseen(prog, exc)
        if standalone_mode:
            sys.exit(code)
        return code

    def _extra_for(self, exc: ModuleNotFoundError) -> str | None:
        return self.extras.get((exc.name or "").partition(".")[0])


def _unforeseen(prog: str, exc: Exception) -> int:
    if isinstance(exc, BrokenPipeError):
        # The reader went away (``| head``): say nothing, and keep Python from complaining at exit.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(prog, f"{where}{exc.strerror or exc}", EXIT_INTERNAL)
    return fail(
        prog,
        f"internal error, please report it: {type(exc).__name__}: {exc} ({TRACEBACK_VARIABLE}=1 shows the traceback)",
        EXIT_INTERNAL,
    )
