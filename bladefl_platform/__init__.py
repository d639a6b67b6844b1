"""The plumbing both command-line tools share, and nothing of BLADE-FL itself (no torch, no sympy).

- :mod:`~bladefl_platform.errors`: the error types and the exit statuses they stand for.
- :mod:`~bladefl_platform.checks`: rules on parameters declared as data, one validator, one error type.
- :mod:`~bladefl_platform.atomic`: output folders and files written whole or not at all, and whose they are.
- :mod:`~bladefl_platform.canonical`: canonical JSON and its digest (task keys, ledger commitments).
- :mod:`~bladefl_platform.store`: the SQLite result store (a task is its kind, config and version).
- :mod:`~bladefl_platform.execution`: running stored tasks through dask.distributed.
- :mod:`~bladefl_platform.study`: a study (stored tasks, their analysis, its report) and :func:`run_study`.
- :mod:`~bladefl_platform.report`: markdown tables, one number format, pyplot-free figures.
- :mod:`~bladefl_platform.cli`: the click group whose errors are one line, and the options commands share
  (declared once each).
"""
