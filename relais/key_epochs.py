"""Deleted means gone from the backups too: when day keys are destroyed, and the re-keying that
makes it safe (the keys themselves are in :mod:`relais.storage.epochs`).

A file's key is wrapped by the key of the day (UTC) it was wrapped on. The longest a file can live
from then is computed from the settings (:func:`longest_life`): a share's longest validity, a
request's longest validity plus the days staff have to retrieve what arrived, an unfinished
upload's 24 hours. Day D's key is destroyed at ``end of D + longest life`` (:func:`destroy_at`),
by the purge: every file it wrapped should be gone by then, and with its key every copy of their
wrapped keys, in every backup, is noise.

Some files live longer: a file kept in My files (which has no deadline), one attached to a share
long after its upload, one whose deadline was set under longer settings. They are re-keyed (their
key re-wrapped by today's key; the file itself is untouched) ``REKEY_AHEAD`` before their day's
key goes, so that a daily backup taken meanwhile holds the new wrap; the destruction re-keys any
left (if no purge ran in that day) before it deletes the key. Hence the guarantee stated in the
README: a file deleted at T cannot be decrypted from any backup after ``T + 1 day + longest
life`` (:func:`guarantee`), and already ``1 day + longest life`` after its key was last wrapped.

Every step is a transaction of its own, or idempotent: a purge killed anywhere and run again
finishes the work, and two at once do it once (the audit row of a destruction is written once,
in the transaction that decides it; the key file is deleted after that commit).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from relais import audit, clock, files, settings, storage
from relais.db import Database

REKEY_AHEAD = timedelta(days=1)
BATCH = 1000  # keys re-wrapped per transaction: short ones, so pages do not wait for the writer
DESTROY, REKEY = "key_epoch.destroy", "key_epoch.rekey"

# The longest each kind of stored file can live, from the settings' values. A kind of file with a
# retention of its own adds its life here.
LIVES = (
    lambda values: timedelta(hours=files.UPLOAD_HOURS),  # an unfinished upload
    lambda values: timedelta(days=values["share_max_days"]),
    lambda values: timedelta(days=values["request_max_days"] + values["request_retrieval_days"]),
    lambda values: timedelta(days=values["space_retention_days"]),  # a file in a partner's space
)


def longest_life(values: dict) -> timedelta:
    """The longest a file can live under these settings (``settings.all_values``)."""
    return max(life(values) for life in LIVES)


def guarantee(values: dict) -> timedelta:
    """How long after its deletion a file may still be decrypted from a backup, at most."""
    return timedelta(days=1) + longest_life(values)


def guarantee_days(values: dict) -> int:
    return math.ceil(guarantee(values) / timedelta(days=1))


def destroy_at(epoch: str, life: timedelta) -> datetime:
    return storage.epoch_end(epoch) + life


def rekey_at(epoch: str, life: timedelta) -> datetime:
    return destroy_at(epoch, life) - REKEY_AHEAD


def _life(database: Database) -> timedelta:
    return longest_life(database.read_sync(settings.all_values))


# -- re-keying -------------------------------------------------------------------------------------

def rekey(database: Database, keys: storage.EpochKeys, epoch: str | None) -> int:
    """Re-wrap by today's key every file key wrapped by day ``epoch``'s (None: by the master key, as
    before 0011), in short transactions, each with its audit row. A key that does not unwrap is
    left as it is (``verify`` reports it). Returns how many were re-wrapped."""
    total, after = 0, ""

    def batch(db) -> tuple[int, str]:
        today = storage.epoch_of(clock.now())  # read in the transaction: see files.begin
        rows = list(db.query("SELECT id, wrapped_key FROM files WHERE key_epoch IS ? AND id > ? ORDER BY id LIMIT ?",
                             [epoch, after, BATCH]))
        done = 0
        for row in rows:
            try:
                key = keys.unwrap(epoch, row["wrapped_key"], row["id"])
            except storage.IntegrityError:
                continue
            db.execute("UPDATE files SET wrapped_key = ?, key_epoch = ? WHERE id = ?",
                       [keys.wrap(today, key, row["id"]), today, row["id"]])
            done += 1
        if done:
            audit.record(db, audit.SYSTEM, REKEY, epoch or "master", files=done, to=today)
        return done, rows[-1]["id"] if len(rows) == BATCH else ""

    while True:
        done, after = database.write(batch)
        total += done
        if not after:
            return total


def rekey_legacy(database: Database, keys: storage.EpochKeys) -> int:
    """At start: the keys still wrapped by the master key (before 0011) are re-wrapped by today's,
    and the old wraps are folded out of the write-ahead log."""
    done = rekey(database, keys, None)
    if done:
        database.checkpoint()
    return done


# -- destroying ------------------------------------------------------------------------------------

def purge(database: Database, keys: storage.EpochKeys) -> dict[str, int]:
    """Re-key the files of days whose key goes within ``REKEY_AHEAD``, destroy the keys that are
    due. Part of :func:`relais.retention.purge_all`."""
    life, now = _life(database), clock.now()
    today = storage.epoch_of(now)
    rekeyed = destroyed = 0
    for epoch in keys.existing():
        if epoch >= today:  # today's (or a clock set back): never ahead of time
            continue
        if now >= rekey_at(epoch, life):
            rekeyed += rekey(database, keys, epoch)
        if now >= destroy_at(epoch, life) and database.write(_decide, keys, epoch, life):
            keys.destroy(epoch)  # after the commit: a crash here leaves a key the next purge deletes
            destroyed += 1
    return {"files re-keyed": rekeyed, "day keys destroyed": destroyed}


def _decide(db, keys: storage.EpochKeys, epoch: str, life: timedelta) -> bool:
    """In one transaction: whether day ``epoch``'s key may go now (no file it still opens), and
    its audit row, once."""
    unreadable = []
    for row in db.query("SELECT id, wrapped_key FROM files WHERE key_epoch = ?", [epoch]):
        try:
            keys.unwrap(epoch, row["wrapped_key"], row["id"])
        except storage.IntegrityError:
            unreadable.append(row["id"])  # lost already: no reason to keep the key for it
        else:
            return False  # a file re-keying missed: the next purge re-keys it first
    if not db.execute("SELECT 1 FROM audit_log WHERE action = ? AND object = ?", [DESTROY, epoch]).fetchone():
        audit.record(db, audit.SYSTEM, DESTROY, epoch, due=clock.iso(destroy_at(epoch, life)),
                     longest_life_days=life / timedelta(days=1), unreadable=unreadable)
    return True


# -- checking --------------------------------------------------------------------------------------

def check(database: Database, keys: storage.EpochKeys) -> list[str]:
    """For ``verify``: every file's key unwraps (its day's key exists and the wrap is intact), and
    no day key is left past its destruction. One line per problem."""
    problems, used = [], set()
    for row in database.query("SELECT id, key_epoch, wrapped_key FROM files ORDER BY id"):
        epoch = row["key_epoch"]
        used.add(epoch)
        try:
            keys.unwrap(epoch, row["wrapped_key"], row["id"])
        except storage.KeyGone:
            problems.append(f"file {row['id']}: its key cannot be unwrapped, the key of {epoch} is gone")
        except storage.IntegrityError:
            problems.append(f"file {row['id']}: its wrapped key is damaged (it does not unwrap with the key of"
                            f" {epoch or 'the master key'})")
        else:
            if epoch is None:
                problems.append(f"file {row['id']}: its key is wrapped by the master key, not a day key"
                                " (the next start re-wraps it)")
    life, now = _life(database), clock.now()
    for epoch in keys.existing():
        if epoch not in used and now >= destroy_at(epoch, life):
            problems.append(f"day key {epoch}: no file uses it and it was due for destruction at"
                            f" {clock.iso(destroy_at(epoch, life))} (python app.py purge destroys it)")
    return problems


def unrecoverable(database: Database, keys: storage.EpochKeys, files_dir) -> list[tuple[dict, str]]:
    """After a restore: the files a backup names that cannot come back, with why: ``key_gone`` (their
    day's key was destroyed: deleted since the backup, or re-keyed since and the backup is older),
    ``data_missing`` (deleted while the backup was being copied) or ``unfinished`` (uploads are
    not backed up; their clients start again)."""
    lost = []
    for row in database.query("SELECT id, name, sha256, state, key_epoch, wrapped_key, storage_name FROM files ORDER BY id"):
        if row["state"] != "complete":
            lost.append((row, "unfinished"))
            continue
        try:
            keys.unwrap(row["key_epoch"], row["wrapped_key"], row["id"])
        except storage.IntegrityError:
            lost.append((row, "key_gone"))
            continue
        if not files.data_path(files_dir, row).exists():
            lost.append((row, "data_missing"))
    return lost
