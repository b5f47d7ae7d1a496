"""Headers on every page, the health check, languages, error pages."""

from __future__ import annotations

import os

import pytest

from tests.conftest import csrf_token

PUBLIC = ["/login", "/terms", "/no-such-page", "/login/link/not-a-token"]
STAFF = ["/", "/account/password"]
ADMIN = ["/admin/users", "/admin/audit", "/admin/settings"]


def assert_security_headers(response):
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert "style-src 'self'" in csp and "object-src 'none'" in csp
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", PUBLIC)
def test_public_pages_carry_the_headers(client, path):
    response = client.get(path)
    assert_security_headers(response)
    assert response.headers["cache-control"] == "no-store"


def test_signed_in_pages_carry_the_headers_and_are_never_cached(client, auth, admin):
    auth.login(email=admin.email)
    for path in STAFF + ADMIN:
        response = client.get(path)
        assert response.status_code == 200, path
        assert_security_headers(response)
        assert response.headers["cache-control"] == "no-store"
        assert " style=" not in response.text and "<script>" not in response.text and " on" + "click=" not in response.text


def test_error_responses_carry_the_headers(client, auth, staff):
    assert_security_headers(client.post("/logout"))  # 403, no CSRF token
    auth.login()
    forbidden = client.get("/admin/users")
    assert forbidden.status_code == 403 and "You do not have access" in forbidden.text
    assert_security_headers(forbidden)


def test_static_files_are_cacheable(client):
    response = client.get("/static/htmx-2.0.11.min.js")
    assert response.status_code == 200 and "max-age" in response.headers["cache-control"]
    assert_security_headers(response)


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_healthz_fails_when_the_data_folder_is_not_writable(client, config):
    if os.geteuid() == 0:
        # root writes through permissions: make the probe's folder a file instead.
        config.tmp_dir.rmdir()
        config.tmp_dir.write_text("not a folder")
    else:
        config.tmp_dir.chmod(0o500)
    assert client.get("/healthz").status_code == 503


@pytest.mark.parametrize(
    "accept, lang", [("fr-BE,fr;q=0.9", "fr"), ("nl-BE", "nl"), ("de-DE,de;q=0.8,en;q=0.5", "de"), ("es", "en"), ("", "en")]
)
def test_page_language_follows_the_browser(client, accept, lang):
    page = client.get("/login", headers={"accept-language": accept})
    assert f'<html lang="{lang}">' in page.text


def test_language_switch_is_remembered(client):
    response = client.get("/language/nl?next=/terms", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/terms"
    assert "__Host-relais_lang=nl" in response.headers["set-cookie"]
    page = client.get("/login", headers={"accept-language": "fr"})
    assert '<html lang="nl">' in page.text and "Aanmelden" in page.text


def test_language_switch_refuses_foreign_targets(client):
    response = client.get("/language/fr?next=//evil.example", follow_redirects=False)
    assert response.headers["location"] == "/"


@pytest.mark.parametrize("lang, word", [("nl", "Wachtwoord"), ("fr", "Mot de passe"), ("de", "Passwort"), ("en", "Password")])
def test_login_page_in_four_languages(client, lang, word):
    client.get(f"/language/{lang}")
    page = client.get("/login")
    assert word in page.text


def test_terms_follow_the_language(client):
    client.get("/language/fr")
    assert "Conditions d'utilisation" in client.get("/terms").text.replace("&#39;", "'")


def test_too_large_form_gets_a_clear_page(client):
    response = client.post("/login", content=b"x" * (3 * 1024 * 1024),
                           headers={"content-type": "application/x-www-form-urlencoded", "x-csrftoken": csrf_token(client)})
    assert response.status_code == 413 and "larger than this page accepts" in response.text
