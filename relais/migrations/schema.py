"""Migrations 0001-0007: accounts, sessions, files, the outbox, shares and the link core
(see :mod:`relais.migrations`)."""

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


@migrations(name="0002_files")
def m0002_files(db: Database) -> None:
    db.executescript(
        """
        -- Stored files (relais.files). A row in state 'uploading' is never listed or served: a file
        -- becomes visible only in the transaction that marks it 'complete' with its size and SHA-256.
        -- Deleting the row destroys wrapped_key, the only way to decrypt the data file
        -- (crypto-shredding); the data file is unlinked after that commit.
        CREATE TABLE files (
            id TEXT PRIMARY KEY,                   -- random hex, used in URLs
            owner_id INTEGER NOT NULL REFERENCES users(id),
            name TEXT NOT NULL,                    -- checked name shown to people, never a path on disk
            size INTEGER NOT NULL DEFAULT 0,
            sha256 TEXT NOT NULL DEFAULT '',       -- of the plaintext, computed while writing
            media_type TEXT NOT NULL,
            wrapped_key BLOB NOT NULL,             -- 60 bytes: the file's key wrapped by the master key
            storage_name TEXT NOT NULL UNIQUE,     -- random name under data/files/
            state TEXT NOT NULL CHECK (state IN ('uploading', 'complete')),
            created_at TEXT NOT NULL,
            completed_at TEXT,
            expires_at TEXT                        -- unfinished uploads only: purged after this
        );
        CREATE INDEX files_owner ON files(owner_id, state);

        -- Unfinished tus uploads, one per 'uploading' file; removed when the file completes.
        CREATE TABLE uploads (
            id TEXT PRIMARY KEY,                   -- random hex, in the /tus/ URL
            file_id TEXT NOT NULL UNIQUE REFERENCES files(id) ON DELETE CASCADE,
            owner_id INTEGER NOT NULL REFERENCES users(id),
            session_hash TEXT NOT NULL DEFAULT '', -- the session that created it; only it may resume it
            length INTEGER NOT NULL,
            "offset" INTEGER NOT NULL DEFAULT 0,   -- bytes durably stored at the last checkpoint
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        CREATE INDEX uploads_expires ON uploads(expires_at);
        """
    )


@migrations(name="0003_outbox")
def m0003_outbox(db: Database) -> None:
    db.executescript(
        """
        -- The transactional outbox (relais.mail): a mail is queued in the same transaction as the
        -- change it reports, and sent afterwards; failures are retried with growing delays.
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            kind TEXT NOT NULL,                    -- what the mail is about: share, receipt, ...
            object TEXT NOT NULL DEFAULT '',       -- the share, request or account it concerns
            recipient TEXT NOT NULL,               -- 'Name <address>' as put in the To header
            subject TEXT NOT NULL,
            body_text TEXT NOT NULL,
            body_html TEXT NOT NULL DEFAULT '',
            language TEXT NOT NULL,
            message_id TEXT NOT NULL UNIQUE,       -- fixed, so a retried message is recognisable
            status TEXT NOT NULL CHECK (status IN ('pending', 'sent')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT NOT NULL DEFAULT '',
            sent_at TEXT
        );
        CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
        CREATE VIEW pending_mail AS
            SELECT id, created_at, kind, object, recipient, subject, attempts, next_attempt_at, last_error
            FROM outbox WHERE status = 'pending';
        """
    )


@migrations(name="0004_shares")
def m0004_shares(db: Database) -> None:
    db.executescript(
        """
        -- Shares (relais.shares): files behind a password-protected download link.
        CREATE TABLE shares (
            id TEXT PRIMARY KEY,
            owner_id INTEGER NOT NULL REFERENCES users(id),
            token_hash TEXT NOT NULL UNIQUE,       -- SHA-256 of the link token; the token is never stored
            password_hash TEXT NOT NULL,           -- argon2id; emptied when the share is deleted
            message TEXT NOT NULL DEFAULT '',
            language TEXT NOT NULL,                -- of the e-mails: nl, fr, en, de
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            download_limit INTEGER,                -- complete downloads per file; NULL: no limit
            delete_after_download INTEGER NOT NULL DEFAULT 0,
            downloaded_at TEXT,                    -- when every file had been downloaded completely once
            revoked_at TEXT,
            failed_attempts INTEGER NOT NULL DEFAULT 0,  -- wrong passwords since the last right one
            locked_at TEXT,                        -- after link_failures_before_lock wrong passwords
            deleted_at TEXT                        -- files shredded (deleted, revoked, expired, downloaded)
        );
        CREATE INDEX shares_owner ON shares(owner_id, created_at);
        CREATE TABLE share_files (
            share_id TEXT NOT NULL REFERENCES shares(id),
            file_id TEXT NOT NULL UNIQUE REFERENCES files(id) ON DELETE CASCADE,
            PRIMARY KEY (share_id, file_id)
        );
        CREATE TABLE share_recipients (
            share_id TEXT NOT NULL REFERENCES shares(id),
            email TEXT NOT NULL,
            PRIMARY KEY (share_id, email)
        );
        -- What happened on a share's link: access, access_refused, locked, download_start (counted
        -- against the limit), download_part (bytes sent by one response), download (the bytes one
        -- link session received cover the whole file).
        CREATE TABLE share_events (
            id INTEGER PRIMARY KEY,
            share_id TEXT NOT NULL REFERENCES shares(id),
            at TEXT NOT NULL,
            event TEXT NOT NULL,
            file_id TEXT NOT NULL DEFAULT '',
            ip TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '',
            session TEXT NOT NULL DEFAULT '',      -- SHA-256 of the link session's cookie
            start INTEGER NOT NULL DEFAULT 0,      -- download_part: first byte sent
            bytes INTEGER NOT NULL DEFAULT 0       -- download_part: bytes sent
        );
        CREATE INDEX share_events_share ON share_events(share_id, event);
        -- A browser that typed the right password for one share.
        CREATE TABLE link_sessions (
            token_hash TEXT PRIMARY KEY,
            share_id TEXT NOT NULL REFERENCES shares(id),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            ip TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT ''
        );
        -- One-time links that reveal a share's password once; the password is encrypted under a
        -- key derived from the link's token, which is not stored.
        CREATE TABLE password_links (
            token_hash TEXT PRIMARY KEY,
            share_id TEXT NOT NULL REFERENCES shares(id),
            secret BLOB NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );

        CREATE VIEW open_links AS
            SELECT shares.id, users.email AS owner, shares.created_at, shares.expires_at,
                   (SELECT group_concat(email, ', ') FROM share_recipients WHERE share_id = shares.id) AS recipients,
                   (SELECT count(*) FROM share_files WHERE share_id = shares.id) AS files
            FROM shares JOIN users ON users.id = shares.owner_id
            WHERE deleted_at IS NULL AND revoked_at IS NULL AND locked_at IS NULL
              AND expires_at > strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now');
        CREATE VIEW pending_downloads AS
            SELECT open_links.* FROM open_links JOIN shares ON shares.id = open_links.id
            WHERE shares.downloaded_at IS NULL;
        CREATE VIEW who_accessed_what AS
            SELECT share_events.at, share_events.event, share_events.ip, share_events.user_agent,
                   shares.id AS share_id, users.email AS owner,
                   coalesce(files.name, share_events.detail) AS file_name
            FROM share_events JOIN shares ON shares.id = share_events.share_id
            JOIN users ON users.id = shares.owner_id
            LEFT JOIN files ON files.id = share_events.file_id;
        """
    )


@migrations(name="0005_upload_targets")
def m0005_upload_targets(db: Database) -> None:
    db.executescript(
        """
        -- An upload belongs to its target (relais.targets), not to the session that created it: the
        -- target says where the finished file goes and who may resume it, from any of their sessions.
        -- Uploads in progress were all a staff member's own files: My files of their owner.
        ALTER TABLE uploads ADD COLUMN target_kind TEXT NOT NULL DEFAULT 'files';  -- files (later: request, space)
        ALTER TABLE uploads ADD COLUMN target_id TEXT NOT NULL DEFAULT '';         -- files: the account's id
        UPDATE uploads SET target_id = CAST(owner_id AS TEXT);
        ALTER TABLE uploads DROP COLUMN session_hash;
        CREATE INDEX uploads_target ON uploads(target_kind, target_id);
        """
    )


@migrations(name="0006_link_core")
def m0006_link_core(db: Database) -> None:
    # One core for every kind of link (relais.links): events, link sessions and password links are
    # keyed by the link's kind ('share'; 'request' next) and its object's id, instead of a share_id.
    db.executescript(
        """
        DROP VIEW who_accessed_what;

        -- What happened on a link: access, access_refused (detail: password or wait), locked;
        -- for shares download_start (a browser took one of the limit's places for a file),
        -- download_part (bytes one response sent) and download (the bytes one link session
        -- received since its previous download cover the whole file: counted against the limit).
        CREATE TABLE link_events (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,                    -- share (request next)
            object_id TEXT NOT NULL,               -- the share's (request's) id
            at TEXT NOT NULL,
            event TEXT NOT NULL,
            file_id TEXT NOT NULL DEFAULT '',
            ip TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '',       -- the file's name, or why access was refused
            session TEXT NOT NULL DEFAULT '',      -- SHA-256 of the link session's cookie
            start INTEGER NOT NULL DEFAULT 0,      -- download_part: first byte sent
            bytes INTEGER NOT NULL DEFAULT 0       -- download_part: bytes sent
        );
        INSERT INTO link_events (id, kind, object_id, at, event, file_id, ip, user_agent, detail, session, start, bytes)
            SELECT id, 'share', share_id, at, event, file_id, ip, user_agent, detail, session, start, bytes
            FROM share_events;
        CREATE INDEX link_events_object ON link_events(kind, object_id, event);
        CREATE INDEX link_events_file ON link_events(kind, object_id, file_id, session);
        DROP TABLE share_events;

        -- A browser that typed the right password for one link.
        CREATE TABLE link_sessions_new (
            token_hash TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            object_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            ip TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT ''
        );
        INSERT INTO link_sessions_new SELECT token_hash, 'share', share_id, created_at, expires_at, ip, user_agent
            FROM link_sessions;
        DROP TABLE link_sessions;
        ALTER TABLE link_sessions_new RENAME TO link_sessions;
        CREATE INDEX link_sessions_object ON link_sessions(kind, object_id);

        -- One-time links that reveal a link's password once; the password is encrypted under a
        -- key derived from the link's token, which is not stored.
        CREATE TABLE password_links_new (
            token_hash TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            object_id TEXT NOT NULL,
            secret BLOB NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        INSERT INTO password_links_new SELECT token_hash, 'share', share_id, secret, created_at, expires_at
            FROM password_links;
        DROP TABLE password_links;
        ALTER TABLE password_links_new RENAME TO password_links;
        CREATE INDEX password_links_object ON password_links(kind, object_id);

        CREATE VIEW who_accessed_what AS
            SELECT link_events.at, link_events.event, link_events.ip, link_events.user_agent,
                   shares.id AS share_id, users.email AS owner,
                   coalesce(files.name, link_events.detail) AS file_name,
                   link_events.kind, link_events.object_id
            FROM link_events JOIN shares ON link_events.kind = 'share' AND shares.id = link_events.object_id
            JOIN users ON users.id = shares.owner_id
            LEFT JOIN files ON files.id = link_events.file_id;
        """
    )


@migrations(name="0007_redact_sent_mail")
def m0007_redact_sent_mail(db: Database) -> None:
    # Mails sent before relais.mail cut link tokens out of what it keeps still hold them in clear:
    # the record of a sent mail needs no working link (relais.mail._sent). Unsent mails keep theirs
    # (they must still be sent). The start checkpoints afterwards (relais.setup), so the old bodies
    # do not live on in relais.db-wal; secure_delete zeroes the pages they leave in relais.db.
    from relais.mail import redact

    for row in list(db.query("SELECT id, body_text, body_html FROM outbox WHERE status = 'sent'")):
        text, html = redact(row["body_text"]), redact(row["body_html"])
        if (text, html) != (row["body_text"], row["body_html"]):
            db.execute("UPDATE outbox SET body_text = ?, body_html = ? WHERE id = ?", [text, html, row["id"]])
