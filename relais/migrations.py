"""Schema, as numbered migrations. Never edit an applied migration: add the next one.

The schema is documented for admins who query the database directly in ``docs/schema.md``.
Times are ISO 8601 strings in UTC (``2026-11-24T09:37:59.123456+00:00``), which sort correctly
as text and read well in ``sqlite3``.
"""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from relais import terms_text

migrations = Migrations("relais")


@migrations(name="0001_initial")
def m0001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            name TEXT NOT NULL DEFAULT '',
            role TEXT NOT NULL CHECK (role IN ('admin', 'staff', 'partner')),
            -- argon2id; NULL until the person chooses a password through a one-time link
            password_hash TEXT,
            password_changed_at TEXT,
            must_change_password INTEGER NOT NULL DEFAULT 0,
            active INTEGER NOT NULL DEFAULT 1,
            language TEXT NOT NULL DEFAULT 'en',
            created_at TEXT NOT NULL,
            created_by INTEGER REFERENCES users(id)
        );

        -- Server-side sessions. Only a SHA-256 of the cookie value is stored, so a copy of the
        -- database cannot be replayed as a login.
        CREATE TABLE sessions (
            id_hash TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            ip TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX sessions_user ON sessions(user_id);

        -- One-time links that let a person set a password and log in (first admin, resets).
        CREATE TABLE login_tokens (
            token_hash TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            purpose TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT
        );

        -- Failed-login counters, per account ('account:<email>') and per client ('ip:<addr>').
        CREATE TABLE login_throttle (
            key TEXT PRIMARY KEY,
            failures INTEGER NOT NULL,
            first_failure_at TEXT NOT NULL,
            locked_until TEXT
        );

        CREATE TABLE settings (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            updated_by INTEGER REFERENCES users(id)
        );

        CREATE TABLE terms (
            version INTEGER NOT NULL,
            language TEXT NOT NULL,
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (version, language)
        );

        CREATE TABLE terms_acceptances (
            id INTEGER PRIMARY KEY,
            version INTEGER NOT NULL,
            user_id INTEGER REFERENCES users(id),
            -- for guests who accept through a link (shares, requests)
            subject TEXT NOT NULL DEFAULT '',
            accepted_at TEXT NOT NULL,
            ip TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX terms_acceptances_user ON terms_acceptances(user_id);

        -- Append-only, hash-chained: hash = sha256(prev_hash + canonical JSON of the row).
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            object TEXT NOT NULL DEFAULT '',
            ip TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}',
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_log_action ON audit_log(action);
        CREATE INDEX audit_log_actor ON audit_log(actor);
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

        CREATE VIEW active_sessions AS
            SELECT users.email, users.role, sessions.created_at, sessions.last_seen_at,
                   sessions.ip, sessions.user_agent
            FROM sessions JOIN users ON users.id = sessions.user_id;
        """
    )
    for language, (title, body) in terms_text.VERSION_1.items():
        db.execute(
            "INSERT INTO terms (version, language, title, body, created_at)"
            " VALUES (1, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))",
            (language, title, body),
        )
