"""Command-line plumbing shared by ``bladefl-theory`` and ``bladefl-validate``.

Every error reaches the user as one line on stderr: status 2 for bad input, the command's own
status (3 for "no finite bound") when it cannot produce a result. Never a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .errors import CommandFailed, InputError

__all__ = ["CLIGroup", "fail"]


def fail(prog: str, message: str, code: int) -> int:
    """Print one line ``prog: error: message`` to stderr and return ``code``."""
    line = " ".join(str(message).split())
    click.echo(f"{prog}: error: {line}", err=True)
    return code


class CLIGroup(click.Group):
    """A click group whose errors are one line and whose exit statuses follow the project's rules.

    Subclasses (or ``input_errors=``) name further exception types that count as bad input.
    """

    def __init__(self, *args: Any, input_errors: tuple[type[BaseException], ...] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.input_errors = (InputError, *input_errors)

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
        if standalone_mode:
            sys.exit(code)
        return code
