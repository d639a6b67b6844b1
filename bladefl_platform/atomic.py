"""Write output folders all at once, and never replace what the toolkit did not write.

The policy every report-writing command follows (:func:`owned_directory`, :func:`owned_files`):
an output folder carries a marker file, :data:`MARKER`, naming the command that wrote it and the
files it owns. An existing folder is replaced whole only if it is empty or its marker names the
same command and it holds nothing but the files listed there; a file is replaced only if the
marker lists it. Otherwise the command refuses with :class:`InputError` (exit status 2) and
writes nothing. New folders get the user's normal permissions (the umask applies).

Every path is made canonical once, by :func:`canonical` (symbolic links and ``..`` resolved as the
file system resolves them, not lexically), and that one path is both checked and written: a check
can never pass on one folder while another is replaced.

Work in progress lives in hidden temporary folders beside its target, named
``.NAME.HOST-PID-XXXXXXXX.tmp`` after the machine and process that made them, each holding the file
:data:`TEMPORARY_MARKER` that says so. A process killed before it could clean up leaves one behind,
and the next command writing to the same folder removes it once that process is gone
(:func:`remove_stale_temporaries`), but only if its marker proves this toolkit made it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .errors import InputError

__all__ = [
    "MARKER",
    "atomic_directory",
    "atomic_files",
    "atomic_write_bytes",
    "atomic_write_text",
    "canonical",
    "check_replaceable",
    "check_files_replaceable",
    "check_writable",
    "created_folder",
    "owned_directory",
    "owned_files",
    "read_marker",
    "remove_stale_temporaries",
    "TEMPORARY_MARKER",
    "temporary_name",
]

#: The file, inside an output folder, that names the command that wrote it and the files it owns.
MARKER = ".bladefl-owner.json"
_MARKER_MAX_BYTES = 1 << 20
#: The file inside a temporary folder that proves this toolkit made it (and so may remove it once stale).
TEMPORARY_MARKER = ".bladefl-temporary.json"


def canonical(path: str | os.PathLike) -> Path:
    """The one absolute path that ``path`` names, as the file system resolves it, for checking and writing alike.

    Folders up to the last component are resolved physically (``link/..`` is the link's target's parent, as the
    kernel has it; ``missing/..`` is the folder holding ``missing``); the last component is kept as it is, so a
    symbolic link there is seen as one. A name too long for the file system is refused here, with one line.
    """
    raw = os.fspath(path)
    if not raw:
        raise InputError("an empty path: give a folder or file name")
    if "\0" in raw:
        raise InputError(f"{raw!r}: a path cannot hold a NUL character")
    absolute = os.path.join(os.getcwd(), raw)
    head, name = os.path.split(absolute.rstrip(os.sep) or os.sep)
    if name in ("", ".", ".."):
        resolved = Path(os.path.realpath(absolute))
    else:
        resolved = Path(os.path.realpath(head)) / name
    _check_lengths(raw, resolved)
    return resolved


def _check_lengths(raw: str, resolved: Path) -> None:
    name_max, path_max = 255, 4096
    with contextlib.suppress(OSError, ValueError):
        existing = _nearest_existing(resolved)
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        path_max = os.pathconf(existing, "PC_PATH_MAX")
    room = len(f"..old.{_HOST}-4194304-01234567.tmp")  # the longest temporary made beside the last name
    names = [(part, 0) for part in resolved.parts[1:-1]] + [(resolved.name, room)]
    for part, extra in names:
        if len(os.fsencode(part)) + extra > name_max:
            raise InputError(f"{raw}: the name {part[:40]}... is too long (at most {name_max - extra} bytes here)")
    if len(os.fsencode(resolved)) + room > path_max:
        raise InputError(f"{raw}: the path is too long (at most {path_max - room} bytes here)")


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


def _mark_temporary(folder: Path) -> None:
    """Write into ``folder`` the proof that this process made it as a temporary."""
    text = json.dumps({"made_by": "bladefl", "name": folder.name})
    (folder / TEMPORARY_MARKER).write_text(text + "\n", encoding="utf-8")


def _proven_temporary(path: Path) -> bool:
    """True if ``path`` is a real folder whose marker says this toolkit made it, under this very name."""
    if path.is_symlink() or not path.is_dir():
        return False
    marker = path / TEMPORARY_MARKER
    try:
        if marker.is_symlink() or marker.stat().st_size > _MARKER_MAX_BYTES:
            return False
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("made_by") == "bladefl" and data.get("name") == path.name


def remove_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Remove the temporaries in ``folder`` left by processes of this machine that are gone; return their names.

    Only folders named by :func:`temporary_name` whose :data:`TEMPORARY_MARKER` proves this toolkit made them
    count; those of another machine (a Dask worker writing to a shared file system) or of a live process, and
    anything without that proof (a user's file or folder of the same shape of name), are left alone.
    """
    folder = canonical(folder)
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
        if not _proven_temporary(path):
            continue
        try:
            shutil.rmtree(path)
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
    label = what if what is not None else folder
    folder = canonical(folder)
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
    parent = _nearest_existing(target.parent)
    if not parent.is_dir():
        raise InputError(f"{target}: cannot create the folder ({parent} is not a folder)")
    check_writable(parent, target)


def check_replaceable(target: str | os.PathLike, owner: str) -> None:
    """Raise :class:`InputError` unless ``owner`` may replace the folder ``target`` whole.

    Allowed: ``target`` does not exist, is empty, or carries a marker naming ``owner`` and holds
    only the files that marker lists.
    """
    target = canonical(target)
    if not _check_folder(target):
        _check_creatable(target)
        return
    entries = _entries(target)
    if target.parent != target:
        check_writable(target.parent, target)  # the new folder is built beside it
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
    target = canonical(target)
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
    folder = canonical(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} exists and is not a folder")
    created = _make_parents(folder)
    try:
        yield folder
    except BaseException:
        _remove_created(created)
        raise


def _new_hidden_dir(parent: Path, stem: str) -> Path:
    """A new folder ``parent/.stem.HOST-PID-XXXX.tmp`` with the umask's permissions (not mkdtemp's 0700), holding
    only its :data:`TEMPORARY_MARKER`.

    Stale temporaries of processes that are gone are removed from ``parent`` first.
    """
    remove_stale_temporaries(parent)
    for _ in range(100):
        path = parent / temporary_name(stem)
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"{parent}: cannot write there ({exc.strerror or exc})") from None
        try:
            _mark_temporary(path)
        except OSError as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise InputError(f"{parent}: cannot write there ({exc.strerror or exc})") from None
        return path
    raise InputError(f"{parent}: cannot create a temporary folder there")


@contextlib.contextmanager
def _swap_in(target: Path, before_commit=None) -> Iterator[Path]:
    """Yield a new folder beside the canonical ``target`` that replaces it on success; on failure leave no trace.

    The folder replaced is first renamed to a temporary and marked as one, so that a kill before it is removed
    leaves it for the next command to remove; anything at ``target`` that is not a real folder is refused.
    """
    if target.parent == target:
        raise InputError(f"{target}: cannot replace a file system's root")
    _check_folder(target)
    created = _make_parents(target.parent)
    tmp = _new_hidden_dir(target.parent, target.name)
    try:
        yield tmp
        if before_commit is not None:
            before_commit(tmp)
        (tmp / TEMPORARY_MARKER).unlink(missing_ok=True)
        if target.exists():
            old = target.with_name(temporary_name(f"{target.name}.old"))
            os.replace(target, old)
            _mark_temporary(old)
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
    target = canonical(target)
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
    target = canonical(target)
    check_replaceable(target, owner)

    def commit(tmp: Path) -> None:
        check_replaceable(target, owner)
        _write_marker(tmp, owner, [e for e in _entries(tmp) if e != TEMPORARY_MARKER])

    with _swap_in(target, commit) as tmp:
        yield tmp


@contextlib.contextmanager
def atomic_files(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder inside ``target``; each file written there replaces its namesake in ``target``
    on success.

    For a folder that lives on (a resumable sweep's output with its store) whose report files
    must each appear whole or not at all. :func:`owned_files` adds the ownership check.
    """

    def place(target: Path, tmp: Path) -> None:
        for path in _made_in(tmp):
            os.replace(path, target / path.name)

    with _files_into(target, place) as tmp:
        yield tmp


@contextlib.contextmanager
def owned_files(target: str | os.PathLike, owner: str) -> Iterator[Path]:
    """Like :func:`atomic_files`, for ``owner``: files it did not write are never replaced; the marker lists the rest.

    The files the block writes are checked with :func:`check_files_replaceable` before any is
    moved into ``target``; other files in ``target`` are left alone.
    """

    def place(target: Path, tmp: Path) -> None:
        names = [p.name for p in _made_in(tmp)]
        check_files_replaceable(target, owner, names)
        marker = read_marker(target)
        # A file claimed before and still there stays claimed (a later run may write it again); a claimed file
        # that is gone is claimed no more.
        owned = {n for n in marker["files"] if (target / n).exists()} if marker else set()
        _write_marker(tmp, owner, owned | set(names))
        # The marker goes first: an interruption then leaves files claimed, never owned files unclaimed.
        for path in sorted(_made_in(tmp), key=lambda p: p.name != MARKER):
            os.replace(path, target / path.name)

    with _files_into(target, place) as tmp:
        yield tmp


@contextlib.contextmanager
def _files_into(target: str | os.PathLike, place: Callable[[Path, Path], None]) -> Iterator[Path]:
    """Yield a temporary folder inside the canonical ``target``; ``place(target, tmp)`` moves what the block wrote
    there into ``target`` on success; on failure the temporary and the folders made for it are removed."""
    target = canonical(target)
    _check_folder(target)
    created = _make_parents(target)
    tmp = _new_hidden_dir(target, "report")
    try:
        yield tmp
        place(target, tmp)
    except BaseException:
        _remove_tmp_and_created(tmp, created)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def _made_in(tmp: Path) -> list[Path]:
    """What a block wrote into the temporary ``tmp`` (its marker aside), sorted by name."""
    return sorted(p for p in tmp.iterdir() if p.name != TEMPORARY_MARKER)


def _remove_tmp_and_created(tmp: Path, created: list[Path]) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    _remove_created(created)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o666, sync: bool = False) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file beside it, renamed over it.

    ``mode`` is the new file's permissions before the umask (0o600: its owner's alone); with ``sync`` the data
    reach the disk before the rename, so that a crash never leaves ``path`` naming an empty file.
    """
    path = canonical(path)
    if path.is_dir() and not path.is_symlink():
        raise InputError(f"{path} is a folder: give a file path")
    created = _make_parents(path.parent)
    try:
        tmp = _new_hidden_dir(path.parent, path.name)
    except BaseException:
        _remove_created(created)
        raise
    try:
        fd = os.open(tmp / "data", os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp / "data", path)
    except BaseException:
        _remove_tmp_and_created(tmp, created)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` whole or not at all, with the usual mode."""
    atomic_write_bytes(path, text.encode("utf-8"))
