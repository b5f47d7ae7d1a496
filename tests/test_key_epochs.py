"""Day keys: each file's key wrapped by its day's key, re-keyed when it outlives it, the day key
destroyed at the bound the settings give; verify's checks of the keys and the disk."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from app import create_app
from relais import audit, files, key_epochs, retention, settings, storage
from relais.targets import Target
from tests.conftest import PASSWORD, audit_rows
from tests.test_shares import CSV

ROOT = Path(__file__).resolve().parents[1]


def upload(app, owner, name: str = "registry.csv", content: bytes = CSV) -> files.StoredFile:
    """A complete file in the owner's My files, sent whole through the upload engine."""
    engine, target = app.state.uploads, Target.my_files(owner.id)
    file_id, writer = engine.begin_whole(target, name)
    writer.write(content)
    return engine.complete_whole(audit.SYSTEM, target, file_id, writer)


def read_back(app, stored) -> bytes:
    key = files.key_of(app.state.db, app.state.file_keys, stored)
    return b"".join(storage.read_range(files.data_path(app.state.config.files_dir, stored), key, stored.id))


def row(app, file_id: str) -> dict:
    return app.state.db.query_one("SELECT * FROM files WHERE id = ?", [file_id])


def values(app) -> dict:
    return app.state.db.read_sync(settings.all_values)


def run(config, *args, now=None, kill=None):
    """The command as cron runs it, with the clock at ``now`` (tests/cli_at.py)."""
    env = {"RELAIS_DATA_DIR": str(config.data_dir), "RELAIS_BASE_URL": "https://relais.test", "PATH": "/usr/bin:/bin",
           "RELAIS_MASTER_KEY_FILE": str(config.resolved_master_key_file)}
    if config.epoch_keys_dir is not None:
        env["RELAIS_EPOCH_KEYS_DIR"] = str(config.epoch_keys_dir)
    if now is not None:
        env["RELAIS_TEST_NOW"] = now.isoformat()
    if kill is not None:
        env["RELAIS_TEST_KILL"] = kill
    return subprocess.run([sys.executable, str(ROOT / "tests" / "cli_at.py"), *args], env=env, capture_output=True,
                          text=True, timeout=120)


# -- the bound ---------------------------------------------------------------------------------------

def test_the_readme_states_the_bound_the_default_settings_give():
    defaults = {name: s.default for name, s in settings.SETTINGS.items()}
    days = key_epochs.guarantee_days(defaults)
    assert days == 1 + max(defaults["share_max_days"], defaults["request_max_days"] + defaults["request_retrieval_days"],
                           defaults["space_retention_days"])
    readme = (ROOT / "README.md").read_text()
    assert f"cannot be decrypted from any backup after {days} days**" in readme
    assert f"from {days} days after its" in readme


def test_the_bound_follows_the_settings(app, admin):
    db = app.state.db
    assert key_epochs.longest_life(values(app)) == timedelta(days=44)
    db.write(settings.set_value, audit.SYSTEM, admin.id, "request_retrieval_days", 60)
    assert key_epochs.longest_life(values(app)) == timedelta(days=90)
    db.write(settings.set_value, audit.SYSTEM, admin.id, "space_retention_days", 120)
    assert key_epochs.longest_life(values(app)) == timedelta(days=120)  # a file in a partner's space
    for name in ("request_retrieval_days", "request_max_days", "share_max_days", "space_retention_days"):
        db.write(settings.set_value, audit.SYSTEM, admin.id, name, 1)
    assert key_epochs.longest_life(values(app)) == timedelta(days=2)  # a request: 1 + 1
    assert key_epochs.guarantee_days(values(app)) == 3


# -- wrapping -----------------------------------------------------------------------------------------

def test_a_file_key_is_wrapped_by_its_day_key_kept_beside_the_master_key(app, config, staff, frozen):
    stored = upload(app, staff)
    assert row(app, stored.id)["key_epoch"] == "2026-11-24"
    folder = config.resolved_epoch_keys_dir
    assert folder == config.resolved_master_key_file.with_name("master.key.epochs")
    assert not folder.is_relative_to(config.data_dir)
    day_key = folder / "2026-11-24.key"
    assert day_key.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o077 == 0
    assert read_back(app, stored) == CSV
    # Not the master key's wrap any more: with the master key alone the wrapped key is noise.
    with pytest.raises(storage.IntegrityError):
        storage.unwrap_key(app.state.master_key, row(app, stored.id)["wrapped_key"], stored.id)
    # A wrapped key labelled with another day does not unwrap, even when that day's key exists.
    frozen.advance(days=1)
    other = upload(app, staff, "other.csv")
    with pytest.raises(storage.IntegrityError):
        app.state.file_keys.unwrap(row(app, other.id)["key_epoch"], row(app, stored.id)["wrapped_key"], stored.id)


def test_the_day_key_folder_can_be_set(tmp_path, config, staff):
    from relais.config import from_env

    chosen = from_env({"RELAIS_EPOCH_KEYS_DIR": str(tmp_path / "keys"), "RELAIS_DATA_DIR": str(config.data_dir)})
    assert chosen.resolved_epoch_keys_dir == tmp_path / "keys"


def test_the_first_start_rewraps_keys_the_master_key_wrapped(app, config, staff):
    stored = upload(app, staff)
    # As an older version left it: the file key wrapped by the master key, no day.
    key = files.key_of(app.state.db, app.state.file_keys, stored)
    old = storage.wrap_key(app.state.master_key, key, stored.id)
    app.state.db.execute("UPDATE files SET wrapped_key = ?, key_epoch = NULL WHERE id = ?", [old, stored.id])
    app.state.db.close()
    again = create_app(config)
    try:
        moved = row(again, stored.id)
        assert moved["key_epoch"] is not None and moved["wrapped_key"] != old
        assert read_back(again, stored) == CSV
        assert [r["object"] for r in audit_rows(again, "key_epoch.rekey")] == ["master"]
        assert old not in config.db_path.read_bytes()
    finally:
        again.state.db.close()


# -- re-keying and destruction -----------------------------------------------------------------------

def test_a_day_key_goes_at_its_bound_and_files_that_outlive_it_are_rekeyed_first(app, config, staff, frozen):
    keys, life = app.state.file_keys, key_epochs.longest_life(values(app))
    kept = upload(app, staff, "kept.csv")  # My files: no deadline, outlives its day
    gone = upload(app, staff, "gone.csv")
    assert files.delete(app.state.db, config.files_dir, audit.SYSTEM, staff.id, gone.id)
    day = "2026-11-24"
    frozen.moment = key_epochs.rekey_at(day, life) - timedelta(seconds=1)
    retention.purge_all(app.state)
    assert row(app, kept.id)["key_epoch"] == day and keys.has(day)
    frozen.moment = key_epochs.rekey_at(day, life)
    purged = retention.purge_all(app.state)
    assert purged["files re-keyed"] == 1 and purged["day keys destroyed"] == 0
    assert row(app, kept.id)["key_epoch"] == storage.epoch_of(frozen.moment) and keys.has(day)
    frozen.moment = key_epochs.destroy_at(day, life)
    assert retention.purge_all(app.state)["day keys destroyed"] == 1
    assert not keys.has(day) and day not in keys.existing()
    assert read_back(app, kept) == CSV
    destroyed = audit_rows(app, "key_epoch.destroy")
    assert [r["object"] for r in destroyed] == [day]
    assert retention.purge_all(app.state)["day keys destroyed"] == 0
    assert len(audit_rows(app, "key_epoch.destroy")) == 1


def test_a_file_left_on_a_day_whose_key_is_due_is_rekeyed_before_it_goes(app, config, staff, frozen):
    """No purge ran in the day before: the destruction re-keys what is left, then destroys."""
    kept = upload(app, staff)
    life = key_epochs.longest_life(values(app))
    frozen.moment = key_epochs.destroy_at("2026-11-24", life) + timedelta(days=3)
    purged = retention.purge_all(app.state)
    assert purged["files re-keyed"] == 1 and purged["day keys destroyed"] == 1
    assert read_back(app, kept) == CSV


def test_lowering_a_setting_brings_destruction_forward(app, config, staff, admin, frozen):
    gone = upload(app, staff)
    files.delete(app.state.db, config.files_dir, audit.SYSTEM, staff.id, gone.id)
    frozen.advance(days=10)
    assert retention.purge_all(app.state)["day keys destroyed"] == 0
    for name in ("share_max_days", "request_max_days", "request_retrieval_days", "space_retention_days"):
        app.state.db.write(settings.set_value, audit.SYSTEM, admin.id, name, 3)
    assert retention.purge_all(app.state)["day keys destroyed"] == 1
    assert not app.state.file_keys.has("2026-11-24")


def test_a_destroyed_day_key_leaves_the_memory_of_other_processes(app, config, staff, monkeypatch):
    stored = upload(app, staff)
    epoch = row(app, stored.id)["key_epoch"]
    assert read_back(app, stored) == CSV  # cached now
    (config.resolved_epoch_keys_dir / f"{epoch}.key").unlink()  # another process's purge
    assert read_back(app, stored) == CSV  # within CACHE_SECONDS, from memory
    monkeypatch.setattr(storage.epochs, "CACHE_SECONDS", 0.0)
    with pytest.raises(storage.KeyGone):
        read_back(app, stored)


# -- verify ---------------------------------------------------------------------------------------------

def test_verify_passes_on_a_sound_instance(config, app, staff):
    upload(app, staff)
    result = run(config, "verify")
    assert result.returncode == 0, result.stdout
    assert "audit chain ok" in result.stdout and "files ok" in result.stdout and "keys ok" in result.stdout


def test_verify_reports_each_mismatch_on_one_line(config, app, staff, frozen):
    lost_data, orphaned, damaged, keyless, fine = (upload(app, staff, f"{n}.csv") for n in "abcde")
    frozen.advance(days=1)
    keyless = upload(app, staff, "keyless.csv")  # alone on its day
    (config.files_dir / lost_data.storage_name).unlink()
    (config.files_dir / "0123456789abcdef0123456789abcdef").write_bytes(b"left behind")
    wrapped = bytearray(row(app, damaged.id)["wrapped_key"])
    wrapped[20] ^= 1
    app.state.db.execute("UPDATE files SET wrapped_key = ? WHERE id = ?", [bytes(wrapped), damaged.id])
    (config.resolved_epoch_keys_dir / f"{row(app, keyless.id)['key_epoch']}.key").unlink()
    # A day key no file uses, past its time (a purge killed after deciding, before deleting).
    leftover = app.state.file_keys
    leftover.wrap("2026-01-01", bytes(32), "x")
    # A forged audit row: its detail rewritten behind the triggers' back.
    conn = sqlite3.connect(config.db_path)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET detail = '{}' WHERE id = (SELECT min(id) FROM audit_log WHERE action = 'file.upload')")
    conn.commit()
    conn.close()
    result = run(config, "verify")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(re.match(r"audit chain BROKEN after \d+ good rows: row \d+: its content does not match", l) for l in lines)
    assert f"files: file {lost_data.id} (complete): its data file is missing" in lines
    assert "files: data file 0123456789abcdef0123456789abcdef belongs to no file (python app.py purge removes it)" in lines
    assert (f"keys: file {damaged.id}: its wrapped key is damaged (it does not unwrap with the key of 2026-11-24)"
            in lines)
    assert f"keys: file {keyless.id}: its key cannot be unwrapped, the key of 2026-11-25 is gone" in lines
    assert any(l.startswith("keys: day key 2026-01-01: no file uses it and it was due for destruction") for l in lines)
    assert not any(fine.id in l or orphaned.id in l for l in lines)
    assert len([l for l in lines if l.startswith(("files: ", "keys: "))]) == 5


def test_a_day_key_before_its_time_is_not_reported(config, app, staff):
    stored = upload(app, staff)
    files.delete(app.state.db, config.files_dir, audit.SYSTEM, staff.id, stored.id)
    result = run(config, "verify")
    assert result.returncode == 0, result.stdout
    assert app.state.file_keys.existing()  # kept: backups still need it for files alive in them


# -- purge from cron: twice at once, and killed -------------------------------------------------------------

def busy_instance(app, config, staff, frozen):
    """Three days of files: each day one kept in My files, three deleted, two in a share that
    expires the next day. Returns the moment at which all three days' keys are due, and the files
    kept."""
    from relais import shares

    kept = []
    for day in range(3):
        kept.append(upload(app, staff, f"kept-{day}.csv"))
        for n in range(3):
            gone = upload(app, staff, f"gone-{day}-{n}.csv")
            files.delete(app.state.db, config.files_dir, audit.SYSTEM, staff.id, gone.id)
        shared = [upload(app, staff, f"shared-{day}-{n}.csv").id for n in range(2)]
        shares.create(app.state.db, app.state.hasher, audit.SYSTEM, staff,
                      shares.NewShare(shared, "partner@hospital.example", expires_days=1), config.base_url)
        frozen.advance(days=1)
    life = key_epochs.longest_life(values(app))
    return key_epochs.destroy_at("2026-11-26", life) + timedelta(hours=1), kept


def settled(app, config, moment, kept) -> None:
    """Everything due is done, once: the three days' keys destroyed, the kept files re-keyed by
    the key of the purge's day and readable, the shared files shredded, no data file left over."""
    assert app.state.file_keys.existing() == [storage.epoch_of(moment)]
    for stored in kept:
        assert read_back(app, stored) == CSV
    assert sorted(r["object"] for r in audit_rows(app, "key_epoch.destroy")) == ["2026-11-24", "2026-11-25", "2026-11-26"]
    assert len(audit_rows(app, "share.purge")) == 3
    assert sorted(p.name for p in config.files_dir.iterdir()) == sorted(s.storage_name for s in kept)


def test_two_purges_at_once_do_the_work_once(config, app, staff, frozen):
    moment, kept = busy_instance(app, config, staff, frozen)
    env_run = [subprocess.Popen([sys.executable, str(ROOT / "tests" / "cli_at.py"), "purge"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={"RELAIS_DATA_DIR": str(config.data_dir), "PATH": "/usr/bin:/bin",
                                     "RELAIS_MASTER_KEY_FILE": str(config.resolved_master_key_file),
                                     "RELAIS_TEST_NOW": moment.isoformat()}) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in env_run]
    assert [p.returncode for p in env_run] == [0, 0], outputs
    destroyed = [int(re.search(r"(\d+) day keys destroyed", out).group(1)) for out, _ in outputs]
    assert sorted(destroyed) == [0, 3]
    frozen.moment = moment
    settled(app, config, moment, kept)
    assert len(audit_rows(app, "key_epoch.rekey")) == 3  # one per day, not one per run
    assert run(config, "verify", now=moment).returncode == 0


@pytest.mark.parametrize("point", ["shred_file:1", "write:3", "rekey:1", "destroy_epoch:1", "destroy_epoch:2"])
def test_a_purge_killed_anywhere_is_finished_by_the_next(config, app, staff, frozen, point):
    moment, kept = busy_instance(app, config, staff, frozen)
    killed = run(config, "purge", now=moment, kill=point)
    assert killed.returncode == -9, killed.stderr
    again = run(config, "purge", now=moment)
    assert again.returncode == 0, again.stderr
    frozen.moment = moment
    settled(app, config, moment, kept)
    check = run(config, "verify", now=moment)
    assert check.returncode == 0, check.stdout
