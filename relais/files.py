"""Stored files: limits, and a file's life in the database from its first byte to its shredding.

The bytes live in :mod:`relais.storage` (encrypted segments under ``data/files/``, random names);
this module owns the ``files`` table. A file is created in state ``uploading`` and becomes visible
(listed, downloadable) only in the one transaction that marks it ``complete`` with its size and
SHA-256, so a crash at any moment leaves an invisible upload or the whole file, never a listed
partial one. Deleting removes the row, and with it the wrapped key, before the data file
(crypto-shredding): once that commits, the ciphertext left anywhere (a backup, a disk block) is noise.
Every deletion of a file row, whatever asks for it, goes through :func:`shred`, so the key is gone
from the write-ahead log too.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from relais import audit, clock, paging, settings, space, storage
from relais.db import Database, Row
from relais.refusal import Size
# The rules live in relais.file_rules; they are used (and imported by callers) through this module.
from relais.file_rules import (  # noqa: F401
    ALLOWED, REASONS, FileRefused, check_content, check_type, clean_name, extension,
)

UPLOAD_HOURS = 24
HEAD_BYTES = 4096  # how much of a file's start the content check reads

log = logging.getLogger("relais")


@dataclass(frozen=True)
class StoredFile(Row):
    id: str
    owner_id: int
    name: str
    size: int
    sha256: str
    media_type: str
    storage_name: str
    state: str
    created_at: str
    completed_at: str | None


# -- limits: checked before a byte is stored ------------------------------------------------------

def limits(database: Database) -> tuple[int, int]:
    """(largest file in bytes, most files per account), from the settings."""
    values = settings.all_values(database)
    return values["max_file_size_mib"] * 1024 * 1024, values["max_files_per_account"]


def check_new(database: Database, owner_id: int, raw_name: str, length: int | None) -> tuple[str, str]:
    """Check name, type, size and count before a byte is stored; returns (name, media type)."""
    name = clean_name(raw_name)
    media_type = check_type(name)
    max_size, max_count = limits(database)
    if length is not None and length <= 0:
        raise FileRefused("empty_file")
    if length is not None and length > max_size:
        raise FileRefused("too_large", limit=Size(max_size))
    # Files that arrived through the account's requests are the requests' (their own limits).
    count = database.scalar("SELECT count(*) FROM files WHERE owner_id = ? AND id NOT IN"
                            " (SELECT file_id FROM request_files)", [owner_id])
    if count >= max_count:
        raise FileRefused("too_many", limit=max_count)
    return name, media_type


# -- life of a file ------------------------------------------------------------------------------

def data_path(files_dir: Path, stored: StoredFile | dict) -> Path:
    storage_name = stored["storage_name"] if isinstance(stored, dict) else stored.storage_name
    return Path(files_dir) / storage_name


def begin(database: Database, keys: storage.EpochKeys, files_dir: Path, owner_id: int, name: str, media_type: str,
          upload: dict | None = None, who: audit.Who = audit.SYSTEM) -> tuple[str, storage.SegmentWriter]:
    """Create an invisible file (state 'uploading') and its open writer; returns (file id, writer).

    ``upload`` (id, target_kind, target_id, length) also creates the tus ``uploads`` row, and its
    audit event, in the same transaction.
    The data file is created before the row: a crash in between leaves an unlisted file without a key.
    The key is wrapped by today's day key inside the insert's transaction, the day read there: a
    day's key is destroyed only in a transaction a day or more after the day ended, so a row can
    never name a day whose key is already gone (relais/key_epochs.py).
    An announced length that would cut into the disk's reserve for the database raises
    space.DiskFull before anything is created.
    """
    if upload is not None:
        space.ensure_space(files_dir, upload["length"])
    file_id, storage_name, key = secrets.token_hex(16), secrets.token_hex(16), storage.new_file_key()
    path = Path(files_dir) / storage_name
    writer = storage.SegmentWriter.create(path, key, file_id)
    now, expires = clock.now_iso(), clock.in_(timedelta(hours=UPLOAD_HOURS))

    def insert(db):
        epoch = storage.epoch_of(clock.now())
        db.execute(
            "INSERT INTO files (id, owner_id, name, media_type, wrapped_key, key_epoch, storage_name, state, created_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'uploading', ?, ?)",
            [file_id, owner_id, name, media_type, keys.wrap(epoch, key, file_id), epoch, storage_name, now, expires],
        )
        if upload is not None:
            db.execute(
                "INSERT INTO uploads (id, file_id, owner_id, target_kind, target_id, length, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [upload["id"], file_id, owner_id, upload["target_kind"], upload["target_id"], upload["length"], now, expires],
            )
            audit.record(db, who, "upload.start", file_id, name=name, length=upload["length"])

    try:
        database.write(insert)
    except BaseException:
        writer.abort()
        raise
    return file_id, writer


def file_key(keys: storage.EpochKeys, row: dict) -> bytes:
    """The key of the file ``row`` (with ``id``, ``wrapped_key`` and ``key_epoch``)."""
    return keys.unwrap(row["key_epoch"], row["wrapped_key"], row["id"])


def head_bytes(keys: storage.EpochKeys, files_dir: Path, row: dict, size: int) -> bytes:
    return b"".join(storage.read_range(data_path(files_dir, row), file_key(keys, row), row["id"], 0, min(size, HEAD_BYTES)))


def complete(database: Database, keys: storage.EpochKeys, files_dir: Path, who: audit.Who, file_id: str,
             writer: storage.SegmentWriter | None, expected_length: int | None = None,
             deliver: Callable[[object, str], None] | None = None) -> StoredFile:
    """Finish the data file, check its content, then make it visible in one transaction.

    ``writer`` None means the data file was already finished (a crash came between finish and
    commit): its size and SHA-256 are read back. Refused or vanished files are discarded.
    ``deliver(db, file_id)`` runs in that transaction: where an upload's target puts the file.
    """
    row = database.query_one("SELECT * FROM files WHERE id = ?", [file_id])
    if row is None or row["state"] != "uploading":
        if writer is not None:
            writer.abort()
        raise FileRefused("incomplete")
    path = data_path(files_dir, row)
    if writer is not None:
        size, sha256 = writer.finish()
    else:
        hasher = hashlib.sha256()
        for block in storage.read_range(path, file_key(keys, row), file_id):
            hasher.update(block)
        size, sha256 = storage.plaintext_size(path), hasher.hexdigest()
    try:
        if expected_length is not None and size != expected_length:
            raise FileRefused("incomplete")
        if size == 0:
            raise FileRefused("empty_file")
        check_content(row["name"], head_bytes(keys, files_dir, row, size))
    except FileRefused as exc:
        discard(database, files_dir, file_id, who, "upload.refused", reason=exc.reason, name=row["name"])
        raise

    def commit(db):
        changed = db.execute(
            "UPDATE files SET state = 'complete', size = ?, sha256 = ?, completed_at = ?, expires_at = NULL"
            " WHERE id = ? AND state = 'uploading'", [size, sha256, clock.now_iso(), file_id],
        ).rowcount
        if changed != 1:  # purged or terminated meanwhile
            raise FileRefused("incomplete")
        db.execute("DELETE FROM uploads WHERE file_id = ?", [file_id])
        if deliver is not None:
            deliver(db, file_id)
        audit.record(db, who, "file.upload", file_id, name=row["name"], size=size, sha256=sha256)

    try:
        database.write(commit)
    except FileRefused as exc:  # its target refused it at the last moment (a request closed, its places taken)
        discard(database, files_dir, file_id, who, "upload.refused", reason=exc.reason, name=row["name"])
        raise
    # Not get(): that is My files, and a file delivered to a request is the request's, not its owner's.
    return StoredFile.from_row(database.query_one("SELECT * FROM files WHERE id = ?", [file_id]))


def discard(database: Database, files_dir: Path, file_id: str, who: audit.Who | None = None, action: str = "",
            **detail) -> None:
    """Remove an unfinished or refused file: its row (and key) first, then its data; with ``action``,
    an audit row (with ``detail``) in the same transaction."""

    def unfinished(db) -> list[dict]:
        return list(db.query("SELECT id, storage_name FROM files WHERE id = ? AND state = 'uploading'", [file_id]))

    def record(db, rows: list[dict]) -> None:
        if rows and action:
            audit.record(db, who or audit.SYSTEM, action, file_id, **detail)

    shred(database, files_dir, unfinished, record)


def get(database: Database, owner_id: int, file_id: str) -> StoredFile | None:
    """A complete file of this owner's My files, or None (someone else's file is as absent as a
    missing one; a file that came through a request is the request's, served from its page)."""
    row = database.query_one("SELECT * FROM files WHERE id = ? AND owner_id = ? AND state = 'complete'"
                             " AND id NOT IN (SELECT file_id FROM request_files)", [file_id, owner_id])
    return StoredFile.from_row(row) if row else None


def key_of(database: Database, keys: storage.EpochKeys, stored: StoredFile) -> bytes:
    row = database.query_one("SELECT id, wrapped_key, key_epoch FROM files WHERE id = ?", [stored.id])
    if row is None:
        raise storage.StorageError("file was deleted")
    return file_key(keys, row)


def list_files(database: Database, owner_id: int, page: int = 1, per_page: int = paging.PER_PAGE) -> paging.Page:
    """One page of the owner's complete files, newest first."""
    # Files attached to a share belong to it now: they are listed, and deleted, with the share;
    # files that came through a request are the request's (``attached``, set by triggers when
    # share_files or request_files takes a file; its index files_mine counts and pages My files).
    where = "FROM files INDEXED BY files_mine WHERE owner_id = ? AND state = 'complete' AND attached IS NULL"
    rows, page, total = database.read_sync(
        paging.fetch, f"SELECT count(*) {where}", f"SELECT * {where} ORDER BY completed_at DESC, id", [owner_id],
        page, per_page,
    )
    return paging.Page([StoredFile.from_row(row) for row in rows], page, per_page, total)


class FileInShare(Exception):
    """The file belongs to a share now: it is deleted with the share, never alone (which would
    leave the recipients a link to nothing)."""

    def __init__(self, share_id: str):
        super().__init__(share_id)
        self.share_id = share_id


def delete(database: Database, files_dir: Path, who: audit.Who, owner_id: int, file_id: str) -> bool:
    """Crypto-shred a complete file of this owner; False when there is none.

    Raises FileInShare for a file attached to a share (checked in the transaction, so a share
    created meanwhile cannot lose it)."""

    def own(db) -> list[dict]:
        rows = list(db.query("SELECT * FROM files WHERE id = ? AND owner_id = ? AND state = 'complete'"
                             " AND id NOT IN (SELECT file_id FROM request_files)", [file_id, owner_id]))
        shared = rows and db.execute("SELECT share_id FROM share_files WHERE file_id = ?", [file_id]).fetchone()
        if shared:  # (only for the owner's own file: someone else's is as absent as a missing one)
            raise FileInShare(shared[0])
        return rows

    def record(db, rows: list[dict]) -> bool:
        for row in rows:
            audit.record(db, who, "file.delete", file_id, name=row["name"], size=row["size"], sha256=row["sha256"])
        return bool(rows)

    return shred(database, files_dir, own, record)


# -- shredding: the one way a file row is deleted --------------------------------------------------

def shred(database: Database, files_dir: Path, select: Callable[[Any], list[dict]],
          then: Callable[[Any, list[dict]], Any] | None = None) -> Any:
    """Crypto-shred the files ``select(db)`` returns (rows with at least ``id`` and ``storage_name``).

    In one write transaction: ``select`` picks the rows, they are deleted (and their wrapped keys
    with them, zeroed in place by ``secure_delete``), and ``then(db, rows)`` does the rest of the
    caller's business action (its audit row, a share's state), so that either all of it happens or
    nothing. Returns what ``then`` returned, or the rows.

    After the commit the write-ahead log is checkpointed and truncated: the pages that held the keys
    before the delete would otherwise stay readable in ``relais.db-wal`` until SQLite reuses them.
    Only then are the data files unlinked.
    """

    def remove(db):
        rows = select(db)
        for row in rows:
            db.execute("DELETE FROM files WHERE id = ?", [row["id"]])
        return rows, (then(db, rows) if then is not None else rows)

    try:
        rows, result = database.write(remove)
    except Exception as exc:
        if not space.is_full(exc):
            raise
        # The disk is full (a write that cut into the reserve, or something else filled it): SQLite
        # cannot even log the delete. Unlinking the data files first frees their space; then the
        # delete is tried again. The usual order is reversed only here, and only until that retry
        # commits: a key outliving its data for a moment is better than a disk that stays full,
        # with every login failing until an operator steps in.
        log.error("disk full while deleting files: unlinking their data first to free space")
        for row in database.write(select):  # a transaction that writes nothing commits on a full disk
            storage.shred_file(data_path(files_dir, row))
        rows, result = database.write(remove)
    try:
        if rows:
            database.checkpoint()
    finally:
        for row in rows:
            storage.shred_file(data_path(files_dir, row))
    return result


def purge_orphans(database: Database, files_dir: Path, older_than: timedelta = timedelta(hours=UPLOAD_HOURS)) -> int:
    """Delete data files that no row names (a crash between creating the file and its row, or
    between deleting a row and its file). Young ones are left: their row may be on its way."""
    # A set of names read row by row: a list of every row as a dict first took 60 MB at 100,000 files.
    known = database.read_sync(lambda conn: {row[0] for row in conn.execute("SELECT storage_name FROM files")})
    cutoff = (clock.now() - older_than).timestamp()
    removed = 0
    for path in Path(files_dir).iterdir():
        base = path.name.split(".")[0]
        if base not in known and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def check_disk(database: Database, files_dir: Path) -> list[str]:
    """Database against disk, for ``verify``: every stored file has its data file with the size
    the database says, and every data file belongs to a row. Reads headers and lengths only."""
    problems = []
    known = set()
    for row in database.query("SELECT id, storage_name, state, size FROM files"):
        known.add(row["storage_name"])
        path = Path(files_dir) / row["storage_name"]
        if not path.exists():
            problems.append(f"file {row['id']} ({row['state']}): its data file is missing")
        elif row["state"] == "complete":
            try:
                size = storage.plaintext_size(path)
            except storage.StorageError as exc:
                problems.append(f"file {row['id']}: unreadable data file ({exc})")
                continue
            if size != row["size"]:
                problems.append(f"file {row['id']}: {size} bytes on disk, {row['size']} in the database")
    for path in sorted(Path(files_dir).iterdir()):
        if path.name.split(".")[0] not in known:
            problems.append(f"data file {path.name} belongs to no file (python app.py purge removes it)")
    return problems
