"""bladefl_platform.study: a Study's tasks run through one store, its report written whole or not at all, and
nothing it did not write ever replaced or removed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bladefl_platform.study as study_module
from bladefl_platform.atomic import MARKER, read_marker
from bladefl_platform.errors import InputError
from bladefl_platform.execution import TaskKind, TaskOutcome, one_by_one
from bladefl_platform.store import ResultStore
from bladefl_platform.study import Layout, Study, Tasks, run_study


def square(config, context):
    return {"y": config["x"] ** 2 + context.get("offset", 0)}


SQUARE = TaskKind("test-square", "1", one_by_one(square))


@pytest.fixture(autouse=True)
def in_process(monkeypatch):
    """Tasks run here, one by one, through the store as run_tasks records them (no Dask cluster to start)."""
    calls = []

    def run_tasks(kind, configs, store=None, context=None, execution=None, desc=""):
        keys = [kind.key(c) for c in configs]
        done = store.done(keys) if store is not None else set()
        results = []
        for key, config in zip(keys, configs):
            if key in done:
                results.append(store.get(key))
                continue
            calls.append(config)
            result = kind.run([config], dict(context or {}))[0]
            if store is not None:
                store.put(key, kind.name, config, result, kind.version)
            results.append(result)
        return TaskOutcome(results=results, skipped=len(done), ran=len(keys) - len(done), keys=keys)

    monkeypatch.setattr(study_module, "run_tasks", run_tasks)
    return calls


class Squares(Study[dict]):
    """Squares of ``xs``; the report is ``squares.json`` and ``README.md``. ``fail`` says where to break."""

    prog = "test"
    command = "squares"

    def __init__(self, xs, fail: str = "", layout: Layout = Layout.FILES):
        self.xs, self.fail, self.layout = list(xs), fail, layout

    def outputs(self, out: Path):
        return ("out.json",) if self.layout is Layout.FILE else ("squares.json", "README.md")

    def tasks(self):
        return [Tasks(SQUARE, [{"x": x} for x in self.xs], "squares")]

    def analyse(self, outcomes, run):
        if self.fail == "analyse":
            raise InputError("analysis failed")
        return {x: r["y"] for x, r in zip(self.xs, outcomes[0].results)}

    def report(self, result, target, command):
        if self.layout is Layout.FILE:
            target.write_text(json.dumps(result))
            return
        (target / "squares.json").write_text(json.dumps(result))
        if self.fail == "report":
            raise OSError(28, "No space left on device")
        (target / "README.md").write_text(f"Regenerate with:\n\n    {command}\n")


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def test_a_study_runs_its_tasks_through_its_store_and_writes_its_report(tmp_path, in_process):
    out = tmp_path / "report"
    run = run_study(Squares([1, 2, 3]), out, context=lambda: {"offset": 10}, command="test squares --out report")
    assert run.result == {1: 11, 2: 14, 3: 19} and (run.ran, run.skipped) == (3, 0)
    assert run.store == out / "results.sqlite" and run.history() == [
        {"kind": "test-square", "desc": "squares", "tasks": 3, "ran": 3, "skipped": 0}]
    assert json.loads((out / "squares.json").read_text()) == {"1": 11, "2": 14, "3": 19}
    assert "    test squares --out report" in (out / "README.md").read_text()
    assert read_marker(out) == {"owner": "test squares", "files": ["README.md", "squares.json"]}
    again = run_study(Squares([1, 2, 3, 4]), out, context=lambda: {"offset": 10})
    assert (again.ran, again.skipped) == (1, 3) and len(in_process) == 4  # only x = 4 was computed


def test_a_file_it_did_not_write_is_never_replaced_and_nothing_runs(tmp_path, in_process):
    out = tmp_path / "report"
    out.mkdir()
    (out / "README.md").write_text("mine")
    before = snapshot(tmp_path)
    prepared = []
    with pytest.raises(InputError, match="did not write"):
        run_study(Squares([1]), out, prepare=lambda: prepared.append(1))
    assert snapshot(tmp_path) == before and prepared == [] and in_process == []


def test_a_study_that_fails_leaves_no_report_and_no_empty_store(tmp_path, in_process):
    out = tmp_path / "a" / "report"
    with pytest.raises(InputError, match="analysis failed"):
        run_study(Squares([], fail="analyse"), out)
    assert list(tmp_path.iterdir()) == []  # neither the store nor the folders made for it
    with pytest.raises(InputError, match="analysis failed"):
        run_study(Squares([1], fail="analyse"), out)
    assert sorted(p.name for p in out.iterdir()) == ["results.sqlite"]  # a result to resume from, no report


def test_a_failed_report_changes_no_file_and_keeps_the_results_to_resume(tmp_path, in_process):
    out = tmp_path / "report"
    run_study(Squares([1, 2]), out)
    (out / "notes.txt").write_text("mine")  # beside the report: never its to remove
    before = {n: (out / n).read_bytes() for n in ("squares.json", "README.md", MARKER, "notes.txt")}
    with pytest.raises(OSError, match="No space left"):
        run_study(Squares([1, 2, 3], fail="report"), out)
    assert {n: (out / n).read_bytes() for n in before} == before
    assert sorted(p.name for p in out.iterdir()) == sorted([*before, "results.sqlite"])  # no temporary left
    with ResultStore(out / "results.sqlite") as store:
        assert store.count() == 3  # x = 3 was computed and is kept: the next run resumes


def test_prepare_runs_after_the_output_checks_and_before_any_task(tmp_path, in_process):
    order = []

    class Checked(Squares):
        def check(self, out, store):
            order.append("check")

    def prepare():
        order.append("prepare")
        assert in_process == []
        raise InputError("the data are missing")

    with pytest.raises(InputError, match="data are missing"):
        run_study(Checked([1]), tmp_path / "report", prepare=prepare)
    assert order == ["check", "prepare"] and list(tmp_path.iterdir()) == []


def test_a_folder_study_replaces_only_its_own_folder_and_keeps_its_store_outside(tmp_path, in_process):
    out = tmp_path / "report"
    with pytest.raises(InputError, match="inside --out"):
        run_study(Squares([1], layout=Layout.FOLDER), out, store=out / "s.sqlite")
    assert list(tmp_path.iterdir()) == []
    run_study(Squares([1], layout=Layout.FOLDER), out)
    assert read_marker(out)["owner"] == "test squares" and not (out / "results.sqlite").exists()
    before = snapshot(out)
    with pytest.raises(OSError):
        run_study(Squares([2], fail="report", layout=Layout.FOLDER), out)
    assert snapshot(out) == before and [p.name for p in tmp_path.iterdir()] == ["report"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="did not write"):
        run_study(Squares([3], layout=Layout.FOLDER), out)
    assert (out / "notes.txt").read_text() == "mine"


def test_a_file_study_may_not_take_its_output_for_a_store(tmp_path, in_process):
    out = tmp_path / "out.json"
    with pytest.raises(InputError, match="which this command writes"):
        run_study(Squares([1], layout=Layout.FILE), out, store=out)
    assert list(tmp_path.iterdir()) == []
    run = run_study(Squares([1], layout=Layout.FILE), out, store=tmp_path / "s.sqlite")
    assert json.loads(out.read_text()) == {"1": 1} and run.store == tmp_path / "s.sqlite"


def test_the_store_may_not_be_a_report_file(tmp_path, in_process):
    out = tmp_path / "report"
    with pytest.raises(InputError, match="one of the report files"):
        run_study(Squares([1]), out, store=out / "README.md")
    assert list(tmp_path.iterdir()) == []
