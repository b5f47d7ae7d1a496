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
The deadline, reminders and purging are in :mod:`relais.request_retention`.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass, replace
from datetime import timedelta

from relais import audit, clock, emails, files, i18n, links, mail, passwords, paging, settings
from relais.db import Database
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
class Request:
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

    @classmethod
    def from_row(cls, row: dict) -> Request:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["several"] = bool(values["several"])
        return cls(**values)

    @property
    def types(self) -> list[str]:
        """The accepted extensions: the request's own choice, or every allowed type."""
        return self.accepted_types.split() if self.accepted_types else sorted(files.ALLOWED)

    def link_state(self, now: str | None = None) -> str:
        """open, closed (sent, one submission), expired, revoked, locked or deleted: can the guest still send?"""
        if self.deleted_at:
            return "deleted"
        if self.revoked_at:
            return "revoked"
        if self.locked_at:
            return "locked"
        if self.closed_at:
            return "closed"
        if self.expires_at <= (now or clock.now_iso()):
            return "expired"
        return "open"

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


def _clean_line(text: str, limit: int) -> str | None:
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
    label = _clean_line(new.reference_label, MAX_REFERENCE_LABEL)
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
    media_type = files.check_type(name)
    if files.extension(name) not in request.types:
        raise files.FileRefused("extension", extensions=", ".join(request.types))
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


@dataclass(frozen=True)
class Submission:
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

    @classmethod
    def from_row(cls, row: dict) -> Submission:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

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
        cleaned = _clean_line(reference, MAX_REFERENCE)
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


# -- staff: lists, the received files, retrieval, revoke, extend, delete --------------------------

def submissions(database: Database, request_id: str) -> list[tuple[Submission, list[dict]]]:
    """Each submission, newest first, with its files still stored (none once purged), each as
    ``{"file": StoredFile, "retrieved_at": ...}``."""
    result = []
    for row in database.query("SELECT * FROM request_submissions WHERE request_id = ? ORDER BY transmitted_at DESC",
                              [request_id]):
        held = database.query(
            "SELECT files.*, request_files.retrieved_at FROM files JOIN request_files ON request_files.file_id = files.id"
            " WHERE request_files.submission_id = ? AND files.state = 'complete' ORDER BY files.name, files.id",
            [row["id"]])
        result.append((Submission.from_row(row),
                       [{"file": files.StoredFile.from_row(r), "retrieved_at": r["retrieved_at"]} for r in held]))
    return result


def received_file(database: Database, request: Request, file_id: str) -> files.StoredFile | None:
    """A transmitted file of this request (pending ones are not staff's yet); None otherwise."""
    row = database.query_one(
        "SELECT files.* FROM files JOIN request_files ON request_files.file_id = files.id"
        " WHERE files.id = ? AND request_files.request_id = ? AND request_files.submission_id IS NOT NULL"
        " AND files.state = 'complete'", [file_id, request.id])
    return files.StoredFile.from_row(row) if row else None


def received_files(database: Database, request: Request, submission_id: str | None = None) -> list[files.StoredFile]:
    """Every transmitted file still stored (of one submission, if given), for the zip."""
    extra, params = (" AND request_files.submission_id = ?", [submission_id]) if submission_id else ("", [])
    rows = database.query(
        "SELECT files.* FROM files JOIN request_files ON request_files.file_id = files.id"
        " WHERE request_files.request_id = ? AND request_files.submission_id IS NOT NULL AND files.state = 'complete'"
        f"{extra} ORDER BY files.name, files.id", [request.id, *params])
    return [files.StoredFile.from_row(row) for row in rows]


def record_retrieval(database: Database, who: audit.Who, request: Request, downloaded: list[files.StoredFile]) -> list[str]:
    """After staff downloaded these files completely: each is retrieved, and a submission whose
    every file is, too. Returns the submissions that became retrieved by this."""

    def record(db) -> list[str]:
        now = clock.now_iso()
        for stored in downloaded:
            changed = db.execute("UPDATE request_files SET retrieved_at = ? WHERE file_id = ? AND request_id = ?"
                                 " AND retrieved_at IS NULL", [now, stored.id, request.id]).rowcount
            links.event(db, who, KIND, request.id, "download", stored.id, detail=stored.name, name=stored.name,
                        first=bool(changed))
        done = [row[0] for row in db.execute(
            "SELECT id FROM request_submissions WHERE request_id = ? AND retrieved_at IS NULL AND purged_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM request_files WHERE submission_id = request_submissions.id"
            " AND retrieved_at IS NULL)", [request.id]).fetchall()]
        for submission_id in done:
            db.execute("UPDATE request_submissions SET retrieved_at = ? WHERE id = ?", [now, submission_id])
            links.event(db, who, KIND, request.id, "retrieved", detail=submission_id, submission=submission_id)
        return done

    return database.write(record)


STATES = ("received", "waiting", "retrieved", "expired", "revoked", "locked", "deleted")


def state(request: Request, waiting: int, retrieved: int, now: str | None = None) -> str:
    """What staff see: files to retrieve come first (whatever became of the link), then why the link ended.

    ``waiting``: submissions whose files wait for retrieval; ``retrieved``: those retrieved."""
    if waiting:
        return "received"
    link = request.link_state(now)
    if link in ("deleted", "revoked", "locked"):
        return link
    if retrieved and link in ("closed", "expired"):
        return "retrieved"
    # Ended without a retrieval: nothing came, or what came was deleted at its deadline.
    return "expired" if link in ("closed", "expired") else "waiting"


_LIST = (
    "SELECT requests.*, users.email AS owner_email,"
    " (SELECT count(*) FROM request_submissions s WHERE s.request_id = requests.id AND s.retrieved_at IS NULL"
    "  AND s.purged_at IS NULL) AS waiting,"
    " (SELECT count(*) FROM request_submissions s WHERE s.request_id = requests.id AND s.retrieved_at IS NOT NULL)"
    "  AS retrieved,"
    " (SELECT min(retrieve_by) FROM request_submissions s WHERE s.request_id = requests.id AND s.retrieved_at IS NULL"
    "  AND s.purged_at IS NULL) AS retrieve_by,"
    " (SELECT coalesce(sum(files), 0) FROM request_submissions s WHERE s.request_id = requests.id) AS files_received"
    " FROM requests JOIN users ON users.id = requests.owner_id"
)


def _with_state(rows: list[dict]) -> list[dict]:
    now = clock.now_iso()
    for row in rows:
        row["state"] = state(Request.from_row(row), row["waiting"], row["retrieved"], now)
    return rows


def for_staff(database: Database, user, page: int = 1, per_page: int = paging.PER_PAGE) -> paging.Page:
    """One page of the user's requests, newest first (an admin sees everyone's), with their state
    and the earliest retrieval deadline."""
    where, params = ("", []) if user.is_admin else (" WHERE requests.owner_id = ?", [user.id])
    rows, page, total = database.read_sync(
        paging.fetch, f"SELECT count(*) FROM requests{where}",
        f"{_LIST}{where} ORDER BY requests.created_at DESC, requests.id", params, page, per_page,
    )
    return paging.Page(_with_state(rows), page, per_page, total)


def waiting_for(database: Database, owner_id: int) -> list[dict]:
    """The staff home: the owner's requests with files to retrieve, soonest deadline first, each
    with ``files_waiting`` (its files not retrieved yet)."""
    rows = database.query(
        "SELECT listed.*, (SELECT count(*) FROM request_files f JOIN request_submissions s ON s.id = f.submission_id"
        "  WHERE f.request_id = listed.id AND f.retrieved_at IS NULL AND s.retrieved_at IS NULL"
        "  AND s.purged_at IS NULL) AS files_waiting"
        f" FROM ({_LIST} WHERE requests.owner_id = ?) AS listed WHERE listed.waiting > 0"
        " ORDER BY listed.retrieve_by, listed.id LIMIT 50", [owner_id])
    return _with_state(rows)


def _covered(spans: list[tuple[int, int]], size: int) -> bool:
    """Do the byte ranges [start, end) together cover the whole file?"""
    reached = 0
    for start, end in sorted(spans):
        if start > reached:
            return False
        reached = max(reached, end)
    return reached >= size


def record_part(database: Database, who: audit.Who, request: Request, stored: files.StoredFile, session: str,
                start: int, sent: int) -> bool:
    """After a response of a received file ended (whole or cut off): note the bytes sent from
    ``start`` (a link event only, not in the activity). True when this login session's responses
    since the file's last complete download now cover all of it, a resumed download included;
    the caller then records the retrieval (:func:`record_retrieval`). A probe of a few bytes never
    does: only the whole file counts."""

    def record(db) -> bool:
        if sent:
            links.event(db, who, KIND, request.id, "download_part", stored.id, session=session, detail=stored.name,
                        start=start, count=sent)
        since = db.execute("SELECT coalesce(max(id), 0) FROM link_events WHERE kind = ? AND object_id = ?"
                           " AND file_id = ? AND event = 'download'", [KIND.name, request.id, stored.id]).fetchone()[0]
        spans = [(row[0], row[0] + row[1]) for row in db.execute(
            "SELECT start, bytes FROM link_events WHERE kind = ? AND object_id = ? AND file_id = ? AND session = ?"
            " AND event = 'download_part' AND id > ?", [KIND.name, request.id, stored.id, session, since]).fetchall()]
        return bool(sent) and _covered(spans, stored.size)

    return database.write(record)


def activity(database: Database, request_id: str, page: int = 1) -> paging.Page:
    return links.events(database, KIND, request_id, page)


def revoke(database: Database, who: audit.Who, request: Request) -> None:
    """The link stops taking files at once. Files already transmitted stay until their deadline;
    pending ones (never transmitted) go with the next purge."""

    def update(db):
        db.execute("UPDATE requests SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", [clock.now_iso(), request.id])
        links.forget(db, KIND, request.id)
        audit.record(db, who, "request.revoke", request.id)

    database.write(update)


def extend(database: Database, who: audit.Who, request: Request, days: int, by_admin: bool) -> None:
    """Move the link's expiry to ``days`` from now, never past request_max_days after creation (unless admin)."""
    limit = clock.parse(request.created_at) + timedelta(days=database.read_sync(settings.get, "request_max_days"))
    new_expiry = clock.now() + timedelta(days=days)
    if days < 1 or (new_expiry > limit and not by_admin) or days > 365:
        raise RequestRefused("bad_expiry", days=max(0, (limit - clock.now()).days))

    def update(db):
        db.execute("UPDATE requests SET expires_at = ? WHERE id = ?", [clock.iso(new_expiry), request.id])
        audit.record(db, who, "request.extend", request.id, expires_at=clock.iso(new_expiry),
                     beyond_limit=new_expiry > limit)

    database.write(update)
