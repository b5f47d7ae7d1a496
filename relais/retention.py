"""Retention: nothing is kept longer than it must be.

One function does all the purging (``python app.py purge`` and a background thread in the
server both call it): expired sessions and login links, unfinished uploads past their 24 hours,
data files no row names, the files of shares that expired or were revoked, and a request's
files past their retrieval deadline (crypto-shredded), with the reminder before it; and it
reminds partners whose access is about to end (relais.partners).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from relais import auth, clock, files, partners, request_retention, shares
from relais.background import Worker

log = logging.getLogger("relais.retention")


def purge_all(state) -> dict[str, int]:
    database, files_dir = state.db, state.config.files_dir
    return {
        "sessions": database.write(auth.purge_expired),
        "uploads": state.uploads.purge_expired(),
        "shares": shares.purge(database, state.config),
        "request reminders": request_retention.remind(database, state.config.base_url),
        "request files": request_retention.purge(database, state.config),
        "request uploads": request_retention.end_uploads(database, state.uploads),
        "partner reminders": partners.remind(database, state.config.base_url),
        "orphans": files.purge_orphans(database, files_dir),
        "temporary files": clear_tmp(state.config.tmp_dir, older_than=timedelta(hours=24)),
    }


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
