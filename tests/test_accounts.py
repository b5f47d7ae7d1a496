"""Accounts: admins create staff, one-time login links, choosing and changing a password."""

from __future__ import annotations

import re
import unicodedata

import pytest

from relais import audit, passwords, users
from tests.conftest import PASSWORD, audit_rows

NEW_PASSWORD = "quiet harbour lantern 42"


def _link_token(html: str) -> str:
    return re.search(r"/login/link/([A-Za-z0-9_-]+)", html).group(1)


def test_admin_creates_a_staff_account_and_its_link_works_once(app, client, auth, admin):
    auth.login(email=admin.email)
    created = auth.post("/admin/users", {"email": "New.Person@Registry.example", "name": "New Person", "role": "staff"})
    assert created.status_code == 201 and "shown only once" in created.text
    token = _link_token(created.text)
    assert created.text.count(token) == 1
    assert users.by_email(app.state.db, "new.person@registry.example")["password_hash"] is None
    auth.logout()

    # Opening the link (as a mail scanner would, GET or HEAD) does not use it up.
    assert client.head(f"/login/link/{token}").status_code == 200
    page = client.get(f"/login/link/{token}")
    assert page.status_code == 200 and "new.person@registry.example" in page.text
    used = auth.post(f"/login/link/{token}")
    assert used.status_code == 303 and used.headers["location"] == "/account/password"
    # Until a password is chosen, every page leads to the password form.
    assert client.get("/", follow_redirects=False).headers["location"] == "/account/password"
    chosen = auth.post("/account/password", {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert chosen.status_code == 303 and chosen.headers["location"] == "/?notice=password_changed"
    assert client.get("/").status_code == 200

    auth.logout()
    again = client.get(f"/login/link/{token}")
    assert again.status_code == 404 and "no longer valid" in again.text
    assert auth.post(f"/login/link/{token}").status_code == 404
    assert auth.login(email="new.person@registry.example", password=NEW_PASSWORD).status_code == 303
    assert [r["action"] for r in audit_rows(app) if r["action"].startswith("user.login_link")] == [
        "user.login_link", "user.login_link_used", "user.login_link_refused"]


def test_an_expired_link_is_refused(app, client, auth, staff, frozen):
    token = users.issue_login_link(app.state.db, users.audit.SYSTEM, staff.id)
    frozen.advance(hours=72, seconds=1)
    assert client.get(f"/login/link/{token}").status_code == 404
    assert auth.post(f"/login/link/{token}").status_code == 404


def test_a_new_link_cancels_the_previous_one(app, client, auth, staff):
    first = users.issue_login_link(app.state.db, users.audit.SYSTEM, staff.id)
    second = users.issue_login_link(app.state.db, users.audit.SYSTEM, staff.id)
    assert auth.post(f"/login/link/{first}").status_code == 404
    assert auth.post(f"/login/link/{second}").status_code == 303


@pytest.mark.parametrize(
    "new, confirm, message",
    [
        ("short", "short", "at least 15 characters"),
        # 14 characters, strong otherwise: an account logs in with its password alone (NIST: 15).
        ("violet-tug-map", "violet-tug-map", "at least 15 characters"),
        ("password12345678", "password12345678", "too common"),
        ("qwertyuiopasdfgh", "qwertyuiopasdfgh", "too common"),
        (NEW_PASSWORD, NEW_PASSWORD + "x", "not the same"),
        ("y" * 1025, "y" * 1025, "at most 1,024"),
    ],
)
def test_password_rules(app, client, auth, staff, new, confirm, message):
    auth.login()
    response = auth.post("/account/password", {"current_password": PASSWORD, "new_password": new, "confirm_password": confirm})
    assert response.status_code == 400 and message in response.text
    assert auth.login(password=PASSWORD).status_code == 303  # unchanged


def test_changing_a_password_needs_the_current_one_and_ends_other_sessions(app, client, auth, staff):
    from litestar.testing import TestClient

    from tests.conftest import AuthActions

    auth.login()
    with TestClient(app, base_url="https://relais.test") as other_browser:
        AuthActions(other_browser).login()
        wrong = auth.post("/account/password", {"current_password": "not it at all", "new_password": NEW_PASSWORD,
                                                "confirm_password": NEW_PASSWORD})
        assert wrong.status_code == 400 and "current password is not correct" in wrong.text
        ok = auth.post("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                             "confirm_password": NEW_PASSWORD})
        assert ok.status_code == 303
        assert other_browser.get("/", follow_redirects=False).headers["location"] == "/login"
    assert client.get("/").status_code == 200  # this browser stays in
    assert audit_rows(app, "user.password_change")
    [ended] = audit_rows(app, "user.other_sessions_ended")
    assert ended["actor"] == staff.email and ended["object"] == staff.email and '"sessions": 1' in ended["detail"]


def test_a_password_change_is_one_transaction(app, client, auth, staff):
    """The new password and the end of the other sessions commit together: if ending them fails,
    the old password still works and no audit row claims a change (before, the new password was
    committed first and the other sessions stayed in)."""
    from litestar.testing import TestClient

    from tests.conftest import AuthActions

    auth.login()
    with TestClient(app, base_url="https://relais.test") as other_browser:
        AuthActions(other_browser).login()
        # On the writer's connection only (TEMP), where every write runs: ending a session fails.
        app.state.db.write(lambda db: db.execute(
            "CREATE TEMP TRIGGER refuse_session_end BEFORE DELETE ON sessions BEGIN SELECT RAISE(ABORT, 'refused'); END"))
        try:
            failed = auth.post("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                     "confirm_password": NEW_PASSWORD})
        finally:
            app.state.db.write(lambda db: db.execute("DROP TRIGGER temp.refuse_session_end"))
        assert failed.status_code == 500
        assert audit_rows(app, "user.password_change") == [] and audit_rows(app, "user.other_sessions_ended") == []
        assert other_browser.get("/", follow_redirects=False).status_code == 200  # still in
    assert app.state.hasher.verify(users.by_email(app.state.db, staff.email)["password_hash"], PASSWORD)


def test_admin_pages_are_for_admins_only(client, auth, staff):
    assert client.get("/admin/users", follow_redirects=False).headers["location"] == "/login?next=/admin/users"
    auth.login()
    for path in ("/admin/users", "/admin/audit", "/admin/settings", "/admin/audit.csv"):
        assert client.get(path).status_code == 403
    assert auth.post("/admin/users", {"email": "x@registry.example", "name": "X", "role": "admin"}).status_code == 403


@pytest.mark.parametrize(
    "email, message",
    [("not-an-email", "valid e-mail"), ("a@b@registry.example", "valid e-mail"),
     ("victim@registry.example\r\nBcc: all@evil.example", "valid e-mail"), ("admin@registry.example", "already exists")],
)
def test_bad_new_accounts_are_refused_and_nothing_is_written(app, auth, admin, email, message):
    auth.login(email=admin.email)
    before = app.state.db.scalar("SELECT count(*) FROM users")
    response = auth.post("/admin/users", {"email": email, "name": "Someone", "role": "staff"})
    assert response.status_code == 400 and message in response.text
    assert app.state.db.scalar("SELECT count(*) FROM users") == before


def test_deactivate_and_reactivate(app, client, auth, admin, staff):
    auth.login(email=admin.email)
    assert auth.post(f"/admin/users/{staff.id}/active?active=false", {"confirm": "yes"}).status_code == 303
    assert users.get(app.state.db, staff.id).active is False
    assert auth.post(f"/admin/users/{staff.id}/active?active=true").status_code == 303
    assert users.get(app.state.db, staff.id).active is True
    assert [r["action"] for r in audit_rows(app) if r["action"] in ("user.deactivate", "user.activate")] == [
        "user.deactivate", "user.activate"]


def test_the_last_admin_cannot_be_deactivated(app, auth, admin):
    auth.login(email=admin.email)
    response = auth.post(f"/admin/users/{admin.id}/active?active=false", {"confirm": "yes"})
    assert response.status_code == 400 and "last active admin" in response.text


def test_reset_link_for_an_account(app, client, auth, admin, staff):
    auth.login(email=admin.email)
    response = auth.post(f"/admin/users/{staff.id}/login-link")
    assert response.status_code == 200
    assert response.text.count("https://relais.test/login/link/") == 1  # the configured base URL, not Host


def test_audit_search_and_export(app, client, auth, admin, staff):
    auth.login(email=staff.email, password="wrong wrong wrong")
    auth.login(email=admin.email)
    page = client.get("/admin/audit", params={"q": "login.failure"})
    assert page.status_code == 200 and staff.email in page.text
    export = client.get("/admin/audit.csv", params={"q": "login"})
    assert export.headers["content-type"].startswith("text/csv")
    assert export.headers["content-disposition"].startswith("attachment")
    lines = export.text.strip().splitlines()
    assert lines[0].startswith("id,at,actor,action") and len(lines) >= 3
    assert audit_rows(app, "audit.export")


def test_audit_export_neutralises_spreadsheet_formulas(app, client, auth, admin):
    auth.login(email="=HYPERLINK(\"http://evil.example\")@x.example", password="wrong wrong wrong")
    auth.login(email=admin.email)
    export = client.get("/admin/audit.csv")
    assert "'=hyperlink" in export.text and "\n=hyperlink" not in export.text


def test_settings_change_and_range_check(app, client, auth, admin):
    auth.login(email=admin.email)
    from relais import settings

    ok = auth.post("/admin/settings", {**settings.all_values(app.state.db.conn), "session_idle_minutes": "45"})
    assert ok.status_code == 303
    assert settings.get(app.state.db.conn, "session_idle_minutes") == 45
    bad = auth.post("/admin/settings", {**settings.all_values(app.state.db.conn), "session_idle_minutes": "45",
                                        "session_absolute_hours": "-3"})
    assert bad.status_code == 400 and "whole number" in bad.text
    assert settings.get(app.state.db.conn, "session_absolute_hours") == 12
    assert [r["object"] for r in audit_rows(app, "setting.change")] == ["session_idle_minutes"]


def test_a_used_reset_link_voids_the_old_password_and_every_session(app, client, auth, staff):
    from litestar.testing import TestClient

    from tests.conftest import AuthActions

    with TestClient(app, base_url="https://relais.test") as attacker:
        AuthActions(attacker).login()  # someone who knows the old password
        token = users.issue_login_link(app.state.db, users.audit.SYSTEM, staff.id, purpose="reset")
        assert auth.post(f"/login/link/{token}").status_code == 303
        assert attacker.get("/", follow_redirects=False).headers["location"] == "/login"
        assert AuthActions(attacker).login().status_code == 401  # the old password is gone


# -- the first admin's console link ----------------------------------------------------------------

def test_the_setup_link_ends_once_an_admin_has_a_password(app, client, auth, make_user):
    admin, token = users.setup_link(app.state.db, app.state.hasher, "admin@localhost")
    assert admin.email == "admin@localhost" and admin.role == "admin"
    assert client.get(f"/login/link/{token}").status_code == 200
    make_user(email="other.admin@registry.example", role="admin")  # an admin with a password
    assert users.setup_link(app.state.db, app.state.hasher, "admin@localhost") is None
    page = client.get(f"/login/link/{token}")
    assert page.status_code == 404 and "no longer valid" in page.text
    assert auth.post(f"/login/link/{token}").status_code == 404
    assert users.by_email(app.state.db, "admin@localhost")["must_change_password"] == 0  # not consumed either


def test_until_an_admin_has_a_password_each_start_gives_a_new_setup_link(app, client, auth):
    first_admin, first = users.setup_link(app.state.db, app.state.hasher, "admin@localhost")
    again, second = users.setup_link(app.state.db, app.state.hasher, "admin@localhost")
    assert again.id == first_admin.id and app.state.db.scalar("SELECT count(*) FROM users") == 1
    assert client.get(f"/login/link/{first}").status_code == 404  # the new one ends the old one
    assert auth.post(f"/login/link/{second}").status_code == 303
    chosen = auth.post("/account/password", {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert chosen.status_code == 303
    assert users.setup_link(app.state.db, app.state.hasher, "admin@localhost") is None


def test_other_links_outlive_the_setup(app, client, auth, admin, staff):
    """Only the console's setup link ends with the first password: an admin's link for staff stays."""
    token = users.issue_login_link(app.state.db, audit.SYSTEM, staff.id)
    assert auth.post(f"/login/link/{token}").status_code == 303


# -- normalised passwords --------------------------------------------------------------------------

ACCENTED = "crème brûlée à l'été 2026"  # NFC, as most browsers send it


def test_a_password_chosen_in_one_unicode_form_works_in_the_other(app, client, auth, staff):
    auth.login()
    nfd = unicodedata.normalize("NFD", ACCENTED)
    assert nfd != ACCENTED
    changed = auth.post("/account/password", {"current_password": PASSWORD, "new_password": nfd, "confirm_password": nfd})
    assert changed.status_code == 303
    auth.logout()
    assert auth.login(password=ACCENTED).status_code == 303
    auth.logout()
    assert auth.login(password=nfd).status_code == 303
    # The check as the password form runs it (current password), in the other form.
    again = auth.post("/account/password", {"current_password": ACCENTED, "new_password": NEW_PASSWORD,
                                            "confirm_password": NEW_PASSWORD})
    assert again.status_code == 303


def test_compatibility_forms_fold_too(app, make_user, auth):
    """NFKC: full-width letters (an East Asian input method) are the letters they look like."""
    make_user(email="nfkc@registry.example", password="lighthouse cobalt meadow")
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in "lighthouse cobalt meadow")
    assert fullwidth != "lighthouse cobalt meadow"
    assert auth.login(email="nfkc@registry.example", password=fullwidth).status_code == 303


def test_the_length_rule_counts_the_normalised_password():
    assert passwords.normalize("\ufb01") == "fi"
    # 23 code points in NFD, 14 once composed: too short.
    short = unicodedata.normalize("NFD", "ééé ççç ààà xy")
    assert len(short) >= 15
    with pytest.raises(passwords.PasswordRejected) as refused:
        passwords.check_policy(short)
    assert refused.value.reason == "too_short"
