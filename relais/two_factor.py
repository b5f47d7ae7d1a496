"""The second factor of a login: TOTP codes (RFC 6238) from an authenticator app, and recovery codes.

- **Who.** Admins must have one when ``two_factor_admins`` is 1 (the default), staff when
  ``two_factor_staff`` is 1; anyone else (partners, staff by default) may enrol. An account that
  must and has none is sent to enrolment before any other page (:func:`must_enrol`, checked on
  every request as a password change is).
- **The secret** (160 random bits) is encrypted at rest with AES-GCM under a key derived from the
  master key (:func:`derive_key`), the account's id as associated data. It is shown once, as a QR
  code and as groups of letters to type (:mod:`relais.two_factor_qr`), and works only after a first
  code confirms it (``enrolled_at``).
- **Codes.** pyotp checks them with a window of one step (the previous, current and next 30 s).
  A code is accepted once: the time step it belongs to must be later than the last one accepted
  (``last_step``), so the same code, or an earlier one, is refused as a replay.
- **Recovery codes**: ten, 80 random bits each, shown once, stored as SHA-256 only, each used once.
- **The login's second step** (:func:`finish_login`, called by :func:`relais.auth.second_step`):
  after a right password, the browser holds a pending-login token (minutes, bound to the account,
  only its hash stored) and no session. Wrong codes count towards the account's and the client's
  lock as wrong passwords do (:mod:`relais.throttle`); a few wrong codes end the token.

Every step is audited; a code or secret is never written to the audit trail.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pyotp.exceptions import OTPVerificationError

from relais import audit, clock, passwords, settings, throttle
from relais.db import Database
from relais.refusal import Refused
from relais.users import User

WINDOW = 1  # steps accepted either side of the current one (clocks a little off, a code typed late)
PENDING_MINUTES = 5  # to type the code after the password
PENDING_TRIES = 5  # wrong codes before the pending login ends (the account's lock counts them too)
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32: no I, L, O or U
_RECOVERY_LENGTH = 16  # 80 bits
_AD = b"RELAIS-TOTP-SECRET1\0"
REQUIRED_BY = {"admin": "two_factor_admins", "staff": "two_factor_staff"}


class TwoFactorRefused(Refused):
    """``wrong_code``, ``required`` (cannot be turned off), ``not_enrolled`` or ``already``."""


@dataclass(frozen=True)
class Status:
    enrolled_at: str
    last_used_at: str | None
    recovery_codes_left: int


@dataclass(frozen=True)
class Step:
    """What the second step of a login came to: ``ok`` (with the account and the language chosen
    at the login), ``wrong`` (try again), ``ended`` (the pending login is over: log in again) or
    ``locked`` (for ``retry_after`` seconds)."""

    outcome: str
    user: User | None = None
    language: str | None = None
    retry_after: int = 0


def derive_key(master: bytes) -> bytes:
    """The key that encrypts TOTP secrets: HKDF-SHA256 of the master key with its own label, so it
    is neither the key that wraps files nor the audit chain's."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"RELAIS-TOTP-SECRETS1").derive(master)


def _encrypt(key: bytes, user_id: int, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, secret.encode("ascii"), _AD + str(user_id).encode("ascii"))


def _decrypt(key: bytes, user_id: int, blob: bytes) -> str:
    """Raises cryptography's InvalidTag for another key or another account's row."""
    return AESGCM(key).decrypt(blob[:12], blob[12:], _AD + str(user_id).encode("ascii")).decode("ascii")


# -- who must have one -------------------------------------------------------------------------

def required(conn, role: str) -> bool:
    return role in REQUIRED_BY and settings.get(conn, REQUIRED_BY[role]) == 1


def enrolled(conn, user_id: int) -> bool:
    """Whether the account logs in with a second factor (inside a read or a write)."""
    return conn.execute(
        "SELECT 1 FROM two_factor WHERE user_id = ? AND enrolled_at IS NOT NULL", [user_id]).fetchone() is not None


def must_enrol(database: Database, user: User) -> bool:
    """The account must have a factor and has none: enrolment comes before any other page."""
    if user.role not in REQUIRED_BY:
        return False
    return database.read_sync(lambda conn: required(conn, user.role) and not enrolled(conn, user.id))


def status(database: Database, user_id: int) -> Status | None:
    """The account's factor, or None when it has none in force."""
    row = database.query_one(
        "SELECT enrolled_at, last_used_at, (SELECT count(*) FROM two_factor_recovery_codes"
        " WHERE user_id = two_factor.user_id AND used_at IS NULL) AS codes_left"
        " FROM two_factor WHERE user_id = ? AND enrolled_at IS NOT NULL", [user_id])
    return Status(row["enrolled_at"], row["last_used_at"], row["codes_left"]) if row else None


def enrolled_among(database: Database, user_ids: list[int]) -> set[int]:
    """Which of these accounts have a factor in force (for the accounts page)."""
    if not user_ids:
        return set()
    marks = ", ".join("?" for _ in user_ids)
    rows = database.query(
        f"SELECT user_id FROM two_factor WHERE enrolled_at IS NOT NULL AND user_id IN ({marks})", list(user_ids))
    return {row["user_id"] for row in rows}


# -- enrolment ---------------------------------------------------------------------------------

def enrolment_secret(database: Database, key: bytes, who: audit.Who, user: User) -> str:
    """The secret being enrolled, made (and audited) on the first call: reloading the page shows the
    same QR code, which the phone may already have scanned. TwoFactorRefused("already") when the
    account has a factor in force."""

    def get_or_make(db) -> str:
        row = db.execute("SELECT secret_enc, enrolled_at FROM two_factor WHERE user_id = ?", [user.id]).fetchone()
        if row is not None and row[1] is not None:
            raise TwoFactorRefused("already")
        if row is not None:
            return _decrypt(key, user.id, row[0])
        secret = pyotp.random_base32(32)  # 160 bits, as RFC 4226 recommends
        db.execute("INSERT INTO two_factor (user_id, secret_enc, created_at) VALUES (?, ?, ?)",
                   [user.id, _encrypt(key, user.id, secret), clock.now_iso()])
        audit.record(db, who, "two_factor.enrol", user.email)
        return secret

    return database.write(get_or_make)


def confirm(database: Database, key: bytes, who: audit.Who, user: User, code: str) -> list[str]:
    """The first code from the app puts the factor in force; returns the recovery codes, to show
    once. TwoFactorRefused("wrong_code") leaves the enrolment waiting for a right one."""
    recovery = _new_codes()

    def check_and_confirm(db) -> bool:
        row = db.execute("SELECT secret_enc, enrolled_at FROM two_factor WHERE user_id = ?", [user.id]).fetchone()
        if row is None:
            raise TwoFactorRefused("not_enrolled")
        if row[1] is not None:
            raise TwoFactorRefused("already")
        step = _step_of(_decrypt(key, user.id, row[0]), code)
        if step is None:
            audit.record(db, who, "two_factor.code_refused", user.email, during="enrol", reason="wrong_code")
            return False
        now = clock.now_iso()
        db.execute("UPDATE two_factor SET enrolled_at = ?, last_step = ?, last_used_at = ? WHERE user_id = ?",
                   [now, step, now, user.id])
        _store_codes(db, user.id, recovery)
        audit.record(db, who, "two_factor.confirm", user.email, codes=len(recovery))
        return True

    if not database.write(check_and_confirm):
        raise TwoFactorRefused("wrong_code")
    return recovery


# -- codes -------------------------------------------------------------------------------------

def _step_of(secret: str, code: str) -> int | None:
    """The time step a code belongs to, within the window around now; None if it matches none."""
    code = "".join(code.split())
    if not re.fullmatch(r"[0-9]{6}", code):
        return None
    try:
        return pyotp.TOTP(secret).verify_and_get_timecode(code, for_time=clock.now(), valid_window=WINDOW)
    except OTPVerificationError:
        return None


def _recovery_hash(user_id: int, code: str) -> str:
    """A recovery code as stored: SHA-256 over the account and the code in one spelling (upper
    case, no spaces or dashes, O read as 0 and I or L as 1)."""
    normal = code.upper().replace("-", "").replace(" ", "").replace("O", "0").replace("I", "1").replace("L", "1")
    return hashlib.sha256(f"{user_id}:{normal}".encode("utf-8")).hexdigest()


def _new_codes() -> list[str]:
    codes = ["".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH)) for _ in range(RECOVERY_CODES)]
    return ["-".join(code[i:i + 4] for i in range(0, _RECOVERY_LENGTH, 4)) for code in codes]


def _store_codes(db, user_id: int, codes: list[str]) -> None:
    """Replace the account's recovery codes (inside a write): the old ones stop working."""
    db.execute("DELETE FROM two_factor_recovery_codes WHERE user_id = ?", [user_id])
    now = clock.now_iso()
    for code in codes:
        db.execute("INSERT INTO two_factor_recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)",
                   [user_id, _recovery_hash(user_id, code), now])


def check(db, key: bytes, who: audit.Who, user: User, code: str, purpose: str) -> str | None:
    """Check a code from the app or a recovery code (inside a write): ``code`` or
    ``recovery_code`` when accepted (and used up), None when refused. Audited either way."""
    row = db.execute("SELECT secret_enc, last_step FROM two_factor WHERE user_id = ? AND enrolled_at IS NOT NULL",
                     [user.id]).fetchone()
    if row is None or len(code) > 64:
        audit.record(db, who, "two_factor.code_refused", user.email, during=purpose, reason="wrong_code")
        return None
    now = clock.now_iso()
    if re.fullmatch(r"[0-9]{6}", "".join(code.split())):
        step = _step_of(_decrypt(key, user.id, row[0]), code)
        if step is None:
            audit.record(db, who, "two_factor.code_refused", user.email, during=purpose, reason="wrong_code")
            return None
        if step <= row[1]:
            audit.record(db, who, "two_factor.replay_refused", user.email, during=purpose)
            return None
        db.execute("UPDATE two_factor SET last_step = ?, last_used_at = ? WHERE user_id = ?", [step, now, user.id])
        audit.record(db, who, "two_factor.code_accepted", user.email, during=purpose)
        return "code"
    used = db.execute(
        "UPDATE two_factor_recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        [now, user.id, _recovery_hash(user.id, code)]).rowcount
    if not used:
        audit.record(db, who, "two_factor.code_refused", user.email, during=purpose, reason="wrong_recovery_code")
        return None
    db.execute("UPDATE two_factor SET last_used_at = ? WHERE user_id = ?", [now, user.id])
    left = db.execute("SELECT count(*) FROM two_factor_recovery_codes WHERE user_id = ? AND used_at IS NULL",
                      [user.id]).fetchone()[0]
    audit.record(db, who, "two_factor.recovery_used", user.email, during=purpose, left=left)
    return "recovery_code"


# -- the account's own page --------------------------------------------------------------------

def new_recovery_codes(database: Database, who: audit.Who, user: User) -> list[str]:
    """Ten new recovery codes, to show once; the old ones stop working."""
    codes = _new_codes()

    def replace(db) -> None:
        if not enrolled(db, user.id):
            raise TwoFactorRefused("not_enrolled")
        _store_codes(db, user.id, codes)
        audit.record(db, who, "two_factor.recovery_codes", user.email, codes=len(codes))

    database.write(replace)
    return codes


def disable(database: Database, key: bytes, who: audit.Who, user: User, code: str) -> None:
    """Turn the factor off, on a current code (or a recovery code); refused where it is required."""

    def turn_off(db) -> bool:
        if required(db, user.role):
            raise TwoFactorRefused("required")
        if not enrolled(db, user.id):
            raise TwoFactorRefused("not_enrolled")
        if check(db, key, who, user, code, "disable") is None:
            return False
        _remove(db, user.id)
        audit.record(db, who, "two_factor.disable", user.email)
        return True

    if not database.write(turn_off):
        raise TwoFactorRefused("wrong_code")


def _remove(db, user_id: int) -> None:
    db.execute("DELETE FROM two_factor WHERE user_id = ?", [user_id])
    db.execute("DELETE FROM two_factor_recovery_codes WHERE user_id = ?", [user_id])
    db.execute("UPDATE login_pending SET used_at = ? WHERE user_id = ? AND used_at IS NULL", [clock.now_iso(), user_id])


def reset(database: Database, who: audit.Who, user_id: int, keep_session: str | None = None) -> int:
    """An admin removes an account's factor and recovery codes (a lost phone): where a factor is
    required the person enrols a new one at their next login. Their sessions end (opened with the
    factor now removed), except ``keep_session`` (the admin's own, resetting their own factor).
    Returns how many sessions ended; TwoFactorRefused("not_enrolled") when there was nothing to reset."""

    def remove(db) -> int:
        row = db.execute("SELECT users.email FROM users JOIN two_factor ON two_factor.user_id = users.id"
                         " WHERE users.id = ?", [user_id]).fetchone()
        if row is None:
            raise TwoFactorRefused("not_enrolled")
        _remove(db, user_id)
        ended = db.execute("DELETE FROM sessions WHERE user_id = ? AND id_hash != ?", [user_id, keep_session or ""]).rowcount
        audit.record(db, who, "two_factor.reset", row[0], sessions=ended)
        return ended

    return database.write(remove)


# -- the login's second step -------------------------------------------------------------------

def start_pending(database: Database, who: audit.Who, user: User, language: str | None = None) -> str:
    """A pending login for an account with a factor that passed another first step (a one-time
    link: it proves the mailbox, not the phone); returns its token."""
    token = passwords.new_token()
    database.write(begin_login, audit.Who(user.email, who.ip, who.user_agent), user, token, language)
    return token


def begin_login(db, who: audit.Who, user: User, token: str, language: str | None) -> None:
    """After a right password (inside the login's write): the pending login ``token`` stands for."""
    db.execute(
        "INSERT INTO login_pending (token_hash, user_id, created_at, expires_at, language) VALUES (?, ?, ?, ?, ?)",
        [passwords.token_hash(token), user.id, clock.now_iso(), clock.in_(timedelta(minutes=PENDING_MINUTES)), language],
    )
    audit.record(db, who, "login.code_asked", user.email)


def pending_email(database: Database, token: str | None) -> str | None:
    """The account a live pending login belongs to (for its page), without using it."""
    if not token or len(token) > 100:
        return None
    return database.scalar(
        "SELECT users.email FROM login_pending JOIN users ON users.id = login_pending.user_id"
        " WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? AND users.active = 1",
        [passwords.token_hash(token), clock.now_iso()],
    )


def finish_login(db, key: bytes, who: audit.Who, token: str | None, code: str) -> Step:
    """The code after the password (inside a write): checked under the account's and the client's
    throttle; on success the pending login is used up and the account's failures forgotten."""
    token = token if token and len(token) <= 100 else ""
    now = clock.now_iso()
    row = next(iter(db.query(
        "SELECT users.*, login_pending.failures AS pending_failures, login_pending.language AS pending_language"
        " FROM login_pending JOIN users ON users.id = login_pending.user_id"
        " WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? AND users.active = 1",
        [passwords.token_hash(token), now],
    )), None)
    if row is None:
        if throttle.locked_for(db, [f"ip:{who.ip}"]) == 0:
            audit.record(db, who, "login.refused", "", reason="code_step_ended")
            throttle.count_client_failure(db, who.ip)
        return Step("ended")
    user = User.from_row(row)
    who = audit.Who(actor=user.email, ip=who.ip, user_agent=who.user_agent)
    keys = [f"account:{user.email}", f"ip:{who.ip}"]
    wait = throttle.locked_for(db, keys)
    if wait:
        audit.record(db, who, "login.refused", user.email, reason="locked")
        return Step("locked", retry_after=wait)
    if check(db, key, who, user, code, "login") is not None:
        db.execute("UPDATE login_pending SET used_at = ? WHERE token_hash = ?", [now, passwords.token_hash(token)])
        throttle.clear(db, keys[0])
        return Step("ok", user=user, language=row["pending_language"])
    failures = row["pending_failures"] + 1
    db.execute("UPDATE login_pending SET failures = ?, used_at = ? WHERE token_hash = ?",
               [failures, now if failures >= PENDING_TRIES else None, passwords.token_hash(token)])
    lock_minutes = settings.get(db, "login_lock_minutes")
    if throttle.count_failure(db, keys[0], settings.get(db, "login_failures_before_lock"), lock_minutes):
        audit.record(db, who, "login.lockout", user.email, scope="account")
    if throttle.count_failure(db, keys[1], settings.get(db, "client_failures_before_lock"), lock_minutes):
        audit.record(db, who, "login.lockout", who.ip, scope="client")
    wait = throttle.locked_for(db, keys)
    if wait:
        return Step("locked", retry_after=wait)
    return Step("ended" if failures >= PENDING_TRIES else "wrong")


def purge(db) -> None:
    """Forget pending logins a day after they ended (inside a write)."""
    db.execute("DELETE FROM login_pending WHERE expires_at < ?", [clock.iso(clock.now() - timedelta(days=1))])
