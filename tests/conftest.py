"""Fixtures: an app over a temporary data folder, a client, users, a frozen clock."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from litestar.testing import TestClient

from app import create_app
from relais import audit, clock, users
from relais.config import Config
from relais.db import Database

PASSWORD = "violet tugboat marmalade"
BASE_URL = "https://relais.test"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    # Cheap argon2id so the suite stays fast; production uses the RFC 9106 profile.
    return Config(
        data_dir=tmp_path / "data", base_url=BASE_URL, argon2_time_cost=1, argon2_memory_kib=8192,
        argon2_parallelism=1, master_key_file=tmp_path / "master.key", background_jobs=False,
    )


def no_second_factor_for_admins(database) -> None:
    """Admins must enrol a second factor by default (two_factor_admins = 1), and the tests of
    everything else log in as admins with a password alone: their apps and servers turn the
    requirement off, in the settings table as an admin would (without an audit row, which tests
    of the trail would count). tests/test_two_factor.py puts the default back where it tests it."""
    database.write(lambda db: db.execute(
        "INSERT OR IGNORE INTO settings (name, value, updated_at) VALUES ('two_factor_admins', '0', ?)",
        [clock.now_iso()]))


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """A database with every migration applied, made once a session by the real migrations: each
    app starts from a copy of it instead of migrating anew (a fifth of a second a test). It holds
    no row that depends on an instance's keys: no audit row, no file (checked here)."""
    path = tmp_path_factory.mktemp("migrated") / "relais.db"
    database = Database(path)
    assert database.migrate()
    assert database.query_one("SELECT count(*) AS n FROM audit_log")["n"] == 0
    assert database.query_one("SELECT count(*) AS n FROM files")["n"] == 0
    database.close()
    return path


@pytest.fixture
def app(config, migrated_db):
    if not config.db_path.exists():
        config.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_db, config.db_path)
        config.db_path.chmod(0o600)
    application = create_app(config)
    no_second_factor_for_admins(application.state.db)
    yield application
    application.state.db.close()


@pytest.fixture
def client(app):
    # https: the session and CSRF cookies are Secure with the __Host- prefix.
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


@pytest.fixture
def make_user(app):
    def make(email: str = "staff@registry.example", role: str = "staff", password: str | None = PASSWORD, name: str = "Sam Staff"):
        return users.create(app.state.db, app.state.hasher, audit.SYSTEM, email=email, name=name, role=role, password=password)

    return make


@pytest.fixture
def staff(make_user):
    return make_user()


@pytest.fixture
def admin(make_user):
    return make_user(email="admin@registry.example", role="admin", name="Ada Admin")


class Frozen:
    """A clock that only moves when told to."""

    def __init__(self):
        self.moment = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta) -> None:
        self.moment += timedelta(**delta)


@pytest.fixture
def frozen(monkeypatch) -> Frozen:
    frozen_clock = Frozen()
    monkeypatch.setattr(clock, "now", frozen_clock)
    return frozen_clock


def csrf_token(client) -> str:
    """The CSRF token a form on the page would carry (the double-submit cookie's value)."""
    if "__Host-csrf" not in client.cookies:
        client.get("/login")
    return client.cookies["__Host-csrf"]


def form_token(html: str) -> str:
    return re.search(r'name="_csrf_token" value="([^"]+)"', html).group(1)


class AuthActions:
    """Log in and out as a person would, through the forms."""

    def __init__(self, client):
        self.client = client

    def login(self, email: str = "staff@registry.example", password: str = PASSWORD, headers=None, **extra):
        data = {"email": email, "password": password, "_csrf_token": csrf_token(self.client), **extra}
        return self.client.post("/login", data=data, follow_redirects=False, headers=headers)

    def logout(self):
        return self.client.post("/logout", data={"_csrf_token": csrf_token(self.client)}, follow_redirects=False)

    def post(self, path: str, data: dict | None = None, **kwargs):
        return self.client.post(path, data={**(data or {}), "_csrf_token": csrf_token(self.client)}, follow_redirects=False, **kwargs)


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


def audit_rows(app, action: str | None = None) -> list[dict]:
    sql = "SELECT * FROM audit_log" + (" WHERE action = ?" if action else "") + " ORDER BY id"
    return app.state.db.query(sql, [action] if action else [])
