"""Exceptions shared by both packages and their command-line tools."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["InputError", "CommandFailed", "missing_extra", "require"]


class InputError(ValueError):
    """Bad input from a user: the CLI prints its one-line message and exits with status 2."""


class CommandFailed(Exception):
    """A command could not produce its result; the CLI prints the message and exits with ``code``."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def missing_extra(module: str, extra: str) -> InputError:
    """The one-line error for a module that the optional dependency set ``extra`` provides and is not installed."""
    return InputError(f"{module} is not installed, and this needs it: install the '{extra}' extra "
                      f"(pip install \"bladefl[{extra}]\", or pip install -e \".[{extra}]\" in a clone)")


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, which the extra ``extra`` provides; :func:`missing_extra` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != module.partition(".")[0]:
            raise  # the module is there but something it imports is not: that is not ours to explain
        raise missing_extra(module, extra) from None
