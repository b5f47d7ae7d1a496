"""The recipient's side of a share: unlocking with the password, and what they download.

Opening a link (GET or HEAD, as mail scanners do) changes nothing. Unlocking checks the password
(argon2id, throttled per link and per address; the link locks after repeated failures and its
owner is told) and opens a short link session bound to that one share. Downloads are counted
only when a whole file (or the whole zip) has been sent: a partial Range request never uses up
the download limit nor triggers "delete after download".
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from datetime import timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from relais import audit, clock, emails, passwords, settings, shares, terms, throttle
from relais.db import Database

LINK_SESSION = timedelta(hours=2)
PASSWORD_LINK_DAYS = 7


class Unlock(enum.Enum):
    OK = "ok"
    INVALID = "invalid"  # wrong password, unknown, expired, revoked: one answer
    WAIT = "wait"


@dataclass(frozen=True)
class UnlockResult:
    outcome: Unlock
    session_token: str = ""
    retry_after: int = 0


def find_open(database: Database, token: str) -> shares.Share | None:
    """The share behind a link token if the recipient may still use it; None tells nothing more."""
    if not token or len(token) > 100:
        return None
    row = database.query_one("SELECT id FROM shares WHERE token_hash = ?", [passwords.token_hash(token)])
    share = shares.get(database.conn, row["id"]) if row else None
    return share if share is not None and share.open else None


def event(db, who: audit.Who, share_id: str, kind: str, file_id: str = "", session: str = "", **detail) -> None:
    """What the owner sees in the share's activity, and the same in the audit trail."""
    db.execute(
        "INSERT INTO share_events (share_id, at, event, file_id, ip, user_agent, detail, session)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [share_id, clock.now_iso(), kind, file_id, who.ip, who.user_agent[:500], str(detail.get("name", "")), session],
    )
    audit.record(db, who, f"share.{kind}", share_id, file=file_id, **detail)


def unlock(database: Database, hasher: passwords.Hasher, who: audit.Who, token: str, password: str,
           base_url: str) -> UnlockResult:
    share = find_open(database, token)
    keys = [f"share:{share.id if share else 'unknown'}", f"ip:{who.ip}"]
    wait = throttle.locked_for(database.conn, keys)
    if wait:
        if share:
            database.write(event, who, share.id, "access_refused", reason="wait")
        return UnlockResult(Unlock.WAIT, retry_after=wait)
    stored = database.scalar("SELECT password_hash FROM shares WHERE id = ?", [share.id]) if share else None
    # One argon2 verification whatever the case, so an unknown link answers like a wrong password.
    ok = len(password) <= passwords.MAX_LENGTH and hasher.verify(stored, password) and share is not None
    if ok:
        session = passwords.new_token()

        def grant(db):
            throttle.clear(db, keys[0])
            db.execute("UPDATE shares SET failed_attempts = 0 WHERE id = ?", [share.id])
            now = clock.now()
            db.execute(
                "INSERT INTO link_sessions (token_hash, share_id, created_at, expires_at, ip, user_agent)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [passwords.token_hash(session), share.id, clock.iso(now), clock.iso(now + LINK_SESSION), who.ip,
                 who.user_agent[:500]],
            )
            version = terms.record_acceptance(db, who, subject=f"share:{share.id}")
            event(db, who, share.id, "access", terms_version=version)

        database.write(grant)
        return UnlockResult(Unlock.OK, session_token=session)

    def refuse(db):
        lock_minutes = settings.get(db, "login_lock_minutes")
        throttle.count_failure(db, keys[1], settings.get(db, "client_failures_before_lock"), lock_minutes)
        if share is None:
            audit.record(db, who, "share.access_refused", "unknown")
            return
        event(db, who, share.id, "access_refused", reason="password")
        throttle.count_failure(db, keys[0], settings.get(db, "link_failures_before_wait"), lock_minutes)
        # The lock counts every failure since the last success, however slowly they come.
        db.execute("UPDATE shares SET failed_attempts = failed_attempts + 1 WHERE id = ?", [share.id])
        failures = db.execute("SELECT failed_attempts FROM shares WHERE id = ?", [share.id]).fetchone()[0]
        if failures >= settings.get(db, "link_failures_before_lock"):
            _lock(db, who, share, failures, base_url)

    database.write(refuse)
    return UnlockResult(Unlock.INVALID)


def _lock(db, who: audit.Who, share: shares.Share, failures: int, base_url: str) -> None:
    """Lock the link for good and tell its owner (inside the write that counted the failure)."""
    from relais import mail

    db.execute("UPDATE shares SET locked_at = ? WHERE id = ?", [clock.now_iso(), share.id])
    db.execute("DELETE FROM link_sessions WHERE share_id = ?", [share.id])
    event(db, who, share.id, "locked", failures=failures)
    owner = db.execute("SELECT email, language FROM users WHERE id = ?", [share.owner_id]).fetchone()
    recipients = ", ".join(shares.recipients(db, share.id))
    subject, text, html = emails.render("locked", owner[1], count=failures, recipients=recipients,
                                        link=f"{base_url}/shares/{share.id}")
    mail.queue(db, audit.SYSTEM, to=owner[0], subject=subject, text=text, html=html, kind="share_locked",
               object=share.id, language=owner[1])


def session_share(database: Database, token: str, session_token: str | None) -> shares.Share | None:
    """The share, when this browser unlocked this very link and the share is still open."""
    share = find_open(database, token)
    if share is None or not session_token or len(session_token) > 100:
        return None
    row = database.query_one(
        "SELECT 1 FROM link_sessions WHERE token_hash = ? AND share_id = ? AND expires_at > ?",
        [passwords.token_hash(session_token), share.id, clock.now_iso()],
    )
    return share if row else None


def downloads_left(database: Database, share: shares.Share, file_id: str) -> bool:
    """Can this file still be downloaded from the start? (For the page; start_download decides.)"""
    if share.download_limit is None:
        return True
    started = database.scalar(
        "SELECT count(*) FROM share_events WHERE share_id = ? AND event = 'download_start' AND file_id = ?",
        [share.id, file_id],
    )
    return started < share.download_limit


def start_download(database: Database, who: audit.Who, share: shares.Share, stored, session: str, start: int) -> bool:
    """Before the first byte: may this browser have this file now?

    Every download from byte 0 is counted as it starts, in the writer's transaction, so parallel
    requests cannot slip past the limit together. A range further in is the resumption of a
    download this same link session began, and is not counted again; without such a beginning
    it is refused, so ranges cannot be used to dodge the limit.
    """

    def reserve(db):
        if start > 0:
            return db.execute(
                "SELECT 1 FROM share_events WHERE share_id = ? AND file_id = ? AND event = 'download_start'"
                " AND session = ?", [share.id, stored.id, session],
            ).fetchone() is not None
        if share.download_limit is not None and db.execute(
            "SELECT count(*) FROM share_events WHERE share_id = ? AND file_id = ? AND event = 'download_start'",
            [share.id, stored.id],
        ).fetchone()[0] >= share.download_limit:
            return False
        event(db, who, share.id, "download_start", stored.id, session=session, name=stored.name)
        return True

    return database.write(reserve)


def still_open(database: Database, share_id: str) -> bool:
    """For a download in progress: stop it once the share is revoked, deleted, locked or expired."""
    share = shares.get(database.conn, share_id)
    return share is not None and share.open


def _covered(spans: list[tuple[int, int]], size: int) -> bool:
    """Do the byte ranges [start, end) together cover the whole file?"""
    reached = 0
    for start, end in sorted(spans):
        if start > reached:
            return False
        reached = max(reached, end)
    return reached >= size


def record_download(database: Database, who: audit.Who, share: shares.Share, sent: list[tuple], session: str,
                    config) -> None:
    """After a response ended (finished or cut off): note what was sent to whom. A file counts as
    downloaded when the bytes this link session received cover all of it, in one response or in
    several (a resumed download); then the owner's receipt, and "delete after download"."""

    def record(db):
        for stored, start, count in sent:
            db.execute(
                "INSERT INTO share_events (share_id, at, event, file_id, ip, user_agent, detail, session, start, bytes)"
                " VALUES (?, ?, 'download_part', ?, ?, ?, ?, ?, ?, ?)",
                [share.id, clock.now_iso(), stored.id, who.ip, who.user_agent[:500], stored.name, session, start, count],
            )
            spans = [(r[0], r[0] + r[1]) for r in db.execute(
                "SELECT start, bytes FROM share_events WHERE share_id = ? AND file_id = ? AND session = ?"
                " AND event = 'download_part'", [share.id, stored.id, session])]
            done_before = db.execute(
                "SELECT 1 FROM share_events WHERE share_id = ? AND file_id = ? AND session = ? AND event = 'download'",
                [share.id, stored.id, session]).fetchone()
            if _covered(spans, stored.size) and not done_before:
                event(db, who, share.id, "download", stored.id, session=session, name=stored.name)
            elif not done_before:
                audit.record(db, who, "share.download_partial", share.id, file=stored.id, start=start, bytes=count)
        missing = db.execute(
            "SELECT count(*) FROM share_files WHERE share_id = ? AND file_id NOT IN"
            " (SELECT file_id FROM share_events WHERE share_id = ? AND event = 'download')", [share.id, share.id],
        ).fetchone()[0]
        if missing:
            return False
        if db.execute("UPDATE shares SET downloaded_at = ? WHERE id = ? AND downloaded_at IS NULL",
                      [clock.now_iso(), share.id]).rowcount == 1:
            _receipt(db, share, who, config.base_url)
        return True

    everything = database.write(record)
    if everything and share.delete_after_download and still_open(database, share.id):
        shares.delete(database, config, audit.SYSTEM, share, action="share.delete_after_download")


def _receipt(db, share: shares.Share, who: audit.Who, base_url: str) -> None:
    from relais import mail

    owner = db.execute("SELECT email, language FROM users WHERE id = ?", [share.owner_id]).fetchone()
    recipients = ", ".join(shares.recipients(db, share.id))
    names = [r[0] for r in db.execute(
        "SELECT name FROM files JOIN share_files ON file_id = id WHERE share_id = ? ORDER BY name", [share.id])]
    subject, text, html = emails.render("receipt", owner[1], recipients=recipients, at=clock.now_iso(), ip=who.ip,
                                        files=names, link=f"{base_url}/shares/{share.id}")
    mail.queue(db, audit.SYSTEM, to=owner[0], subject=subject, text=text, html=html, kind="receipt",
               object=share.id, language=owner[1])


# -- one-time password links -----------------------------------------------------------------

def _cipher(token: str) -> AESGCM:
    """The password is encrypted under a key derived from the link token, which only the link
    holds: the database alone cannot reveal it."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"relais password link").derive(token.encode())
    return AESGCM(key)


def create_password_link(db, who: audit.Who, share_id: str, password: str) -> str:
    """Inside the write that creates the share; returns the token for the one-time link."""
    token = passwords.new_token()
    nonce = os.urandom(12)
    sealed = nonce + _cipher(token).encrypt(nonce, password.encode(), share_id.encode())
    db.execute(
        "INSERT INTO password_links (token_hash, share_id, secret, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        [passwords.token_hash(token), share_id, sealed, clock.now_iso(), clock.in_(timedelta(days=PASSWORD_LINK_DAYS))],
    )
    audit.record(db, who, "share.password_link_create", share_id)
    return token


def password_link_valid(database: Database, token: str) -> bool:
    return bool(token) and len(token) <= 100 and database.query_one(
        "SELECT 1 FROM password_links WHERE token_hash = ? AND expires_at > ?", [passwords.token_hash(token), clock.now_iso()]
    ) is not None


def reveal_password(database: Database, who: audit.Who, token: str) -> str | None:
    """Show the password once: the row is deleted in the same transaction that reads it."""
    if not token or len(token) > 100 or throttle.client_locked(database.conn, who.ip):
        return None

    def take(db):
        row = db.execute(
            "SELECT share_id, secret FROM password_links WHERE token_hash = ? AND expires_at > ?",
            [passwords.token_hash(token), clock.now_iso()],
        ).fetchone()
        if row is None:
            audit.record(db, who, "share.password_link_refused")
            throttle.count_client_failure(db, who.ip)
            return None
        db.execute("DELETE FROM password_links WHERE token_hash = ?", [passwords.token_hash(token)])
        audit.record(db, who, "share.password_link_opened", row[0])
        sealed = bytes(row[1])
        return _cipher(token).decrypt(sealed[:12], sealed[12:], row[0].encode()).decode()

    return database.write(take)
