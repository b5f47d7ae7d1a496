"""The core every kind of link shares: find, unlock, link sessions, events, lock.

Opening a link (GET or HEAD, as mail scanners do) changes nothing. Unlocking checks the password
(argon2id, throttled per link and per address; the link locks after repeated failures and its
owner is told) and opens a short link session bound to that one link, recording acceptance of
the current terms. Functions that take ``db`` run inside a write (``Database.write``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from relais import audit, clock, emails, paging, passwords, settings, terms, throttle
from relais.db import Database
from relais.refusal import Refused

LINK_SESSION = timedelta(hours=2)  # since the session's last use (keep_alive slides it)
LINK_SESSION_LONGEST = timedelta(hours=24)  # however busy: as long as an unfinished upload lives
MAX_TOKEN = 100  # longer than any token we make: refused before hashing
HIDDEN = ("download_response", "download_part")  # bookkeeping, not shown to the owner
MAX_EXPIRY_DAYS = 365  # an admin may extend a link past its limit, never past this


@dataclass(frozen=True)
class Kind:
    """A kind of link and where its objects live.

    ``table`` holds the columns every link has: ``id``, ``owner_id``, ``token_hash`` (SHA-256 of
    the link token), ``password_hash`` (argon2id), ``failed_attempts`` (wrong passwords since the
    last right one) and ``locked_at``. ``from_row`` makes the kind's object, which has ``id``,
    ``owner_id`` and ``open`` (may the guest still get in?). ``recipients(db, id)`` lists whom
    the link was sent to, for the owner's lock warning, queued as a ``lock_mail`` (the outbox's
    kind) from the template ``lock_template``; ``staff_path`` is the owner's page of it.
    """

    name: str
    table: str
    from_row: Callable[[dict], Any]
    recipients: Callable[[Any, str], list[str]]
    staff_path: str  # with {id}
    lock_mail: str  # share_locked
    lock_template: str = "locked"  # the lock warning's template under templates/email/

    def subject(self, object_id: str) -> str:
        """The throttle key, and the terms acceptance's subject: ``share:<id>``."""
        return f"{self.name}:{object_id}"


class Unlock(enum.Enum):
    OK = "ok"
    INVALID = "invalid"  # wrong password, unknown, expired, revoked: one answer
    WAIT = "wait"
    TERMS_CHANGED = "terms_changed"  # the page showed terms no longer in force: nothing recorded


@dataclass(frozen=True)
class UnlockResult:
    outcome: Unlock
    session_token: str = ""
    retry_after: int = 0  # seconds before the next try is checked (WAIT, or INVALID that started a wait)
    terms_version: int = 0  # TERMS_CHANGED: the version now in force


def _row(db, kind: Kind, object_id: str) -> dict | None:
    rows = list(db.query(f"SELECT * FROM {kind.table} WHERE id = ?", [object_id]))
    return rows[0] if rows else None


def load(database: Database, kind: Kind, object_id: str):
    """The link's object, open or not; None if there is none."""
    row = _row(database, kind, object_id)
    return kind.from_row(row) if row else None


def _open(db, kind: Kind, token: str):
    """``find_open`` on a connection (a reader thread's, or the writer's)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    row = next(iter(db.query(f"SELECT * FROM {kind.table} WHERE token_hash = ?", [passwords.token_hash(token)])), None)
    found = kind.from_row(row) if row else None
    return found if found is not None and found.open else None


def find_open(database: Database, kind: Kind, token: str):
    """The object behind a link token if the guest may still use it; None tells nothing more."""
    return database.read_sync(_open, kind, token)


async def find_open_async(database: Database, kind: Kind, token: str):
    """:func:`find_open` for async code (the read runs on the database's reader threads)."""
    return await database.read(_open, kind, token)


def still_open(database: Database, kind: Kind, object_id: str) -> bool:
    """For a transfer in progress: stop it once the link is revoked, deleted, locked or expired."""
    found = load(database, kind, object_id)
    return found is not None and found.open


def current_terms(database: Database, language: str) -> dict | None:
    """The terms the Access button accepts."""
    return database.read_sync(terms.current, language)


def event(db, who: audit.Who, kind: Kind, object_id: str, what: str, file_id: str = "", session: str = "",
          detail: str = "", start: int = 0, count: int = 0, **audited) -> None:
    """What the owner sees in the link's activity, and the same in the audit trail (``<kind>.<what>``).
    ``download_response`` and ``download_part`` (a response began, ended) are only link events:
    the audit trail has its own rows per response."""
    db.execute(
        "INSERT INTO link_events (kind, object_id, at, event, file_id, ip, user_agent, detail, session, start, bytes)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [kind.name, object_id, clock.now_iso(), what, file_id, who.ip, who.user_agent[:500], detail, session, start,
         count],
    )
    if what not in HIDDEN:
        audit.record(db, who, f"{kind.name}.{what}", object_id, **({"file": file_id} if file_id else {}), **audited)


def ended(link, now: str | None = None, closed: bool = False) -> str | None:
    """Why a link no longer lets its guest in, the strongest reason first: deleted, revoked,
    locked, closed (when the kind says so) or expired; None while it is open."""
    if link.deleted_at:
        return "deleted"
    if link.revoked_at:
        return "revoked"
    if link.locked_at:
        return "locked"
    if closed:
        return "closed"
    if link.expires_at <= (now or clock.now_iso()):
        return "expired"
    return None


def covered(spans: list[tuple[int, int]], size: int) -> bool:
    """Do the byte ranges [start, end) together cover the whole file?"""
    reached = 0
    for start, end in sorted(spans):
        if start > reached:
            return False
        reached = max(reached, end)
    return reached >= size


def parts_cover(db, kind: Kind, object_id: str, file_id: str, session: str, since: int, size: int) -> bool:
    """Do the parts of the file this session was sent after the link event ``since`` (its last
    complete download, 0 for none) cover all of it? A download resumed by ranges counts whole."""
    spans = [(row[0], row[0] + row[1]) for row in db.execute(
        "SELECT start, bytes FROM link_events WHERE kind = ? AND object_id = ? AND file_id = ? AND session = ?"
        " AND event = 'download_part' AND id > ?", [kind.name, object_id, file_id, session, since]).fetchall()]
    return covered(spans, size)


def extended_expiry(database: Database, created_at: str, max_days_setting: str, days: int, by_admin: bool,
                    refused: type[Refused]) -> tuple[str, bool]:
    """A link's new expiry ``days`` from now, and whether it passes the limit of ``max_days_setting``
    after creation (only an admin may pass it). Raises ``refused("bad_expiry", days=<days left>)``."""
    limit = clock.parse(created_at) + timedelta(days=database.read_sync(settings.get, max_days_setting))
    new_expiry = clock.now() + timedelta(days=days)
    if days < 1 or (new_expiry > limit and not by_admin) or days > MAX_EXPIRY_DAYS:
        raise refused("bad_expiry", days=max(0, (limit - clock.now()).days))
    return clock.iso(new_expiry), new_expiry > limit


def events(database: Database, kind: Kind, object_id: str, page: int = 1, per_page: int = paging.PER_PAGE) -> paging.Page:
    """What the owner sees: accesses, refusals, locks, downloads started and completed (not each
    part), one page at a time in the order they happened: every access adds a row."""
    where = f"FROM link_events WHERE kind = ? AND object_id = ? AND event NOT IN ({', '.join('?' * len(HIDDEN))})"
    rows, page, total = database.read_sync(
        paging.fetch, f"SELECT count(*) {where}", f"SELECT * {where} ORDER BY id", [kind.name, object_id, *HIDDEN],
        page, per_page,
    )
    return paging.Page(rows, page, per_page, total)


async def unlock(database: Database, hasher: passwords.Hasher, kind: Kind, who: audit.Who, token: str,
                 password: str, base_url: str, terms_shown: int | None = None) -> UnlockResult:
    """The password and the Access button: on success a new link session (its token, for a cookie).

    ``terms_shown`` is the terms version the page showed (None: a form without it, taken as the
    version in force); it is checked and recorded inside the write that opens the session, so
    that a publish during the password's check makes the answer TERMS_CHANGED, nothing written.

    Awaited on the event loop, as a staff login is (:func:`relais.auth.login`): anyone may post
    to any link, so a flood of guesses must wait in the hasher's and the database's own queues,
    never in the worker threads that serve pages and transfers (one per guess, held for the whole
    argon2 wait, was enough to stall every page)."""
    found = await find_open_async(database, kind, token)
    keys = [kind.subject(found.id if found else "unknown"), f"ip:{who.ip}"]
    wait = await database.read(throttle.locked_for, keys)
    if wait:
        if found:
            await database.write_async(event, who, kind, found.id, "access_refused", detail="wait", reason="wait")
        return UnlockResult(Unlock.WAIT, retry_after=wait)
    row = await database.read(_row, kind, found.id) if found else None
    stored = row["password_hash"] if row else None
    # One argon2 verification whatever the case, so an unknown link answers like a wrong password.
    ok = len(password) <= passwords.MAX_LENGTH and await hasher.verify_async(stored, password) and found is not None
    if ok:
        session = passwords.new_token()

        def grant(db):
            throttle.clear(db, keys[0])
            db.execute(f"UPDATE {kind.table} SET failed_attempts = 0 WHERE id = ?", [found.id])
            now = clock.now()
            db.execute(
                "INSERT INTO link_sessions (token_hash, kind, object_id, created_at, expires_at, ip, user_agent)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [passwords.token_hash(session), kind.name, found.id, clock.iso(now), clock.iso(now + LINK_SESSION),
                 who.ip, who.user_agent[:500]],
            )
            version = terms.record_acceptance(db, who, terms_shown, subject=kind.subject(found.id))
            event(db, who, kind, found.id, "access", terms_version=version)

        try:
            await database.write_async(grant)
        except terms.TermsChanged as exc:  # the right password, but not for the terms in force: ask again
            return UnlockResult(Unlock.TERMS_CHANGED, terms_version=exc.version)
        return UnlockResult(Unlock.OK, session_token=session)

    def refuse(db) -> int:
        lock_minutes = settings.get(db, "login_lock_minutes")
        throttle.count_failure(db, keys[1], settings.get(db, "client_failures_before_lock"), lock_minutes)
        if found is None:
            audit.record(db, who, f"{kind.name}.access_refused", "unknown")
            return throttle.locked_for(db, keys[1:])
        event(db, who, kind, found.id, "access_refused", detail="password", reason="password")
        throttle.count_failure(db, keys[0], settings.get(db, "link_failures_before_wait"), lock_minutes)
        # The lock counts every failure since the last success, however slowly they come.
        db.execute(f"UPDATE {kind.table} SET failed_attempts = failed_attempts + 1 WHERE id = ?", [found.id])
        failures = _row(db, kind, found.id)["failed_attempts"]
        if failures >= settings.get(db, "link_failures_before_lock"):
            _lock(db, who, kind, found, failures, base_url)
        return throttle.locked_for(db, keys)

    # The person is told at once when this failure makes the next try wait (page and Retry-After).
    return UnlockResult(Unlock.INVALID, retry_after=await database.write_async(refuse))


def _lock(db, who: audit.Who, kind: Kind, found, failures: int, base_url: str) -> None:
    """Lock the link for good and tell its owner (inside the write that counted the failure)."""
    from relais import mail

    db.execute(f"UPDATE {kind.table} SET locked_at = ? WHERE id = ?", [clock.now_iso(), found.id])
    db.execute("DELETE FROM link_sessions WHERE kind = ? AND object_id = ?", [kind.name, found.id])
    event(db, who, kind, found.id, "locked", failures=failures)
    owner = db.execute("SELECT email, language FROM users WHERE id = ?", [found.owner_id]).fetchone()
    recipients = ", ".join(kind.recipients(db, found.id))
    subject, text, html = emails.render(kind.lock_template, owner[1], count=failures, recipients=recipients,
                                        link=base_url + kind.staff_path.format(id=found.id))
    mail.queue(db, audit.SYSTEM, to=owner[0], subject=subject, text=text, html=html, kind=kind.lock_mail,
               object=found.id, language=owner[1])


def session_object(database: Database, kind: Kind, token: str, session_token: str | None):
    """The link's object, when this browser unlocked this very link and it is still open."""
    found = find_open(database, kind, token)
    if found is None or not session_token or len(session_token) > MAX_TOKEN:
        return None
    row = database.query_one(
        "SELECT 1 FROM link_sessions WHERE token_hash = ? AND kind = ? AND object_id = ? AND expires_at > ?",
        [passwords.token_hash(session_token), kind.name, found.id, clock.now_iso()],
    )
    return found if row else None


def session_after_close(database: Database, kind: Kind, token: str, session_token: str | None):
    """The link's object when this browser holds a live session of it, open or not: only for
    what the guest may still see once the link took its last files (a request's receipt). Every
    other page of a link asks :func:`session_object`, which lets no one into a link that ended.
    A revoked, locked or deleted link has no sessions left (:func:`forget`)."""
    if not token or len(token) > MAX_TOKEN or not session_token or len(session_token) > MAX_TOKEN:
        return None
    row = database.query_one(
        f"SELECT {kind.table}.* FROM {kind.table} JOIN link_sessions ON link_sessions.kind = ?"
        f" AND link_sessions.object_id = {kind.table}.id WHERE {kind.table}.token_hash = ?"
        " AND link_sessions.token_hash = ? AND link_sessions.expires_at > ?",
        [kind.name, passwords.token_hash(token), passwords.token_hash(session_token), clock.now_iso()],
    )
    return kind.from_row(row) if row else None


def keep_alive(database: Database, kind: Kind, object_id: str, session_hash: str) -> bool:
    """The guest is busy on the link (an upload that runs for hours, pages refreshed by it): the
    link session lasts LINK_SESSION from now, never beyond LINK_SESSION_LONGEST after it was
    opened. False when it ended meanwhile (expired, or forgotten with a revoked or locked link)."""
    now = clock.now()

    def touch(db) -> bool:
        row = db.execute(
            "SELECT created_at FROM link_sessions WHERE token_hash = ? AND kind = ? AND object_id = ? AND expires_at > ?",
            [session_hash, kind.name, object_id, clock.iso(now)],
        ).fetchone()
        if row is None:
            return False
        until = min(now + LINK_SESSION, clock.parse(row[0]) + LINK_SESSION_LONGEST)
        db.execute("UPDATE link_sessions SET expires_at = max(expires_at, ?) WHERE token_hash = ?",
                   [clock.iso(until), session_hash])
        return True

    return database.write(touch)


def forget(db, kind: Kind, object_id: str, sessions: bool = True) -> None:
    """Inside a write: nothing that leads into the link stays (its sessions, its password link).
    ``sessions=False`` keeps the open sessions (a request that closed after its Transmit: the
    guest still sees the receipt, through :func:`session_after_close` only)."""
    if sessions:
        db.execute("DELETE FROM link_sessions WHERE kind = ? AND object_id = ?", [kind.name, object_id])
    db.execute("DELETE FROM password_links WHERE kind = ? AND object_id = ?", [kind.name, object_id])
