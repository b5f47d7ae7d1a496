"""Retention: nothing is kept longer than it must be.

One function does all the purging (``python app.py purge`` and a background thread in the
server both call it): expired sessions and login links, unfinished uploads past their 24 hours,
data files no row names, the files of shares that expired or were revoked, and a request's
files past their retrieval deadline (crypto-shredded), with the reminder before it; it
reminds partners whose access is about to end (relais.partners); last, the
day keys no file can still need (relais/key_epochs.py), which takes deleted files out of the
backups too.

Safe to run twice at once: a run holds an exclusive lock on ``data/purge.lock`` (flock, released by
the kernel when a process dies, even by kill -9), so a second run waits, then finds nothing left.
Safe to interrupt anywhere: every deletion is a transaction with its audit row, and what it leaves
on disk after its commit (data files, a day key) the next run removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from datetime import timedelta
from pathlib import Path

from relais import auth, clock, files, key_epochs, partners, request_retention, shares, spaces
from relais.background import Worker

log = logging.getLogger("relais.retention")


def purge_all(state) -> dict[str, int]:
    database, files_dir = state.db, state.config.files_dir
    with purge_lock(state.config.data_dir):
        return {
            "sessions": database.write(auth.purge_expired),
            "uploads": state.uploads.purge_expired(),
            "shares": shares.purge(database, state.config),
            "request reminders": request_retention.remind(database, state.config.base_url),
            "request files": request_retention.purge(database, state.config),
            "request uploads": request_retention.end_uploads(database, state.uploads),
            "partner reminders": partners.remind(database, state.config.base_url),
            "space notices": spaces.notify(database, state.config.base_url, only_when_idle=False),
            "space files": spaces.purge(database, files_dir),
            "orphans": files.purge_orphans(database, files_dir),
            "temporary files": clear_tmp(state.config.tmp_dir, older_than=timedelta(hours=24)),
            # Last: the files deleted above no longer hold a day key back.
            **key_epochs.purge(database, state.file_keys),
        }


@contextlib.contextmanager
def purge_lock(data_dir: Path):
    """One purge at a time across processes (the server's janitor, a cron ``purge``)."""
    fd = os.open(Path(data_dir) / "purge.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def clear_tmp(tmp_dir: Path, older_than: timedelta | None = None) -> int:
    """Remove what requests left in data/tmp (a crash mid-request). With ``older_than`` only what
    no request can still be using; without it everything (at start, before serving)."""
    cutoff = (clock.now() - older_than).timestamp() if older_than else None
    removed = 0
    for path in Path(tmp_dir).iterdir():
        if path.is_file() and (cutoff is None or path.stat().st_mtime < cutoff):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


class Janitor(Worker):
    """Runs purge_all at start and then every ``interval`` seconds."""

    name = "relais-retention"

    def __init__(self, state, interval: float = 600):
        super().__init__(interval)
        self.state = state

    def step(self) -> None:
        purged = purge_all(self.state)
        if any(purged.values()):
            log.info("purged %s", purged)
