"""Migrations 0016 and 0017: lists at a registry's volumes (bench/pages.py): the admin's open items
(relais.open_items) read nearest deadline first without sorting whole tables, and My files
counted and paged from one index; 0017: the outbox's sent mails and the terms' acceptances
of each version."""

from sqlite_utils import Database

from relais.migrations.schema import migrations


@migrations(name="0016_lists_at_volume")
def m0016_lists_at_volume(db: Database) -> None:
    db.executescript(
        """
        -- Each kind of open item in deadline order, the id breaking ties (the page's keyset), with
        -- the owner's or partner's id for the page's person filter: shares and requests whose link
        -- has not ended by hand (the expiry moves with the clock: it is checked on the rows),
        -- submissions waiting for retrieval, space files.
        CREATE INDEX shares_open_due ON shares(expires_at, id, owner_id)
            WHERE deleted_at IS NULL AND revoked_at IS NULL AND locked_at IS NULL;
        CREATE INDEX requests_open_due ON requests(expires_at, id, owner_id)
            WHERE deleted_at IS NULL AND revoked_at IS NULL AND locked_at IS NULL AND closed_at IS NULL;
        CREATE INDEX request_submissions_waiting_due ON request_submissions(retrieve_by, request_id)
            WHERE retrieved_at IS NULL AND purged_at IS NULL;
        -- A request's earliest submission waiting for retrieval (its deadline), read per request:
        -- without it that minimum read every waiting submission of every request (the staff
        -- home's "files waiting for you" took seconds with 20,000 requests).
        CREATE INDEX request_submissions_waiting ON request_submissions(request_id, retrieve_by)
            WHERE retrieved_at IS NULL AND purged_at IS NULL;
        -- Replaces space_files_deadline (its first column): the purge's range reads this one.
        CREATE INDEX space_files_due ON space_files(delete_at, file_id, partner_id);
        DROP INDEX space_files_deadline;

        -- Requests newest first, everyone's (an admin) and one owner's, read in order from an
        -- index: sorted, every row of the list was read with its four counts first (200 ms at
        -- 20,000 requests). requests_owner was the start of requests_owner_created.
        CREATE INDEX requests_created ON requests(created_at DESC, id);
        CREATE INDEX requests_owner_created ON requests(owner_id, created_at DESC, id);
        DROP INDEX requests_owner;

        -- A submission's files (a request's page lists each submission's): without it that read
        -- every stored file (50 ms at 100,000 files).
        CREATE INDEX request_files_submission ON request_files(submission_id);

        -- My files are the owner's complete files that no share and no request holds. Asked of
        -- every file (NOT IN share_files, NOT IN request_files), counting 80,000 of them took
        -- 100 ms a page; attached says it on the file itself, set by these triggers whoever
        -- inserts the row (files leave a share or a request only by being deleted).
        ALTER TABLE files ADD COLUMN attached TEXT CHECK (attached IN ('share', 'request'));
        UPDATE files SET attached = 'share' WHERE id IN (SELECT file_id FROM share_files);
        UPDATE files SET attached = 'request' WHERE id IN (SELECT file_id FROM request_files);
        CREATE TRIGGER share_files_attach AFTER INSERT ON share_files
        BEGIN
            UPDATE files SET attached = 'share' WHERE id = new.file_id;
        END;
        CREATE TRIGGER request_files_attach AFTER INSERT ON request_files
        BEGIN
            UPDATE files SET attached = 'request' WHERE id = new.file_id;
        END;
        CREATE INDEX files_mine ON files(owner_id, completed_at DESC, id) WHERE state = 'complete' AND attached IS NULL;
        """
    )


@migrations(name="0017_sent_mail_and_acceptances")
def m0017_sent_mail_and_acceptances(db: Database) -> None:
    db.executescript(
        """
        -- The outbox's "sent" list, newest first a page at a time: sent mails are never purged,
        -- and without it each page sorted every one of them in a temporary B-tree.
        CREATE INDEX outbox_sent ON outbox(status, sent_at DESC, id DESC);
        -- The terms page's acceptances of each version (counted per version, listed newest first):
        -- without it each count read every acceptance of every version.
        CREATE INDEX terms_acceptances_version ON terms_acceptances(version);
        """
    )
