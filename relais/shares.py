"""Shares ("Send files"): files behind a password-protected download link, for named recipients.

A share owns the files attached to it: they leave the owner's "My files" and are crypto-shredded
with the share. The link token (256 bits) and the password are stored only as a SHA-256 and an
argon2id hash. The recipient's side is the link core (:mod:`relais.links`, kind ``share``) with
:mod:`relais.links.downloads` on top.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import ClassVar

from relais import audit, clock, emails, files, i18n, links, mail, passwords, settings
from relais import paging
from relais.db import Database, Row
from relais.i18n import N_
from relais.refusal import Refused

# No look-alikes (0/o, 1/l/i) and lower case only: easy to read out on the phone, 4 groups of 4
# from 31 symbols = 79 bits, far beyond online guessing with the link's lockout.
DICTATION_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
MAX_RECIPIENTS = 20
MAX_MESSAGE = 5000

REASONS = {
    "no_files": N_("Add at least one file."),
    "no_recipients": N_("Enter at least one recipient's e-mail address."),
    "too_many_recipients": N_("At most 20 recipients per share."),
    "bad_recipient": N_("This is not a valid e-mail address: %(value)s"),
    "message_too_long": N_("The message is at most 5,000 characters."),
    "bad_language": N_("Choose the language of the e-mail."),
    "bad_expiry": N_("The link can be valid from 1 to %(days)s days."),
    "bad_limit": N_("The download limit is a whole number from 1 to 1,000, or empty for no limit."),
    "file_gone": N_("One of the files is no longer available. Reload the page."),
}


class ShareRefused(Refused):
    """A share's form breaks a rule; ``reason`` is a key of REASONS."""


@dataclass(frozen=True)
class Share(Row):
    id: str
    owner_id: int
    message: str
    language: str
    created_at: str
    expires_at: str
    download_limit: int | None
    delete_after_download: bool
    revoked_at: str | None
    deleted_at: str | None
    locked_at: str | None
    downloaded_at: str | None

    BOOLEANS: ClassVar[tuple[str, ...]] = ("delete_after_download",)

    def status(self, now: str | None = None) -> str:
        """active, expired, revoked, locked, downloaded or deleted: what staff see in the list."""
        return links.ended(self, now) or ("downloaded" if self.downloaded_at else "active")

    @property
    def open(self) -> bool:
        """Can the recipient still get in? (Downloaded shares stay open until their limit.)"""
        return self.status() in ("active", "downloaded")


def generate_password() -> str:
    return "-".join("".join(secrets.choice(DICTATION_ALPHABET) for _ in range(4)) for _ in range(4))


def parse_recipients(text: str) -> list[str]:
    """Addresses separated by commas, semicolons, spaces or new lines; each one validated."""
    raw = [part for part in text.replace(";", ",").replace("\n", ",").replace(" ", ",").split(",") if part.strip()]
    if not raw:
        raise ShareRefused("no_recipients")
    if len(raw) > MAX_RECIPIENTS:
        raise ShareRefused("too_many_recipients")
    recipients = []
    for value in raw:
        try:
            mail.address(value)
        except mail.MailError:
            raise ShareRefused("bad_recipient", value=value[:100]) from None
        if value.strip().lower() not in recipients:
            recipients.append(value.strip().lower())
    return recipients


@dataclass(frozen=True)
class NewShare:
    file_ids: list[str]
    recipients: str
    message: str = ""
    language: str = "en"
    expires_days: int = 30
    download_limit: int | None = None
    delete_after_download: bool = False
    password: str = ""  # empty: Relais generates one


def create(database: Database, hasher: passwords.Hasher, who: audit.Who, owner, new: NewShare, base_url: str,
           password_link: bool = False):
    """Check everything, then in one transaction: the share, its files, its recipients, its mails.

    Returns (share, link token, password, password-link token or ""): the only moment the
    password exists in clear.
    """
    addresses = parse_recipients(new.recipients)
    if len(new.message) > MAX_MESSAGE:
        raise ShareRefused("message_too_long")
    if new.language not in i18n.LANGUAGES:
        raise ShareRefused("bad_language")
    max_days = database.read_sync(settings.get, "share_max_days")
    if not 1 <= new.expires_days <= max_days:
        raise ShareRefused("bad_expiry", days=max_days)
    if new.download_limit is not None and not 1 <= new.download_limit <= 1000:
        raise ShareRefused("bad_limit")
    file_ids = list(dict.fromkeys(new.file_ids))
    if not file_ids:
        raise ShareRefused("no_files")
    password = new.password or generate_password()
    if new.password:
        passwords.check_policy(new.password, [owner.email, owner.name])
    password_hash = hasher.hash(password)
    token = passwords.new_token()
    share_id = secrets.token_hex(16)
    link = f"{base_url}/s/{token}"

    def insert(db):
        for file_id in file_ids:
            if not db.execute(
                "SELECT 1 FROM files WHERE id = ? AND owner_id = ? AND state = 'complete'"
                " AND id NOT IN (SELECT file_id FROM share_files) AND id NOT IN (SELECT file_id FROM request_files)",
                [file_id, owner.id],
            ).fetchone():
                raise ShareRefused("file_gone")
        now = clock.now()
        db.execute(
            "INSERT INTO shares (id, owner_id, token_hash, password_hash, message, language, created_at, expires_at,"
            " download_limit, delete_after_download) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [share_id, owner.id, passwords.token_hash(token), password_hash, new.message, new.language,
             clock.iso(now), clock.iso(now + timedelta(days=new.expires_days)), new.download_limit,
             int(new.delete_after_download)],
        )
        for file_id in file_ids:
            db.execute("INSERT INTO share_files (share_id, file_id) VALUES (?, ?)", [share_id, file_id])
        audit.record(db, who, "share.create", share_id, files=len(file_ids), recipients=len(addresses),
                     expires_days=new.expires_days, download_limit=new.download_limit,
                     delete_after_download=new.delete_after_download, password="typed" if new.password else "generated")
        share = get(db, share_id)
        for recipient in addresses:
            db.execute("INSERT INTO share_recipients (share_id, email) VALUES (?, ?)", [share_id, recipient])
            subject, text, html = emails.render(
                "share", new.language, sender=owner.name or owner.email, sender_email=owner.email,
                message=new.message, link=link, expires_at=share.expires_at,
                files=[f["name"] for f in db.query("SELECT name FROM files JOIN share_files ON file_id = id"
                                                   " WHERE share_id = ? ORDER BY name", [share_id])],
            )
            mail.queue(db, who, to=recipient, subject=subject, text=text, html=html, kind="share",
                       object=share_id, language=new.language)
        audit.record(db, who, "share.password_shown", share_id)
        password_token = links.create_password_link(db, who, KIND, share_id, password) if password_link else ""
        return share, password_token

    share, password_token = database.write(insert)
    return share, token, password, password_token


def get(db, share_id: str) -> Share | None:
    """For reads (the Database) and inside a write alike, through the link core's loader."""
    return links.load(db, KIND, share_id)


def for_staff(database: Database, user, page: int = 1, per_page: int = paging.PER_PAGE) -> paging.Page:
    """One page of the user's shares, newest first (an admin sees everyone's), with files and recipients."""
    where, params = ("", []) if user.is_admin else ("WHERE shares.owner_id = ?", [user.id])
    rows, page, total = database.read_sync(
        paging.fetch, f"SELECT count(*) FROM shares {where}",
        f"SELECT shares.*, users.email AS owner_email,"
        f" (SELECT group_concat(email, ', ') FROM share_recipients WHERE share_id = shares.id) AS recipients,"
        f" (SELECT count(*) FROM share_files WHERE share_id = shares.id) AS file_count"
        f" FROM shares JOIN users ON users.id = shares.owner_id {where} ORDER BY shares.created_at DESC, shares.id",
        params, page, per_page,
    )
    now = clock.now_iso()
    for row in rows:
        row["status"] = Share.from_row(row).status(now)
    return paging.Page(rows, page, per_page, total)


def visible_to(database: Database, user, share_id: str) -> Share | None:
    """The share if this staff member may see it (its owner, or an admin); else None."""
    share = get(database, share_id)
    if share is None or not (user.is_admin or share.owner_id == user.id):
        return None
    return share


def recipients(db, share_id: str) -> list[str]:
    """For reads (the Database) and inside a write alike: both answer ``query``."""
    return [row["email"] for row in db.query("SELECT email FROM share_recipients WHERE share_id = ? ORDER BY email", [share_id])]


# The share as a kind of link: the link core finds, unlocks and locks it through this.
KIND = links.Kind(name="share", table="shares", from_row=Share.from_row, recipients=recipients,
                  staff_path="/shares/{id}", lock_mail="share_locked")


def share_files(database: Database, share_id: str) -> list[files.StoredFile]:
    """The share's files; ``database`` may also be the connection inside a write (delete does so)."""
    rows = database.query(
        "SELECT files.* FROM files JOIN share_files ON share_files.file_id = files.id"
        " WHERE share_files.share_id = ? AND files.state = 'complete' ORDER BY files.name", [share_id],
    )
    return [files.StoredFile.from_row(row) for row in rows]


def activity(database: Database, share_id: str, page: int = 1) -> paging.Page:
    """One page of what the owner sees: accesses, refusals, downloads started and completed (not each part)."""
    return links.events(database, KIND, share_id, page)


def open_of_owner(database: Database, owner_id: int) -> list[dict]:
    """The owner's shares whose link still works (the ``open_links`` view), newest first."""
    return database.query(
        "SELECT open_links.* FROM open_links JOIN shares ON shares.id = open_links.id"
        " WHERE shares.owner_id = ? ORDER BY open_links.created_at DESC", [owner_id],
    )


def revoke(database: Database, config, who: audit.Who, share: Share) -> None:
    """The link stops working at once, and its files are shredded (nothing is kept): the state,
    the keys and the audit row in one transaction."""
    delete(database, config, who, share, action="share.revoke", revoke=True)


def extend(database: Database, who: audit.Who, share: Share, days: int, by_admin: bool) -> None:
    """Move the expiry to ``days`` from now, never past share_max_days after creation (unless admin)."""
    new_expiry, beyond = links.extended_expiry(database, share.created_at, "share_max_days", days, by_admin, ShareRefused)

    def update(db):
        db.execute("UPDATE shares SET expires_at = ? WHERE id = ?", [new_expiry, share.id])
        audit.record(db, who, "share.extend", share.id, expires_at=new_expiry, beyond_limit=beyond)

    database.write(update)


def delete(database: Database, config, who: audit.Who, share: Share, action: str = "share.delete",
           revoke: bool = False) -> None:
    """Crypto-shred the share's files, all in one transaction: its state (revoked, deleted), the
    files' keys, everything else that could lead to or describe the files (the message, the link
    sessions, the password link, unsent mails, the bodies with the link of mails already sent)
    and the audit row. Either all of it commits or none of it does.

    Only then are the data files unlinked: without their keys they are noise already, and if the
    process dies before unlinking them, the orphan sweep of the next purge removes them
    (``files.purge_orphans``, part of ``retention.purge_all``).
    """

    def doomed(db) -> list[dict]:
        # Read inside the transaction: a file attached meanwhile cannot escape the shredding.
        return [asdict(stored) for stored in share_files(db, share.id)]

    def update(db, rows: list[dict]):
        if revoke:
            db.execute("UPDATE shares SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", [clock.now_iso(), share.id])
        db.execute("UPDATE shares SET deleted_at = coalesce(deleted_at, ?), password_hash = '', message = ''"
                   " WHERE id = ?", [clock.now_iso(), share.id])
        links.forget(db, KIND, share.id)
        forgotten = mail.forget(db, share.id)
        audit.record(db, who, action, share.id, files=[row["sha256"] for row in rows])
        return forgotten

    # files.shred deletes the rows (keys) with the rest in one transaction, checkpoints the
    # write-ahead log so no key lives on in it, then unlinks the data files.
    forgotten = files.shred(database, config.files_dir, doomed, update)
    for outbox_id in forgotten:
        mail.eml_path(config, outbox_id).unlink(missing_ok=True)


def purge(database: Database, config) -> int:
    """Delete the files of shares that expired, were revoked or were locked (retention): a link
    nobody can use any more has no reason to keep its files. Also those to delete after their
    download that were downloaded: the deletion follows the download's write, and a crash between
    the two must not keep the files."""
    rows = database.query(
        "SELECT id FROM shares WHERE deleted_at IS NULL"
        " AND (expires_at <= ? OR revoked_at IS NOT NULL OR locked_at IS NOT NULL"
        " OR (delete_after_download = 1 AND downloaded_at IS NOT NULL))",
        [clock.now_iso()],
    )
    for row in rows:
        delete(database, config, audit.SYSTEM, get(database, row["id"]), action="share.purge")
    return len(rows)
