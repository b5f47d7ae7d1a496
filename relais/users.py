"""Accounts: staff, admins and partners, their passwords and one-time login links."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from relais import audit, clock, i18n, paging, passwords, settings, throttle
from relais.db import Database
from relais.refusal import Refused

ROLES = ("admin", "staff", "partner")
STAFF_ROLES = ("admin", "staff")  # a role change moves an account between these, never to or from partner
SEARCH_WORDS = 5
# Deliberately plain: one @, no spaces or control characters, a dot in the domain or localhost.
EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f<>,;:\"()\[\]\\]{1,64}@([A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}$")


# The link `serve` prints on the console for the first admin. Console output ends up in logs and
# scrollback that others read, so it works only while no admin can log in with a password: once one
# can, the instance has an owner, who makes further accounts and links from the Accounts page.
SETUP = "setup"
_SETUP_STILL_OPEN = (
    " AND (login_tokens.purpose != 'setup' OR NOT EXISTS (SELECT 1 FROM users AS admins"
    " WHERE admins.role = 'admin' AND admins.active = 1 AND admins.password_hash IS NOT NULL))"
)


class UserError(Refused):
    """An account rule was broken; ``reason`` names it for the message shown to the person."""


@dataclass(frozen=True)
class User:
    id: int
    email: str
    name: str
    role: str
    active: bool
    must_change_password: bool
    language: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_staff(self) -> bool:
        return self.role in ("admin", "staff")

    @classmethod
    def from_row(cls, row: dict) -> "User":
        return cls(
            id=row["id"], email=row["email"], name=row["name"], role=row["role"], active=bool(row["active"]),
            must_change_password=bool(row["must_change_password"]), language=row["language"],
        )


def normalize_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise UserError("invalid_email")
    return email.lower()


def get(database: Database, user_id: int) -> User | None:
    row = database.query_one("SELECT * FROM users WHERE id = ?", [user_id])
    return User.from_row(row) if row else None


def by_email(database: Database, email: str) -> dict | None:
    return database.query_one("SELECT * FROM users WHERE email = ?", [email.strip().lower()])


def list_users(database: Database, page: int = 1, per_page: int = paging.PER_PAGE, role: str = "",
               search: str = "") -> paging.Page:
    """One page of the accounts, by role then e-mail address: of one role (else every one) and,
    with ``search``, those whose name or e-mail address holds it (whatever its case)."""
    where, params = [], []
    if role in ROLES:
        where.append("role = ?")
        params.append(role)
    for word in search.split()[:SEARCH_WORDS]:  # each word somewhere in the name or the address
        where.append("(name LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\')")
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [pattern, pattern]
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows, page, total = database.read_sync(
        paging.fetch, f"SELECT count(*) FROM users{clause}", f"SELECT * FROM users{clause} ORDER BY role, email, id",
        params, page, per_page,
    )
    return paging.Page([User.from_row(r) for r in rows], page, per_page, total)


def count_admins(database: Database) -> int:
    return database.scalar("SELECT count(*) FROM users WHERE role = 'admin' AND active = 1")


def setup_link(database: Database, hasher: passwords.Hasher, email: str) -> tuple[User, str] | None:
    """While no admin can log in with a password: the first admin (created as ``email`` when there
    is no admin at all) and a new one-time setup link for it, which ends the previous one. None
    once an admin has a password."""
    if database.scalar("SELECT 1 FROM users WHERE role = 'admin' AND active = 1 AND password_hash IS NOT NULL"):
        return None
    row = database.query_one("SELECT * FROM users WHERE role = 'admin' AND active = 1 ORDER BY id LIMIT 1")
    admin = User.from_row(row) if row else create(database, hasher, audit.SYSTEM, email=email, name="Administrator",
                                                  role="admin")
    return admin, issue_login_link(database, audit.SYSTEM, admin.id, purpose=SETUP)


def create(
    database: Database, hasher: passwords.Hasher, who: audit.Who, *, email: str, name: str, role: str,
    password: str | None = None, created_by: int | None = None, language: str = "en",
) -> User:
    """Create an account. Without a password the person sets one through a one-time link."""
    email = normalize_email(email)
    name = " ".join(name.split())[:200]
    if role not in ROLES:
        raise UserError("invalid_role")
    password_hash = None
    if password is not None:
        passwords.check_policy(password, [email, name])
        password_hash = hasher.hash(password)

    def insert(db):
        if db.execute("SELECT 1 FROM users WHERE email = ?", [email]).fetchone():
            raise UserError("email_taken")
        now = clock.now_iso()
        user_id = db.execute(
            "INSERT INTO users (email, name, role, password_hash, password_changed_at, must_change_password,"
            " language, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [email, name, role, password_hash, now if password_hash else None, 0, language, now, created_by],
        ).lastrowid
        audit.record(db, who, "user.create", email, role=role)
        return user_id

    return get(database, database.write(insert))


def store_password(db, who: audit.Who, user: User, password_hash: str) -> None:
    """Inside a write: the account's new password hash (made beforehand: argon2 never runs in the writer)."""
    db.execute(
        "UPDATE users SET password_hash = ?, password_changed_at = ?, must_change_password = 0 WHERE id = ?",
        [password_hash, clock.now_iso(), user.id],
    )
    audit.record(db, who, "user.password_change", user.email)


_ACTIVE_ADMIN = "(role = 'admin' AND active = 1)"


def _no_other_admin(db, user_id: int) -> bool:
    """Whether no admin but ``user_id`` can run the console: active, with a password. One who has
    not yet used their first login link (password_hash NULL) cannot log in, so is not "another
    admin": counting them let the last real admin demote or deactivate themselves."""
    return db.execute(f"SELECT count(*) FROM users WHERE {_ACTIVE_ADMIN} AND password_hash IS NOT NULL AND id != ?",
                      [user_id]).fetchone()[0] == 0


def set_active(database: Database, who: audit.Who, user_id: int, active: bool) -> None:
    """Deactivating ends every session of the account at once."""

    def update(db):
        row = db.execute(f"SELECT email, role, {_ACTIVE_ADMIN} FROM users WHERE id = ?", [user_id]).fetchone()
        if row is None:
            raise UserError("not_found")
        if not active and row[2] and _no_other_admin(db, user_id):
            raise UserError("last_admin")
        db.execute("UPDATE users SET active = ? WHERE id = ?", [int(active), user_id])
        if not active:
            db.execute("DELETE FROM sessions WHERE user_id = ?", [user_id])
        audit.record(db, who, "user.activate" if active else "user.deactivate", row[0])

    database.write(update)


def change_role(database: Database, who: audit.Who, user_id: int, role: str) -> bool:
    """Make a staff account an admin or an admin staff; returns whether it changed. The role is
    read at every request (:func:`relais.auth.resolve_session`), so the person's open sessions
    have the new role at their next page: a former admin is refused the admin pages at once, a
    new admin who must have a second factor is sent to set one up first. A partner never becomes
    staff, nor staff a partner (their accounts hold other things: a space, an institution)."""

    def update(db) -> bool:
        row = db.execute(f"SELECT email, role, {_ACTIVE_ADMIN} FROM users WHERE id = ?", [user_id]).fetchone()
        if row is None:
            raise UserError("not_found")
        if row[1] not in STAFF_ROLES or role == "partner":
            raise UserError("partner_role")
        if role not in STAFF_ROLES:
            raise UserError("invalid_role")
        if row[1] == role:
            return False
        if row[2] and _no_other_admin(db, user_id):
            raise UserError("last_admin_role")
        db.execute("UPDATE users SET role = ? WHERE id = ?", [role, user_id])
        audit.record(db, who, "user.role_change", row[0], from_role=row[1], role=role)
        return True

    return database.write(update)


def set_language(database: Database, who: audit.Who, user_id: int, language: str) -> bool:
    """Store the language the person chose: their e-mails (receipts, lock warnings) follow it.
    Writes (and audits) only a change; returns whether there was one."""
    if language not in i18n.LANGUAGES:
        return False
    return database.write(store_language, who, user_id, language)


def store_language(db, who: audit.Who, user_id: int, language: str | None) -> bool:
    """:func:`set_language` inside a write of its own caller (a login stores it in its own
    transaction). None, or a language Relais does not have, changes nothing."""
    if language not in i18n.LANGUAGES:
        return False
    row = db.execute("SELECT email, language FROM users WHERE id = ?", [user_id]).fetchone()
    if row is None or row[1] == language:
        return False
    db.execute("UPDATE users SET language = ? WHERE id = ?", [language, user_id])
    audit.record(db, who, "user.language", row[0], language=language)
    return True


# -- one-time login links ----------------------------------------------------------------------

def issue_login_link(database: Database, who: audit.Who, user_id: int, purpose: str = "login") -> str:
    """A one-time link token to log in and choose a password. Earlier unused links stop working."""
    token = passwords.new_token()

    def insert(db):
        hours = settings.get(db, "login_link_hours")
        now = clock.now_iso()
        db.execute("UPDATE login_tokens SET used_at = ? WHERE user_id = ? AND used_at IS NULL", [now, user_id])
        db.execute(
            "INSERT INTO login_tokens (token_hash, user_id, purpose, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            [passwords.token_hash(token), user_id, purpose, now, clock.in_(timedelta(hours=hours))],
        )
        email = db.execute("SELECT email FROM users WHERE id = ?", [user_id]).fetchone()[0]
        audit.record(db, who, "user.login_link", email, purpose=purpose)

    database.write(insert)
    return token


def peek_login_link(database: Database, token: str) -> User | None:
    """The account a still-valid link belongs to, without using it (GET must not consume)."""
    row = database.query_one(
        "SELECT users.* FROM login_tokens JOIN users ON users.id = login_tokens.user_id"
        " WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? AND users.active = 1" + _SETUP_STILL_OPEN,
        [passwords.token_hash(token), clock.now_iso()],
    )
    return User.from_row(row) if row else None


def use_login_link(database: Database, who: audit.Who, token: str) -> User | None:
    """Consume the link: it works once. Returns its account, or None if used, expired or unknown."""
    if throttle.client_locked(database, who.ip):
        return None

    def consume(db):
        now = clock.now_iso()
        row = db.execute(
            "SELECT login_tokens.user_id, users.email FROM login_tokens JOIN users ON users.id = login_tokens.user_id"
            " WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? AND users.active = 1" + _SETUP_STILL_OPEN,
            [passwords.token_hash(token), now],
        ).fetchone()
        if row is None:
            audit.record(db, who, "user.login_link_refused")
            throttle.count_client_failure(db, who.ip)
            return None
        db.execute("UPDATE login_tokens SET used_at = ? WHERE token_hash = ?", [now, passwords.token_hash(token)])
        # The person must choose a password now; the link alone is not a standing credential. The
        # old password stops working and every session ends: a reset is also how an admin locks
        # out whoever may know the old password.
        db.execute("UPDATE users SET must_change_password = 1, password_hash = NULL WHERE id = ?", [row[0]])
        db.execute("DELETE FROM sessions WHERE user_id = ?", [row[0]])
        audit.record(db, who, "user.login_link_used", row[1])
        return row[0]

    user_id = database.write(consume)
    return get(database, user_id) if user_id else None
