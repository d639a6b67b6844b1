"""Command-line plumbing shared by ``bladefl-theory`` and ``bladefl-validate``.

Every error reaches the user as one line on stderr: status 2 for bad input, the command's own
status (3 for "no finite bound") when it cannot produce a result. Never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import click

from .errors import CommandFailed, InputError

__all__ = ["CLIGroup", "EXIT_INTERNAL", "fail"]


def fail(prog: str, message: str, code: int) -> int:
    """Print one line ``prog: error: message`` to stderr and return ``code``."""
    line = " ".join(str(message).split())
    click.echo(f"{prog}: error: {line}", err=True)
    return code


#: Exit status when the output cannot be written or a command fails in a way it did not foresee.
EXIT_INTERNAL = 1
#: Set to 1 to see the traceback of an unforeseen error instead of its one line.
TRACEBACK_VARIABLE = "BLADEFL_TRACEBACK"


class CLIGroup(click.Group):
    """A click group whose errors are one line and whose exit statuses follow the project's rules.

    Subclasses (or ``input_errors=``) name further exception types that count as bad input.
    With ``catch_all=True`` any other exception (a closed pipe, a full disk, a bug) is one line
    too, with status 1 (:data:`EXIT_INTERNAL`); ``BLADEFL_TRACEBACK=1`` shows the traceback.
    """

    def __init__(
        self, *args: Any, input_errors: tuple[type[BaseException], ...] = (), catch_all: bool = False, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.input_errors = (InputError, *input_errors)
        self.catch_all = catch_all

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        prog = prog_name or self.name or "bladefl"
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.ClickException as exc:
            code = fail(prog, exc.format_message(), 2)
        except click.Abort:
            code = fail(prog, "aborted", 130)
        except CommandFailed as exc:
            code = fail(prog, str(exc), exc.code)
        except self.input_errors as exc:
            code = fail(prog, str(exc), 2)
        except Exception as exc:
            if not self.catch_all or os.environ.get(TRACEBACK_VARIABLE) == "1":
                raise
            code = _unforeseen(prog, exc)
        if standalone_mode:
            sys.exit(code)
        return code


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
