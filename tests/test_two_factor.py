"""Two-factor login (relais.two_factor): enrolment, codes in and out of their window, replay,
recovery codes, the pending login between password and code, forced enrolment, the admin's reset."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pyotp
import pytest

from relais import audit, two_factor, users
from tests.conftest import PASSWORD, audit_rows, csrf_token

STEP = timedelta(seconds=30)


# -- helpers -------------------------------------------------------------------------------------

def key_on_page(text: str) -> str:
    return re.search(r'id="totp-key">([A-Z2-7 ]+)<', text).group(1).replace(" ", "")


def code(secret: str, frozen, offset: timedelta = timedelta()) -> str:
    return pyotp.TOTP(secret).at(frozen.moment + offset)


def enrol_through_pages(client, auth, frozen) -> tuple[str, list[str]]:
    """Enrol the account logged in, as a person would; returns its secret and recovery codes."""
    page = client.get("/account/two-factor/enrol")
    assert page.status_code == 200
    secret = key_on_page(page.text)
    confirmed = auth.post("/account/two-factor/enrol", {"code": code(secret, frozen)})
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/account/two-factor/recovery-codes"
    shown = client.get("/account/two-factor/recovery-codes")
    codes = re.findall(r"<li><code>([0-9A-Z-]+)</code></li>", shown.text)
    return secret, codes


def enrol(app, user, frozen) -> tuple[str, list[str]]:
    """Enrol through the core, then let a few minutes pass (the confirming code's step is used)."""
    secret = two_factor.enrolment_secret(app.state.db, app.state.two_factor_key, audit.SYSTEM, user)
    codes = two_factor.confirm(app.state.db, app.state.two_factor_key, audit.SYSTEM, user, code(secret, frozen))
    frozen.advance(minutes=5)
    return secret, codes


def second_step(auth, value: str, field: str = "code"):
    return auth.post("/login/code", {field: value})


def require_for_admins(app) -> None:
    """Back to the default (tests/conftest.py turns it off for the rest of the suite)."""
    app.state.db.write(lambda db: db.execute("DELETE FROM settings WHERE name = 'two_factor_admins'"))


def set_setting(app, name: str, value: int) -> None:
    from relais import settings

    app.state.db.write(lambda db: settings.set_value(db, audit.SYSTEM, None, name, value))


def actions(app, prefix: str = "two_factor.") -> list[str]:
    return [r["action"] for r in audit_rows(app) if r["action"].startswith(prefix)]


# -- enrolment and the login with a code ---------------------------------------------------------

def test_staff_enrol_and_then_log_in_with_password_and_code(app, client, auth, staff, frozen):
    assert auth.login().status_code == 303
    assert "Off:" in client.get("/account/two-factor").text
    page = client.get("/account/two-factor/enrol")
    assert page.status_code == 200 and "<svg" in page.text and 'role="img"' in page.text
    assert "style" not in page.text.split("<svg", 1)[1].split("</svg>", 1)[0]  # the CSP allows no inline style
    secret = key_on_page(page.text)
    assert len(secret) == 32 and client.get("/account/two-factor/enrol").text.count(" ".join(
        secret[i:i + 4] for i in range(0, 32, 4))) == 1  # a reload shows the same key
    wrong = auth.post("/account/two-factor/enrol", {"code": "000000" if code(secret, frozen) != "000000" else "111111"})
    assert wrong.status_code == 400 and "not correct" in wrong.text
    assert two_factor.status(app.state.db, staff.id) is None

    assert auth.post("/account/two-factor/enrol", {"code": code(secret, frozen)}).status_code == 303
    shown = client.get("/account/two-factor/recovery-codes")
    codes = re.findall(r"<li><code>([0-9A-Z-]+)</code></li>", shown.text)
    assert len(codes) == 10 and len(set(codes)) == 10 and all(len(c) == 19 for c in codes)
    # Shown once: a second visit finds them gone; only their hashes are stored.
    assert client.get("/account/two-factor/recovery-codes", follow_redirects=False).status_code == 303
    stored = app.state.db.query("SELECT code_hash FROM two_factor_recovery_codes")
    assert len(stored) == 10 and not any(c in str(stored) for c in codes)
    assert "On:" in client.get("/account/two-factor").text
    auth.logout()

    frozen.advance(minutes=2)
    response = auth.login()
    assert response.status_code == 303 and response.headers["location"] == "/login/code"
    assert "__Host-relais_session" not in client.cookies
    assert app.state.db.scalar("SELECT count(*) FROM sessions") == 0  # no session before the code
    assert staff.email in client.get("/login/code").text
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    done = second_step(auth, code(secret, frozen))
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert client.get("/").status_code == 200
    assert app.state.db.scalar("SELECT count(*) FROM sessions") == 1
    assert actions(app) == ["two_factor.enrol", "two_factor.code_refused", "two_factor.confirm", "two_factor.code_accepted"]
    assert [r["action"] for r in audit_rows(app) if r["action"].startswith("login.")][-2:] == ["login.code_asked", "login.success"]


def test_next_survives_the_second_step(app, client, auth, staff, frozen):
    secret, _ = enrol(app, staff, frozen)
    response = auth.login(next="/files")
    assert response.headers["location"] == "/login/code?next=/files"
    client.get(response.headers["location"])
    done = auth.post("/login/code", {"code": code(secret, frozen), "next": "/files"})
    assert done.headers["location"] == "/files"


def test_the_secret_is_encrypted_at_rest_bound_to_its_account(app, staff, make_user, frozen):
    from cryptography.exceptions import InvalidTag

    secret, _ = enrol(app, staff, frozen)
    blob = app.state.db.scalar("SELECT secret_enc FROM two_factor WHERE user_id = ?", [staff.id])
    assert secret.encode() not in blob
    assert two_factor._decrypt(app.state.two_factor_key, staff.id, blob) == secret
    with pytest.raises(InvalidTag):
        two_factor._decrypt(app.state.two_factor_key, staff.id + 1, blob)  # moved to another account's row
    with pytest.raises(InvalidTag):
        two_factor._decrypt(two_factor.derive_key(b"\x01" * 32), staff.id, blob)  # another master key


# -- the window and replays ----------------------------------------------------------------------

@pytest.mark.parametrize("offset, accepted", [(-2, False), (-1, True), (0, True), (1, True), (2, False)])
def test_codes_of_the_steps_around_now(app, client, auth, staff, frozen, offset, accepted):
    """pyotp's window of one step: the previous, current and next code are accepted, two steps away not."""
    secret, _ = enrol(app, staff, frozen)
    auth.login()
    response = second_step(auth, code(secret, frozen, offset * STEP))
    assert (response.status_code == 303) is accepted
    assert actions(app)[-1] == ("two_factor.code_accepted" if accepted else "two_factor.code_refused")


def test_a_used_code_and_an_earlier_one_are_refused(app, client, auth, staff, frozen):
    secret, _ = enrol(app, staff, frozen)
    auth.login()
    assert second_step(auth, code(secret, frozen)).status_code == 303
    auth.logout()
    auth.login()
    replay = second_step(auth, code(secret, frozen))  # the same code, still in its window
    assert replay.status_code == 401 and "already used" in replay.text
    earlier = second_step(auth, code(secret, frozen, -STEP))  # a step before the one used
    assert earlier.status_code == 401
    assert actions(app)[-2:] == ["two_factor.replay_refused", "two_factor.replay_refused"]
    assert second_step(auth, code(secret, frozen, STEP)).status_code == 303  # the next one works


# -- recovery codes ------------------------------------------------------------------------------

def test_a_recovery_code_works_once(app, client, auth, staff, frozen):
    _, codes = enrol(app, staff, frozen)
    auth.login()
    typed = codes[3].lower().replace("-", " ")  # as someone may type it
    assert second_step(auth, typed, "recovery_code").status_code == 303
    [used] = audit_rows(app, "two_factor.recovery_used")
    assert '"left": 9' in used["detail"]
    auth.logout()
    auth.login()
    again = second_step(auth, codes[3], "recovery_code")
    assert again.status_code == 401
    assert '"wrong_recovery_code"' in audit_rows(app, "two_factor.code_refused")[-1]["detail"]
    assert second_step(auth, codes[4], "recovery_code").status_code == 303


def test_new_recovery_codes_replace_the_old_ones(app, client, auth, staff, frozen):
    secret, old = enrol(app, staff, frozen)
    auth.login()
    second_step(auth, code(secret, frozen))
    made = auth.post("/account/two-factor/recovery-codes")
    assert made.headers["location"] == "/account/two-factor/recovery-codes"
    new = re.findall(r"<li><code>([0-9A-Z-]+)</code></li>", client.get(made.headers["location"]).text)
    assert len(new) == 10 and not set(new) & set(old)
    assert actions(app)[-1] == "two_factor.recovery_codes"
    auth.logout()
    auth.login()
    assert second_step(auth, old[0], "recovery_code").status_code == 401
    assert second_step(auth, new[0], "recovery_code").status_code == 303


# -- the pending login ---------------------------------------------------------------------------

def test_the_pending_login_expires(app, client, auth, staff, frozen):
    secret, _ = enrol(app, staff, frozen)
    auth.login()
    frozen.advance(minutes=two_factor.PENDING_MINUTES, seconds=1)
    late = second_step(auth, code(secret, frozen))
    assert late.status_code == 401 and "run out" in late.text
    assert "__Host-relais_session" not in client.cookies and app.state.db.scalar("SELECT count(*) FROM sessions") == 0
    assert '"code_step_ended"' in audit_rows(app, "login.refused")[-1]["detail"]
    assert client.get("/login/code", follow_redirects=False).headers["location"] == "/login"


def test_the_pending_login_is_used_once(app, client, auth, staff, frozen):
    secret, _ = enrol(app, staff, frozen)
    auth.login()
    pending = client.cookies["__Host-relais_login_step"]
    assert second_step(auth, code(secret, frozen)).status_code == 303
    assert "__Host-relais_login_step" not in client.cookies  # cleared with the session's start
    auth.logout()
    client.cookies.set("__Host-relais_login_step", pending)
    replayed = second_step(auth, code(secret, frozen, STEP))
    assert replayed.status_code == 401 and "run out" in replayed.text
    assert "__Host-relais_session" not in client.cookies


def test_the_pending_login_is_bound_to_its_account(app, client, auth, staff, make_user, frozen):
    """A right code of another account is no use in this account's pending login."""
    other = make_user(email="other@registry.example")
    _, _ = enrol(app, staff, frozen)
    other_secret, _ = enrol(app, other, frozen)
    auth.login()
    assert second_step(auth, code(other_secret, frozen)).status_code == 401
    assert actions(app)[-1] == "two_factor.code_refused"


def test_wrong_codes_count_towards_the_account_lock(app, client, auth, staff, frozen):
    secret, _ = enrol(app, staff, frozen)
    wrong = "123456" if code(secret, frozen) != "123456" else "654321"
    auth.login()
    for _ in range(4):
        assert second_step(auth, wrong).status_code == 401
    # A right password again does not wipe the count: the fifth wrong code locks the account.
    auth.login()
    locked = second_step(auth, wrong)
    assert locked.status_code == 429 and "Too many failed attempts" in locked.text
    assert len(audit_rows(app, "two_factor.code_refused")) == 5
    [lockout] = audit_rows(app, "login.lockout")
    assert lockout["object"] == staff.email and '"account"' in lockout["detail"]
    # Locked: the right code is not even checked, nor the right password.
    assert second_step(auth, code(secret, frozen)).status_code == 429
    assert auth.login().status_code == 429
    frozen.advance(minutes=1, seconds=1)
    auth.login()
    assert second_step(auth, code(secret, frozen)).status_code == 303


def test_a_pending_login_ends_after_five_wrong_codes(app, client, auth, staff, frozen):
    from relais import settings

    app.state.db.write(lambda db: settings.set_value(db, audit.SYSTEM, None, "login_failures_before_lock", 50))
    secret, _ = enrol(app, staff, frozen)
    wrong = "123456" if code(secret, frozen) != "123456" else "654321"
    auth.login()
    answers = [second_step(auth, wrong).status_code for _ in range(two_factor.PENDING_TRIES)]
    assert answers == [401] * two_factor.PENDING_TRIES
    ended = second_step(auth, code(secret, frozen))
    assert ended.status_code == 401 and "run out" in ended.text


def test_a_one_time_link_does_not_skip_the_code(app, client, auth, staff, frozen):
    secret, _ = enrol(app, staff, frozen)
    token = users.issue_login_link(app.state.db, audit.SYSTEM, staff.id, purpose="reset")
    used = auth.post(f"/login/link/{token}")
    assert used.status_code == 303 and used.headers["location"] == "/login/code?next=/account/password"
    assert "__Host-relais_session" not in client.cookies
    done = auth.post("/login/code", {"code": code(secret, frozen), "next": "/account/password"})
    assert done.headers["location"] == "/account/password"
    assert client.get("/account/password").status_code == 200


# -- who must have one ---------------------------------------------------------------------------

GET_PAGES = ["/", "/files", "/shares", "/shares/new", "/admin/users", "/admin/audit", "/admin/settings",
             "/account/password", "/account/two-factor", "/account/two-factor/recovery-codes"]


def test_admins_must_enrol_by_default_before_any_page(app, client, auth, admin, frozen):
    require_for_admins(app)
    from relais import settings

    assert app.state.db.read_sync(settings.get, "two_factor_admins") == 1
    assert auth.login(email=admin.email).headers["location"] == "/"  # a password alone: no factor yet
    for path in GET_PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/account/two-factor/enrol", path
    created = auth.post("/admin/users", {"email": "new@registry.example", "name": "New", "role": "staff"})
    assert created.headers["location"] == "/account/two-factor/enrol"
    assert users.by_email(app.state.db, "new@registry.example") is None
    assert client.options("/tus/", headers={"tus-resumable": "1.0.0"}).status_code == 403
    page = client.get("/account/two-factor/enrol")
    assert page.status_code == 200 and "must log in with a second factor" in page.text
    assert 'href="/admin/users"' not in page.text  # no menu before it

    secret = key_on_page(page.text)
    assert auth.post("/account/two-factor/enrol", {"code": code(secret, frozen)}).status_code == 303
    assert client.get("/admin/users").status_code == 200
    on = client.get("/account/two-factor")
    assert "cannot be turned off" in on.text and "/account/two-factor/disable" not in on.text
    refused = auth.post("/account/two-factor/disable", {"code": code(secret, frozen, STEP)})
    assert refused.status_code == 400 and two_factor.status(app.state.db, admin.id) is not None


def test_the_setting_reaches_a_session_already_open(app, client, auth, admin):
    auth.login(email=admin.email)
    assert client.get("/admin/users").status_code == 200
    require_for_admins(app)
    assert client.get("/admin/users", follow_redirects=False).headers["location"] == "/account/two-factor/enrol"


def test_staff_need_none_by_default_unless_the_setting_says(app, client, auth, staff):
    auth.login()
    assert client.get("/files").status_code == 200
    set_setting(app, "two_factor_staff", 1)
    assert client.get("/files", follow_redirects=False).headers["location"] == "/account/two-factor/enrol"


def test_a_password_change_comes_before_the_enrolment(app, client, auth, admin):
    require_for_admins(app)
    token = users.issue_login_link(app.state.db, audit.SYSTEM, admin.id)
    auth.post(f"/login/link/{token}")
    assert client.get("/", follow_redirects=False).headers["location"] == "/account/password"
    assert client.get("/account/two-factor/enrol", follow_redirects=False).headers["location"] == "/account/password"
    new = "quiet harbour lantern 42"
    assert auth.post("/account/password", {"new_password": new, "confirm_password": new}).status_code == 303
    assert client.get("/", follow_redirects=False).headers["location"] == "/account/two-factor/enrol"


def test_staff_may_turn_it_off_with_a_current_code(app, client, auth, staff, frozen):
    secret, _ = enrol(app, staff, frozen)
    auth.login()
    second_step(auth, code(secret, frozen))
    wrong = auth.post("/account/two-factor/disable", {"code": code(secret, frozen)})  # the code just used
    assert wrong.status_code == 400 and two_factor.status(app.state.db, staff.id) is not None
    off = auth.post("/account/two-factor/disable", {"code": code(secret, frozen, STEP)})
    assert off.status_code == 303 and two_factor.status(app.state.db, staff.id) is None
    assert actions(app)[-2:] == ["two_factor.code_accepted", "two_factor.disable"]
    assert app.state.db.scalar("SELECT count(*) FROM two_factor_recovery_codes") == 0
    auth.logout()
    assert auth.login().headers["location"] == "/"  # the password alone again


# -- the admin's reset ---------------------------------------------------------------------------

def test_an_admin_resets_a_factor_and_the_person_enrols_again(app, client, auth, admin, staff, frozen):
    from litestar.testing import TestClient

    from tests.conftest import BASE_URL, AuthActions

    old_secret, _ = enrol(app, staff, frozen)
    set_setting(app, "two_factor_staff", 1)
    with TestClient(app, base_url=BASE_URL) as other:
        person = AuthActions(other)
        person.login()
        second_step(person, code(old_secret, frozen))
        assert other.get("/files").status_code == 200

        auth.login(email=admin.email)
        accounts = client.get("/admin/users").text
        assert f'href="/admin/users/{staff.id}/two-factor/reset"' in accounts
        assert f'href="/admin/users/{admin.id}/two-factor/reset"' not in accounts  # none to reset
        confirm = client.get(f"/admin/users/{staff.id}/two-factor/reset")
        assert confirm.status_code == 200 and staff.email in confirm.text
        unconfirmed = auth.post(f"/admin/users/{staff.id}/two-factor/reset")
        assert unconfirmed.headers["location"] == f"/admin/users/{staff.id}/two-factor/reset"
        assert two_factor.status(app.state.db, staff.id) is not None
        done = auth.post(f"/admin/users/{staff.id}/two-factor/reset", {"confirm": "yes"})
        assert done.status_code == 303 and two_factor.status(app.state.db, staff.id) is None
        [row] = audit_rows(app, "two_factor.reset")
        assert row["actor"] == admin.email and row["object"] == staff.email and '"sessions": 1' in row["detail"]
        assert client.get("/admin/users").status_code == 200  # the admin's own session goes on

        # The person's session ended; the next login is the password, then a new enrolment.
        assert other.get("/files", follow_redirects=False).headers["location"] == "/login?next=/files"
        assert person.login().headers["location"] == "/"
        assert other.get("/files", follow_redirects=False).headers["location"] == "/account/two-factor/enrol"
        new_secret, codes = enrol_through_pages(other, person, frozen)
        assert new_secret != old_secret and len(codes) == 10


def test_another_person_cannot_reset_or_see_a_factor(app, client, auth, staff, make_user, frozen):
    victim = make_user(email="victim@registry.example")
    enrol(app, victim, frozen)
    auth.login()
    for path in (f"/admin/users/{victim.id}/two-factor/reset", "/admin/users"):
        assert client.get(path).status_code == 403
    assert auth.post(f"/admin/users/{victim.id}/two-factor/reset", {"confirm": "yes"}).status_code == 403
    assert two_factor.status(app.state.db, victim.id) is not None
    # The account's own pages name no account: staff see their own state only.
    own = client.get("/account/two-factor").text
    assert "Off:" in own and victim.email not in own
    assert client.get(f"/account/two-factor?user_id={victim.id}").text.count("Off:") == 1


def test_resetting_an_unknown_account_or_one_without_a_factor(app, client, auth, admin, staff):
    auth.login(email=admin.email)
    assert client.get("/admin/users/9999/two-factor/reset").status_code == 404
    assert client.get(f"/admin/users/{staff.id}/two-factor/reset", follow_redirects=False).status_code == 303
    assert auth.post(f"/admin/users/{staff.id}/two-factor/reset", {"confirm": "yes"}).status_code == 404


# -- CSRF ----------------------------------------------------------------------------------------

def test_every_two_factor_form_needs_its_csrf_token(app, client, auth, admin, staff, frozen):
    secret, _ = enrol(app, staff, frozen)
    auth.login()
    csrf_token(client)
    refused = client.post("/login/code", data={"code": code(secret, frozen)})
    assert refused.status_code == 403 and "__Host-relais_session" not in client.cookies
    second_step(auth, code(secret, frozen))
    for path in ("/account/two-factor/enrol", "/account/two-factor/recovery-codes", "/account/two-factor/disable"):
        assert client.post(path, data={"code": code(secret, frozen, STEP)}).status_code == 403, path
        assert client.post(path, data={"code": code(secret, frozen, STEP), "_csrf_token": "forged"}).status_code == 403
    assert two_factor.status(app.state.db, staff.id) is not None
    auth.logout()
    auth.login(email=admin.email)
    assert client.post(f"/admin/users/{staff.id}/two-factor/reset", data={"confirm": "yes"}).status_code == 403
    assert two_factor.status(app.state.db, staff.id) is not None
    assert "two_factor.recovery_codes" not in actions(app)


def test_the_audit_page_labels_every_two_factor_step(app, client, auth, admin, staff, frozen):
    secret, codes = enrol(app, staff, frozen)
    auth.login()
    second_step(auth, "000000" if code(secret, frozen) != "000000" else "111111")
    second_step(auth, codes[0], "recovery_code")
    auth.logout()
    auth.login(email=admin.email)
    text = html.unescape(client.get("/admin/audit").text)
    for label in ("Two-factor login turned on", "Second-factor code refused", "Recovery code used",
                  "Password right, second-factor code asked", "wrong code"):
        assert label in text, label
    assert PASSWORD not in text and secret not in text and codes[0] not in text
