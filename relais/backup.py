"""``backup DEST`` and ``restore SRC``: a consistent copy of an instance while it serves, and an
instance made again from one.

A backup is the database (SQLite's online backup API: one consistent state while the writer goes
on) and the data files of the complete files that state names, copied after it. What a backup
never holds: the master key and the day keys (relais/storage/epochs.py), kept apart so that a
copy of the backup alone opens nothing, and so that a file deleted after the backup becomes noise
in it once its day's key is destroyed (relais/key_epochs.py). Nor the outbox's ``.eml`` files,
the temporary uploads or unfinished uploads.

A restore goes into an empty data folder only (never over an instance), with the master key and
the day keys as they are now. It then leaves out, with an audit row each, the files the backup
names that cannot come back: their day's key is gone (deleted since the backup), their data was
deleted while the backup was being copied, or they were unfinished uploads (their clients start
them again). After it ``verify`` passes and the instance serves.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from relais import audit, files, key_epochs
from relais.config import Config
from relais.storage import StorageError, load_master_key
from relais.storage.disk import fsync_dir


class Refused(Exception):
    """The backup or restore cannot be done as asked; the message says why and what to do."""


@dataclass
class Copied:
    files: int = 0
    left_out: list[str] = field(default_factory=list)  # deleted between the snapshot and their copy


def backup(state, dest: Path) -> Copied:
    """Write a backup of the running instance of ``state`` into ``dest``, a new or empty folder."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Refused(f"{dest} is not an empty folder: a backup goes into a new one")
    # The copy holds password hashes and wrapped keys: its owner only.
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.chmod(0o700)
    (dest / "files").mkdir(mode=0o700)
    db_copy = dest / "relais.db"
    db_copy.touch(mode=0o600)
    state.db.backup(db_copy)
    snapshot = sqlite3.connect(db_copy)
    try:
        names = [row[0] for row in snapshot.execute("SELECT storage_name FROM files WHERE state = 'complete'")]
    finally:
        snapshot.close()
    copied = Copied()
    for name in names:
        try:
            _copy(state.config.files_dir / name, dest / "files" / name)
            copied.files += 1
        except FileNotFoundError:  # deleted since the snapshot: its key is gone from the instance already
            copied.left_out.append(name)
    fsync_dir(dest / "files")
    fsync_dir(dest)
    return copied


def _copy(source: Path, target: Path) -> None:
    with open(source, "rb") as src:  # open first: a file deleted now is skipped, one opened is copied whole
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())


@dataclass
class Restored:
    files: int = 0
    left_out: list[tuple[dict, str]] = field(default_factory=list)  # (file row, reason)


def check_restore(config: Config, src: Path) -> None:
    """Refuse, before anything is written, a restore that cannot be right."""
    src = Path(src)
    if not (src / "relais.db").is_file():
        raise Refused(f"{src} holds no relais.db: not a backup made by `python app.py backup`")
    data_dir = config.data_dir
    # The key material may live in the data folder (the defaults of `make run`): it is not data.
    keys = {config.resolved_master_key_file.resolve(), audit.marker_file(config.resolved_master_key_file).resolve(),
            config.resolved_epoch_keys_dir.resolve()}
    if data_dir.exists():
        others = sorted(p.name for p in data_dir.iterdir() if p.resolve() not in keys)
        if others:
            raise Refused(f"the data folder {data_dir} is not empty ({', '.join(others[:5])}): restore goes into an"
                          " empty one only, never over an instance; point RELAIS_DATA_DIR at a new folder")
    try:
        load_master_key(config.resolved_master_key_file, create=False)
    except StorageError as exc:
        raise Refused(f"{exc}: a backup is opened with the master key of the instance it comes from"
                      " (RELAIS_MASTER_KEY_FILE)") from None
    copy = sqlite3.connect(f"file:{src / 'relais.db'}?mode=ro", uri=True)
    try:
        columns = {row[1] for row in copy.execute("PRAGMA table_info(files)")}
        dated = copy.execute("SELECT count(*) FROM files WHERE key_epoch IS NOT NULL").fetchone()[0] \
            if "key_epoch" in columns else 0
    finally:
        copy.close()
    if dated and not any(config.resolved_epoch_keys_dir.glob("*.key")):
        raise Refused(f"no day keys in {config.resolved_epoch_keys_dir}, and the backup's files need them: set"
                      " RELAIS_EPOCH_KEYS_DIR to the folder of day keys of the instance the backup comes from")


def restore(config: Config, src: Path, create_app) -> Restored:
    """Make the instance of ``config`` from the backup in ``src`` (see the module's docstring)."""
    src = Path(src)
    check_restore(config, src)
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    copy = sqlite3.connect(f"file:{src / 'relais.db'}?mode=ro", uri=True)
    try:
        names = [row[0] for row in copy.execute("SELECT storage_name FROM files WHERE state = 'complete'")]
    finally:
        copy.close()
    config.files_dir.mkdir(mode=0o700, exist_ok=True)
    for name in names:
        try:
            _copy(src / "files" / name, config.files_dir / name)
        except FileNotFoundError:
            pass  # left out by the backup: the restore leaves its row out below
    fsync_dir(config.files_dir)
    # The database last, whole, under its own name only once copied.
    tmp = config.data_dir / ".relais.db.restoring"
    _copy(src / "relais.db", tmp)
    os.replace(tmp, config.db_path)
    fsync_dir(config.data_dir)

    app = create_app(config)  # migrates a backup of an older version, re-wraps its keys
    state = app.state
    try:
        restored = Restored()
        lost = key_epochs.unrecoverable(state.db, state.file_keys, config.files_dir)
        reasons = {row["id"]: reason for row, reason in lost}

        def doomed(db) -> list[dict]:
            return [row for row, _ in lost]

        def record(db, rows: list[dict]) -> None:
            for row in rows:
                audit.record(db, audit.SYSTEM, "file.restore_left_out", row["id"], reason=reasons[row["id"]],
                             name=row["name"], sha256=row["sha256"])

        if lost:
            files.shred(state.db, config.files_dir, doomed, record)
        restored.left_out = lost
        restored.files = state.db.scalar("SELECT count(*) FROM files")
        return restored
    finally:
        state.db.close()
