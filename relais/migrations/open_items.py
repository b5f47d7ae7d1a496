"""Migration 0016: indexes for the admin's page of open items (relais.open_items), read nearest
deadline first at a registry's volumes without sorting whole tables."""

from sqlite_utils import Database

from relais.migrations.schema import migrations


@migrations(name="0016_open_items")
def m0016_open_items(db: Database) -> None:
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
        """
    )
