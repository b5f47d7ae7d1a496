"""Migration 0013: partner spaces (relais.spaces): the files placed for a partner and the files
a partner sent, each with the date it is deleted."""

from sqlite_utils import Database

from relais.migrations.schema import migrations


@migrations(name="0013_spaces")
def m0013_spaces(db: Database) -> None:
    db.executescript(
        """
        -- A file in a partner's space. The file (files, owner_id: the partner) belongs to the
        -- space, never to anyone's My files; it goes with its row when deleted or due.
        CREATE TABLE space_files (
            file_id TEXT PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
            partner_id INTEGER NOT NULL REFERENCES users(id),
            direction TEXT NOT NULL CHECK (direction IN ('to_partner', 'from_partner')),
            placed_by INTEGER NOT NULL REFERENCES users(id),  -- the staff member, or the partner who sent it
            placed_at TEXT NOT NULL,
            delete_at TEXT NOT NULL,               -- space_retention_days after placed_at
            retrieved_at TEXT,                     -- the other side downloaded it completely, first time
            notified_at TEXT                       -- the other side was told it arrived
        );
        CREATE INDEX space_files_partner ON space_files(partner_id, direction, placed_at);
        CREATE INDEX space_files_deadline ON space_files(delete_at);
        CREATE INDEX space_files_unnotified ON space_files(notified_at) WHERE notified_at IS NULL;

        -- For admins: files waiting in partner spaces, whose they are and when they go.
        CREATE VIEW space_files_waiting AS
            SELECT users.email AS partner, institutions.name AS institution, space_files.direction,
                   files.name, files.size, files.sha256, space_files.placed_at, space_files.delete_at,
                   space_files.retrieved_at
            FROM space_files
            JOIN files ON files.id = space_files.file_id
            JOIN users ON users.id = space_files.partner_id
            JOIN partners ON partners.user_id = space_files.partner_id
            JOIN institutions ON institutions.id = partners.institution_id;
        """
    )
