"""What every stored task of the validator is given besides its config: where the data and outputs are.

Paths are resolved here, on the machine that submits the tasks: a worker of a separately started Dask
cluster has its own working directory and environment (no ``BLADEFL_DATA``), so it must receive
absolute paths, never relative ones or an environment variable to look up.

Importing this module (every module that submits the validator's tasks does) registers the worker plugin
that gives each worker of a local Dask cluster its share of torch's threads (:mod:`bladefl_validate.workers`).
"""

from __future__ import annotations

from pathlib import Path

from bladefl_platform.execution import register_local_worker_plugin

from .data import resolve_data_root

__all__ = ["task_context"]


def torch_threads(threads: int):
    """The worker plugin that sets torch's threads (imported here, when a local cluster starts)."""
    from .workers import TorchThreads

    return TorchThreads(threads)


register_local_worker_plugin(torch_threads)


def task_context(data_dir: str | Path | None, runs_dir: str | Path | None = None) -> dict[str, str | None]:
    """The context of a batch of tasks: the absolute data root (``--data-dir``, else ``$BLADEFL_DATA``, else the
    user cache folder, as resolved here) and, if runs are kept, the absolute folder for them."""
    return {
        "data_dir": str(resolve_data_root(data_dir).resolve()),
        "runs_dir": str(Path(runs_dir).resolve()) if runs_dir else None,
    }
