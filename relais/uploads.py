"""Resumable uploads (tus) without the HTTP: upload rows, open writers, offsets, expiry.

An upload is a file in state 'uploading' plus a row in ``uploads`` holding its announced length,
the offset durable at the last checkpoint, its target (:mod:`relais.targets`: where the finished
file goes, and so who may resume it) and when it expires. It belongs to its target, not to the
session that created it: a 20 GB upload outlives the session's idle timeout, and its owner
resumes it from any of their sessions for its 24 hours.

The process's open writers live in an :class:`Engine` the app owns (``app.state.uploads``), so a
PATCH that follows a dropped connection continues without re-reading the file; after a restart
the writer is rebuilt with :meth:`SegmentWriter.resume`, which re-verifies and re-hashes what was
stored. An open writer holds a descriptor and its partial segment (up to 1 MiB): past
``max_open_writers``, writers that no request is using and that have been idle for
``idle_seconds`` are closed, least recently used first. Every PATCH ends with a checkpoint, so
nothing is lost; that upload's next request resumes it from disk. Uploads in steady use are never
closed (re-reading a large upload at each of its requests would cost more than its descriptor),
so the cap is exceeded only while that many are active.

claim() and release() take a lock held only for a few dictionary operations, never across
disk work: the views call them on the event loop. Every other method blocks (disk, fsync,
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

from relais import audit, clock, files, storage, targets
from relais.db import Database
from relais.targets import Target

log = logging.getLogger("relais")

# A client may send a whole 20 GB file in one PATCH: checkpoint on the way, so a crash loses at
# most this much, and the offset a restarted server reports moves on.
CHECKPOINT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Upload:
    id: str
    file_id: str
    owner_id: int
    target: Target
    length: int
    offset: int
    expires_at: str
    name: str

    @property
    def expired(self) -> bool:
        """Past its 24 hours: gone for its owner too (tus 410), and removed by the next purge."""
        return clock.parse(self.expires_at) <= clock.now()


class Engine:
    """This process's tus uploads: their open writers, and the requests writing to them."""

    def __init__(self, database: Database, keys: storage.EpochKeys, files_dir: Path,
                 max_open_writers: int = 32, idle_seconds: float = 120):
        self.database, self.keys, self.files_dir = database, keys, Path(files_dir)
        self.max_open_writers, self.idle_seconds = max_open_writers, idle_seconds
        # upload id -> (writer, when it was last used), least recently used first
        self._writers: OrderedDict[str, tuple[storage.SegmentWriter, float]] = OrderedDict()
        self._busy: set[str] = set()  # uploads a request is writing to in this process: never closed under it
        self._lock = threading.Lock()  # guards the two; never held across disk or database work

    # -- who is writing, and the open writers ------------------------------------------------

    def claim(self, upload_id: str) -> bool:
        """Mark the upload as being written to by this request; False if another request already is."""
        with self._lock:
            if upload_id in self._busy:
                return False
            self._busy.add(upload_id)
            return True

    def release(self, upload_id: str) -> None:
        with self._lock:
            self._busy.discard(upload_id)

    def open_writers(self) -> list[str]:
        """The uploads with an open writer in this process, least recently used first."""
        with self._lock:
            return list(self._writers)

    def _keep(self, upload_id: str, writer: storage.SegmentWriter) -> None:
        """Remember an open writer; past the cap, close the least recently used ones long idle."""
        with self._lock:
            now = time.monotonic()
            self._writers[upload_id] = (writer, now)
            self._writers.move_to_end(upload_id)
            for other, (old, used) in list(self._writers.items()):
                if len(self._writers) <= self.max_open_writers or now - used < self.idle_seconds:
                    break  # least recently used first: the rest were used even more recently
                if other not in self._busy:
                    # Closed before _lock is let go, so a request resuming it from disk never finds
                    # its file still locked; idle, it has no append in flight: closing is quick.
                    del self._writers[other]
                    old.close()

    def _open_writer(self, upload_id: str) -> storage.SegmentWriter | None:
        """This process's writer of the upload, marked as just used; None if it has none."""
        with self._lock:
            entry = self._writers.get(upload_id)
            if entry is None:
                return None
            self._writers[upload_id] = (entry[0], time.monotonic())
            self._writers.move_to_end(upload_id)
            return entry[0]

    def take(self, upload_id: str) -> storage.SegmentWriter | None:
        """Remove the upload's open writer from the table and hand it over (to finish or close it)."""
        with self._lock:
            entry = self._writers.pop(upload_id, None)
        return None if entry is None else entry[0]

    def forget(self, upload_id: str) -> None:
        """Close and drop this process's writer (after an error: the next request resumes from disk)."""
        writer = self.take(upload_id)
        if writer is not None:
            writer.close()

    def close(self) -> None:
        """Close every writer no request is using (at shutdown: each was checkpointed by its PATCH)."""
        with self._lock:
            idle = [upload_id for upload_id in self._writers if upload_id not in self._busy]
        for upload_id in idle:
            self.forget(upload_id)

    # -- uploads ------------------------------------------------------------------------

    def create(self, target: Target, raw_name: str, length: int, who: audit.Who) -> Upload:
        """Check name, type, size and count against the target (FileRefused), then create the
        upload and keep its writer."""
        kind = targets.kind(target)
        name, media_type = self._check_new(kind, target, raw_name, length, who)
        upload_id = secrets.token_hex(16)
        file_id, writer = files.begin(
            self.database, self.keys, self.files_dir, kind.owner_id(self.database, target), name, media_type,
            upload={"id": upload_id, "target_kind": target.kind, "target_id": target.id, "length": length}, who=who,
        )
        self._keep(upload_id, writer)
        return self.find(upload_id, target)

    def begin_whole(self, target: Target, raw_name: str,
                    who: audit.Who = audit.SYSTEM) -> tuple[str, storage.SegmentWriter]:
        """A file sent whole in one request (the plain-form upload), through the same target as
        tus: its checks before a byte is stored (the length is not known yet: the caller holds the
        body to the target's max_size as it arrives), then the invisible file and its writer."""
        kind = targets.kind(target)
        name, media_type = self._check_new(kind, target, raw_name, None, who)
        return files.begin(self.database, self.keys, self.files_dir, kind.owner_id(self.database, target), name, media_type)

    def complete_whole(self, who: audit.Who, target: Target, file_id: str,
                       writer: storage.SegmentWriter) -> files.StoredFile:
        """Finish a file begun by begin_whole(), delivered to its target in the completing transaction."""
        kind = targets.kind(target)
        return files.complete(self.database, self.keys, self.files_dir, who, file_id, writer,
                              deliver=lambda db, stored_id: kind.deliver(db, target, stored_id))

    def _check_new(self, kind, target: Target, raw_name: str, length: int | None,
                   who: audit.Who) -> tuple[str, str]:
        """The target's checks before a byte is stored; a refusal goes in the trail (with the
        target, and the name as sent, cut to 255 characters), since no file row will tell of it."""
        try:
            return kind.check_new(self.database, target, raw_name, length)
        except files.FileRefused as exc:
            self.database.write(audit.record, who, "upload.refused", target.id, target=target.kind,
                                reason=exc.reason, name=(raw_name or "")[:255], length=length)
            raise

    def find(self, upload_id: str, target: Target) -> Upload | None:
        """The upload if it exists and belongs to this target, expired or not; else None (an
        upload of another target is as absent as a missing one, whatever URL the asker holds)."""
        row = self.database.query_one(
            'SELECT uploads.*, files.name FROM uploads JOIN files ON files.id = uploads.file_id'
            ' WHERE uploads.id = ? AND uploads.target_kind = ? AND uploads.target_id = ?',
            [upload_id, target.kind, target.id],
        )
        if row is None:
            return None
        return Upload(row["id"], row["file_id"], row["owner_id"], Target(row["target_kind"], row["target_id"]),
                      row["length"], row["offset"], row["expires_at"], row["name"])

    def writer_for(self, upload: Upload) -> storage.SegmentWriter | None:
        """The open writer of this upload, resumed from disk if this process has none. Call it
        with the upload claimed (``claim``).

        Returns None when the data file is already finished (a crash came between finishing it and
        committing it): the caller then completes the upload from what is on disk.
        """
        writer = self._open_writer(upload.id)
        # The caller holds the claim on this upload (PATCH, HEAD), so no other request resumes it
        # at the same time: the disk work below needs no lock of its own.
        return writer if writer is not None else self._resume(upload)

    def _resume(self, upload: Upload) -> storage.SegmentWriter | None:
        row = self.database.query_one("SELECT id, wrapped_key, key_epoch, storage_name FROM files WHERE id = ?", [upload.file_id])
        if row is None:
            raise storage.StorageError("upload was removed")
        try:
            writer = storage.SegmentWriter.resume(files.data_path(self.files_dir, row), files.file_key(self.keys, row),
                                                  row["id"])
        except storage.UploadFinished:
            return None
        self._keep(upload.id, writer)
        if writer.offset != upload.offset:  # records written after the last offset we saved survived
            self.save_offset(upload.id, writer.offset)
        return writer

    def save_offset(self, upload_id: str, offset: int) -> None:
        self.database.execute('UPDATE uploads SET "offset" = ? WHERE id = ?', [offset, upload_id])

    def checkpoint(self, upload: Upload, writer: storage.SegmentWriter) -> int:
        """Make what was received durable, then record the offset; returns it."""
        offset = writer.checkpoint()
        self.save_offset(upload.id, offset)
        return offset

    def resume_offset(self, who: audit.Who, upload: Upload) -> int | None:
        """Where the client goes on from: what survived on disk, which may be ahead of the offset saved
        at the last checkpoint (while a request is writing to the upload, that saved offset).

        An upload whose bytes are all on disk but that was never committed (a crash before the
        commit) is committed now: a client told "all here" sends no further PATCH. None when the
        upload is gone: damaged before its last checkpoint (then removed, to start again from
        nothing), or refused when committed.
        """
        if not self.claim(upload.id):
            return upload.offset
        try:
            try:
                writer = self.writer_for(upload)
            except storage.IntegrityError:
                log.exception("upload %s is damaged and is removed", upload.id)
            else:
                if writer is not None and writer.offset < upload.length:
                    return writer.offset
                try:
                    self.finish(who, upload, writer)
                except files.FileRefused:
                    return None
                return upload.length
        finally:
            self.release(upload.id)
        self.terminate(who, upload)  # it claims the upload itself
        return None

    def finish(self, who: audit.Who, upload: Upload, writer: storage.SegmentWriter | None) -> files.StoredFile:
        """All bytes are in: finish, check and commit the file, delivered to the upload's target
        in the same transaction (FileRefused discards it)."""
        self.take(upload.id)
        kind = targets.kind(upload.target)
        return files.complete(self.database, self.keys, self.files_dir, who, upload.file_id, writer,
                              expected_length=upload.length,
                              deliver=lambda db, file_id: kind.deliver(db, upload.target, file_id))

    def terminate(self, who: audit.Who, upload: Upload) -> bool:
        """tus termination: the upload and everything stored of it are removed. False, and nothing
        done, while a request is writing to it (its writer must not close under it)."""
        return self._remove(upload.id, upload.file_id, who, "upload.terminate")

    def _remove(self, upload_id: str | None, file_id: str, who: audit.Who, action: str) -> bool:
        """Close the upload's writer and discard its file, unless a request is writing to it."""
        if upload_id is not None and not self.claim(upload_id):
            return False
        try:
            if upload_id is not None:
                self.forget(upload_id)
            files.discard(self.database, self.files_dir, file_id, who, action)
        finally:
            if upload_id is not None:
                self.release(upload_id)
        return True

    def purge_expired(self) -> int:
        """Remove unfinished uploads past their expiry (tus expiration, and forms cut off by a crash)."""
        rows = self.database.query(
            "SELECT files.id, uploads.id AS upload_id FROM files LEFT JOIN uploads ON uploads.file_id = files.id"
            " WHERE files.state = 'uploading' AND files.expires_at <= ?", [clock.now_iso()],
        )
        # One a request is writing to right now is left for the next purge.
        return sum(self._remove(row["upload_id"], row["id"], audit.SYSTEM, "upload.expire") for row in rows)
