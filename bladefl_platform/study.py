"""A study: many stored tasks, what they add up to, and the report that says so; :func:`run_study` runs one.

A :class:`Study` declares its configurations as batches of :class:`Tasks` (a task kind and its configs),
what it makes of their results (:meth:`Study.analyse`) and the report it writes (:meth:`Study.report`).
:func:`run_study` owns everything else, the same for every study:

1. the output is checked before anything runs: a report file (or folder) the study's command did not
   write is never replaced (:mod:`bladefl_platform.atomic`'s markers), the result store (default
   ``OUT/results.sqlite`` for a report that lives beside its store) is a store and not a report file;
2. the caller's pre-check (``prepare``: the validator loads the data and draws the partitions there,
   so that bad input fails in one line before any task starts);
3. the store is opened once, and every task runs through it and one :class:`~bladefl_platform.execution.Execution`;
4. the report is written whole or not at all, with the command line that regenerates it; a study that
   fails leaves no report behind, and a store only if it holds results to resume from.

It returns a :class:`StudyRun`: the study's result, and a history of the batches it ran.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from .atomic import MARKER, check_files_replaceable, check_replaceable, owned_directory, owned_files
from .errors import InputError
from .execution import Execution, TaskKind, TaskOutcome, run_tasks
from .store import ResultStore, check_store, opened_store

__all__ = ["Layout", "Tasks", "Runner", "Study", "StudyRun", "BatchRecord", "run_study", "STORE_NAME"]

log = logging.getLogger("bladefl_platform")

#: The result store a study whose report folder lives on keeps beside its report files, by default.
STORE_NAME = "results.sqlite"

R = TypeVar("R")


class Layout(enum.Enum):
    """How a study's report sits in its output ``out``."""

    #: Report files owned in the folder ``out``, which lives on with the result store beside them (a study resumes).
    FILES = "files"
    #: The folder ``out`` owned whole, replaced once the report is complete; a store, if any, lives elsewhere.
    FOLDER = "folder"
    #: ``out`` is a file the study writes whole itself (with files beside it, as :meth:`Study.outputs` names them).
    FILE = "file"


@dataclass(frozen=True)
class Tasks:
    """A batch of stored tasks: their kind, configs, the progress bar's label, and context beyond the study's."""

    kind: TaskKind
    configs: Sequence[Mapping[str, Any]]
    desc: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchRecord:
    """One batch a study ran: its kind, label, and how many tasks it had, ran and found in the store."""

    kind: str
    desc: str
    tasks: int
    ran: int
    skipped: int


class Runner:
    """Runs a study's tasks through its store and execution, with its context; keeps a record of every batch."""

    def __init__(self, store: ResultStore | None, execution: Execution, context: Mapping[str, Any]):
        self.store = store
        self.execution = execution
        self.context = dict(context)
        self.history: list[BatchRecord] = []
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the runner was made: how long the study has run so far."""
        return time.perf_counter() - self.started

    def __call__(self, tasks: Tasks) -> TaskOutcome:
        outcome = run_tasks(tasks.kind, tasks.configs, self.store, {**self.context, **tasks.context}, self.execution,
                            tasks.desc)
        self.history.append(BatchRecord(tasks.kind.name, tasks.desc, len(outcome.results), outcome.ran,
                                        outcome.skipped))
        return outcome


class Study(ABC, Generic[R]):
    """One experiment of many stored tasks, and its report.

    A subclass names the command that runs it (``prog`` and ``command``: the owner a report folder's
    marker records), says how its report sits in its output (``layout``) and which files it writes
    (:meth:`outputs`), lists its tasks (:meth:`tasks`, or :meth:`measure` for a study that decides what
    to run from what it has measured), makes its result from them (:meth:`analyse`) and writes the report
    (:meth:`report`). :meth:`summary` and :meth:`text` are what a command prints of a finished run.
    """

    prog: ClassVar[str]
    command: ClassVar[str]
    layout: ClassVar[Layout] = Layout.FILES
    #: What a task is, in the line saying how many were already in the store.
    unit: ClassVar[str] = "tasks"

    @property
    def owner(self) -> str:
        """The command that runs this study, as the marker of its output folder names it."""
        return f"{self.prog} {self.command}"

    @abstractmethod
    def outputs(self, out: Path) -> Sequence[str]:
        """The files the report consists of: names in ``out`` (or, for :attr:`Layout.FILE`, beside it)."""

    def default_store(self, out: Path) -> Path | None:
        """The result store when none is given: ``OUT/results.sqlite`` beside report files; none otherwise."""
        return out / STORE_NAME if self.layout is Layout.FILES else None

    def check(self, out: Path, store: Path | None) -> None:
        """Checks of the study's own, before anything runs (after the output's and the store's)."""

    def tasks(self) -> list[Tasks]:
        """The study's configurations: every batch of tasks it runs, in order."""
        return []

    def measure(self, run: Runner) -> list[TaskOutcome]:
        """Run the study's tasks (through ``run``) and return their outcomes, one per batch of :meth:`tasks`."""
        return [run(t) for t in self.tasks()]

    @abstractmethod
    def analyse(self, outcomes: list[TaskOutcome], run: Runner) -> R:
        """The study's result from its tasks' outcomes (``run`` gives the store, for a study that reads it)."""

    @abstractmethod
    def report(self, result: R, target: Path, command: str) -> None:
        """Write the report of ``result`` into the folder ``target`` (for :attr:`Layout.FILE`, to the file itself,
        whole or not at all), recording ``command``, the command line that regenerates it."""

    def compute(self, store: ResultStore | None = None, execution: Execution = Execution(),
                context: Mapping[str, Any] | None = None) -> R:
        """The study's result without a report (for Python): its tasks through ``store``, if any, and ``execution``."""
        runner = Runner(store, execution, context or {})
        return self.analyse(self.measure(runner), runner)

    def summary(self, run: StudyRun[R]) -> dict[str, Any]:
        """The finished study as ``--json`` prints it."""
        return {"out": run.out}

    def text(self, run: StudyRun[R]) -> str:
        """The finished study as a command prints it for people."""
        return f"{run.out}: done"


@dataclass
class StudyRun(Generic[R]):
    """A finished study: its result, where its report and store are, and the batches of tasks it ran."""

    study: Study[R]
    result: R
    out: Path
    store: Path | None
    batches: list[BatchRecord]
    seconds: float

    @property
    def ran(self) -> int:
        return sum(b.ran for b in self.batches)

    @property
    def skipped(self) -> int:
        return sum(b.skipped for b in self.batches)

    def history(self) -> list[dict[str, Any]]:
        """One record per batch (kind, desc, tasks, ran, skipped): what a pandas DataFrame takes as rows."""
        return [vars(b).copy() for b in self.batches]


def _check_output(study: Study, out: Path, store: Path | None) -> None:
    """Before anything runs: the study may write its report at ``out``, and ``store`` is usable beside it."""
    names = list(study.outputs(out))
    if study.layout is Layout.FILES:
        check_files_replaceable(out, study.owner, names)
        if store is not None and store.absolute().parent == out.absolute() and store.name in (*names, MARKER):
            raise InputError(f"--store {store} is one of the report files of --out; give another file")
    elif study.layout is Layout.FOLDER:
        check_replaceable(out, study.owner)
        if store is not None and out.absolute() in store.absolute().parents:
            raise InputError(f"--store {store} is inside --out {out}, which is replaced whole: keep the store "
                             "elsewhere")
    study.check(out, store)
    if study.layout is Layout.FILE and store is not None \
            and store.absolute() in {(out.parent / n).absolute() for n in names}:
        raise InputError(f"--store {store} is {' or '.join(names)}, which this command writes; give another file")
    if store is not None:
        check_store(store)


def run_study(
    study: Study[R],
    out: Path,
    *,
    store: Path | None = None,
    execution: Execution = Execution(),
    prepare: Callable[[], None] | None = None,
    context: Callable[[], Mapping[str, Any]] | None = None,
    command: str = "",
    strict: bool = False,
) -> StudyRun[R]:
    """Check the output, ``prepare``, run the study's tasks through one store and ``execution``, and write its
    report atomically at ``out`` with ``command``, the line that regenerates it.

    ``store`` defaults to the study's (:meth:`Study.default_store`); ``prepare`` is the caller's check of the
    configurations before anything runs; ``context`` gives what every task receives besides its config (the
    validator's data folder), asked for once the checks have passed. ``strict``: refuse a stored result that does
    not match its digest instead of running its task again (:class:`~bladefl_platform.store.ResultStore`).
    """
    started = time.perf_counter()
    out = Path(out)
    store = Path(store) if store is not None else study.default_store(out)
    _check_output(study, out, store)
    execution.check_reachable()  # a scheduler given is used, so it must answer, even if every task is stored
    if prepare is not None:
        prepare()
    with contextlib.ExitStack() as stack:
        opened = stack.enter_context(opened_store(store, strict)) if store is not None else None
        runner = Runner(opened, execution, context() if context is not None else {})
        result = study.analyse(study.measure(runner), runner)
        if study.layout is Layout.FILES:
            with owned_files(out, study.owner) as tmp:
                study.report(result, tmp, command)
        elif study.layout is Layout.FOLDER:
            with owned_directory(out, study.owner) as tmp:
                study.report(result, tmp, command)
        else:
            study.report(result, out, command)
    run = StudyRun(study, result, out, store, runner.history, time.perf_counter() - started)
    if run.skipped:
        log.info("%d of %d %s were already in the store", run.skipped, run.skipped + run.ran, study.unit)
    return run
