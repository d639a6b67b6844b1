"""The Dask worker plugin of the validator: each worker of a local cluster gets its share of torch's threads.

Made by :func:`bladefl_validate.tasks.torch_threads`, the worker setup of every kind of task that trains
(:attr:`bladefl_platform.execution.TaskKind.worker_setup`), so that the platform's execution needs no torch.
Imported only when a local cluster starts (it needs distributed).
"""

from __future__ import annotations

from distributed import WorkerPlugin

__all__ = ["TorchThreads"]


class TorchThreads(WorkerPlugin):
    """Set torch's intra-op threads on a worker, so that workers × threads = this machine's cores."""

    name = "bladefl-torch-threads"

    def __init__(self, threads: int):
        self.threads = threads

    def setup(self, worker) -> None:
        import torch

        torch.set_num_threads(self.threads)
