"""bladefl_platform.atomic: output folders and files appear whole or not at all, a folder or file the toolkit did
not write is never replaced, the marker says what a command owns, and everything gets the user's normal
permissions (the umask), not a temporary's private ones."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from helpers import snapshot

from bladefl_platform import atomic
from bladefl_platform.atomic import (
    MARKER,
    atomic_directory,
    atomic_files,
    atomic_write_text,
    check_files_replaceable,
    check_replaceable,
    created_folder,
    owned_directory,
    owned_files,
    read_marker,
)
from bladefl_platform.errors import InputError


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def no_space(*args: object) -> None:
    """A stand-in for os.replace on a full disk."""
    raise OSError(28, "No space left on device")


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """Set the process umask for the test; the old one is restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


# ---------------------------------------------------------------------------------------------
# Markers


def test_the_marker_names_the_owner_and_exactly_the_files_it_wrote(tmp_path):
    with owned_directory(tmp_path / "out", "bladefl-validate partition") as tmp:
        (tmp / "partition.png").write_bytes(b"png")
        (tmp / "partition.csv").write_text("client,0\n")
    raw = json.loads((tmp_path / "out" / MARKER).read_text())
    assert raw["owner"] == "bladefl-validate partition" and raw["files"] == ["partition.csv", "partition.png"]
    assert read_marker(tmp_path / "out") == {"owner": "bladefl-validate partition",
                                             "files": ["partition.csv", "partition.png"]}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MARKER, "partition.csv", "partition.png"]


@pytest.mark.parametrize("content", [
    "{not json", "[]", json.dumps({"files": ["a"]}), json.dumps({"owner": 3, "files": []}),
    json.dumps({"owner": "me"}), json.dumps({"owner": "me", "files": "a"}), json.dumps({"owner": "me", "files": [1]}),
    json.dumps({"owner": "me", "files": [], "pad": "x" * (1 << 20)}),  # larger than a marker may be
])
def test_a_marker_that_is_not_one_counts_as_none(tmp_path, content):
    (tmp_path / MARKER).write_text(content)
    assert read_marker(tmp_path) is None
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match=f"not written by me .*{MARKER}"):
        check_replaceable(tmp_path, "me")


def test_read_marker_of_a_folder_without_one(tmp_path):
    assert read_marker(tmp_path) is None and read_marker(tmp_path / "absent") is None


# ---------------------------------------------------------------------------------------------
# Replacing only what the toolkit wrote


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


def test_an_owned_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "out"
    with owned_directory(target, "me") as tmp:
        (tmp / "old.csv").write_text("old")
        (tmp / "kept.md").write_text("v1")
    with owned_directory(target, "me") as tmp:
        (tmp / "kept.md").write_text("v2")
    assert snapshot(target) == {MARKER: (target / MARKER).read_bytes(), "kept.md": b"v2"}
    assert read_marker(target) == {"owner": "me", "files": ["kept.md"]}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary or old copy left beside it


@pytest.mark.parametrize("setup, fragment", [
    (lambda t: (t / "notes.txt").write_text("mine"), "not written by me"),
    (lambda t: (t / MARKER).write_text(json.dumps({"owner": "you", "files": []})), "written by you, not me"),
    (lambda t: [(t / MARKER).write_text(json.dumps({"owner": "me", "files": ["a"]})), (t / "b").write_text("")],
     r"did not write \(b\)"),
])
def test_an_owned_folder_is_refused_before_the_block_runs(tmp_path, setup, fragment):
    target = tmp_path / "out"
    target.mkdir()
    setup(target)
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match=fragment):
        with owned_directory(target, "me"):
            pytest.fail("the block ran")
    assert snapshot(tmp_path) == before


def test_atomic_directory_replaces_only_when_told_to(tmp_path):
    target = tmp_path / "run"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(InputError, match="exists already"):
        with atomic_directory(target):
            pytest.fail("the block ran")
    with atomic_directory(target, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert snapshot(tmp_path) == {"run": None, "run/b": b"2"}


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
    with pytest.raises(InputError, match="written by me, not you"):
        with owned_files(out, "you") as tmp:
            (tmp / "README.md").write_text("theirs")
    assert json.loads((out / MARKER).read_text())["owner"] == "me"
    assert snapshot(out) == {MARKER: (out / MARKER).read_bytes(), "README.md": b"v2", "per_k.csv": b"",
                             "results.sqlite": b"store"}
    # A file it no longer writes stays claimed while it is there, and is claimed no more once it is gone.
    with owned_files(out, "me") as tmp:
        (tmp / "README.md").write_text("v3")
    assert read_marker(out)["files"] == ["README.md", "per_k.csv"]
    (out / "per_k.csv").unlink()
    with owned_files(out, "me") as tmp:
        (tmp / "README.md").write_text("v4")
    assert read_marker(out)["files"] == ["README.md"]


def test_atomic_files_replaces_each_namesake_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_text("old")
    (out / "b.csv").write_text("untouched")
    with atomic_files(out) as tmp:
        (tmp / "a.csv").write_text("new")
        (tmp / "c.csv").write_text("added")
    assert snapshot(out) == {"a.csv": b"new", "b.csv": b"untouched", "c.csv": b"added"}
    with pytest.raises(RuntimeError):
        with atomic_files(out) as tmp:
            (tmp / "a.csv").write_text("half")
            raise RuntimeError("boom")
    assert snapshot(out) == {"a.csv": b"new", "b.csv": b"untouched", "c.csv": b"added"}


def test_atomic_write_text_replaces_the_file_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "profile.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new, with a newline\r\n")
    assert path.read_bytes() == b"new, with a newline\r\n"  # written as given
    monkeypatch.setattr(atomic.os, "replace", no_space)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(path, "never")
    assert snapshot(tmp_path) == {"profile.json": b"new, with a newline\r\n"}


# ---------------------------------------------------------------------------------------------
# Nothing left behind on failure


WRITERS: dict[str, Callable[[Path], AbstractContextManager[Path]]] = {
    "atomic_directory": atomic_directory,
    "owned_directory": lambda target: owned_directory(target, "me"),
    "atomic_files": atomic_files,
    "owned_files": lambda target: owned_files(target, "me"),
}


@pytest.mark.parametrize("name", WRITERS)
def test_a_failed_block_leaves_no_trace_not_even_the_parents_it_made(tmp_path, name):
    with pytest.raises(KeyboardInterrupt):
        with WRITERS[name](tmp_path / "x" / "y" / "out") as tmp:
            (tmp / "half.csv").write_text("")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def add_a_file(target: Path) -> None:
    """The user adds a file while the block runs: the check just before the swap refuses to replace the folder."""
    (target / "late.txt").write_text("the user's")


def fail(target: Path) -> None:
    """The block fails."""
    raise RuntimeError("boom")


@pytest.mark.parametrize("spoil, error", [(add_a_file, r"did not write \(late.txt\)"), (fail, "boom")])
def test_a_failed_replacement_keeps_the_old_folder(tmp_path, spoil, error):
    target = tmp_path / "out"
    with owned_directory(target, "me") as tmp:
        (tmp / "report.md").write_text("old")
    before = snapshot(target)
    with pytest.raises((InputError, RuntimeError), match=error):
        with owned_directory(target, "me") as tmp:
            (tmp / "report.md").write_text("new")
            spoil(target)
    assert snapshot(target) == {**before, **({"late.txt": b"the user's"} if spoil is add_a_file else {})}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_write_text_failure_leaves_no_folder_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "replace", no_space)
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "a" / "b" / "p.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_created_folder_removes_only_the_empty_folders_it_made(tmp_path):
    with pytest.raises(RuntimeError):
        with created_folder(tmp_path / "a" / "b"):
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with created_folder(tmp_path / "a" / "b") as folder:
            (folder / "kept.txt").write_text("a result")
            raise RuntimeError("boom")
    assert (tmp_path / "a" / "b" / "kept.txt").is_file()
    with created_folder(tmp_path / "c") as folder:
        pass
    assert folder.is_dir()


# ---------------------------------------------------------------------------------------------
# Where nothing can be written


def test_writability_is_tried_for_real(tmp_path, monkeypatch):
    # As root, os.access says yes to a read-only file system, /proc and /sys: only creating something tells.
    monkeypatch.setattr(atomic.os, "access", lambda *a, **k: True)
    real_mkdir = os.mkdir

    def refuse(path, *a, **k):
        if Path(path).parent == tmp_path / "ro":
            raise OSError(30, "Read-only file system")
        return real_mkdir(path, *a, **k)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(atomic.os, "mkdir", refuse)
    with pytest.raises(InputError, match="Read-only file system"):
        check_replaceable(tmp_path / "ro" / "out", "me")
    with pytest.raises(InputError, match="Read-only file system"):
        atomic.check_files_replaceable(tmp_path / "ro", "me", ["README.md"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro"]


@pytest.mark.parametrize("where", ["/proc/bladefl-out", "/sys/bladefl-out"])
def test_proc_and_sys_are_not_writable(where):
    if not Path(where).parent.is_dir():
        pytest.skip(f"no {Path(where).parent} here")
    with pytest.raises(InputError, match="cannot"):
        check_replaceable(where, "me")


# ---------------------------------------------------------------------------------------------
# Permissions


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_everything_written_gets_the_umask_permissions(tmp_path, umask, mask):
    umask(mask)
    for name, writer in WRITERS.items():
        with writer(tmp_path / name / "out") as tmp:
            (tmp / "report.md").write_text("")
    atomic_write_text(tmp_path / "single" / "p.json", "{}")
    folders = [p for p in tmp_path.rglob("*") if p.is_dir()]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(folders) == 9 and len(files) == 7  # four writers' out/ and their parents, two markers
    assert {p.relative_to(tmp_path).as_posix(): mode(p) for p in folders} == \
        {p.relative_to(tmp_path).as_posix(): 0o777 & ~mask for p in folders}
    assert {p.relative_to(tmp_path).as_posix(): mode(p) for p in files} == \
        {p.relative_to(tmp_path).as_posix(): 0o666 & ~mask for p in files}
