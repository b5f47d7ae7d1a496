"""Logging in and out: throttled password checks and server-side sessions stored in SQLite.

Throttling has two counters, per account and per client address. An account's lock grows with
each failure past the threshold (1, 2, 4, 8 minutes...) up to ``login_lock_minutes``, so an
online guesser is slowed to a crawl, while a stranger who types wrong passwords for somebody
else can only ever keep them out for that many minutes after their last attempt.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import timedelta

from relais import audit, clock, partners, passwords, settings, terms, throttle, two_factor, users
from relais.db import Database
from relais.users import User

# Don't write last_seen_at on every request: once a minute is precise enough for a 30-minute idle timeout.
TOUCH_EVERY = timedelta(seconds=60)


class Outcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"  # unknown account, wrong password, deactivated: one answer for all
    LOCKED = "locked"
    TOO_LONG = "too_long"
    SECOND_STEP = "second_step"  # the password was right; the code is asked (relais.two_factor)
    STEP_ENDED = "step_ended"  # the code came too late, or after too many wrong ones: log in again
    EXPIRED = "expired"  # a partner's access has ended (relais.partners); ``user`` says whose
    TERMS_CHANGED = "terms_changed"  # the page showed terms no longer in force: nothing recorded


@dataclass(frozen=True)
class LoginResult:
    outcome: Outcome
    user: User | None = None
    session_token: str | None = None
    retry_after: int = 0  # seconds, when locked
    pending_token: str | None = None  # SECOND_STEP: the pending login, for the code's page
    terms_version: int = 0  # TERMS_CHANGED: the version now in force


@dataclass(frozen=True)
class Session:
    id_hash: str
    user: User
    created_at: str


async def login(
    database: Database, hasher: passwords.Hasher, who: audit.Who, email: str, password: str, language: str | None = None,
    terms_shown: int | None = None,
) -> LoginResult:
    """Check a staff or partner login; on success open a session and record terms acceptance.

    ``language``: one the person chose (the language switch, a field of the form), stored on the
    account in the same transaction; None leaves the account's language as it is.
    ``terms_shown``: the terms version the login page showed (None: a form without it, taken as
    the version in force). Checked inside the write that opens the session or the pending login:
    when an admin published meanwhile (during the argon2 check, say), nothing is written and the
    outcome is TERMS_CHANGED.

    Awaited on the event loop: the reads run on the database's reader threads, argon2 on the
    hasher's own threads and the writes on the writer thread, so a flood of logins waits in
    their queues and holds no thread that serves anything else.
    """
    email = email.strip().lower()[:254]
    # Only an address can be an actor: a typed "system" or "anonymous" would pass for one of the
    # audit page's labels (Relais itself, someone not logged in). What was typed stays the object.
    who = audit.Who(actor=email if "@" in email else "anonymous", ip=who.ip, user_agent=who.user_agent)
    keys = [f"account:{email}", f"ip:{who.ip}"]
    if len(password) > passwords.MAX_LENGTH:
        await database.write_async(lambda db: audit.record(db, who, "login.refused", email, reason="password_too_long"))
        return LoginResult(Outcome.TOO_LONG)
    wait = await database.read(throttle.locked_for, keys)
    if wait:
        await database.write_async(lambda db: audit.record(db, who, "login.refused", email, reason="locked"))
        return LoginResult(Outcome.LOCKED, retry_after=wait)
    row = await database.read(_account, email)
    # Always run one argon2 verification, against a dummy hash if need be (timing).
    ok = await hasher.verify_async(row["password_hash"] if row else None, password)
    if ok and row["active"] and (refusal := await database.read(partners.login_refusal, row)):
        await database.write_async(lambda db: audit.record(db, who, "login.refused", email, reason=refusal))
        return LoginResult(Outcome.EXPIRED, user=User.from_row(row))
    if ok and row["active"]:
        token = passwords.new_token()
        user = User.from_row(row)
        # Hashed before the write, never inside it: argon2 in the writer thread would hold up every write.
        new_hash = await hasher.hash_async(password) if hasher.needs_rehash(row["password_hash"]) else None

        def succeed(db) -> User | None:
            terms.check_shown(db, terms_shown)  # raises before anything is written
            if new_hash is not None:
                db.execute("UPDATE users SET password_hash = ? WHERE id = ?", [new_hash, user.id])
            if two_factor.enrolled(db, user.id):  # no session before the code; failures still count
                two_factor.begin_login(db, who, user, token, language)
                return None
            throttle.clear(db, keys[0])
            return _open_session(db, who, user, token, "login.success", language, terms_shown)

        try:
            opened = await database.write_async(succeed)
        except terms.TermsChanged as exc:
            return LoginResult(Outcome.TERMS_CHANGED, terms_version=exc.version)
        if opened is None:
            return LoginResult(Outcome.SECOND_STEP, user=user, pending_token=token)
        return LoginResult(Outcome.OK, user=opened, session_token=token)

    def fail(db):
        reason = "unknown_account" if row is None else ("inactive" if not row["active"] else "wrong_password")
        audit.record(db, who, "login.failure", email, reason=reason)
        lock_minutes = settings.get(db, "login_lock_minutes")
        if throttle.count_failure(db, keys[0], settings.get(db, "login_failures_before_lock"), lock_minutes):
            audit.record(db, who, "login.lockout", email, scope="account")
        if throttle.count_failure(db, keys[1], settings.get(db, "client_failures_before_lock"), lock_minutes):
            audit.record(db, who, "login.lockout", who.ip, scope="client")

    await database.write_async(fail)
    return LoginResult(Outcome.INVALID)


def second_step(database: Database, key: bytes, who: audit.Who, pending_token: str | None, code: str,
                terms_shown: int | None = None) -> LoginResult:
    """The code after the password (:func:`relais.two_factor.finish_login`): the session opens only
    now, in the same transaction that uses up the pending login. ``terms_shown`` as for
    :func:`login`, the version the code's page showed: when it is no longer in force, the whole
    write is undone (the pending login and the code stay usable) and the outcome is TERMS_CHANGED."""
    token = passwords.new_token()

    def finish(db) -> tuple[two_factor.Step, User | None]:
        step = two_factor.finish_login(db, key, who, pending_token, code)
        if step.user is None:
            return step, None
        actor = audit.Who(actor=step.user.email, ip=who.ip, user_agent=who.user_agent)
        return step, _open_session(db, actor, step.user, token, "login.success", step.language, terms_shown)

    try:
        step, user = database.write(finish)
    except terms.TermsChanged as exc:
        return LoginResult(Outcome.TERMS_CHANGED, terms_version=exc.version)
    if user is not None:
        return LoginResult(Outcome.OK, user=user, session_token=token)
    outcome = {"locked": Outcome.LOCKED, "ended": Outcome.STEP_ENDED}.get(step.outcome, Outcome.INVALID)
    return LoginResult(outcome, retry_after=step.retry_after)


def _account(conn, email: str) -> dict | None:
    return next(iter(conn.query("SELECT * FROM users WHERE email = ?", [email])), None)


def start_session(database: Database, who: audit.Who, user: User, action: str, language: str | None = None,
                  terms_shown: int | None = None) -> str:
    """Open a session without a password check (after a one-time link was used); ``language`` and
    ``terms_shown`` as for :func:`login` (raises :class:`relais.terms.TermsChanged`, nothing written)."""
    token = passwords.new_token()
    database.write(_open_session, who, user, token, action, language, terms_shown)
    return token


def login_by_link(database: Database, who: audit.Who, token: str, language: str | None = None,
                  terms_shown: int | None = None) -> LoginResult:
    """A one-time login link's Continue, in one transaction: the link is used up and the session
    opens (OK), or, for an account with a second factor, the pending login (SECOND_STEP: the
    code next). INVALID when the link is no longer good; TERMS_CHANGED when the Continue page
    showed terms no longer in force: then nothing is written and the link still works."""

    def use(db) -> LoginResult:
        # Nested writes run inside this one (Database.write from the writer thread).
        user = users.use_login_link(database, who, token)
        if user is None:
            return LoginResult(Outcome.INVALID)
        if two_factor.enrolled(db, user.id):  # a link is no second factor: the code first
            terms.check_shown(db, terms_shown)
            return LoginResult(Outcome.SECOND_STEP, user=user,
                               pending_token=two_factor.start_pending(database, who, user, language))
        session_token = start_session(database, who, user, "login.link", language, terms_shown)
        return LoginResult(Outcome.OK, user=user, session_token=session_token)

    try:
        return database.write(use)
    except terms.TermsChanged as exc:
        return LoginResult(Outcome.TERMS_CHANGED, terms_version=exc.version)


def _open_session(db, who: audit.Who, user: User, token: str, action: str, language: str | None,
                  terms_shown: int | None = None) -> User:
    """Store the session (as a hash), record the login with the terms it accepted (the version
    its page showed, :func:`relais.terms.record_acceptance`) and store the language the person
    chose, if any. Returns the account as it is now."""
    now = clock.now_iso()
    db.execute(
        "INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?)",
        [passwords.token_hash(token), user.id, now, now, who.ip, who.user_agent[:500]],
    )
    version = terms.record_acceptance(db, who, terms_shown, user_id=user.id)
    audit.record(db, who, action, user.email, terms_version=version)
    if users.store_language(db, dataclasses.replace(who, actor=user.email), user.id, language):
        user = dataclasses.replace(user, language=language)
    return user


def resolve_session(database: Database, token: str | None, who: audit.Who) -> Session | None:
    """The live session behind a cookie value, or None. Ends sessions past their timeouts."""
    if not token or len(token) > 100:
        return None
    id_hash = passwords.token_hash(token)
    row = database.query_one(
        "SELECT sessions.created_at AS session_created_at, sessions.last_seen_at, users.*"
        " FROM sessions JOIN users ON users.id = sessions.user_id WHERE sessions.id_hash = ?",
        [id_hash],
    )
    if row is None:
        return None
    now = clock.now()
    idle = timedelta(minutes=database.read_sync(settings.get, "session_idle_minutes"))
    absolute = timedelta(hours=database.read_sync(settings.get, "session_absolute_hours"))
    last_seen = clock.parse(row["last_seen_at"])
    reason = ("inactive" if not row["active"] else "idle" if last_seen + idle < now
              else "absolute" if clock.parse(row["session_created_at"]) + absolute < now
              else partners.session_refusal(database, row))  # a partner's access ends at its boundary
    if reason:

        def expire(db):
            if db.execute("DELETE FROM sessions WHERE id_hash = ?", [id_hash]).rowcount:
                actor = audit.Who(row["email"], who.ip, who.user_agent)
                audit.record(db, actor, "session.expired", row["email"], reason=reason)

        database.write(expire)
        return None
    if last_seen + touch_interval(idle) < now:
        database.write(lambda db: db.execute(
            "UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?", [clock.iso(now), id_hash]))
    return Session(id_hash=id_hash, user=User.from_row(row), created_at=row["session_created_at"])


def touch_interval(idle: timedelta) -> timedelta:
    """How stale ``last_seen_at`` may get: TOUCH_EVERY, less under a short idle timeout (at one
    minute, a session used every 59 seconds would otherwise end)."""
    return min(TOUCH_EVERY, idle / 4)


def touch_every(database: Database) -> timedelta:
    return touch_interval(timedelta(minutes=database.read_sync(settings.get, "session_idle_minutes")))


def keep_alive(database: Database, id_hash: str) -> bool:
    """A transfer in progress is activity: the session is seen now, however long ago its request
    began (a 20 GB upload is one PATCH of half an hour). False when the session ended meanwhile:
    logged out, the account deactivated or the absolute timeout passed, which no transfer extends."""
    now = clock.now()

    def touch(db) -> bool:
        absolute = timedelta(hours=settings.get(db, "session_absolute_hours"))
        return db.execute(
            "UPDATE sessions SET last_seen_at = ? WHERE id_hash = ? AND created_at > ?"
            " AND user_id IN (SELECT id FROM users WHERE active)",
            [clock.iso(now), id_hash, clock.iso(now - absolute)],
        ).rowcount == 1

    return database.write(touch)


def logout(database: Database, who: audit.Who, session: Session) -> None:
    def delete(db):
        db.execute("DELETE FROM sessions WHERE id_hash = ?", [session.id_hash])
        audit.record(db, who, "logout", session.user.email)

    database.write(delete)


def change_password(
    database: Database, hasher: passwords.Hasher, who: audit.Who, session: Session, new_password: str,
    current_password: str = "",
) -> int:
    """The person behind ``session`` chooses a new password; returns how many other sessions ended.

    One business action, one transaction: the new hash, the end of every other session of the
    account (whoever knew the old password and is logged in elsewhere is out) and their audit
    rows commit together or not at all. The current password is asked for, except after a
    one-time link (``must_change_password``: the link was the proof). Raises PasswordRejected
    (``wrong_current``, or a policy reason). argon2 runs before the write, never inside it.
    """
    user = session.user
    if not user.must_change_password:
        stored = database.read_sync(_password_hash, user.id)
        if not hasher.verify(stored, current_password):
            raise passwords.PasswordRejected("wrong_current")
    passwords.check_policy(new_password, [user.email, user.name])
    new_hash = hasher.hash(new_password)

    def change(db) -> int:
        users.store_password(db, who, user, new_hash)
        partners.password_chosen(db, who, user)  # a partner's new period of access
        ended = db.execute("DELETE FROM sessions WHERE user_id = ? AND id_hash != ?", [user.id, session.id_hash]).rowcount
        if ended:
            audit.record(db, who, "user.other_sessions_ended", user.email, sessions=ended)
        return ended

    return database.write(change)


def _password_hash(conn, user_id: int) -> str | None:
    row = conn.execute("SELECT password_hash FROM users WHERE id = ?", [user_id]).fetchone()
    return row[0] if row else None


def live_sessions(database: Database, user_id: int) -> list[dict]:
    """The account's sessions still within both timeouts (what deactivating would end), newest first."""
    now = clock.now()
    absolute = timedelta(hours=database.read_sync(settings.get, "session_absolute_hours"))
    idle = timedelta(minutes=database.read_sync(settings.get, "session_idle_minutes"))
    return database.query(
        "SELECT created_at, last_seen_at, ip, user_agent FROM sessions"
        " WHERE user_id = ? AND created_at >= ? AND last_seen_at >= ? ORDER BY last_seen_at DESC",
        [user_id, clock.iso(now - absolute), clock.iso(now - idle)],
    )


def purge_expired(db) -> int:
    """Delete sessions past the absolute timeout and throttles long unlocked (inside a write)."""
    absolute = timedelta(hours=settings.get(db, "session_absolute_hours"))
    idle = timedelta(minutes=settings.get(db, "session_idle_minutes"))
    now = clock.now()
    removed = db.execute(
        "DELETE FROM sessions WHERE created_at < ? OR last_seen_at < ?",
        [clock.iso(now - absolute), clock.iso(now - idle)],
    ).rowcount
    db.execute("DELETE FROM login_throttle WHERE first_failure_at < ? AND (locked_until IS NULL OR locked_until < ?)",
               [clock.iso(now - timedelta(days=1)), clock.iso(now)])
    db.execute("DELETE FROM login_tokens WHERE expires_at < ?", [clock.iso(now - timedelta(days=30))])
    two_factor.purge(db)
    return removed
