"""Write output folders all at once, and never replace what the toolkit did not write.

The policy every report-writing command follows (:func:`owned_directory`, :func:`owned_files`):
an output folder carries a marker file, :data:`MARKER`, naming the command that wrote it and the
files it owns. An existing folder is replaced whole only if it is empty or its marker names the
same command and it holds nothing but the files listed there; a file is replaced only if the
marker lists it. Otherwise the command refuses with :class:`InputError` (exit status 2) and
writes nothing. New folders get the user's normal permissions (the umask applies).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import InputError

__all__ = [
    "MARKER",
    "atomic_directory",
    "atomic_files",
    "atomic_write_text",
    "check_replaceable",
    "check_files_replaceable",
    "owned_directory",
    "owned_files",
    "read_marker",
]

#: The file, inside an output folder, that names the command that wrote it and the files it owns.
MARKER = ".bladefl-owner.json"
_MARKER_MAX_BYTES = 1 << 20


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of ``folder`` as ``{"owner": str, "files": [names]}``, or None if it has no valid one."""
    path = Path(folder) / MARKER
    try:
        if not path.is_file() or path.stat().st_size > _MARKER_MAX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("owner"), str):
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return {"owner": data["owner"], "files": files}


def _write_marker(folder: Path, owner: str, files: Iterable[str]) -> None:
    names = sorted(set(files) - {MARKER})
    text = json.dumps({"owner": owner, "files": names, "note": "written by the bladefl toolkit; do not edit"}, indent=2)
    (folder / MARKER).write_text(text + "\n", encoding="utf-8")


def _entries(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir())
    except OSError as exc:
        raise InputError(f"{folder}: cannot read the folder ({exc.strerror or exc})") from None


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _check_folder(target: Path) -> bool:
    """True if ``target`` exists (as a real folder); InputError if it is anything else."""
    if target.is_symlink():
        raise InputError(f"{target} is a symbolic link: give the folder itself")
    if not target.exists():
        return False
    if not target.is_dir():
        raise InputError(f"{target} exists and is not a folder")
    return True


def _check_creatable(target: Path) -> None:
    """InputError unless the nearest existing parent of ``target`` is a folder this process may write."""
    parent = Path(os.path.abspath(target)).parent
    while not parent.exists() and parent.parent != parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{target}: cannot create the folder ({parent} is not a writable folder)")


def check_replaceable(target: str | os.PathLike, owner: str) -> None:
    """Raise :class:`InputError` unless ``owner`` may replace the folder ``target`` whole.

    Allowed: ``target`` does not exist, is empty, or carries a marker naming ``owner`` and holds
    only the files that marker lists.
    """
    target = Path(target)
    if not _check_folder(target):
        _check_creatable(target)
        return
    entries = _entries(target)
    if not entries:
        return
    marker = read_marker(target)
    if marker is None:
        raise InputError(
            f"{target} exists and was not written by {owner} (it has no {MARKER}); "
            f"choose another folder or remove it"
        )
    if marker["owner"] != owner:
        raise InputError(f"{target} was written by {marker['owner']}, not {owner}: choose another folder or remove it")
    foreign = [e for e in entries if e != MARKER and e not in marker["files"]]
    if foreign:
        raise InputError(
            f"{target} holds files {owner} did not write ({_listing(foreign)}): move them or choose another folder"
        )


def check_files_replaceable(target: str | os.PathLike, owner: str, names: Iterable[str]) -> None:
    """Raise :class:`InputError` unless ``owner`` may write the files ``names`` into the folder ``target``.

    Allowed: each file is absent, or listed in a marker naming ``owner``. A marker naming another
    command makes the whole folder off limits.
    """
    target = Path(target)
    if not _check_folder(target):
        return
    marker = read_marker(target)
    if marker is not None and marker["owner"] != owner:
        raise InputError(f"{target} was written by {marker['owner']}, not {owner}: choose another folder")
    owned = set(marker["files"]) if marker else set()
    clash = sorted(n for n in set(names) if n not in owned and (target / n).exists())
    if clash:
        raise InputError(
            f"{target} already holds {_listing(clash)}, which {owner} did not write: move them or choose another folder"
        )


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents (umask applies); return those created, outermost first."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    created = []
    try:
        for d in reversed(missing):
            os.mkdir(d)
            created.append(d)
    except OSError as exc:
        _remove_created(created)
        raise InputError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    return created


def _remove_created(created: list[Path]) -> None:
    for d in reversed(created):
        with contextlib.suppress(OSError):
            d.rmdir()


def _new_hidden_dir(parent: Path, stem: str) -> Path:
    """A new empty folder ``parent/.stem.XXXX.tmp`` with the umask's permissions (not mkdtemp's 0700)."""
    for _ in range(100):
        path = parent / f".{stem}.{secrets.token_hex(4)}.tmp"
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"{parent}: cannot write there ({exc.strerror or exc})") from None
    raise InputError(f"{parent}: cannot create a temporary folder there")


@contextlib.contextmanager
def _swap_in(target: Path, before_commit=None) -> Iterator[Path]:
    """Yield a new folder beside ``target`` that replaces it on success; on failure leave no trace."""
    target = Path(os.path.abspath(target))
    if target.parent == target:
        raise InputError(f"{target}: cannot replace a file system's root")
    created = _make_parents(target.parent)
    tmp = _new_hidden_dir(target.parent, target.name)
    try:
        yield tmp
        if before_commit is not None:
            before_commit(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_created(created)
        raise


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``target`` when the block succeeds, and vanishes if it fails.

    With ``overwrite``, an existing ``target`` is replaced whatever it holds: report-writing
    commands use :func:`owned_directory` instead, which never replaces a folder they did not write.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise InputError(f"{target} exists already: choose another folder or remove it")
    with _swap_in(target) as tmp:
        yield tmp


@contextlib.contextmanager
def owned_directory(target: str | os.PathLike, owner: str) -> Iterator[Path]:
    """Yield an empty folder that replaces ``target`` whole, marked as ``owner``'s, when the block succeeds.

    :func:`check_replaceable` runs on entry and again just before the swap; a failed block or
    check leaves ``target`` as it was and nothing else behind.
    """
    target = Path(target)
    check_replaceable(target, owner)

    def commit(tmp: Path) -> None:
        check_replaceable(target, owner)
        _write_marker(tmp, owner, _entries(tmp))

    with _swap_in(target, commit) as tmp:
        yield tmp


@contextlib.contextmanager
def atomic_files(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder inside ``target``; each file written there replaces its namesake in ``target`` on success.

    For a folder that lives on (a resumable sweep's output with its store) whose report files
    must each appear whole or not at all. :func:`owned_files` adds the ownership check.
    """
    target = Path(target)
    created = _make_parents(target)
    tmp = _new_hidden_dir(target, "report")
    try:
        yield tmp
        for path in sorted(tmp.iterdir()):
            os.replace(path, target / path.name)
    except BaseException:
        _remove_tmp_and_created(tmp, created)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def _remove_tmp_and_created(tmp: Path, created: list[Path]) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    _remove_created(created)


@contextlib.contextmanager
def owned_files(target: str | os.PathLike, owner: str) -> Iterator[Path]:
    """Like :func:`atomic_files`, for ``owner``: files it did not write are never replaced; the marker lists the rest.

    The files the block writes are checked with :func:`check_files_replaceable` before any is
    moved into ``target``; other files in ``target`` are left alone.
    """
    target = Path(target)
    _check_folder(target)
    created = _make_parents(target)
    tmp = _new_hidden_dir(target, "report")
    try:
        yield tmp
        names = [p.name for p in tmp.iterdir()]
        check_files_replaceable(target, owner, names)
        marker = read_marker(target)
        owned = set(marker["files"]) if marker else set()
        _write_marker(tmp, owner, owned | set(names))
        # The marker goes first: an interruption then leaves files claimed, never owned files unclaimed.
        for path in sorted(tmp.iterdir(), key=lambda p: p.name != MARKER):
            os.replace(path, target / path.name)
    except BaseException:
        _remove_tmp_and_created(tmp, created)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file beside it, renamed), with the usual mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
