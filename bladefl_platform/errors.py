"""Exceptions shared by both packages and their command-line tools."""

from __future__ import annotations

__all__ = ["InputError", "CommandFailed"]


class InputError(ValueError):
    """Bad input from a user: the CLI prints its one-line message and exits with status 2."""


class CommandFailed(Exception):
    """A command could not produce its result; the CLI prints the message and exits with ``code``."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code
