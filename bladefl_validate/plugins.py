"""Your own data sets and models in every process: ``BLADEFL_PLUGINS`` names modules (comma-separated, importable:
on ``PYTHONPATH``) that call :func:`~bladefl_validate.data.register_dataset` and
:func:`~bladefl_validate.learning.model.register_model` as they are imported.

The command line imports them before it reads its options, and every task imports them before it runs, so the
workers of a local Dask cluster (which inherit the environment) know the same names. A worker of a cluster started
elsewhere needs the variable and the modules there too.
"""

from __future__ import annotations

import importlib
import os

from bladefl_platform.errors import InputError

__all__ = ["PLUGINS_VARIABLE", "load_plugins"]

#: The environment variable naming the modules to import.
PLUGINS_VARIABLE = "BLADEFL_PLUGINS"


def load_plugins() -> None:
    """Import every module ``BLADEFL_PLUGINS`` names (once per process); InputError, one line, if one fails."""
    for name in filter(None, (part.strip() for part in os.environ.get(PLUGINS_VARIABLE, "").split(","))):
        try:
            importlib.import_module(name)
        except InputError as exc:
            raise InputError(f"{PLUGINS_VARIABLE}: {name}: {exc}") from None
        except Exception as exc:  # the module's own error, whatever it is, reported as one line
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise InputError(f"{PLUGINS_VARIABLE}: cannot import {name!r}: {reason}") from None
