"""Counting failures and locking for a while: shared by logins and link passwords.

A key ('account:<email>', 'ip:<address>', '<link kind>:<id>') gathers failures; past ``threshold`` it is
locked 1, 2, 4, 8... minutes, never longer than ``max_minutes``. Attempts made while locked are
refused without being checked or counted, so a guesser gains nothing by hammering.
"""

from __future__ import annotations

import math
from datetime import timedelta

from relais import clock


def locked_for(db, keys: list[str]) -> int:
    """Seconds until every key is unlocked (0: none is locked). ``db``: the Database, or the
    connection inside a write (to tell the person, in the write that locked them, how long)."""
    now = clock.now()
    wait = 0
    for key in keys:
        for row in db.query("SELECT locked_until FROM login_throttle WHERE key = ?", [key]):
            if row["locked_until"] and clock.parse(row["locked_until"]) > now:
                wait = max(wait, math.ceil((clock.parse(row["locked_until"]) - now).total_seconds()))
    return wait


def count_failure(db, key: str, threshold: int, max_minutes: int) -> int:
    """Count one failure for key (inside a write); returns the failures counted so far when this
    one (re)locks the key, else 0."""
    now = clock.now()
    window = timedelta(minutes=max_minutes)
    row = db.execute("SELECT failures, first_failure_at FROM login_throttle WHERE key = ?", [key]).fetchone()
    failures = 1 if row is None or clock.parse(row[1]) + window < now else row[0] + 1
    first = clock.iso(now) if failures == 1 else row[1]
    locked_until = None
    if failures >= threshold:
        minutes = min(2 ** (failures - threshold), max_minutes)
        locked_until = clock.iso(now + timedelta(minutes=minutes))
        # Counting restarts from the lock, so the window covers the next round of attempts.
        first = clock.iso(now)
    db.execute(
        "INSERT INTO login_throttle (key, failures, first_failure_at, locked_until) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(key) DO UPDATE SET failures = excluded.failures, first_failure_at = excluded.first_failure_at,"
        " locked_until = excluded.locked_until",
        [key, failures, first, locked_until],
    )
    return failures if locked_until else 0


def client_locked(database, ip: str) -> bool:
    return locked_for(database, [f"ip:{ip}"]) > 0


def count_client_failure(db, ip: str) -> None:
    """A wrong token or password from this address (inside a write): past the setting's number of
    failures the address is refused for a while, everywhere, without further checks or audit rows."""
    from relais import settings

    count_failure(db, f"ip:{ip}", settings.get(db, "client_failures_before_lock"), settings.get(db, "login_lock_minutes"))


def clear(db, key: str) -> None:
    db.execute("DELETE FROM login_throttle WHERE key = ?", [key])
