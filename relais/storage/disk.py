"""Small, careful file operations the storage format needs: whole writes and reads, durable
folder entries, and deleting a data file with its checkpoint."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from relais.storage.format import IntegrityError, tail_path


def write_all(fd: int, data) -> None:
    """os.write until all of ``data`` is written (a write may be partial, e.g. after a signal)."""
    mv = memoryview(data)
    while len(mv):
        mv = mv[os.write(fd, mv) :]


def read_exact(f, buf) -> None:
    """Fill ``buf`` from ``f``; running out means the file is not what its header promises."""
    mv, got = memoryview(buf), 0
    while got < len(mv):
        n = f.readinto(mv[got:])
        if not n:
            raise IntegrityError("file ends in the middle of a record")
        got += n


def fsync_dir(folder: Path) -> None:
    """fsync a folder, so that a file created, renamed or removed in it stays so after a crash."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_key_file(path: Path, key_hex: bytes) -> None:
    """Write a new key file (``key_hex`` and a newline, mode 0600) atomically and durably, never
    replacing one that exists: written to a temporary name, fsynced, then link()ed into place.
    link(), not rename(): if another process created the key meanwhile, rename would replace a key
    it may already have wrapped file keys with, and those files would be lost."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            write_all(fd, key_hex + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def shred_file(path: Path) -> bool:
    """Delete a data file and any checkpoint of it; returns whether the data file existed.

    Crypto-shredding: the caller deletes the wrapped key first, which turns the ciphertext into
    noise. The file is only unlinked, not overwritten: on SSDs (wear levelling) and on journaling
    or copy-on-write file systems an overwrite lands on other blocks and leaves the old ones intact.
    """
    path = Path(path)
    tail = tail_path(path)
    tail.unlink(missing_ok=True)
    tail.with_name(tail.name + ".tmp").unlink(missing_ok=True)
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
