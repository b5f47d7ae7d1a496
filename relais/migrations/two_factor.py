"""Migration 0009: the second factor of a login (relais.two_factor): TOTP secrets, recovery codes
and the logins waiting for their code."""

from sqlite_utils import Database

from relais.migrations.schema import migrations


@migrations(name="0009_two_factor")
def m0009_two_factor(db: Database) -> None:
    db.executescript(
        """
        -- One authenticator app per account (TOTP, RFC 6238: 6 digits, 30-second steps, SHA-1).
        -- The secret is encrypted at rest: AES-GCM under a key derived from the master key (HKDF,
        -- its own label), the account's id as associated data, so a copy of the database (or a
        -- secret moved to another account's row) is of no use.
        CREATE TABLE two_factor (
            user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
            secret_enc BLOB NOT NULL,              -- 12-byte nonce + ciphertext + tag
            created_at TEXT NOT NULL,              -- enrolment started (the QR code shown)
            enrolled_at TEXT,                      -- confirmed with a first code; NULL: not in force yet
            last_step INTEGER NOT NULL DEFAULT 0,  -- the latest time step accepted: it and earlier ones are refused (replay)
            last_used_at TEXT
        );

        -- Ten single-use codes for when the phone is lost: shown once, stored as SHA-256 only
        -- (80 random bits each, so a fast hash is enough).
        CREATE TABLE two_factor_recovery_codes (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            code_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            used_at TEXT
        );
        CREATE INDEX two_factor_recovery_codes_user ON two_factor_recovery_codes(user_id);

        -- A login whose password was right and whose code is awaited: no session exists yet. The
        -- browser holds the token (a short-lived cookie); only its SHA-256 is stored.
        CREATE TABLE login_pending (
            token_hash TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT,                          -- the code was accepted, or too many were wrong
            failures INTEGER NOT NULL DEFAULT 0,
            language TEXT                          -- chosen at the login, stored with the session
        );
        CREATE INDEX login_pending_user ON login_pending(user_id);

        -- For admins: who logs in with a second factor, since when, and the recovery codes left.
        CREATE VIEW two_factor_accounts AS
            SELECT users.email, users.role, two_factor.enrolled_at, two_factor.last_used_at,
                   (SELECT count(*) FROM two_factor_recovery_codes AS codes
                    WHERE codes.user_id = users.id AND codes.used_at IS NULL) AS recovery_codes_left
            FROM users JOIN two_factor ON two_factor.user_id = users.id
            WHERE two_factor.enrolled_at IS NOT NULL;
        """
    )
