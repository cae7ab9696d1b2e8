"""Files that appear whole or not at all: a temporary file beside the target, then a rename.

Every output of mcsmp (tables, histograms, figures, fitted parameter files, traces, fragments)
goes through here, so a reader (or a resumed sweep) never sees half a file, even after kill -9.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "fsync_dir", "remove_stale_temporaries", "write_atomic"]

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _mode_for(path))
        kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *, sync_dir: bool = True) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_open(path, "wb", sync_dir=sync_dir) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make renames inside ``path`` durable (power loss, not kill -9)."""
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files a killed writer left in ``folder`` (``.<name>.<random>.tmp``)."""
    if folder.is_dir():
        for p in folder.glob(".*.tmp"):
            with suppress(OSError):
                p.unlink()
