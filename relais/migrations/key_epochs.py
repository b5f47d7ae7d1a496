"""Migration 0011: each file's key is wrapped by a day key (relais/storage/epochs.py), named here.

Only the column: re-wrapping the existing keys needs the master key, which the database never
sees, so the first start of this version does it (:func:`relais.key_epochs.rekey_legacy`, from
relais/setup.py), as it seals the audit chain.
"""

from sqlite_utils import Database

from relais.migrations.schema import migrations


@migrations(name="0011_key_epochs")
def m0011_key_epochs(db: Database) -> None:
    db.executescript(
        """
        -- The UTC day (2026-11-24) whose key wraps wrapped_key; NULL: wrapped by the master key,
        -- as before this migration, until the first start re-wraps it.
        ALTER TABLE files ADD COLUMN key_epoch TEXT;
        CREATE INDEX files_key_epoch ON files(key_epoch);
        """
    )
