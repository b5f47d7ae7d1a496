"""Getting a data folder ready: folders, database schema, secrets. Used by the app and the CLI."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from relais import audit, key_epochs, mail, once, times, two_factor, uploads, workers
from relais.config import Config
from relais.db import Database
from relais.passwords import Hasher
from relais.storage import EpochKeys, load_master_key


def ensure_dirs(config: Config) -> None:
    for path in (config.data_dir, config.outbox_dir, config.files_dir, config.tmp_dir):
        path.mkdir(parents=True, exist_ok=True)
    os.chmod(config.data_dir, 0o700)


def load_secret(path: Path) -> str:
    """The key that signs CSRF tokens; made once per data folder, readable by its owner only."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


def prepare(config: Config) -> dict:
    """Everything the app needs, in ``app.state``: config, database, password hasher, secrets."""
    ensure_dirs(config)
    times.use_zone(config.timezone)  # one zone for the process: pages and e-mails alike
    # Wraps every file's key and keys the audit chain; created on first start (keep it outside
    # data/ in production).
    master_key = load_master_key(config.resolved_master_key_file, create=True)
    audit_key = audit.derive_key(master_key)
    database = Database(config.db_path, prepare_connection=audit.connection_setup(audit_key))
    if "0007_redact_sent_mail" in database.migrate():
        database.checkpoint()  # the link tokens it cut out must not stay in relais.db-wal
    # Outside the database, the fact that its audit chain is keyed: the first start of the keyed
    # version seals an upgrade's plain rows; from then on a plain row is a forgery (relais/audit.py).
    audit_marker = audit.marker_file(config.resolved_master_key_file)
    audit.mark_keyed(database, audit_key, audit_marker)
    # Each file's key is wrapped by a day key kept beside the master key, out of the data folder and
    # its backups (relais/key_epochs.py); keys an older version wrapped by the master key are
    # re-wrapped here, where the master key is at hand (migration 0011 only adds the column).
    file_keys = EpochKeys(config.resolved_epoch_keys_dir, master_key)
    key_epochs.rekey_legacy(database, file_keys)
    hasher = Hasher(config.argon2_time_cost, config.argon2_memory_kib, config.argon2_parallelism)
    mail_sender = mail.Sender(database, mail.Transport(config))
    return {
        "config": config, "db": database, "hasher": hasher, "secret_key": load_secret(config.secret_key_file),
        "master_key": master_key, "file_keys": file_keys, "audit_key": audit_key, "audit_marker": audit_marker,
        # Encrypts the TOTP secrets of the second factor (relais.two_factor).
        "two_factor_key": two_factor.derive_key(master_key),
        "mail_sender": mail_sender,
        # A new share's password, between the POST that made it and the one page that shows it.
        "shown_once": once.ShownOnce(),
        # The tus uploads' open writers and the requests writing to them, for this process.
        "uploads": uploads.Engine(database, file_keys, config.files_dir),
        # Threads for transfer disk work, apart from the pages' (relais.workers).
        "workers": workers.Workers(),
        # Set when the server is asked to stop: tus uploads in flight then save what arrived and
        # answer 503 at once (the client resumes after the restart) instead of holding up the stop.
        "stopping": threading.Event(),
    }
