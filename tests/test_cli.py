"""`python app.py COMMAND` as an admin's script would run it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import PASSWORD


def run(config, *args, stdin=None):
    # The master key the app of the test uses: it also keys the audit chain that verify checks.
    env = {"RELAIS_DATA_DIR": str(config.data_dir), "RELAIS_BASE_URL": "https://relais.test", "PATH": "/usr/bin:/bin",
           "RELAIS_MASTER_KEY_FILE": str(config.resolved_master_key_file)}
    return subprocess.run([sys.executable, "app.py", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)


def test_create_admin_with_password_on_stdin(config, auth, client, app):
    result = run(config, "create-admin", "--email", "root@registry.example", "--name", "Root", "--password-stdin", stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert auth.login(email="root@registry.example").status_code == 303


def test_create_admin_without_password_prints_a_one_time_link(config, client):
    result = run(config, "create-admin", "--email", "root@registry.example")
    assert result.returncode == 0
    assert "https://relais.test/login/link/" in result.stdout


def test_create_admin_refuses_a_weak_password_and_a_bad_email(config):
    weak = run(config, "create-admin", "--email", "root@registry.example", "--password-stdin", stdin="password\n")
    assert weak.returncode == 1 and "password too short" in weak.stderr
    fourteen = run(config, "create-admin", "--email", "root@registry.example", "--password-stdin", stdin="violet-tug-map\n")
    assert fourteen.returncode == 1 and "at least 15 characters" in fourteen.stderr
    bad = run(config, "create-admin", "--email", "root", "--password-stdin", stdin=PASSWORD)
    assert bad.returncode == 1 and "invalid email" in bad.stderr


def test_backup_is_a_consistent_copy(config, tmp_path, staff, auth):
    auth.login()
    result = run(config, "backup", str(tmp_path / "backup"))
    assert result.returncode == 0
    copy = sqlite3.connect(tmp_path / "backup" / "relais.db")
    assert copy.execute("SELECT count(*) FROM audit_log").fetchone()[0] >= 2
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_purge_removes_expired_sessions(config, app, staff, auth, frozen):
    auth.login()
    app.state.db.execute("UPDATE sessions SET last_seen_at = '2000-01-01T00:00:00.000000+00:00'")
    result = run(config, "purge")
    assert result.returncode == 0 and "purged 1 sessions" in result.stdout


def test_verify_compares_the_database_with_the_disk(config, app, staff):
    from tests.test_shares import CSV, store

    stored = store(app, staff, "registry.csv", CSV)
    ok = run(config, "verify")
    assert ok.returncode == 0 and "files ok" in ok.stdout
    (config.files_dir / "stray-file").write_bytes(b"x")
    (config.files_dir / stored.storage_name).unlink()
    broken = run(config, "verify")
    assert broken.returncode == 1
    assert f"file {stored.id} (complete): its data file is missing" in broken.stdout
    assert "data file stray-file belongs to no file" in broken.stdout


def test_backup_is_readable_by_its_owner_only(config, tmp_path, staff):
    result = run(config, "backup", str(tmp_path / "backup"))
    assert result.returncode == 0
    assert (tmp_path / "backup").stat().st_mode & 0o077 == 0
    assert (tmp_path / "backup" / "relais.db").stat().st_mode & 0o077 == 0


def test_tokens_never_reach_the_access_log():
    import logging

    from relais.logs import RedactTokens

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/s/SECRETtoken123/files/abc", "1.1", 200), None)
    RedactTokens().filter(record)
    line = record.getMessage()
    assert "SECRETtoken123" not in line and "/s/…/files/abc" in line


def test_purge_clears_old_temporary_files_only(config, app):
    import os
    import time

    old, fresh = config.tmp_dir / "tus-old", config.tmp_dir / "tus-fresh"
    old.write_bytes(b"patient data left by a crash")
    fresh.write_bytes(b"a request still writing")
    os.utime(old, (time.time() - 25 * 3600, time.time() - 25 * 3600))
    result = run(config, "purge")
    assert "1 temporary files" in result.stdout
    assert not old.exists() and fresh.exists()


def test_the_console_link_of_serve_ends_once_an_admin_has_a_password(tmp_path):
    import re
    import urllib.error
    import urllib.request

    from tests.serving import Server

    data = tmp_path / "data"
    data.mkdir()
    server = Server(data)
    server.start()
    try:
        log = Path(server.log.name).read_text()
        link = re.search(r"(http://127\.0\.0\.1:\d+/login/link/[A-Za-z0-9_-]+)", log).group(1)
        with urllib.request.urlopen(link, timeout=10) as page:
            assert page.status == 200
        server.command("create-admin", "--email", "second@registry.example", "--password-stdin", stdin=PASSWORD)
        try:
            urllib.request.urlopen(link, timeout=10)
            raise AssertionError("the setup link still works")
        except urllib.error.HTTPError as refused:
            assert refused.code == 404
    finally:
        server.stop()
    # A restart prints no new link either: the instance has an admin who can log in.
    server = Server(data)
    server.start()
    server.stop()
    assert "/login/link/" not in Path(server.log.name).read_text()


def test_reset_two_factor_from_the_console(config, app, admin, frozen):
    """The last admin lost their phone and their recovery codes: the operator removes the factor."""
    import pyotp

    from relais import audit, two_factor

    secret = two_factor.enrolment_secret(app.state.db, app.state.two_factor_key, audit.SYSTEM, admin)
    two_factor.confirm(app.state.db, app.state.two_factor_key, audit.SYSTEM, admin, pyotp.TOTP(secret).at(frozen.moment))
    result = run(config, "reset-two-factor", "--email", admin.email.upper())
    assert result.returncode == 0, result.stderr
    assert two_factor.status(app.state.db, admin.id) is None
    assert run(config, "reset-two-factor", "--email", admin.email).returncode == 1  # nothing left to reset
    assert run(config, "reset-two-factor", "--email", "nobody@registry.example").returncode == 1
