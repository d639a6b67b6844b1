"""The output-folder policy: folders the toolkit did not write are never replaced."""

import json
import os
import stat

import pytest
from click.testing import CliRunner

from bladefl_platform.atomic import (
    MARKER,
    atomic_directory,
    check_files_replaceable,
    check_replaceable,
    owned_directory,
    owned_files,
    read_marker,
)
from bladefl_theory.cli import cli
from bladefl_platform.errors import InputError

OWNER = "bladefl-theory sensitivity"


def sensitivity(out, *extra):
    return CliRunner().invoke(cli, ["sensitivity", "--vary", "M=0,4", "--variant", "per-round", "--out", str(out),
                                    *extra])


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


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


def test_output_folders_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        assert sensitivity(tmp_path / "sens").exit_code == 0
        with atomic_directory(tmp_path / "run") as tmp:
            (tmp / "f").write_text("")
        with owned_directory(tmp_path / "a" / "b", "me") as tmp:
            (tmp / "f").write_text("")
    finally:
        os.umask(old)
    for folder in (tmp_path / "sens", tmp_path / "run", tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder


def test_a_failed_block_leaves_nothing_behind(tmp_path):
    target = tmp_path / "x" / "y" / "out"
    with pytest.raises(RuntimeError):
        with owned_directory(target, "me") as tmp:
            (tmp / "f").write_text("")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with owned_files(target, "me") as tmp:
            (tmp / "f").write_text("")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_replacement_keeps_the_old_folder(tmp_path):
    target = tmp_path / "out"
    with owned_directory(target, "me") as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with owned_directory(target, "me") as tmp:
            (tmp / "a.txt").write_text("new")
            raise RuntimeError("boom")
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_check_replaceable_rules(tmp_path):
    check_replaceable(tmp_path / "absent", "me")
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="not a folder"):
        check_replaceable(tmp_path / "file", "me")
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(InputError, match="symbolic link"):
        check_replaceable(tmp_path / "link", "me")
    other = tmp_path / "other"
    with owned_directory(other, "someone else") as tmp:
        (tmp / "r.md").write_text("")
    with pytest.raises(InputError, match="written by someone else"):
        check_replaceable(other, "me")
    # An unreadable or forged-looking marker counts as none.
    (other / MARKER).write_text("{not json")
    with pytest.raises(InputError, match="not written by me"):
        check_replaceable(other, "me")


def test_owned_files_replaces_only_its_own_files(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "results.sqlite").write_text("store")
    with owned_files(out, "me") as tmp:
        (tmp / "README.md").write_text("v1")
    assert read_marker(out) == {"owner": "me", "files": ["README.md"]}
    with owned_files(out, "me") as tmp:
        (tmp / "README.md").write_text("v2")
        (tmp / "per_k.csv").write_text("")
    assert (out / "README.md").read_text() == "v2" and (out / "results.sqlite").read_text() == "store"
    assert read_marker(out)["files"] == ["README.md", "per_k.csv"]
    with pytest.raises(InputError, match="results.sqlite"):
        with owned_files(out, "me") as tmp:
            (tmp / "results.sqlite").write_text("clobbered")
    assert (out / "results.sqlite").read_text() == "store"
    with pytest.raises(InputError, match="results.sqlite"):
        check_files_replaceable(out, "me", ["results.sqlite"])
    with pytest.raises(InputError, match="written by me"):
        check_files_replaceable(out, "you", ["x"])
    assert json.loads((out / MARKER).read_text())["owner"] == "me"


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
