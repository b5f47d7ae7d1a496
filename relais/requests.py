"""Requests ("Request files"): a password-protected upload link for one person outside.

Staff create a request for a recipient (e-mail, message, language, expiry, accepted types,
largest file, most files, one submission or several, an optional reference the sender fills in).
The guest unlocks it through the link core (:mod:`relais.links`, kind ``request``), uploads
through the upload engine into the request's target (kind ``request`` of :mod:`relais.targets`),
and clicks **Transmit**: the files then form a submission, with a deadline by which staff
retrieve them (``request_retrieval_days`` after arrival); a one-submission request closes. Files
waiting for Transmit are "pending": listed to the guest by name and size so that they can be
removed, never served back (an upload link is not a download link), and never shown to staff.

Files belong to the request, never to the owner's My files (``files.owner_id`` is the request's
owner, for the account's bookkeeping; :mod:`relais.files` leaves request files out of My files).
The guest's Transmit and its receipt are :mod:`relais.request_submissions`; staff's side (the
list and states, the received files, retrieval, revoke, extend) is :mod:`relais.request_staff`; the deadline, reminders and purging are :mod:`relais.request_retention`.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import ClassVar

from relais import audit, clock, emails, files, i18n, links, mail, passwords, settings
from relais.db import Database, Row
from relais.i18n import N_
from relais.refusal import Refused, Size
from relais.shares import MAX_MESSAGE, generate_password

MAX_FILES = 100  # the most a request can ask for in one submission
MAX_REFERENCE_LABEL = 100
MAX_REFERENCE = 100

REASONS = {
    "bad_recipient": N_("Enter the e-mail address of the person who will send the files."),
    "message_too_long": N_("The message is at most 5,000 characters."),
    "bad_language": N_("Choose the language of the e-mail."),
    "bad_expiry": N_("The link can be valid from 1 to %(days)s days."),
    "bad_types": N_("Choose accepted file types from the list."),
    "bad_size": N_("The largest file is a whole number of MiB from 1 to %(limit)s."),
    "bad_count": N_("The most files is a whole number from 1 to 100."),
    "bad_reference_label": N_("The reference's name is at most 100 characters, without control characters."),
    # The guest's side
    "nothing_to_transmit": N_("Add at least one file before you transmit."),
    "still_uploading": N_("Some files are still uploading. Wait until every file is uploaded, or remove it."),
    "reference_missing": N_("Fill in the %(label)s."),
    "bad_reference": N_("The %(label)s is at most 100 characters, without control characters."),
    "closed": N_("This link no longer accepts files."),
}


class RequestRefused(Refused):
    """A request's form, or a guest's Transmit, breaks a rule; ``reason`` is a key of REASONS."""


@dataclass(frozen=True)
class Request(Row):
    id: str
    owner_id: int
    recipient: str
    message: str
    language: str
    accepted_types: str
    max_file_size: int
    max_files: int
    several: bool
    reference_label: str
    created_at: str
    expires_at: str
    closed_at: str | None
    revoked_at: str | None
    locked_at: str | None
    deleted_at: str | None
    BOOLEANS: ClassVar[tuple[str, ...]] = ("several",)

    @property
    def types(self) -> list[str]:
        """The accepted extensions: the request's own choice, or every allowed type."""
        return self.accepted_types.split() if self.accepted_types else sorted(files.ALLOWED)

    def link_state(self, now: str | None = None) -> str:
        """open, closed (sent, one submission), expired, revoked, locked or deleted: can the guest still send?"""
        return links.ended(self, now, closed=bool(self.closed_at)) or "open"

    @property
    def open(self) -> bool:
        """Does the link still take files? (The link core lets the guest in only then.)"""
        return self.link_state() == "open"


def recipients(db, request_id: str) -> list[str]:
    """Whom the link was sent to (one address), for the link core's lock warning."""
    row = next(iter(db.query("SELECT recipient FROM requests WHERE id = ?", [request_id])), None)
    return [row["recipient"]] if row and row["recipient"] else []


# The request as a kind of link: the link core finds, unlocks and locks it through this.
KIND = links.Kind(name="request", table="requests", from_row=Request.from_row, recipients=recipients,
                  staff_path="/requests/{id}", lock_mail="request_locked", lock_template="request_locked")


# -- staff: a new request --------------------------------------------------------------------------

@dataclass(frozen=True)
class NewRequest:
    recipient: str
    message: str = ""
    language: str = "en"
    expires_days: int | None = None  # None: the setting request_default_days
    accepted_types: tuple[str, ...] = ()  # () : every allowed type
    max_file_size_mib: int | None = None  # None: the site's largest
    max_files: int = 10
    several: bool = False
    reference_label: str = ""
    password: str = ""  # empty: Relais generates one


def default_days(database: Database) -> int:
    """How many days a new request's link is valid unless staff choose otherwise (a setting)."""
    return database.read_sync(settings.get, "request_default_days")


def clean_line(text: str, limit: int) -> str | None:
    """One line of text, trimmed; None if too long or holding control characters."""
    text = unicodedata.normalize("NFC", text.strip())
    if len(text) > limit or any(unicodedata.category(c).startswith("C") for c in text):
        return None
    return text


def validate(database: Database, new: NewRequest) -> tuple[str, list[str], int, str]:
    """(recipient, accepted types, largest file in bytes, reference label), or RequestRefused."""
    recipient = new.recipient.strip().lower()
    try:
        mail.address(recipient)
    except mail.MailError:
        raise RequestRefused("bad_recipient") from None
    if not recipient or len(recipient) > 254:
        raise RequestRefused("bad_recipient")
    if len(new.message) > MAX_MESSAGE:
        raise RequestRefused("message_too_long")
    if new.language not in i18n.LANGUAGES:
        raise RequestRefused("bad_language")
    values = database.read_sync(settings.all_values)
    if not 1 <= new.expires_days <= values["request_max_days"]:
        raise RequestRefused("bad_expiry", days=values["request_max_days"])
    types = sorted(set(new.accepted_types))
    if any(t not in files.ALLOWED for t in types):
        raise RequestRefused("bad_types")
    site_mib = values["max_file_size_mib"]
    mib = site_mib if new.max_file_size_mib is None else new.max_file_size_mib
    if not 1 <= mib <= site_mib:
        raise RequestRefused("bad_size", limit=site_mib)
    if not 1 <= new.max_files <= MAX_FILES:
        raise RequestRefused("bad_count")
    label = clean_line(new.reference_label, MAX_REFERENCE_LABEL)
    if label is None:
        raise RequestRefused("bad_reference_label")
    return recipient, types, mib * 1024 * 1024, label


def create(database: Database, hasher: passwords.Hasher, who: audit.Who, owner, new: NewRequest, base_url: str,
           password_link: bool = False):
    """Check everything, then in one transaction: the request, its invitation mail, its audit rows.

    Returns (request, link token, password, password-link token or ""): the only moment the
    password exists in clear."""
    if new.expires_days is None:
        new = replace(new, expires_days=default_days(database))
    recipient, types, max_size, label = validate(database, new)
    password = new.password or generate_password()
    if new.password:
        passwords.check_policy(new.password, [owner.email, owner.name])
    password_hash = hasher.hash(password)
    token = passwords.new_token()
    request_id = secrets.token_hex(16)

    def insert(db):
        now = clock.now()
        db.execute(
            "INSERT INTO requests (id, owner_id, token_hash, password_hash, recipient, message, language,"
            " accepted_types, max_file_size, max_files, several, reference_label, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [request_id, owner.id, passwords.token_hash(token), password_hash, recipient, new.message, new.language,
             " ".join(types), max_size, new.max_files, int(new.several), label, clock.iso(now),
             clock.iso(now + timedelta(days=new.expires_days))],
        )
        audit.record(db, who, "request.create", request_id, recipient=recipient, expires_days=new.expires_days,
                     types=" ".join(types) or "all", max_file_size=max_size, max_files=new.max_files,
                     several=new.several, reference=bool(label), password="typed" if new.password else "generated")
        request = get(db, request_id)
        subject, text, html = emails.render(
            "request", new.language, sender=owner.name or owner.email, sender_email=owner.email,
            message=new.message, link=f"{base_url}/r/{token}", expires_at=request.expires_at,
            types=request.types, max_size=Size(max_size), max_files=new.max_files, reference_label=label,
        )
        mail.queue(db, who, to=recipient, subject=subject, text=text, html=html, kind="request", object=request_id,
                   language=new.language)
        audit.record(db, who, "request.password_shown", request_id)
        password_token = links.create_password_link(db, who, KIND, request_id, password) if password_link else ""
        return request, password_token

    request, password_token = database.write(insert)
    return request, token, password, password_token


def get(db, request_id: str) -> Request | None:
    """For reads (the Database) and inside a write alike, through the link core's loader."""
    return links.load(db, KIND, request_id)


def visible_to(database: Database, user, request_id: str) -> Request | None:
    """The request if this staff member may see it (its owner, or an admin); else None."""
    request = get(database, request_id)
    if request is None or not (user.is_admin or request.owner_id == user.id):
        return None
    return request


# -- the guest's side: what the target accepts, pending files, Transmit ---------------------------

def check_new(database: Database, request: Request, raw_name: str, length: int | None) -> tuple[str, str]:
    """Before a byte is stored: the link takes files, and the name, type, size and count fit the request."""
    if not request.open:
        raise files.FileRefused("request_closed")
    name = files.clean_name(raw_name)
    # The request's own types first: a type Relais refuses everywhere is refused with this
    # request's list too, not with every type Relais allows (which the guest may not send here).
    if files.extension(name) not in request.types:
        raise files.FileRefused("extension", extensions=", ".join(request.types))
    media_type = files.check_type(name)
    if length is not None and length <= 0:
        raise files.FileRefused("empty_file")
    if length is not None and length > request.max_file_size:
        raise files.FileRefused("too_large", limit=Size(request.max_file_size))
    if database.read_sync(_taken, request.id) >= request.max_files:
        raise files.FileRefused("request_too_many", limit=request.max_files)
    return name, media_type


def _taken(db, request_id: str) -> int:
    """Places of this submission in use: pending files and uploads on their way."""
    return db.execute(
        "SELECT (SELECT count(*) FROM request_files WHERE request_id = ? AND submission_id IS NULL)"
        " + (SELECT count(*) FROM uploads WHERE target_kind = 'request' AND target_id = ?)", [request_id, request_id],
    ).fetchone()[0]


def deliver(db, request_id: str, file_id: str) -> None:
    """Inside the transaction that completes an upload: the file becomes pending for Transmit,
    if the link still takes files and a place is left (checked again: the request may have closed,
    or another upload taken the last place, while this one was on its way)."""
    request = get(db, request_id)
    if request is None or not request.open:
        raise files.FileRefused("request_closed")
    pending = db.execute("SELECT count(*) FROM request_files WHERE request_id = ? AND submission_id IS NULL",
                         [request_id]).fetchone()[0]
    if pending >= request.max_files:
        raise files.FileRefused("request_too_many", limit=request.max_files)
    db.execute("INSERT INTO request_files (file_id, request_id) VALUES (?, ?)", [file_id, request_id])


def pending_files(database: Database, request_id: str) -> list[files.StoredFile]:
    """What the guest uploaded and has not transmitted yet, by name (shown, never served)."""
    rows = database.query(
        "SELECT files.* FROM files JOIN request_files ON request_files.file_id = files.id"
        " WHERE request_files.request_id = ? AND request_files.submission_id IS NULL AND files.state = 'complete'"
        " ORDER BY files.name, files.id", [request_id],
    )
    return [files.StoredFile.from_row(row) for row in rows]


def uploads_on_their_way(database: Database, request_id: str) -> list[dict]:
    """Unfinished uploads into the request: name, bytes stored, length (the guest resumes or removes them)."""
    return database.query(
        'SELECT uploads.id, files.name, uploads."offset", uploads.length FROM uploads'
        " JOIN files ON files.id = uploads.file_id WHERE uploads.target_kind = 'request' AND uploads.target_id = ?"
        " ORDER BY uploads.created_at", [request_id],
    )


def remove_pending(database: Database, files_dir, who: audit.Who, request: Request, file_id: str) -> bool:
    """The guest's Remove before Transmit: the pending file is shredded. False if it is not one."""

    def select(db) -> list[dict]:
        return list(db.query(
            "SELECT files.id, files.storage_name, files.name, files.size FROM files"
            " JOIN request_files ON request_files.file_id = files.id"
            " WHERE files.id = ? AND request_files.request_id = ? AND request_files.submission_id IS NULL",
            [file_id, request.id]))

    def record(db, rows: list[dict]) -> bool:
        for row in rows:
            links.event(db, who, KIND, request.id, "file_remove", file_id, detail=row["name"], name=row["name"],
                        size=row["size"])
        return bool(rows)

    return files.shred(database, files_dir, select, record)
