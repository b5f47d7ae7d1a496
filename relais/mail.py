"""E-mail through a transactional outbox: a message is a row first, and is sent after.

Queuing a mail is part of the same transaction as the change it reports (a share created, a
file received), so there is never a share without its mail or a mail about nothing. A sender
thread works through the ``outbox`` table: a failed send is retried with growing delays and
never dropped; a message is marked sent only once the SMTP server has accepted it. Every
message carries a fixed Message-ID, so a retry after a crash at the worst moment (accepted but
not yet marked) can be recognised as a duplicate by the receiving side.

With no SMTP server configured, messages are written as ``.eml`` files to ``data/outbox/``
and a line on the console says so: development and small installations need no mail server.
That folder is then the recipients' mailbox: its files are the delivered mails, links included
(someone has to pass them on), and go when their share is revoked or deleted. The rows keep a
copy once sent, with the link tokens cut out (``redact``): the database and its backups are a
record of what was sent, not a way in.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from relais import audit, clock, paging
from relais.background import Worker
from relais.config import Config
from relais.db import Database
from relais.users import UserError, normalize_email

log = logging.getLogger("relais.mail")

# Seconds to wait before attempt n+1: 1 min, 2, 4, 8... capped at one hour, then hourly for ever.
BACKOFF_START = 60
BACKOFF_MAX = 3600
BATCH = 20


class MailError(ValueError):
    """An address or header a user typed cannot go into a mail."""


def clean_header(value: str, limit: int = 200) -> str:
    """A header value from user input: one line, no control characters, bounded."""
    if any(c in value for c in "\r\n\x00") or any(ord(c) < 32 and c != "\t" for c in value):
        raise MailError("header")
    return " ".join(value.split())[:limit]


def address(email: str, name: str = "") -> str:
    """A validated ``Name <addr>`` for a header; refuses anything that could add a header."""
    try:
        email = normalize_email(clean_header(email, 254))
    except UserError as exc:
        raise MailError("address") from exc
    local, _, domain = email.partition("@")
    return str(Address(display_name=clean_header(name), username=local, domain=domain))


def queue(db, who: audit.Who, *, to: str, subject: str, text: str, html: str, kind: str, object: str = "",
          language: str = "en", to_name: str = "") -> int:
    """Add a message to the outbox (inside a write, with the change it reports)."""
    recipient = address(to, to_name)
    subject = clean_header(subject, 250)
    now = clock.now_iso()
    message_id = make_msgid(domain="relais")
    outbox_id = db.execute(
        "INSERT INTO outbox (created_at, kind, object, recipient, subject, body_text, body_html, language,"
        " message_id, status, attempts, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
        [now, kind, object, recipient, subject, text, html, language, message_id, now],
    ).lastrowid
    audit.record(db, who, "mail.queued", object, kind=kind, to=parseaddr(recipient)[1], outbox_id=outbox_id)
    return outbox_id


def build(row: dict, sender: str) -> EmailMessage:
    """The MIME message for an outbox row: plain text plus an HTML alternative."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row["recipient"]
    message["Subject"] = row["subject"]
    message["Date"] = format_datetime(clock.parse(row["created_at"]))
    message["Message-ID"] = row["message_id"]
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(row["body_text"])
    if row["body_html"]:
        message.add_alternative(row["body_html"], subtype="html")
    # After the body: set_content() drops every Content-* header set before it.
    message["Content-Language"] = row["language"]
    return message


def eml_path(config: Config, outbox_id: int):
    return config.outbox_dir / f"{outbox_id:08d}.eml"


# Mails that carry a link's secret or the sender's message to the link's recipients. Only these
# go when their object (a share) is revoked or deleted: the owner's receipt and lock warning
# hold neither (their link is to the owner's own page, behind a login) and are the record the
# owner keeps of what happened.
CARRIES_THE_LINK = ("share", "request")

# A link token in a mail body: /s/<token> (a share), /p/<token> (its password), /login/link/<token>.
# Tokens are 43 URL-safe characters (passwords.new_token); ids such as /shares/<id> are not secrets.
SECRET_LINK = re.compile(r"(/(?:s|r|p|login/link)/)[A-Za-z0-9_-]{20,}")
REDACTED = "[removed once sent]"


def redact(body: str) -> str:
    """The body without the secrets of the links in it, for the record kept after sending."""
    return SECRET_LINK.sub(lambda m: m.group(1) + REDACTED, body)


def forget(db, object: str) -> list[int]:
    """Inside a write: drop the unsent mails about ``object`` that carry its link or its message
    and blank the bodies of those already sent. Returns their outbox ids, whose .eml files the
    caller removes. Other mails about the object (the owner's receipt, the lock warning) stay."""
    kinds = ", ".join("?" for _ in CARRIES_THE_LINK)
    rows = [r[0] for r in db.execute(f"SELECT id FROM outbox WHERE object = ? AND kind IN ({kinds})",
                                     [object, *CARRIES_THE_LINK]).fetchall()]
    for outbox_id in rows:
        db.execute("DELETE FROM outbox WHERE id = ? AND status = 'pending'", [outbox_id])
        db.execute("UPDATE outbox SET body_text = '', body_html = '' WHERE id = ?", [outbox_id])
    return rows


class Transport:
    """Hands one message to SMTP, or writes it to data/outbox/ when no server is configured."""

    def __init__(self, config: Config):
        self.config = config

    def send(self, message: EmailMessage, outbox_id: int) -> None:
        config = self.config
        if not config.smtp_host:
            path = eml_path(config, outbox_id)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(bytes(message))
            tmp.replace(path)  # a reader never sees half a message
            print(f"mail to {message['To']} written to {path}", flush=True)
            return
        context = ssl.create_default_context(cafile=config.smtp_ca_file or None)
        if config.smtp_tls == "tls":
            smtp = smtplib.SMTP_SSL(config.smtp_host, config.smtp_port, timeout=30, context=context)
        else:
            smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=30)
        with smtp:
            if config.smtp_tls == "starttls":
                smtp.starttls(context=context)
            if config.smtp_user:
                smtp.login(config.smtp_user, config.smtp_password)
            smtp.send_message(message)


def send_due(database: Database, transport: Transport, limit: int = BATCH) -> int:
    """Try every message that is due; returns how many went out."""
    now = clock.now_iso()
    rows = database.query(
        "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?", [now, limit]
    )
    sent = 0
    for row in rows:
        try:
            transport.send(build(row, transport.config.mail_from), row["id"])
        except (OSError, smtplib.SMTPException) as exc:
            delay = min(BACKOFF_START * 2 ** row["attempts"], BACKOFF_MAX)
            database.write(_failed, row, f"{type(exc).__name__}: {exc}"[:500], delay)
            log.warning("mail %s to %s not sent (attempt %s): %s", row["id"], row["recipient"], row["attempts"] + 1, exc)
        else:
            database.write(_sent, row)
            sent += 1
    if sent:
        # The links just cut out of the rows must not live on in the write-ahead log either.
        database.checkpoint()
    return sent


def _sent(db, row: dict) -> None:
    # An unsent mail must keep its link to be sent (and resent after a failure); once the server
    # has it, the row is the record of what was sent, and a record needs no working link. The
    # body is kept with its link tokens cut out, so neither this row nor a backup of the database
    # (`backup` copies it) opens the share. Headers, subject, kind and recipient stay as they were.
    db.execute(
        "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = '',"
        " body_text = ?, body_html = ? WHERE id = ?",
        [clock.now_iso(), redact(row["body_text"]), redact(row["body_html"]), row["id"]],
    )
    audit.record(db, audit.SYSTEM, "mail.sent", row["object"], kind=row["kind"], outbox_id=row["id"])


def _failed(db, row: dict, error: str, delay: int) -> None:
    db.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
        [error, clock.in_(timedelta(seconds=delay)), row["id"]],
    )
    if row["attempts"] == 0:  # the first failure is worth a trace; the retries are in the row
        audit.record(db, audit.SYSTEM, "mail.deferred", row["object"], kind=row["kind"], outbox_id=row["id"], error=error)


# -- the outbox as admins see it (the Outbox page) ---------------------------------------------

# A mail's fields an admin may see: never a body, which holds a link's secret until it is sent.
LISTED = "id, created_at, kind, object, recipient, subject, attempts, next_attempt_at, last_error, sent_at"
LISTS = {
    # Mails a send failed for, retried with growing delays (never dropped), the soonest retry first.
    "failed": ("status = 'pending' AND attempts > 0", "next_attempt_at, id"),
    # Mails not tried yet: the sender takes them within seconds, so this list is short but for a stop.
    "waiting": ("status = 'pending' AND attempts = 0", "next_attempt_at, id"),
    "sent": ("status = 'sent'", "sent_at DESC, id DESC"),
}


class RetryRefused(ValueError):
    """The mail to retry is not in the outbox (``reason`` "unknown") or was already sent ("sent")."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def listed(database: Database, which: str, page: int = 1, per_page: int = paging.PER_PAGE) -> paging.Page:
    """One page of the outbox's ``which`` list (a key of :data:`LISTS`), without the bodies."""
    where, order = LISTS[which]
    rows, page, total = database.read_sync(
        paging.fetch, f"SELECT count(*) FROM outbox WHERE {where}",
        f"SELECT {LISTED} FROM outbox WHERE {where} ORDER BY {order}", [], page, per_page)
    return paging.Page(rows, page, per_page, total)


def retry(db, who: audit.Who, outbox_id: int) -> dict:
    """Inside a write: make an unsent mail due now (the caller wakes the sender). Its attempts and
    last error stay: the next try, failed or not, is counted on top of them."""
    row = next(db.query("SELECT id, object, kind, recipient, status FROM outbox WHERE id = ?", [outbox_id]), None)
    if row is None:
        raise RetryRefused("unknown")
    if row["status"] != "pending":
        raise RetryRefused("sent")
    db.execute("UPDATE outbox SET next_attempt_at = ? WHERE id = ?", [clock.now_iso(), outbox_id])
    audit.record(db, who, "mail.retry", row["object"], kind=row["kind"], to=parseaddr(row["recipient"])[1],
                 outbox_id=outbox_id)
    return row


def retry_failed(db, who: audit.Who) -> int:
    """Inside a write: make every mail a send failed for due now; returns how many (one audit row)."""
    now = clock.now_iso()
    retried = db.execute("UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending' AND attempts > 0"
                         " AND next_attempt_at > ?", [now, now]).rowcount
    if retried:
        audit.record(db, who, "mail.retry_all", "", mails=retried)
    return retried


class Sender(Worker):
    """Sends due mail every few seconds, or at once when woken (after a share is created)."""

    name = "relais-mail"

    def __init__(self, database: Database, transport: Transport, interval: float = 5.0):
        super().__init__(interval)
        self.database, self.transport = database, transport

    def step(self) -> None:
        while send_due(self.database, self.transport) == BATCH:
            pass
