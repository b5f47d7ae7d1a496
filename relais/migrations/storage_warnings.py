"""Migration 0015: the free-space warnings (relais.capacity), so that a restart neither forgets an
open warning nor mails the admins about it again."""

from sqlite_utils import Database

from relais.migrations.schema import migrations


@migrations(name="0015_storage_warnings")
def m0015_storage_warnings(db: Database) -> None:
    db.executescript(
        """
        -- A time free space on the data folder's file system fell below storage_warning_free_percent:
        -- the admins were mailed once; the row stays open (recovered_at NULL) until it is back above.
        CREATE TABLE storage_warnings (
            id INTEGER PRIMARY KEY,
            since TEXT NOT NULL,                   -- first measured below the threshold
            free_bytes INTEGER NOT NULL,           -- free then
            total_bytes INTEGER NOT NULL,          -- the file system's size then
            threshold_percent INTEGER NOT NULL,    -- the setting then
            admins_mailed INTEGER NOT NULL,
            recovered_at TEXT,                     -- back above the threshold: the next crossing mails again
            recovered_free_bytes INTEGER
        );
        -- At most one open warning.
        CREATE UNIQUE INDEX storage_warnings_open ON storage_warnings((recovered_at IS NULL)) WHERE recovered_at IS NULL;
        """
    )
