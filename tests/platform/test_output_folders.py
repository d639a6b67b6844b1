"""The output-folder policy: folders the toolkit did not write are never replaced."""

import os
import stat

import pytest
from click.testing import CliRunner
from helpers import snapshot

from bladefl_platform.atomic import MARKER, read_marker
from bladefl_theory.cli import cli

OWNER = "bladefl-theory sensitivity"


def sensitivity(out, *extra):
    return CliRunner().invoke(cli, ["sensitivity", "--vary", "M=0,4", "--variant", "per-round", "--out", str(out),
                                    *extra])


def test_sensitivity_refuses_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    (out / "sub").mkdir()
    (out / "sub" / "data.csv").write_text("1,2")
    before = snapshot(out)
    r = sensitivity(out)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line]
    assert len(lines) == 1 and "not written by bladefl-theory sensitivity" in lines[0]
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_sensitivity_refuses_a_report_folder_without_a_marker(tmp_path):
    # As the committed reports/sensitivity/ was before this policy: the command's files, no marker.
    out = tmp_path / "sensitivity"
    out.mkdir()
    for name in ("README.md", "sensitivity.csv", "kstar.png", "bound.png"):
        (out / name).write_text("old")
    r = sensitivity(out)
    assert r.exit_code == 2 and MARKER in r.output
    assert (out / "README.md").read_text() == "old"


def test_sensitivity_replaces_its_own_report_and_keeps_the_marker(tmp_path):
    out = tmp_path / "sens"
    assert sensitivity(out).exit_code == 0
    marker = read_marker(out)
    assert marker["owner"] == OWNER
    assert sorted(marker["files"]) == ["README.md", "bound.png", "kstar.png", "sensitivity.csv"]
    assert sensitivity(out).exit_code == 0
    # A file the user adds makes the folder theirs again.
    (out / "mine.txt").write_text("x")
    r = sensitivity(out)
    assert r.exit_code == 2 and "mine.txt" in r.output
    assert (out / "mine.txt").read_text() == "x"


def test_sensitivity_writes_into_an_empty_folder(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert sensitivity(out).exit_code == 0
    assert (out / "README.md").is_file()


def test_sensitivity_help_names_the_files_it_owns():
    text = CliRunner().invoke(cli, ["sensitivity", "--help"]).output
    for name in ("sensitivity.csv", "README.md", "kstar.png", "bound.png", MARKER):
        assert name in text


def test_refusal_happens_before_the_sweep(tmp_path, monkeypatch):
    import bladefl_theory.sensitivity as sensitivity_module

    out = tmp_path / "mine"
    out.mkdir()
    (out / "x").write_text("")
    monkeypatch.setattr(sensitivity_module, "_solve_chunk", lambda *a, **k: pytest.fail("the sweep ran"))
    assert sensitivity(out).exit_code == 2


def test_the_report_gets_the_umask_permissions(tmp_path):
    # Each writer of bladefl_platform.atomic is checked in tests/platform/test_atomic.py; here the command's own files.
    old = os.umask(0o022)
    try:
        assert sensitivity(tmp_path / "sens").exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sens").stat().st_mode) == 0o755
    files = sorted((tmp_path / "sens").iterdir())
    assert [p.name for p in files] == [MARKER, "README.md", "bound.png", "kstar.png", "sensitivity.csv"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files), files


def test_unwritable_output_is_one_line_and_status_2(tmp_path):
    (tmp_path / "a-file").write_text("")
    r = sensitivity(tmp_path / "a-file" / "out")
    assert r.exit_code == 2 and "cannot" in r.output, r.output
    assert len([line for line in r.output.splitlines() if line]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_unwritable_output_is_refused_before_the_sweep(tmp_path, monkeypatch):
    import bladefl_theory.sensitivity as sensitivity_module

    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(sensitivity_module, "_solve_chunk", lambda *a, **k: pytest.fail("the sweep ran"))
    r = sensitivity(tmp_path / "a-file" / "out")
    assert r.exit_code == 2 and "cannot create" in r.output
