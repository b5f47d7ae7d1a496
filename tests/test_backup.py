"""`backup DEST` and `restore SRC`, and what a backup can no longer bring back."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest
import requests

from app import create_app
from relais import audit, files, key_epochs, retention, storage
from tests.conftest import audit_rows
from tests.serving import Server
from tests.test_key_epochs import read_back, run, upload, values
from tests.test_shares import CSV, PDF
from tests.test_tus import login


def restored_config(config, data_dir):
    """The same instance's keys (master key, day keys), another data folder."""
    return config.replace(data_dir=data_dir)


def test_a_file_deleted_after_a_backup_cannot_be_decrypted_from_it_past_the_bound(config, app, staff, frozen, tmp_path):
    deleted = upload(app, staff, "deleted.csv")
    frozen.advance(days=20)
    living = [upload(app, staff, "living.csv"), upload(app, staff, "living.pdf", PDF)]
    backup = run(config, "backup", str(tmp_path / "backup"))
    assert backup.returncode == 0, backup.stderr
    assert files.delete(app.state.db, config.files_dir, audit.SYSTEM, staff.id, deleted.id)
    # Past the bound: the guarantee, counted from the deleted file's upload (never later than
    # from its deletion). Its day's key goes; the living files' day is not due yet.
    bound = key_epochs.guarantee(values(app))
    frozen.moment = datetime.fromisoformat(deleted.created_at) + bound
    assert frozen.moment <= datetime.fromisoformat(audit_rows(app, "file.delete")[0]["at"]) + bound
    retention.purge_all(app.state)

    # The backup still holds the deleted file's wrapped key and data: no key there is now opens it.
    copy = sqlite3.connect(tmp_path / "backup" / "relais.db")
    wrapped, epoch = copy.execute("SELECT wrapped_key, key_epoch FROM files WHERE id = ?", [deleted.id]).fetchone()
    copy.close()
    assert (tmp_path / "backup" / "files" / deleted.storage_name).exists()
    keys = app.state.file_keys
    assert epoch not in keys.existing()
    for day in [epoch, *keys.existing(), None]:
        with pytest.raises(storage.IntegrityError):
            keys.unwrap(day, wrapped, deleted.id)

    # Restored with the keys as they now are: the deleted file is left out, every living one reads.
    restored = restored_config(config, tmp_path / "restored")
    result = run(restored, "restore", str(tmp_path / "backup"), now=frozen.moment)
    assert result.returncode == 0, result.stderr
    assert f"left out: file {deleted.id} (deleted.csv): its day's key was destroyed" in result.stdout
    again = create_app(restored)
    try:
        for stored in living:
            assert read_back(again, stored) == (CSV if stored.name.endswith(".csv") else PDF)
        assert again.state.db.scalar("SELECT count(*) FROM files WHERE id = ?", [deleted.id]) == 0
        assert [r["object"] for r in audit_rows(again, "file.restore_left_out")] == [deleted.id]
    finally:
        again.state.db.close()
    check = run(restored, "verify", now=frozen.moment)
    assert check.returncode == 0, check.stdout


def test_backup_then_restore_into_a_new_folder_verifies_and_serves(config, app, staff, tmp_path):
    stored = upload(app, staff, "registry.csv")
    backup = run(config, "backup", str(tmp_path / "backup"))
    assert backup.returncode == 0, backup.stderr
    out = backup.stdout
    assert "the database and 1 data files" in out
    assert f"the master key ({config.resolved_master_key_file})" in out and str(config.resolved_epoch_keys_dir) in out
    days = key_epochs.guarantee_days(values(app))
    assert f"after {days} days at most" in out
    listed = sorted(p.relative_to(tmp_path / "backup").as_posix() for p in (tmp_path / "backup").rglob("*"))
    assert listed == ["files", f"files/{stored.storage_name}", "relais.db"]  # no key of any kind
    assert (tmp_path / "backup").stat().st_mode & 0o077 == 0

    # Beside the instance's master key (tests/serving.py puts it in the data folder's parent).
    data = tmp_path / "data2"
    restored = restored_config(config, data)
    result = run(restored, "restore", str(tmp_path / "backup"))
    assert result.returncode == 0, result.stderr
    assert "restored" in result.stdout and "left out" not in result.stdout
    check = run(restored, "verify")
    assert check.returncode == 0, check.stdout

    server = Server(data)
    server.start()
    try:
        headers = login(server, "staff@registry.example")
        response = requests.get(f"{server.url}/files/{stored.id}", headers=headers, timeout=30)
        assert response.status_code == 200 and response.content == CSV
    finally:
        server.stop()


def test_restore_refuses_a_folder_that_is_not_empty(config, app, staff, tmp_path):
    upload(app, staff)
    assert run(config, "backup", str(tmp_path / "backup")).returncode == 0
    # Over the instance itself.
    over = run(config, "restore", str(tmp_path / "backup"))
    assert over.returncode == 1 and "is not empty" in over.stderr and "relais.db" in over.stderr
    # Over any folder with something in it.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    refused = run(restored_config(config, other), "restore", str(tmp_path / "backup"))
    assert refused.returncode == 1 and "is not empty" in refused.stderr
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_restore_needs_the_keys_of_the_instance(config, app, staff, tmp_path):
    upload(app, staff)
    assert run(config, "backup", str(tmp_path / "backup")).returncode == 0
    elsewhere = config.replace(data_dir=tmp_path / "new", master_key_file=tmp_path / "none" / "master.key")
    refused = run(elsewhere, "restore", str(tmp_path / "backup"))
    assert refused.returncode == 1 and "master key" in refused.stderr
    assert not (tmp_path / "new").exists()
    wrong = config.replace(data_dir=tmp_path / "new", epoch_keys_dir=tmp_path / "empty")
    refused = run(wrong, "restore", str(tmp_path / "backup"))
    assert refused.returncode == 1 and "no day keys" in refused.stderr


def test_backup_refuses_a_folder_in_use_and_is_not_a_restore_source_without_a_database(config, app, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    refused = run(config, "backup", str(used))
    assert refused.returncode == 1 and "not an empty folder" in refused.stderr
    nothing = run(restored_config(config, tmp_path / "new"), "restore", str(tmp_path / "used"))
    assert nothing.returncode == 1 and "holds no relais.db" in nothing.stderr


def test_a_file_deleted_while_the_backup_is_copied_is_left_out_and_named(config, app, staff, tmp_path, monkeypatch):
    from relais import backup as backups

    kept, deleted = upload(app, staff, "kept.csv"), upload(app, staff, "deleted.csv")
    snapshot = app.state.db.backup

    def then_delete(target):
        snapshot(target)
        files.delete(app.state.db, config.files_dir, audit.SYSTEM, staff.id, deleted.id)

    monkeypatch.setattr(app.state.db, "backup", then_delete)
    copied = backups.backup(app.state, tmp_path / "backup")
    assert copied.files == 1 and copied.left_out == [deleted.storage_name]
    result = run(restored_config(config, tmp_path / "restored"), "restore", str(tmp_path / "backup"))
    assert result.returncode == 0, result.stderr
    assert f"left out: file {deleted.id} (deleted.csv): its data was deleted while the backup was being made" in result.stdout
    assert run(restored_config(config, tmp_path / "restored"), "verify").returncode == 0
