"""Files that appear whole or not at all: a temporary file beside the target, then a rename.

Every output of mcsmp (tables, histograms, figures, fitted parameter files, traces, fragments)
goes through here, so a reader (or a resumed sweep) never sees half a file, even after kill -9.
A write that fails (full disk, no permission, read-only filesystem, a path under a file) removes
its temporary file, leaves the target untouched and raises a one-line
:class:`~mcsmp.errors.UserError`. :class:`FolderLock` keeps two writers out of one output folder
and holds a little disk space in reserve, so the folder's ``meta.json`` can still record a failure
when the disk is full.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from ..errors import UserError

__all__ = [
    "FolderLock",
    "atomic_open",
    "check_output_dir",
    "ensure_dir",
    "fsync_dir",
    "os_error",
    "overwrite_in_place",
    "remove_stale_temporaries",
    "write_atomic",
]

LOCK_FILE = ".mcsmp.lock"


def os_error(exc: OSError, path: str | os.PathLike[str], action: str = "cannot write") -> UserError:
    """A one-line UserError for a failed file operation on ``path``."""
    code = errno.errorcode.get(exc.errno or 0, "")
    why = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        why += " (the disk is full)"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why += " (choose a writable folder with -o)"
    return UserError(f"{path}: {action}: {why}" + (f" [{code}]" if code else ""))


def _check_path(path: Path) -> None:
    if "\0" in str(path):
        raise UserError(f"{str(path)!r}: a path cannot contain a NUL character")


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p path``, with a one-line UserError when it cannot be made (a file in the way, no
    permission, a read-only filesystem, /proc)."""
    path = Path(path)
    _check_path(path)
    for p in (path, *path.parents):  # the first existing component must be a folder
        if p.exists():
            if not p.is_dir():
                raise UserError(f"{path}: {p} is a file, not a folder; choose another output path")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, path, "cannot create folder") from None
    return path


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """An output folder that exists (made if needed) and can be written, or a one-line UserError."""
    path = ensure_dir(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mcsmp-probe.", suffix=".tmp", dir=path)
    except OSError as exc:
        raise os_error(exc, path, "cannot write into the output folder") from None
    os.close(fd)
    with suppress(OSError):
        os.unlink(tmp)
    return path

_UMASK = os.umask(0)
os.umask(_UMASK)


def _mode_for(path: Path) -> int:
    """A replaced file keeps its permissions; a new one gets what ``open()`` would give it
    (``mkstemp`` makes 0600 files)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", *, sync_dir: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path`` is
    untouched. ``sync_dir=False`` leaves the folder's fsync (durability of the rename across a
    power loss) to the caller, for batches of files.
    """
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise os_error(exc, path) from None
    try:
        os.fchmod(fd, _mode_for(path))
        kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            raise os_error(exc, path) from None
        raise
    if sync_dir:
        fsync_dir(path.parent)


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *, sync_dir: bool = True) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_open(path, "wb", sync_dir=sync_dir) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def overwrite_in_place(path: str | os.PathLike[str], data: bytes) -> None:
    """Last resort on a full disk, when not even a small temporary file fits: rewrite ``path`` in
    its own blocks (no rename). Not atomic; used only to record a failure in ``meta.json``."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise os_error(exc, path) from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    except OSError as exc:
        raise os_error(exc, path) from None
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make renames inside ``path`` durable (power loss, not kill -9)."""
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_temporaries(folder: Path, *, recursive: bool = False) -> None:
    """Delete temporary files a killed writer left in ``folder`` (``.<name>.<random>.tmp``), and
    with ``recursive`` in every folder below it. Call it only while holding the folder's lock."""
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"):
            with suppress(OSError):
                if p.is_file():
                    p.unlink()


class FolderLock:
    """An exclusive ``fcntl.flock`` on ``<folder>/.mcsmp.lock`` for one writer of an output folder.

    A second writer fails at once with a one-line UserError (it would otherwise delete the first
    one's temporary files). The lock file can also hold a disk reserve (:meth:`reserve`), given
    back by :meth:`release_reserve` so that a final ``meta.json`` fits on a full disk.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> FolderLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        except OSError as exc:
            raise os_error(exc, self.folder, "cannot lock the output folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UserError(
                f"{self.folder}: another mcsmp process is writing into this folder (lock {self.path}); "
                "wait for it to finish, or choose another -o DIR"
            ) from None
        self.fd = fd
        return self

    def reserve(self, nbytes: int) -> bool:
        """Hold ``nbytes`` of disk space in the lock file (False when there is not that much)."""
        assert self.fd is not None
        try:
            os.posix_fallocate(self.fd, 0, max(int(nbytes), 1))
            return True
        except OSError:
            with suppress(OSError):
                os.ftruncate(self.fd, 0)
            return False

    def release_reserve(self) -> None:
        if self.fd is not None:
            with suppress(OSError):
                os.ftruncate(self.fd, 0)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            self.release_reserve()
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None
