"""A request's submissions: the guest's **Transmit**, which turns the files waiting on the link into
one submission with its retrieval deadline (closing a one-submission request and queueing the
sender's receipt and the owner's notice), and the receipt the guest is shown after it. The
request itself is :mod:`relais.requests`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from relais import audit, clock, emails, files, links, mail, settings
from relais.db import Database, Row
from relais.refusal import Size
from relais.requests import KIND, MAX_REFERENCE, Request, RequestRefused, clean_line, get


@dataclass(frozen=True)
class Submission(Row):
    id: str
    request_id: str
    transmitted_at: str
    reference: str
    language: str
    files: int
    bytes: int
    retrieve_by: str
    reminded_at: str | None
    retrieved_at: str | None
    purged_at: str | None
    purge_reason: str
    ip: str = ""  # the sender's address and browser, shown to staff
    user_agent: str = ""

    @property
    def waiting(self) -> bool:
        """Its files wait for staff to retrieve them."""
        return self.retrieved_at is None and self.purged_at is None


def transmit(database: Database, who: audit.Who, request: Request, reference: str, language: str,
             base_url: str) -> Submission:
    """The guest's Transmit: in one transaction the pending files become a submission with its
    deadline, the request closes (one submission), the sender's receipt and the owner's notice are
    queued, and the audit trail says who sent what from where."""
    if request.reference_label:
        cleaned = clean_line(reference, MAX_REFERENCE)
        if cleaned is None:
            raise RequestRefused("bad_reference", label=request.reference_label)
        if not cleaned:
            raise RequestRefused("reference_missing", label=request.reference_label)
        reference = cleaned
    else:
        reference = ""
    submission_id = secrets.token_hex(16)

    def insert(db) -> Submission:
        current = get(db, request.id)
        if current is None or not current.open:
            raise RequestRefused("closed")
        if db.execute("SELECT 1 FROM uploads WHERE target_kind = 'request' AND target_id = ?",
                      [request.id]).fetchone():
            raise RequestRefused("still_uploading")
        sent = [files.StoredFile.from_row(row) for row in db.query(
            "SELECT files.* FROM files JOIN request_files ON request_files.file_id = files.id"
            " WHERE request_files.request_id = ? AND request_files.submission_id IS NULL AND files.state = 'complete'"
            " ORDER BY files.name, files.id", [request.id])]
        if not sent:
            raise RequestRefused("nothing_to_transmit")
        now = clock.now()
        days = settings.get(db, "request_retrieval_days")
        db.execute(
            "INSERT INTO request_submissions (id, request_id, transmitted_at, reference, language, ip, user_agent,"
            " files, bytes, retrieve_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [submission_id, request.id, clock.iso(now), reference, language, who.ip, who.user_agent[:500], len(sent),
             sum(f.size for f in sent), clock.iso(now + timedelta(days=days))],
        )
        db.execute("UPDATE request_files SET submission_id = ? WHERE request_id = ? AND submission_id IS NULL",
                   [submission_id, request.id])
        if not current.several:
            db.execute("UPDATE requests SET closed_at = ? WHERE id = ?", [clock.iso(now), request.id])
            # Its password link goes; the link sessions stay for their last hours, but lead only to
            # the receipt (links.session_after_close): every other guest page needs an open link.
            links.forget(db, KIND, request.id, sessions=False)
        links.event(db, who, KIND, request.id, "transmit", detail=submission_id, submission=submission_id,
                    files=[f.sha256 for f in sent], bytes=sum(f.size for f in sent), reference=reference,
                    sender=current.recipient)
        submission = Submission.from_row(next(iter(db.query("SELECT * FROM request_submissions WHERE id = ?",
                                                            [submission_id]))))
        listed = [{"name": f.name, "size": Size(f.size), "sha256": f.sha256, "at": f.completed_at} for f in sent]
        subject, text, html = emails.render("request_receipt", language, files=listed, at=submission.transmitted_at,
                                            reference=reference, reference_label=current.reference_label)
        mail.queue(db, audit.SYSTEM, to=current.recipient, subject=subject, text=text, html=html,
                   kind="request_receipt", object=request.id, language=language)
        owner = db.execute("SELECT email, language FROM users WHERE id = ?", [current.owner_id]).fetchone()
        subject, text, html = emails.render(
            "request_received", owner[1], sender=current.recipient, files=listed, at=submission.transmitted_at,
            retrieve_by=submission.retrieve_by, reference=reference, reference_label=current.reference_label,
            link=f"{base_url}/requests/{request.id}")
        mail.queue(db, audit.SYSTEM, to=owner[0], subject=subject, text=text, html=html, kind="request_received",
                   object=request.id, language=owner[1])
        return submission

    return database.write(insert)


def receipt(database: Database, request_id: str, submission_id: str) -> tuple[Submission, list[dict]] | None:
    """A submission and what it held (name, size, SHA-256, time), for the guest's confirmation page."""
    row = database.query_one("SELECT * FROM request_submissions WHERE id = ? AND request_id = ?",
                             [submission_id, request_id])
    if row is None:
        return None
    listed = database.query(
        "SELECT files.name, files.size, files.sha256, files.completed_at AS at FROM files"
        " JOIN request_files ON request_files.file_id = files.id WHERE request_files.submission_id = ?"
        " ORDER BY files.name, files.id", [submission_id],
    )
    return Submission.from_row(row), listed
