"""Resumable uploads (tus) without the HTTP: upload rows, open writers, offsets, expiry.

An upload is a file in state 'uploading' plus a row in ``uploads`` holding its announced length,
the offset durable at the last checkpoint, who may resume it (the owner's session) and when it
expires. Writers stay open between requests in a per-process table, so a PATCH that follows a
dropped connection continues without re-reading the file; after a restart the writer is rebuilt
with :meth:`SegmentWriter.resume`, which re-verifies and re-hashes what was stored. An open writer
holds a descriptor and its partial segment (up to 1 MiB), so at most MAX_OPEN_WRITERS stay open:
past that, the least recently used one that no request is using is closed. Every PATCH ends with a
checkpoint, so nothing is lost; that upload's next request resumes it from disk.

Every function here blocks (disk, fsync, database): the views call them through a worker thread.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from relais import audit, clock, files, storage
from relais.db import Database

# A client may send a whole 20 GB file in one PATCH: checkpoint on the way, so a crash loses at
# most this much, and the offset a restarted server reports moves on.
CHECKPOINT_BYTES = 64 * 1024 * 1024

MAX_OPEN_WRITERS = 32

_writers: OrderedDict[str, storage.SegmentWriter] = OrderedDict()  # least recently used first
_busy: set[str] = set()  # uploads a request is writing to in this process: never closed under it
# Guards both; a HEAD and a PATCH arriving together must not both resume one upload.
_lock = threading.Lock()


def claim(upload_id: str) -> bool:
    """Mark the upload as being written to by this request; False if another request already is."""
    with _lock:
        if upload_id in _busy:
            return False
        _busy.add(upload_id)
        return True


def release(upload_id: str) -> None:
    with _lock:
        _busy.discard(upload_id)


def busy(upload_id: str) -> bool:
    with _lock:
        return upload_id in _busy


def _keep(upload_id: str, writer: storage.SegmentWriter) -> None:
    """Remember an open writer (under _lock), closing the least recently used idle ones past the cap."""
    _writers[upload_id] = writer
    _writers.move_to_end(upload_id)
    while len(_writers) > MAX_OPEN_WRITERS:
        idle = next((other for other in _writers if other not in _busy), None)
        if idle is None:
            break  # every open writer is receiving: more requests than the cap, none may be closed
        _writers.pop(idle).close()


@dataclass(frozen=True)
class Upload:
    id: str
    file_id: str
    owner_id: int
    session_hash: str
    length: int
    offset: int
    expires_at: str
    name: str


def create(database: Database, master: bytes, files_dir: Path, owner_id: int, session_hash: str,
           raw_name: str, length: int, who: audit.Who) -> Upload:
    """Check name, type, size and count (FileRefused), then create the upload and keep its writer."""
    name, media_type = files.check_new(database, owner_id, raw_name, length)
    upload_id = secrets.token_hex(16)
    file_id, writer = files.begin(database, master, files_dir, owner_id, name, media_type,
                                  upload={"id": upload_id, "session_hash": session_hash, "length": length}, who=who)
    with _lock:
        _keep(upload_id, writer)
    return find(database, upload_id, owner_id, session_hash)


def find(database: Database, upload_id: str, owner_id: int, session_hash: str) -> Upload | None:
    """The upload if it exists, has not expired and belongs to this owner and session; else None."""
    row = database.query_one(
        'SELECT uploads.*, files.name FROM uploads JOIN files ON files.id = uploads.file_id'
        ' WHERE uploads.id = ? AND uploads.owner_id = ? AND uploads.session_hash = ? AND uploads.expires_at > ?',
        [upload_id, owner_id, session_hash, clock.now_iso()],
    )
    if row is None:
        return None
    return Upload(row["id"], row["file_id"], row["owner_id"], row["session_hash"], row["length"], row["offset"],
                  row["expires_at"], row["name"])


def writer_for(database: Database, master: bytes, files_dir: Path, upload: Upload) -> storage.SegmentWriter | None:
    """The open writer of this upload, resumed from disk if this process has none.

    Returns None when the data file is already finished (a crash came between finishing it and
    committing it): the caller then completes the upload from what is on disk.
    """
    with _lock:
        writer = _writers.get(upload.id)
        if writer is None:
            return _resume(database, master, files_dir, upload)
        _writers.move_to_end(upload.id)
        return writer


def _resume(database: Database, master: bytes, files_dir: Path, upload: Upload) -> storage.SegmentWriter | None:
    row = database.query_one("SELECT id, wrapped_key, storage_name FROM files WHERE id = ?", [upload.file_id])
    if row is None:
        raise storage.StorageError("upload was removed")
    try:
        writer = storage.SegmentWriter.resume(files.data_path(files_dir, row), files.file_key(master, row), row["id"])
    except storage.StorageError as exc:
        if str(exc) == "upload already finished":  # the message storage.SegmentWriter.resume gives
            return None
        raise
    _keep(upload.id, writer)
    if writer.offset != upload.offset:  # records written after the last offset we saved survived
        save_offset(database, upload.id, writer.offset)
    return writer


def save_offset(database: Database, upload_id: str, offset: int) -> None:
    database.execute('UPDATE uploads SET "offset" = ? WHERE id = ?', [offset, upload_id])


def checkpoint(database: Database, upload: Upload, writer: storage.SegmentWriter) -> int:
    """Make what was received durable, then record the offset; returns it."""
    offset = writer.checkpoint()
    save_offset(database, upload.id, offset)
    return offset


def forget(upload_id: str) -> None:
    """Close and drop this process's writer (after an error: the next request resumes from disk)."""
    with _lock:
        writer = _writers.pop(upload_id, None)
    if writer is not None:
        writer.close()


def finish(database: Database, master: bytes, files_dir: Path, who: audit.Who, upload: Upload,
           writer: storage.SegmentWriter | None) -> files.StoredFile:
    """All bytes are in: finish, check and commit the file (FileRefused discards it)."""
    with _lock:
        _writers.pop(upload.id, None)
    return files.complete(database, master, files_dir, who, upload.file_id, writer, expected_length=upload.length)


def terminate(database: Database, files_dir: Path, who: audit.Who, upload: Upload) -> None:
    """tus termination: the upload and everything stored of it are removed."""
    forget(upload.id)
    files.discard(database, files_dir, upload.file_id, who, "upload.terminate")


def purge_expired(database: Database, files_dir: Path) -> int:
    """Remove unfinished uploads past their expiry (tus expiration, and forms cut off by a crash)."""
    rows = database.query(
        "SELECT files.id, uploads.id AS upload_id FROM files LEFT JOIN uploads ON uploads.file_id = files.id"
        " WHERE files.state = 'uploading' AND files.expires_at <= ?", [clock.now_iso()],
    )
    for row in rows:
        if row["upload_id"]:
            forget(row["upload_id"])
        files.discard(database, files_dir, row["id"], audit.SYSTEM, "upload.expire")
    return len(rows)
