"""However an output path is spelled (``..``, ``.``, symbolic links, missing folders), no user file is changed or
removed: the one canonical path is both checked and written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bladefl_platform import atomic
from bladefl_platform.atomic import (
    TEMPORARY_MARKER,
    atomic_directory,
    canonical,
    created_folder,
    owned_directory,
    owned_files,
    remove_stale_temporaries,
)
from bladefl_platform.errors import InputError
from bladefl_theory.cli import cli as theory_cli

OWNER = "bladefl-theory sensitivity"


def user_tree(root: Path) -> dict[str, bytes | None]:
    """A tree of a user's files and folders, with a symbolic link to one of them; returns its snapshot."""
    (root / "mine").mkdir()
    (root / "mine" / "thesis.tex").write_text("years of work")
    (root / "empty").mkdir()
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / "data.csv").write_text("1,2")
    (root / "deep" / "notes.txt").write_text("notes")
    (root / "file").write_text("a file")
    (root / "link").symlink_to(root / "deep" / "er", target_is_directory=True)
    return survey(root)


def survey(root: Path) -> dict[str, bytes | None]:
    """Every path below ``root`` that is not a symbolic link, with its bytes (None for a folder)."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                out[p.relative_to(root).as_posix()] = None if p.is_dir() else p.read_bytes()
    return out


def kept(before: dict[str, bytes | None], after: dict[str, bytes | None]) -> list[str]:
    """The user's paths that changed or vanished (an empty folder that now holds the toolkit's files aside)."""
    return [p for p, data in before.items() if p not in after or after[p] != data]


def sensitivity(out: str):
    return CliRunner().invoke(theory_cli, ["sensitivity", "--vary", "M=0,4", "--variant", "per-round", "--out", out])


@pytest.mark.parametrize("spelling", ["nothere/../mine", "./nothere/.././mine", "link/../../mine",
                                      "deep/er/../../mine"])
def test_a_path_through_dot_dot_never_replaces_a_users_folder(tmp_path, monkeypatch, spelling):
    before = user_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    r = sensitivity(spelling)
    assert r.exit_code == 2, r.output
    assert "not written by" in r.output
    assert kept(before, survey(tmp_path)) == []


def test_link_dot_dot_is_the_folder_the_file_system_reaches(tmp_path, monkeypatch):
    # link -> deep/er, so link/.. is deep (not the lexical tmp_path), and link/../notes.txt is deep's file.
    user_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert canonical("link/..") == (tmp_path / "deep").resolve()
    assert canonical("link/../target") == (tmp_path / "deep").resolve() / "target"
    assert canonical("nothere/../mine") == tmp_path.resolve() / "mine"


def test_the_cli_writes_where_the_canonical_path_points(tmp_path, monkeypatch):
    user_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert sensitivity("link/../report").exit_code == 0
    assert (tmp_path / "deep" / "report" / "README.md").is_file()
    assert not (tmp_path / "report").exists()


def test_a_name_too_long_is_one_line_and_status_2(tmp_path):
    r = sensitivity(str(tmp_path / ("x" * 300)))
    assert r.exit_code == 2, r.output
    assert "too long" in r.output and len(r.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_stale_temporary_without_the_toolkits_proof_is_never_removed(tmp_path):
    # A user's file, and a user's folder, whose names look like a temporary of a process that is gone.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    victim = tmp_path / f".victim.old.{atomic._HOST}-{gone}-0123abcd.tmp"
    victim.write_text("the user's file")
    folder = tmp_path / f".run.{atomic._HOST}-{gone}-0123abcd.tmp"
    folder.mkdir()
    (folder / "x").write_text("x")
    assert remove_stale_temporaries(tmp_path) == []
    with owned_files(tmp_path, "me") as tmp:
        (tmp / "README.md").write_text("")
    assert victim.read_text() == "the user's file" and (folder / "x").read_text() == "x"


def test_a_replaced_folder_is_marked_as_a_temporary_before_it_is_removed(tmp_path, monkeypatch):
    # Killed between moving the old folder aside and removing it: the next command may remove it, having proof.
    target = tmp_path / "out"
    with owned_directory(target, "me") as tmp:
        (tmp / "a").write_text("1")

    def killed(path, ignore_errors=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt), owned_directory(target, "me") as tmp:
        (tmp / "a").write_text("2")
    monkeypatch.undo()
    left = [p for p in tmp_path.iterdir() if p.name != "out"]
    assert all((p / TEMPORARY_MARKER).is_file() for p in left if p.is_dir())
    assert (target / "a").read_text() == "2"
    assert TEMPORARY_MARKER not in os.listdir(target)


# ---------------------------------------------------------------------------------------------
# Drawn paths over a tree of user files.

COMPONENTS = st.sampled_from(["mine", "empty", "deep", "er", "link", "file", "thesis.tex", "nothere", "new", "..", "."])
SPELLINGS = st.lists(COMPONENTS, min_size=1, max_size=5).map(lambda parts: "/".join(parts))


def attempt(action: str, spelling: str) -> None:
    """One of the writing operations at ``spelling``; a refusal (InputError) is as good as a success."""
    try:
        if action == "owned_directory":
            with owned_directory(spelling, "me") as tmp:
                (tmp / "out.txt").write_text("new")
        elif action == "owned_directory_fails":
            with owned_directory(spelling, "me") as tmp:
                (tmp / "out.txt").write_text("new")
                raise RuntimeError("the block failed")
        elif action == "owned_files":
            with owned_files(spelling, "me") as tmp:
                (tmp / "out.txt").write_text("new")
        elif action == "atomic_directory":
            with atomic_directory(spelling) as tmp:
                (tmp / "out.txt").write_text("new")
        else:
            with created_folder(spelling):
                raise RuntimeError("the block failed")
    except (InputError, RuntimeError):
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=st.sampled_from(["owned_directory", "owned_directory_fails", "owned_files", "atomic_directory",
                               "created_folder"]),
       spellings=st.lists(SPELLINGS, min_size=1, max_size=3))
@example(action="owned_directory", spellings=["nothere/../../mine"])
@example(action="owned_directory", spellings=["../link/../../mine"])
@example(action="owned_files", spellings=["../link/../../deep"])
def test_no_drawn_path_changes_or_removes_a_user_file(tmp_path_factory, action, spellings):
    root = tmp_path_factory.mktemp("tree")
    before = user_tree(root)
    cwd = os.getcwd()
    os.chdir(root / "deep")  # so that ".." reaches the user's other folders
    try:
        for spelling in spellings:
            attempt(action, spelling)
    finally:
        os.chdir(cwd)
    assert kept(before, survey(root)) == [], spellings
