"""Migration 0008: requests ("Request files"), password-protected upload links (relais.requests)."""

from sqlite_utils import Database

from relais.migrations.schema import migrations


@migrations(name="0008_requests")
def m0008_requests(db: Database) -> None:
    db.executescript(
        """
        -- Requests (relais.requests): staff invite one person outside to upload files through a
        -- password-protected link. The link core (relais.links) finds, unlocks and locks them as
        -- it does shares: token_hash, password_hash, failed_attempts and locked_at mean the same.
        CREATE TABLE requests (
            id TEXT PRIMARY KEY,
            owner_id INTEGER NOT NULL REFERENCES users(id),
            token_hash TEXT NOT NULL UNIQUE,       -- SHA-256 of the link token; the token is never stored
            password_hash TEXT NOT NULL,           -- argon2id; emptied when the request is deleted
            recipient TEXT NOT NULL,               -- the one address invited; emptied when deleted
            message TEXT NOT NULL DEFAULT '',
            language TEXT NOT NULL,                -- of the invitation: nl, fr, en, de
            accepted_types TEXT NOT NULL DEFAULT '',  -- extensions, space-separated; '': every allowed type
            max_file_size INTEGER NOT NULL,        -- bytes
            max_files INTEGER NOT NULL,            -- per submission
            several INTEGER NOT NULL DEFAULT 0,    -- 1: the link takes several submissions until it expires
            reference_label TEXT NOT NULL DEFAULT '',  -- what the sender must fill in ('': nothing)
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,              -- the link's end; files already sent stay until their deadline
            closed_at TEXT,                        -- a one-submission request after its Transmit
            revoked_at TEXT,
            failed_attempts INTEGER NOT NULL DEFAULT 0,
            locked_at TEXT,
            deleted_at TEXT                        -- every file shredded by staff
        );
        CREATE INDEX requests_owner ON requests(owner_id, created_at);

        -- One Transmit: the files the guest sent together, with the staff's deadline to retrieve them.
        CREATE TABLE request_submissions (
            id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL REFERENCES requests(id),
            transmitted_at TEXT NOT NULL,
            reference TEXT NOT NULL DEFAULT '',    -- what the sender filled in
            language TEXT NOT NULL,                -- of the sender's page and receipt
            ip TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT '',
            files INTEGER NOT NULL,                -- how many, and their bytes, as transmitted
            bytes INTEGER NOT NULL,
            retrieve_by TEXT NOT NULL,             -- files are shredded then (request_retrieval_days)
            reminded_at TEXT,                      -- the owner's reminder before the deadline
            retrieved_at TEXT,                     -- staff had downloaded every file completely
            purged_at TEXT,                        -- its files were shredded
            purge_reason TEXT NOT NULL DEFAULT ''  -- deadline, retrieved, deleted
        );
        CREATE INDEX request_submissions_request ON request_submissions(request_id);
        CREATE INDEX request_submissions_deadline ON request_submissions(purged_at, retrieve_by);

        -- The files that arrived through a request's link: pending (submission_id NULL) until the
        -- guest clicks Transmit. They belong to the request, never to the owner's My files.
        CREATE TABLE request_files (
            file_id TEXT PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
            request_id TEXT NOT NULL REFERENCES requests(id),
            submission_id TEXT REFERENCES request_submissions(id),
            retrieved_at TEXT                      -- first complete download by staff
        );
        CREATE INDEX request_files_request ON request_files(request_id, submission_id);

        -- For admins: requests whose link still takes files, and their owners.
        CREATE VIEW open_requests AS
            SELECT requests.id, users.email AS owner, requests.recipient, requests.created_at, requests.expires_at,
                   requests.several,
                   (SELECT count(*) FROM request_submissions WHERE request_id = requests.id) AS submissions
            FROM requests JOIN users ON users.id = requests.owner_id
            WHERE deleted_at IS NULL AND revoked_at IS NULL AND locked_at IS NULL AND closed_at IS NULL
              AND expires_at > strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now');
        -- For admins: files sent through a request that staff have not retrieved yet, and their deadline.
        CREATE VIEW files_waiting_retrieval AS
            SELECT requests.id AS request_id, users.email AS owner, requests.recipient AS sender,
                   files.name, files.size, files.sha256, request_submissions.transmitted_at,
                   request_submissions.retrieve_by
            FROM request_files
            JOIN request_submissions ON request_submissions.id = request_files.submission_id
            JOIN requests ON requests.id = request_files.request_id
            JOIN users ON users.id = requests.owner_id
            JOIN files ON files.id = request_files.file_id
            WHERE request_files.retrieved_at IS NULL AND request_submissions.purged_at IS NULL;
        """
    )
