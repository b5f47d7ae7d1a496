"""Free space: uploads stop short of filling the disk, so that the database can always write.

The database, the data files and data/tmp share the data folder's file system. If an upload
filled it, SQLite could not write a session or an audit row, nor even the deletion of the
partial upload (a delete needs room in the write-ahead log): every login would fail and
``/healthz`` answer 503 until an operator freed space by hand. So every upload keeps
:data:`RESERVE` bytes free for the database: it is refused before its first byte when its
announced length does not fit (507 at once, nothing stored), and stopped at the block that would
cut into the reserve when the length was not announced or other uploads filled the disk meanwhile.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Room for what the database writes between two checks: sessions, audit rows and a write-ahead log
# that grows to about 4 MiB between SQLite's automatic checkpoints, with a wide margin.
RESERVE = 16 * 1024 * 1024


class DiskFull(OSError):
    """Storing this would leave less than the reserve free (an OSError, like the real ENOSPC)."""

    def __init__(self, needed: int):
        super().__init__(errno.ENOSPC, f"storing {needed} bytes would cut into the database's reserve")


def free(folder: Path) -> int:
    """Bytes an unprivileged process may still write on ``folder``'s file system."""
    return shutil.disk_usage(folder).free


def ensure_space(folder: Path, length: int) -> None:
    """Raise DiskFull unless ``length`` more bytes in ``folder`` leave the reserve free."""
    if free(folder) - length < RESERVE:
        raise DiskFull(length)


def checked(folder: Path, write: Callable[[bytes], T]) -> Callable[[bytes], T]:
    """``write`` that first makes sure its block leaves the reserve free (one statvfs, microseconds,
    for each block of a MiB)."""

    def write_checked(block) -> T:
        ensure_space(folder, len(block))
        return write(block)

    return write_checked


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full: ENOSPC (or a quota) from the OS, SQLITE_FULL from SQLite."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
