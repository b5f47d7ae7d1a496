"""Resumable uploads (tus) without the HTTP: upload rows, open writers, offsets, expiry.

An upload is a file in state 'uploading' plus a row in ``uploads`` holding its announced length,
the offset durable at the last checkpoint, who may resume it (the owner's session) and when it
expires. Writers stay open between requests in a per-process table, so a PATCH that follows a
dropped connection continues without re-reading the file; after a restart the writer is rebuilt
with :meth:`SegmentWriter.resume`, which re-verifies and re-hashes what was stored. An open writer
holds a descriptor and its partial segment (up to 1 MiB): past MAX_OPEN_WRITERS, writers that no
request is using and that have been idle for IDLE_SECONDS are closed, least recently used first.
Every PATCH ends with a checkpoint, so nothing is lost; that upload's next request resumes it from
disk. Uploads in steady use are never closed (re-reading a large upload at each of its requests
would cost more than its descriptor), so the cap is exceeded only while that many are active.

claim(), release() and busy() take a lock held only for a few dictionary operations, never across
disk work: the views call them on the event loop. Every other function blocks (disk, fsync,
database): the views call them through a worker thread.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from relais import audit, clock, files, storage
from relais.db import Database

log = logging.getLogger("relais")

# A client may send a whole 20 GB file in one PATCH: checkpoint on the way, so a crash loses at
# most this much, and the offset a restarted server reports moves on.
CHECKPOINT_BYTES = 64 * 1024 * 1024

MAX_OPEN_WRITERS = 32
IDLE_SECONDS = 120

# upload id -> (writer, when it was last used), least recently used first
_writers: OrderedDict[str, tuple[storage.SegmentWriter, float]] = OrderedDict()
_busy: set[str] = set()  # uploads a request is writing to in this process: never closed under it
_opening: dict[str, threading.Lock] = {}  # a HEAD and a PATCH arriving together must not both resume one upload
_lock = threading.Lock()  # guards the three; never held across disk or database work


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
    """Remember an open writer; past the cap, close the least recently used ones long idle."""
    with _lock:
        now = time.monotonic()
        _writers[upload_id] = (writer, now)
        _writers.move_to_end(upload_id)
        for other, (old, used) in list(_writers.items()):
            if len(_writers) <= MAX_OPEN_WRITERS or now - used < IDLE_SECONDS:
                break  # least recently used first: the rest were used even more recently
            if other not in _busy:
                # Closed before _lock is let go, so a request resuming it from disk never finds
                # its file still locked; idle, it has no append in flight: closing is quick.
                del _writers[other]
                old.close()


def _open_writer(upload_id: str) -> storage.SegmentWriter | None:
    """This process's writer of the upload, marked as just used; None if it has none."""
    with _lock:
        entry = _writers.get(upload_id)
        if entry is None:
            return None
        _writers[upload_id] = (entry[0], time.monotonic())
        _writers.move_to_end(upload_id)
        return entry[0]


def _take(upload_id: str) -> storage.SegmentWriter | None:
    with _lock:
        entry = _writers.pop(upload_id, None)
    return None if entry is None else entry[0]


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
    writer = _open_writer(upload.id)
    if writer is not None:
        return writer
    with _lock:
        opening = _opening.setdefault(upload.id, threading.Lock())
    try:
        with opening:  # the disk work runs under this upload's own lock, never under _lock
            writer = _open_writer(upload.id)  # resumed by the request that held it just now
            return writer if writer is not None else _resume(database, master, files_dir, upload)
    finally:
        with _lock:
            if not opening.locked():
                _opening.pop(upload.id, None)


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
    writer = _take(upload_id)
    if writer is not None:
        writer.close()


def resume_offset(database: Database, master: bytes, files_dir: Path, who: audit.Who, upload: Upload) -> int | None:
    """Where the client goes on from: what survived on disk, which may be ahead of the offset saved
    at the last checkpoint (while a request is writing to the upload, that saved offset).

    An upload whose bytes are all on disk but that was never committed (a crash before the
    commit) is committed now: a client told "all here" sends no further PATCH. None when the
    upload is gone: damaged before its last checkpoint (then removed, to start again from
    nothing), or refused when committed.
    """
    if not claim(upload.id):
        return upload.offset
    try:
        try:
            writer = writer_for(database, master, files_dir, upload)
        except storage.IntegrityError:
            log.exception("upload %s is damaged and is removed", upload.id)
        else:
            if writer is not None and writer.offset < upload.length:
                return writer.offset
            try:
                finish(database, master, files_dir, who, upload, writer)
            except files.FileRefused:
                return None
            return upload.length
    finally:
        release(upload.id)
    terminate(database, files_dir, who, upload)  # it claims the upload itself
    return None


def finish(database: Database, master: bytes, files_dir: Path, who: audit.Who, upload: Upload,
           writer: storage.SegmentWriter | None) -> files.StoredFile:
    """All bytes are in: finish, check and commit the file (FileRefused discards it)."""
    _take(upload.id)
    return files.complete(database, master, files_dir, who, upload.file_id, writer, expected_length=upload.length)


def terminate(database: Database, files_dir: Path, who: audit.Who, upload: Upload) -> bool:
    """tus termination: the upload and everything stored of it are removed. False, and nothing
    done, while a request is writing to it (its writer must not close under it)."""
    return _remove(database, files_dir, upload.id, upload.file_id, who, "upload.terminate")


def _remove(database: Database, files_dir: Path, upload_id: str | None, file_id: str, who: audit.Who, action: str) -> bool:
    """Close the upload's writer and discard its file, unless a request is writing to it."""
    if upload_id is not None and not claim(upload_id):
        return False
    try:
        if upload_id is not None:
            forget(upload_id)
        files.discard(database, files_dir, file_id, who, action)
    finally:
        if upload_id is not None:
            release(upload_id)
    return True


def purge_expired(database: Database, files_dir: Path) -> int:
    """Remove unfinished uploads past their expiry (tus expiration, and forms cut off by a crash)."""
    rows = database.query(
        "SELECT files.id, uploads.id AS upload_id FROM files LEFT JOIN uploads ON uploads.file_id = files.id"
        " WHERE files.state = 'uploading' AND files.expires_at <= ?", [clock.now_iso()],
    )
    # One a request is writing to right now is left for the next purge.
    return sum(_remove(database, files_dir, row["upload_id"], row["id"], audit.SYSTEM, "upload.expire") for row in rows)
