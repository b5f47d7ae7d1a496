"""Relais behind a real Caddy with TLS, as in production (the repository's Caddyfile)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time

import httpx
import pytest

from tests.serving import ROOT, Server, free_port

PASSWORD = "violet tugboat marmalade"


@pytest.fixture
def behind_caddy(tmp_path):
    if shutil.which("caddy") is None:
        pytest.fail("Caddy is missing: apt-get install caddy (see .ci/run)")
    server = Server(tmp_path / "data")
    server.command("create-admin", "--email", "admin@registry.example", "--password-stdin", stdin=PASSWORD)
    server.start()
    port = free_port()
    home = tmp_path / "caddy-home"
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "config"),
           "RELAIS_DOMAIN": f"localhost:{port}", "RELAIS_UPSTREAM": f"127.0.0.1:{server.port}"}
    # The production Caddyfile, with Caddy's own CA instead of Let's Encrypt and no admin endpoint.
    config = tmp_path / "Caddyfile"
    config.write_text("{\n\tadmin off\n\tskip_install_trust\n\tlocal_certs\n}\n" + (ROOT / "Caddyfile").read_text())
    log = open(tmp_path / "caddy.log", "w")
    caddy = subprocess.Popen(["caddy", "run", "--config", str(config), "--adapter", "caddyfile"], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    url = f"https://localhost:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz", verify=False, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError((tmp_path / "caddy.log").read_text())
        time.sleep(0.2)
    yield url, server, tmp_path / "data"
    caddy.terminate()
    caddy.wait(timeout=10)
    log.close()
    server.stop()


def test_pages_through_caddy_have_tls_hsts_and_the_app_headers(behind_caddy):
    url, _, _ = behind_caddy
    response = httpx.get(url + "/login", verify=False)
    assert response.status_code == 200 and response.http_version in ("HTTP/1.1", "HTTP/2")
    assert "max-age=63072000" in response.headers["strict-transport-security"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"


def test_login_through_caddy_records_the_real_client_not_a_forged_header(behind_caddy):
    url, _, data_dir = behind_caddy
    with httpx.Client(base_url=url, verify=False) as browser:
        browser.get("/login")
        token = browser.cookies["__Host-csrf"]
        response = browser.post(
            "/login", data={"email": "admin@registry.example", "password": PASSWORD, "_csrf_token": token},
            headers={"x-forwarded-for": "203.0.113.9", "user-agent": "CaddyTest/1"},
        )
        assert response.status_code == 303
        assert browser.get("/admin/users").status_code == 200
    db = sqlite3.connect(data_dir / "relais.db")
    ip, agent = db.execute("SELECT ip, user_agent FROM audit_log WHERE action = 'login.success'").fetchone()
    # Caddy replaces what the client claimed with the address it saw.
    assert ip == "127.0.0.1" and agent == "CaddyTest/1"
