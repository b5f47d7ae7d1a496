"""A request's files do not stay: the retrieval deadline, the reminder before it, and deletion.

Transmitted files wait for staff until ``retrieve_by`` (``request_retrieval_days`` after they
arrived); ``request_reminder_days`` before it the owner gets one reminder; at the deadline the
files are crypto-shredded, retrieved or not. With ``request_delete_when_retrieved`` on, a
submission goes as soon as staff have downloaded every file of it. Files never transmitted go
once the link no longer takes files (expired, revoked, locked, closed), and so do uploads still on
their way into it (:func:`end_uploads`). Deleting a request shreds everything at once. Each
deletion is one transaction with its audit row (:func:`relais.files.shred`); the retention
janitor runs :func:`remind`, :func:`purge` and :func:`end_uploads`.
"""

from __future__ import annotations

from datetime import timedelta

from relais import audit, clock, emails, files, links, mail, requests, settings, targets
from relais.db import Database
from relais.refusal import Size
from relais.requests import KIND, Request

FILE_COLUMNS = "files.id, files.storage_name, files.name, files.size, files.sha256"


def delete(database: Database, config, who: audit.Who, request: Request) -> None:
    """Staff's Delete: every file of the request shredded, its link, message, password and
    recipient gone, its invitation mail forgotten, in one transaction with the audit row. An
    upload still on its way into it can no longer be delivered: :func:`end_uploads` removes it."""

    def doomed(db) -> list[dict]:
        return list(db.query(f"SELECT {FILE_COLUMNS} FROM files JOIN request_files ON request_files.file_id = files.id"
                             " WHERE request_files.request_id = ?", [request.id]))

    def update(db, rows: list[dict]) -> list[int]:
        now = clock.now_iso()
        db.execute("UPDATE requests SET deleted_at = coalesce(deleted_at, ?), password_hash = '', message = '',"
                   " recipient = '' WHERE id = ?", [now, request.id])
        db.execute("UPDATE request_submissions SET purged_at = ?, purge_reason = 'deleted'"
                   " WHERE request_id = ? AND purged_at IS NULL", [now, request.id])
        links.forget(db, KIND, request.id)
        forgotten = mail.forget(db, request.id)
        audit.record(db, who, "request.delete", request.id, files=[row["sha256"] for row in rows])
        return forgotten

    for outbox_id in files.shred(database, config.files_dir, doomed, update):
        mail.eml_path(config, outbox_id).unlink(missing_ok=True)


def _purge_submission(database: Database, files_dir, submission_id: str, request_id: str, reason: str) -> int:
    def doomed(db) -> list[dict]:
        return list(db.query(f"SELECT {FILE_COLUMNS} FROM files JOIN request_files ON request_files.file_id = files.id"
                             " WHERE request_files.submission_id = ?", [submission_id]))

    def update(db, rows: list[dict]) -> int:
        changed = db.execute("UPDATE request_submissions SET purged_at = ?, purge_reason = ? WHERE id = ?"
                             " AND purged_at IS NULL", [clock.now_iso(), reason, submission_id]).rowcount
        if changed:  # a purge running beside this one already recorded it
            audit.record(db, audit.SYSTEM, "request.purge", request_id, submission=submission_id,
                         reason=reason, files=[row["sha256"] for row in rows])
        return changed

    return files.shred(database, files_dir, doomed, update)


def purge(database: Database, config) -> int:
    """Shred what is due: submissions past their deadline, retrieved ones (with the setting on),
    and files never transmitted to a link that no longer takes files. Returns how many
    submissions and pending files went. Safe to run twice at once: each deletion is its own
    transaction that checks it is still due."""
    now = clock.now_iso()
    count = 0
    # Retrieved or not: with request_delete_when_retrieved off, a retrieved submission still goes here.
    for row in database.query("SELECT id, request_id FROM request_submissions WHERE purged_at IS NULL"
                              " AND retrieve_by <= ?", [now]):
        count += _purge_submission(database, config.files_dir, row["id"], row["request_id"], "deadline")
    if database.read_sync(settings.get, "request_delete_when_retrieved"):
        for row in database.query("SELECT id, request_id FROM request_submissions WHERE purged_at IS NULL"
                                  " AND retrieved_at IS NOT NULL"):
            count += _purge_submission(database, config.files_dir, row["id"], row["request_id"], "retrieved")
    for row in database.query("SELECT DISTINCT requests.* FROM requests JOIN request_files"
                              " ON request_files.request_id = requests.id WHERE request_files.submission_id IS NULL"):
        request = Request.from_row(row)
        if not request.open:
            count += _purge_pending(database, config.files_dir, request)
    return count


def _purge_pending(database: Database, files_dir, request: Request) -> int:
    def doomed(db) -> list[dict]:
        current = Request.from_row(next(iter(db.query("SELECT * FROM requests WHERE id = ?", [request.id]))))
        if current.open:  # extended meanwhile: the guest may still transmit them
            return []
        return list(db.query(f"SELECT {FILE_COLUMNS} FROM files JOIN request_files ON request_files.file_id = files.id"
                             " WHERE request_files.request_id = ? AND request_files.submission_id IS NULL",
                             [request.id]))

    def update(db, rows: list[dict]) -> int:
        if rows:
            audit.record(db, audit.SYSTEM, "request.purge", request.id, reason="not_transmitted",
                         files=[row["sha256"] for row in rows])
        return len(rows)

    return files.shred(database, files_dir, doomed, update)


def end_uploads(database: Database, engine) -> int:
    """Unfinished uploads into a link that no longer takes files (expired, revoked, locked, closed,
    deleted) can never be delivered: what they stored goes now, not after their 24 hours. One a
    request is writing to right now is left for the next run (``engine`` is the upload engine,
    :class:`relais.uploads.Engine`, which owns their writers)."""
    ended = 0
    for row in database.query("SELECT id, target_id FROM uploads WHERE target_kind = 'request'"):
        request = requests.get(database, row["target_id"])
        if request is not None and request.open:
            continue
        upload = engine.find(row["id"], targets.Target.request(row["target_id"]))
        if upload is not None and engine.terminate(audit.SYSTEM, upload):
            ended += 1
    return ended


def remind(database: Database, base_url: str) -> int:
    """One reminder to the owner, ``request_reminder_days`` before a submission's deadline, while
    its files still wait for retrieval. Returns how many were queued."""
    days = database.read_sync(settings.get, "request_reminder_days")
    if not days:
        return 0
    now = clock.now()
    due = database.query(
        "SELECT id FROM request_submissions WHERE purged_at IS NULL AND retrieved_at IS NULL AND reminded_at IS NULL"
        " AND retrieve_by > ? AND retrieve_by <= ?", [clock.iso(now), clock.iso(now + timedelta(days=days))])

    def queue(db, submission_id: str) -> int:
        row = next(iter(db.query(
            "SELECT s.*, requests.recipient, requests.owner_id FROM request_submissions s"
            " JOIN requests ON requests.id = s.request_id WHERE s.id = ? AND s.reminded_at IS NULL"
            " AND s.retrieved_at IS NULL AND s.purged_at IS NULL", [submission_id])), None)
        if row is None:
            return 0
        owner = db.execute("SELECT email, language FROM users WHERE id = ?", [row["owner_id"]]).fetchone()
        # What still waits: staff may have downloaded some of the files already.
        left, size = db.execute(
            "SELECT count(*), coalesce(sum(files.size), 0) FROM request_files JOIN files ON files.id = request_files.file_id"
            " WHERE request_files.submission_id = ? AND request_files.retrieved_at IS NULL", [submission_id]).fetchone()
        if not left:
            return 0
        subject, text, html = emails.render(
            "request_reminder", owner[1], sender=row["recipient"], files=left, total=Size(size),
            at=row["transmitted_at"], retrieve_by=row["retrieve_by"], link=f"{base_url}/requests/{row['request_id']}")
        mail.queue(db, audit.SYSTEM, to=owner[0], subject=subject, text=text, html=html, kind="request_reminder",
                   object=row["request_id"], language=owner[1])
        db.execute("UPDATE request_submissions SET reminded_at = ? WHERE id = ?", [clock.now_iso(), submission_id])
        audit.record(db, audit.SYSTEM, "request.reminder", row["request_id"], submission=submission_id,
                     retrieve_by=row["retrieve_by"])
        return 1

    return sum(database.write(queue, row["id"]) for row in due)


def purge_retrieved(database: Database, config, request_id: str, submission_ids: list[str]) -> int:
    """Right after staff retrieved these submissions: with ``request_delete_when_retrieved`` on,
    their files are shredded now (the janitor's :func:`purge` would do the same at its next run).
    Returns how many submissions went."""
    if not submission_ids or not database.read_sync(settings.get, "request_delete_when_retrieved"):
        return 0
    return sum(_purge_submission(database, config.files_dir, submission_id, request_id, "retrieved")
               for submission_id in submission_ids)
