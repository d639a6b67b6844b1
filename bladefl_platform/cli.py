"""Command-line plumbing shared by ``bladefl-theory`` and ``bladefl-validate``.

Every error reaches the user as one line on stderr: status 2 for bad input, the command's own
status (3 for "no finite bound") when it cannot produce a result. Never a traceback. SIGTERM
(``kill``, ``timeout``) unwinds a command as Ctrl-C does, so its temporaries are removed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import click

from .errors import CommandFailed, InputError

__all__ = ["CLIGroup", "EXIT_INTERNAL", "EXIT_TERMINATED", "Terminated", "fail"]


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

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        prog = prog_name or self.name or "bladefl"
        try:
            with _terminate_as_interrupt():
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
                extra_name = self._extra_for(exc)
                code = fail(prog, f"{exc.name} is not installed, and this command needs it: install the "
                                  f"'{extra_name}' extra (pip install -e \".[{extra_name}]\")", 2)
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
