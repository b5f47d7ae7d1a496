"""Staff login and logout, throttling and lockout, sessions and their timeouts."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest

from relais import passwords
from tests.conftest import PASSWORD, audit_rows, csrf_token

WRONG = "The e-mail address or the password is not correct."


def test_login_opens_a_session_with_a_strict_cookie(app, client, auth, staff):
    response = auth.login()
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = SimpleCookie(response.headers["set-cookie"])["__Host-relais_session"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/" and not cookie["domain"]
    assert len(cookie.value) >= 43  # 256 bits, URL-safe
    # Only a hash of the cookie is stored.
    stored = app.state.db.query("SELECT id_hash FROM sessions")
    assert stored == [{"id_hash": passwords.token_hash(cookie.value)}]
    page = client.get("/")
    assert page.status_code == 200 and "Sam Staff" in page.text


def test_login_is_audited_with_address_agent_and_terms(app, client, auth, staff):
    auth.login(headers={"user-agent": "TestBrowser/1.0"})
    [row] = audit_rows(app, "login.success")
    assert row["actor"] == staff.email and row["ip"] == "testclient"  # the test client's peer address
    assert row["user_agent"] == "TestBrowser/1.0"
    [acceptance] = app.state.db.query("SELECT * FROM terms_acceptances")
    assert acceptance["user_id"] == staff.id and acceptance["version"] == 1


def test_wrong_password_and_unknown_account_get_the_same_answer(app, client, auth, staff):
    wrong = auth.login(password="not the password at all")
    unknown = auth.login(email="nobody@registry.example")
    assert wrong.status_code == unknown.status_code == 401
    assert WRONG in wrong.text and WRONG in unknown.text
    reasons = [r["detail"] for r in audit_rows(app, "login.failure")]
    assert '"wrong_password"' in reasons[0] and '"unknown_account"' in reasons[1]
    assert "__Host-relais_session" not in client.cookies


def test_unknown_account_still_costs_one_argon2_verification(app, auth, monkeypatch):
    """Same work for an unknown account as for a wrong password: no timing oracle."""
    calls = []
    real = app.state.hasher._hasher

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def verify(self, stored, password):
            calls.append(stored)
            return real.verify(stored, password)

    monkeypatch.setattr(app.state.hasher, "_hasher", Spy())
    auth.login(email="nobody@registry.example")
    assert len(calls) == 1 and calls[0].startswith("$argon2id$")


def test_deactivated_account_cannot_log_in(app, auth, staff):
    app.state.db.execute("UPDATE users SET active = 0 WHERE id = ?", [staff.id])
    response = auth.login()
    assert response.status_code == 401 and WRONG in response.text


def test_repeated_failures_lock_the_account_for_a_while(app, client, auth, staff, frozen):
    for _ in range(5):
        assert auth.login(password="wrong wrong wrong").status_code == 401
    locked = auth.login()  # even the right password is refused while locked
    assert locked.status_code == 429 and "Too many failed attempts" in locked.text
    assert len(audit_rows(app, "login.lockout")) == 1
    frozen.advance(minutes=1, seconds=1)
    assert auth.login(password="wrong again, sorry").status_code == 401  # 6th failure: 2 minutes
    frozen.advance(minutes=1)
    assert auth.login().status_code == 429
    frozen.advance(minutes=1, seconds=1)
    assert auth.login().status_code == 303


def test_a_stranger_cannot_lock_an_account_for_long(app, auth, staff, frozen):
    """An hour of guessing locks the account at most login_lock_minutes (15) after it stops."""
    for _ in range(60):
        auth.login(password="a stranger guessing")
        frozen.advance(minutes=1)
    assert auth.login().status_code == 429
    frozen.advance(minutes=15)
    assert auth.login().status_code == 303


def test_one_client_failing_on_many_accounts_is_locked(app, auth, make_user, frozen):
    make_user(email="victim@registry.example")
    for i in range(20):
        auth.login(email=f"guess{i}@registry.example", password="wrong wrong wrong")
    response = auth.login(email="victim@registry.example")
    assert response.status_code == 429
    scopes = [r["detail"] for r in audit_rows(app, "login.lockout")]
    assert any('"client"' in s for s in scopes)


def test_a_megabyte_password_gets_a_clear_error(app, auth, staff):
    response = auth.login(password="x" * 1_000_000)
    assert response.status_code == 400
    assert "at most 1,024 characters" in response.text
    assert audit_rows(app, "login.refused")


def test_a_1024_character_password_is_not_truncated(app, make_user, auth):
    long_password = "correct horse " * 73  # 1,022 characters
    make_user(email="long@registry.example", password=long_password)
    assert auth.login(email="long@registry.example", password=long_password[:-1]).status_code == 401
    assert auth.login(email="long@registry.example", password=long_password).status_code == 303


def test_logout_ends_the_session_and_the_old_cookie_is_refused(app, client, auth, staff):
    auth.login()
    old_cookie = client.cookies["__Host-relais_session"]
    response = auth.logout()
    assert response.status_code == 303 and response.headers["location"] == "/login?logged_out"
    assert app.state.db.query("SELECT * FROM sessions") == []
    client.cookies.set("__Host-relais_session", old_cookie)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert audit_rows(app, "logout")


def test_a_new_session_id_at_login(app, client, auth, staff):
    auth.login()
    first = client.cookies["__Host-relais_session"]
    auth.login()
    second = client.cookies["__Host-relais_session"]
    assert first != second
    assert app.state.db.scalar("SELECT count(*) FROM sessions") == 1  # the old one ended


def test_idle_timeout(app, client, auth, staff, frozen):
    auth.login()
    frozen.advance(minutes=29)
    assert client.get("/").status_code == 200  # activity keeps it alive
    frozen.advance(minutes=29)
    assert client.get("/").status_code == 200
    frozen.advance(minutes=31)
    response = client.get("/admin/users", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/admin/users"
    assert '"idle"' in audit_rows(app, "session.expired")[0]["detail"]


def test_absolute_timeout_even_when_active(app, client, auth, staff, frozen):
    auth.login()
    for _ in range(12 * 3 + 3):
        frozen.advance(minutes=20)
        if client.get("/", follow_redirects=False).status_code != 200:
            break
    # Logged in at 09:00: still in at 21:00 sharp, out at the first request after it.
    assert (frozen.moment.hour, frozen.moment.minute) == (21, 20)
    assert '"absolute"' in audit_rows(app, "session.expired")[0]["detail"]


def test_deactivation_ends_sessions_at_once(app, client, auth, admin, staff):
    auth.login()
    from relais import audit, users

    users.set_active(app.state.db, audit.SYSTEM, staff.id, False)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example", "http:/evil.example",
     "javascript:alert(1)", "/%0d%0aSet-Cookie:x=y", "evil.example", "/\t/evil.example"],
)
def test_next_never_leaves_the_site(client, auth, staff, target):
    response = auth.login(next=target)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location


def test_next_brings_you_back_where_you_were(client, auth, staff):
    assert client.get("/account/password", follow_redirects=False).headers["location"] == "/login?next=/account/password"
    assert auth.login(next="/account/password").headers["location"] == "/account/password"


def test_login_page_states_terms_acceptance(client):
    page = client.get("/login")
    assert 'href="/terms"' in page.text and "(version 1)" in page.text
    terms = client.get("/terms")
    assert terms.status_code == 200 and "Terms of use" in terms.text


def test_csrf_token_is_required_for_login(client, staff):
    csrf_token(client)
    missing = client.post("/login", data={"email": staff.email, "password": PASSWORD})
    assert missing.status_code == 403 and "Form expired" in missing.text
    wrong = client.post("/login", data={"email": staff.email, "password": PASSWORD, "_csrf_token": "forged"})
    assert wrong.status_code == 403


def test_csrf_for_htmx_requests_travels_in_a_header(client, auth, staff):
    auth.login()
    ok = client.post("/logout", headers={"x-csrftoken": csrf_token(client), "hx-request": "true"}, follow_redirects=False)
    assert ok.status_code == 303
    auth.login()
    refused = client.post("/logout", headers={"x-csrftoken": "nope", "hx-request": "true"})
    assert refused.status_code == 403


@pytest.mark.parametrize(
    "peer, forwarded, expected",
    [
        ("203.0.113.5", "198.51.100.7", "203.0.113.5"),  # not our proxy: its header is ignored
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),  # Caddy on this host
        ("127.0.0.1", "10.9.9.9, 198.51.100.7", "198.51.100.7"),  # the client's own prefix is not believed
        ("127.0.0.1", "198.51.100.7, 127.0.0.1", "198.51.100.7"),  # chained trusted proxies are skipped
        ("127.0.0.1", "not-an-address", "127.0.0.1"),
        ("127.0.0.1", None, "127.0.0.1"),
    ],
)
def test_client_address_from_a_trusted_proxy_only(app, peer, forwarded, expected):
    from litestar import Request

    from views import common

    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope = {"type": "http", "app": app, "litestar_app": app, "client": (peer, 5000), "headers": headers,
             "state": {}, "path": "/", "method": "GET", "query_string": b""}
    assert common.client_ip(Request(scope)) == expected


# -- passwords are compared in one Unicode form (NFKC) wherever they are typed ---------------------

def test_login_accepts_the_other_unicode_form_of_the_password(app, make_user, auth):
    import unicodedata

    composed = "forêt noire, gâteau 2026"
    make_user(email="nfc@registry.example", password=composed)
    assert auth.login(email="nfc@registry.example", password=unicodedata.normalize("NFD", composed)).status_code == 303


def test_a_share_password_typed_in_one_form_unlocks_in_the_other(app, auth, staff):
    import unicodedata

    from litestar.testing import TestClient

    from tests.conftest import BASE_URL
    from tests.test_shares import CSV, create_share, link_token, store, unlock

    typed = "crème brûlée à l'été"
    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    assert create_share(auth, [stored.id], password=unicodedata.normalize("NFD", typed)).status_code == 200
    with TestClient(app, base_url=BASE_URL) as guest:
        assert unlock(guest, f"/s/{link_token(app)}", typed).status_code == 303


# -- the language stored at login ---------------------------------------------------------------

def _language(app, email: str) -> str:
    return app.state.db.scalar("SELECT language FROM users WHERE email = ?", [email])


def test_a_browsers_language_alone_is_not_stored_at_login(app, client, auth, make_user):
    """Someone else's browser (a colleague's, a borrowed laptop) must not switch a Dutch person's
    e-mails to English: Accept-Language shows the page, the account keeps its language."""
    dutch = make_user(email="dutch@registry.example")
    app.state.db.write(lambda db: db.execute("UPDATE users SET language = 'nl' WHERE id = ?", [dutch.id]))
    response = auth.login(email=dutch.email, headers={"accept-language": "en-GB,en;q=0.9"})
    assert response.status_code == 303
    assert _language(app, dutch.email) == "nl" and audit_rows(app, "user.language") == []


def test_a_language_chosen_on_the_login_page_or_form_is_stored_with_the_login(app, client, auth, staff):
    client.get("/language/nl")  # the switch on the login page sets the cookie
    assert auth.login(headers={"accept-language": "fr"}).status_code == 303
    assert _language(app, staff.email) == "nl"
    [row] = audit_rows(app, "user.language")
    assert row["actor"] == staff.email and '"language": "nl"' in row["detail"]
    auth.logout()
    # A language field of the form is a choice too, and goes before the cookie.
    assert auth.login(language="de").status_code == 303
    assert _language(app, staff.email) == "de"
    auth.logout()
    assert auth.login(language="xx").status_code == 303  # not one of ours: the cookie's choice
    assert _language(app, staff.email) == "nl"


def test_a_one_time_link_stores_only_a_chosen_language(app, client, auth, staff):
    from relais import audit, users

    token = users.issue_login_link(app.state.db, audit.SYSTEM, staff.id)
    client.headers["accept-language"] = "de"
    assert auth.post(f"/login/link/{token}").status_code == 303
    assert _language(app, staff.email) == "en" and audit_rows(app, "user.language") == []
    token = users.issue_login_link(app.state.db, audit.SYSTEM, staff.id)
    client.get("/language/fr")
    assert auth.post(f"/login/link/{token}").status_code == 303
    assert _language(app, staff.email) == "fr"
