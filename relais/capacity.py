"""Capacity: how full the data folder's file system is, what Relais holds on it, and the warning
to admins when free space runs low.

The database, the data files and data/tmp share one file system (relais.space keeps uploads
from taking its last bytes). Long before that reserve is reached an admin should hear of it: the
:class:`Watch` thread measures free space every minute and, the first time it falls below
``storage_warning_free_percent`` of the file system's size, mails every active admin once. The
warning stays open (a ``storage_warnings`` row, so a restart neither forgets it nor mails again)
until free space is back above the threshold by :data:`RECOVERY_MARGIN`; then the next crossing
mails again. The margin keeps a disk that hovers at the threshold (an upload, then its deletion)
from mailing the admins at every turn.

Two more rules keep the mails few and sure. A disk that falls below the threshold again within
:data:`MAIL_INTERVAL` of the last mailed warning (a guest's big upload, cancelled, then another)
opens a warning that is recorded and audited but mails nobody. Each admin's mail is queued on its
own: an address the mail code refuses (``mail.MailError``) is skipped and audited
(``storage.unmailed``), and the other admins are still mailed.

Uploads are written under ``files_dir``; when that is another file system than the data folder's
(an operator's separate volume), both are measured and the warning follows the fuller one.

The Storage page reads what Relais holds from the database's rows (sums over ``files`` and
``uploads``), never by walking data/files: it costs the same with 100,000 files as with ten.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from relais import audit, clock, emails, mail, settings
from relais.background import Worker
from relais.config import Config
from relais.db import Database, Row

# Percentage points above the threshold free space must reach before a warning is over.
RECOVERY_MARGIN = 1
# At most one "free space is low" mail to the admins in this time, however often the disk crosses.
MAIL_INTERVAL = timedelta(hours=24)

log = logging.getLogger("relais")


@dataclass(frozen=True)
class Usage:
    """The data folder's file system as ``shutil.disk_usage`` sees it (``free``: what Relais, an
    unprivileged process, may still write)."""

    total: int
    used: int
    free: int

    @property
    def free_percent(self) -> float:
        return round(self.free * 100 / self.total, 1) if self.total else 0.0

    def below(self, percent: int) -> bool:
        return self.free * 100 < percent * self.total


def usage(folder: Path) -> Usage:
    total, used, free = shutil.disk_usage(folder)
    return Usage(total, used, free)


def _device(folder: Path) -> int:
    return os.stat(folder).st_dev


def fullest(config: Config) -> Usage:
    """The file system Relais writes to with the least free space (in percent of its size): the
    data folder's, or the files folder's when that is another file system (uploads reserve their
    space there, relais.files)."""
    measured = usage(config.data_dir)
    if _device(config.files_dir) != _device(config.data_dir):
        files = usage(config.files_dir)
        if files.total and (not measured.total or files.free * measured.total < measured.free * files.total):
            return files
    return measured


@dataclass(frozen=True)
class Held:
    """What Relais keeps on the file system: ``(count, bytes)`` of each kind."""

    files: tuple[int, int]  # finished files (their content's size; encryption adds a little)
    uploads: tuple[int, int]  # uploads in progress (bytes received so far)
    uploads_announced: int  # the bytes those uploads will take once finished
    temporary: tuple[int, int]  # data/tmp: form uploads being received, checked chunks (spool files)
    database: int  # relais.db and its write-ahead log


def held(database: Database, config: Config) -> Held:
    files = database.query_one("SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM files WHERE state = 'complete'")
    uploads = database.query_one('SELECT count(*) AS n, coalesce(sum("offset"), 0) AS bytes,'
                                 ' coalesce(sum(length), 0) AS announced FROM uploads')
    return Held(files=(files["n"], files["bytes"]), uploads=(uploads["n"], uploads["bytes"]),
                uploads_announced=uploads["announced"], temporary=_folder(config.tmp_dir),
                database=sum(_size(config.db_path.with_name(config.db_path.name + end)) for end in ("", "-wal")))


def _folder(folder: Path) -> tuple[int, int]:
    """(count, bytes) of the files in ``folder``: data/tmp holds what requests in flight write and
    what a crash left (cleared at start and after 24 hours), a handful of files, never thousands."""
    count = size = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    count, size = count + 1, size + entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:  # finished and removed while we looked
                pass
    return count, size


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# -- the warning ----------------------------------------------------------------------------

@dataclass(frozen=True)
class StorageWarning(Row):
    """A time free space fell below the threshold (open until ``recovered_at``)."""

    id: int
    since: str
    free_bytes: int
    total_bytes: int
    threshold_percent: int
    admins_mailed: int
    recovered_at: str | None
    recovered_free_bytes: int | None


def open_warning(conn) -> StorageWarning | None:
    row = next(conn.query("SELECT * FROM storage_warnings WHERE recovered_at IS NULL"), None)
    return StorageWarning.from_row(row) if row else None


def threshold(conn) -> int:
    return settings.get(conn, "storage_warning_free_percent")


def check(database: Database, config: Config) -> str | None:
    """Measure free space and open or close the warning: "low" when it has just fallen below the
    threshold (the admins' mails are queued, unless
    they were mailed within MAIL_INTERVAL), "recovered" when it has just come back, else None."""
    measured = fullest(config)
    percent, warned = database.read_sync(threshold), database.read_sync(open_warning)
    if warned is None and measured.below(percent):
        return database.write(_warn, measured, config.base_url)
    if warned is not None and not measured.below(percent + RECOVERY_MARGIN):
        return database.write(_recover, measured)
    return None


def _warn(db, measured: Usage, base_url: str) -> str | None:
    if open_warning(db) is not None:  # another check was first
        return None
    percent, now = threshold(db), clock.now()
    mailed = next(db.query("SELECT since FROM storage_warnings WHERE admins_mailed > 0 AND since > ?"
                           " ORDER BY since DESC LIMIT 1", [clock.iso(now - MAIL_INTERVAL)]), None)
    admins = [] if mailed else list(
        db.query("SELECT email, name, language FROM users WHERE role = 'admin' AND active = 1 ORDER BY id"))
    warning_id = db.execute(
        "INSERT INTO storage_warnings (since, free_bytes, total_bytes, threshold_percent, admins_mailed)"
        " VALUES (?, ?, ?, ?, 0)", [clock.iso(now), measured.free, measured.total, percent]).lastrowid
    queued = 0
    for admin in admins:
        subject, text, html = emails.render(
            "storage_low", admin["language"], person=admin["name"], free=measured.free, total=measured.total,
            free_percent=measured.free_percent, threshold=percent, link=f"{base_url}/admin/storage")
        try:
            mail.queue(db, audit.SYSTEM, to=admin["email"], to_name=admin["name"], subject=subject, text=text,
                       html=html, kind="storage_low", object=f"storage_warning:{warning_id}", language=admin["language"])
        except mail.MailError:  # refused before anything is written: the other admins still hear of it
            log.warning("free-space warning %s: admin %s has an address mail cannot use", warning_id, admin["email"])
            audit.record(db, audit.SYSTEM, "storage.unmailed", admin["email"], warning=f"storage_warning:{warning_id}")
            continue
        queued += 1
    db.execute("UPDATE storage_warnings SET admins_mailed = ? WHERE id = ?", [queued, warning_id])
    details = {"since": mailed["since"]} if mailed else {}  # the last mailed warning, within MAIL_INTERVAL
    audit.record(db, audit.SYSTEM, "storage.low", f"storage_warning:{warning_id}", free=measured.free,
                 total=measured.total, threshold=percent, admins=queued, **details)
    return "low"


def _recover(db, measured: Usage) -> str | None:
    warned = open_warning(db)
    if warned is None:
        return None
    db.execute("UPDATE storage_warnings SET recovered_at = ?, recovered_free_bytes = ? WHERE id = ?",
               [clock.now_iso(), measured.free, warned.id])
    audit.record(db, audit.SYSTEM, "storage.recovered", f"storage_warning:{warned.id}", free=measured.free,
                 total=measured.total, since=warned.since)
    return "recovered"


class Watch(Worker):
    """Checks free space every minute; wakes the mail sender when it has queued the warning."""

    name = "relais-capacity"

    def __init__(self, state, interval: float = 60):
        super().__init__(interval)
        self.state = state

    def step(self) -> None:
        if check(self.state.db, self.state.config) == "low":
            self.state.mail_sender.wake()
