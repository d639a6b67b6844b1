"""Write output folders all at once, and never replace what the toolkit did not write.

The policy every report-writing command follows (:func:`owned_directory`, :func:`owned_files`):
an output folder carries a marker file, :data:`MARKER`, naming the command that wrote it and the
files it owns. An existing folder is replaced whole only if it is empty or its marker names the
same command and it holds nothing but the files listed there; a file is replaced only if the
marker lists it. Otherwise the command refuses with :class:`InputError` (exit status 2) and
writes nothing. New folders get the user's normal permissions (the umask applies).

Work in progress lives in hidden temporaries beside its target, named
``.NAME.HOST-PID-XXXXXXXX.tmp`` after the machine and process that made them: a process killed
before it could clean up leaves one behind, and the next command writing to the same folder
removes it once that process is gone (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import InputError

__all__ = [
    "MARKER",
    "atomic_directory",
    "atomic_files",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_replaceable",
    "check_files_replaceable",
    "check_writable",
    "created_folder",
    "owned_directory",
    "owned_files",
    "read_marker",
    "remove_stale_temporaries",
    "temporary_name",
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


# The host part of a temporary's name: no dots, so that the name parses back unambiguously.
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
_TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>[0-9]+)-[0-9a-f]{8}\.tmp$")


def temporary_name(stem: str) -> str:
    """A fresh name ``.stem.HOST-PID-XXXXXXXX.tmp`` for a temporary of this process."""
    return f".{stem}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False  # a live process of another user (or a pid this system cannot have): leave it be
    return False


def remove_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Remove the temporaries in ``folder`` left by processes of this machine that are gone; return their names.

    Only names made by :func:`temporary_name` count; those of another machine (a Dask worker writing to a
    shared file system) or of a live process are left alone.
    """
    folder = Path(folder)
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return []
    removed = []
    for name in names:
        m = _TEMPORARY.match(name)
        if m is None or m["host"] != _HOST or not _process_gone(int(m["pid"])):
            continue
        path = folder / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(name)
    return removed


def _nearest_existing(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def check_writable(folder: str | os.PathLike, what: str | os.PathLike | None = None) -> None:
    """InputError unless this process can create entries in ``folder`` (an existing folder), tried for real.

    ``os.access`` is not enough: it says yes to root on a read-only file system and under /proc or /sys.
    ``what`` names the output in the message (default: the folder).
    """
    folder = Path(folder)
    label = what if what is not None else folder
    if not folder.is_dir():
        raise InputError(f"{label}: cannot write there ({folder} is not a folder)")
    probe = folder / temporary_name("probe")
    try:
        os.mkdir(probe)
    except OSError as exc:
        raise InputError(f"{label}: cannot write there ({folder}: {exc.strerror or exc})") from None
    with contextlib.suppress(OSError):
        probe.rmdir()


def _check_creatable(target: Path) -> None:
    """InputError unless ``target`` can be created: its nearest existing parent is a folder this process may write."""
    parent = _nearest_existing(Path(os.path.abspath(target)).parent)
    if not parent.is_dir():
        raise InputError(f"{target}: cannot create the folder ({parent} is not a folder)")
    check_writable(parent, target)


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
    if Path(os.path.abspath(target)).parent != Path(os.path.abspath(target)):
        check_writable(Path(os.path.abspath(target)).parent, target)  # the new folder is built beside it
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
    command makes the whole folder off limits. The folder must be writable, or creatable if absent.
    """
    target = Path(target)
    if not _check_folder(target):
        _check_creatable(target)
        return
    check_writable(target)
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


@contextlib.contextmanager
def created_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Create ``folder`` and its missing parents for the block; if the block fails, remove those of them
    it created that are empty again (never anything else)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} exists and is not a folder")
    created = _make_parents(folder)
    try:
        yield folder
    except BaseException:
        _remove_created(created)
        raise


def _new_hidden_dir(parent: Path, stem: str) -> Path:
    """A new empty folder ``parent/.stem.HOST-PID-XXXX.tmp`` with the umask's permissions (not mkdtemp's 0700).

    Stale temporaries of processes that are gone are removed from ``parent`` first.
    """
    remove_stale_temporaries(parent)
    for _ in range(100):
        path = parent / temporary_name(stem)
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
            old = target.with_name(temporary_name(f"{target.name}.old"))
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
    """Yield a temporary folder inside ``target``; each file written there replaces its namesake in ``target``
    on success.

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
        # A file claimed before and still there stays claimed (a later run may write it again); a claimed file
        # that is gone is claimed no more.
        owned = {n for n in marker["files"] if (target / n).exists()} if marker else set()
        _write_marker(tmp, owner, owned | set(names))
        # The marker goes first: an interruption then leaves files claimed, never owned files unclaimed.
        for path in sorted(tmp.iterdir(), key=lambda p: p.name != MARKER):
            os.replace(path, target / path.name)
    except BaseException:
        _remove_tmp_and_created(tmp, created)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o666, sync: bool = False) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file beside it, renamed over it.

    ``mode`` is the new file's permissions before the umask (0o600: its owner's alone); with ``sync`` the data
    reach the disk before the rename, so that a crash never leaves ``path`` naming an empty file.
    """
    path = Path(path)
    created = _make_parents(path.parent)
    remove_stale_temporaries(path.parent)
    tmp = path.parent / temporary_name(path.name)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        _remove_created(created)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` whole or not at all, with the usual mode."""
    atomic_write_bytes(path, text.encode("utf-8"))
