"""Partner accounts: creation by staff, activation links, time-boxed access, the reminder, forgotten
passwords, and partners kept off every staff page (relais.partners, views/partners.py)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from litestar.testing import TestClient

from relais import audit, clock, i18n, institutions, logs, mail, partners, retention, settings, users
from tests.conftest import BASE_URL, PASSWORD, AuthActions, audit_rows, csrf_token
from tests.test_mail import smtp, use_smtp  # noqa: F401  (the fixture, and its transport)

NEW_PASSWORD = "quiet harbour lantern 42"
PARTNER_EMAIL = "an.peeters@azsintjan.example"
LINK = re.compile(r"/login/link/([A-Za-z0-9_-]{43})")
NEW_PASSWORD_SUBJECT = i18n.gettext("nl", "Choose a new password for Relais")  # the partners here read Dutch


def make_partner(app, contact, email=PARTNER_EMAIL, name="An Peeters", institution="AZ Sint-Jan", language="nl"):
    details = partners.Details(email=email, name=name, function="Data manager", phone="+32 50 45 21 11",
                               institution=institution, language=language, contact_id=contact.id)
    return partners.create(app.state.db, audit.SYSTEM, details, created_by=contact.id)


def activate(app, client, partner, password=NEW_PASSWORD) -> None:
    """The partner uses a one-time link and chooses a password, in ``client`` (logged in after)."""
    token = partners.issue_link(app.state.db, audit.SYSTEM, partner.id, BASE_URL, by_mail=False)
    actions = AuthActions(client)
    assert actions.post(f"/login/link/{token}").headers["location"] == "/account/password"
    chosen = actions.post("/account/password", {"new_password": password, "confirm_password": password})
    assert chosen.status_code == 303


@pytest.fixture
def partner(app, staff, frozen):
    return make_partner(app, staff)


@pytest.fixture
def active_partner(app, partner, frozen):
    """A partner who chose their password at the frozen clock's start (24 Nov 2026, 09:00 UTC)."""
    with TestClient(app, base_url=BASE_URL) as browser:
        activate(app, browser, partner)
        AuthActions(browser).logout()
    return partners.get(app.state.db, partner.id)


def outbox(app, kind: str) -> list[dict]:
    return app.state.db.query("SELECT * FROM outbox WHERE kind = ? ORDER BY id", [kind])


# -- creation and the whole activation flow ----------------------------------------------------

def test_staff_create_a_partner_who_activates_through_the_mail_and_lands_on_their_space(
        app, client, auth, staff, frozen, smtp):  # noqa: F811
    auth.login()
    form = client.get("/partners/new")
    assert form.status_code == 200 and 'name="contact_id"' in form.text and 'type="password"' not in form.text
    created = auth.post("/partners", {
        "name": "An  Peeters", "function": "Data manager", "institution": "AZ Sint-Jan", "email": "An.Peeters@AZSintJan.example",
        "phone": "+32 50 45 21 11", "language": "fr", "contact_id": str(staff.id), "delivery": "mail"})
    assert created.status_code == 201 and "sent to the partner by e-mail" in created.text
    assert not LINK.search(created.text)  # mailed, so not shown
    account = users.by_email(app.state.db, PARTNER_EMAIL)
    assert account["role"] == "partner" and account["password_hash"] is None and account["name"] == "An Peeters"
    listing = client.get("/partners")
    assert "AZ Sint-Jan" in listing.text and "An Peeters" in listing.text and "Not activated yet" in listing.text
    auth.logout()

    # The outbox sends it through a real SMTP server, in the partner's language.
    assert mail.send_due(app.state.db, use_smtp(app, smtp.port)) == 1
    [message] = smtp.messages
    assert message["To"] == f"An Peeters <{PARTNER_EMAIL}>" and message["Content-Language"] == "fr"
    text = message.get_body(("plain",)).get_content()
    assert "Sam Staff" in text and "staff@registry.example" in text
    token = LINK.search(text).group(1)
    # The record kept of the sent mail holds no working link.
    assert token not in app.state.db.scalar("SELECT body_text FROM outbox WHERE kind = 'partner_activation'")

    assert client.get(f"/login/link/{token}").status_code == 200  # a look does not use it up
    assert auth.post(f"/login/link/{token}").headers["location"] == "/account/password"
    chosen = auth.post("/account/password", {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert chosen.headers["location"] == "/?notice=password_changed"
    home = client.get("/?notice=password_changed", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/space?notice=password_changed"
    space = client.get("/space?notice=password_changed")
    assert space.status_code == 200 and "My space" in space.text and "Sam Staff" in space.text
    assert "staff@registry.example" in space.text and "/partners" not in space.text and "/shares" not in space.text
    until = partners.get(app.state.db, account["id"]).access_until
    assert until == clock.iso(frozen.moment + timedelta(days=14))

    auth.logout()
    assert auth.post(f"/login/link/{token}").status_code == 404  # single use
    assert auth.login(email=PARTNER_EMAIL, password=NEW_PASSWORD).headers["location"] == "/"
    actions = [r["action"] for r in audit_rows(app) if r["object"] in (PARTNER_EMAIL, "AZ Sint-Jan")
               and r["action"].startswith(("partner.", "institution.", "user."))]
    assert actions[:5] == ["institution.create", "user.create", "partner.create", "user.login_link", "partner.link"]
    assert {"user.login_link_used", "user.password_change", "partner.access_renewed"} <= set(actions)
    [link_row] = audit_rows(app, "partner.link")
    assert '"purpose": "activate"' in link_row["detail"] and '"delivery": "mail"' in link_row["detail"]


def test_a_link_shown_to_read_out_by_phone_is_shown_once_and_mailed_to_nobody(app, client, auth, staff, partner):
    auth.login()
    shown = auth.post(f"/partners/{partner.id}/link", {"delivery": "shown"})
    assert shown.status_code == 200 and "shown only once" in shown.text
    token = LINK.search(shown.text).group(1)
    assert shown.text.count(token) == 1
    assert token not in client.get(f"/partners/{partner.id}").text
    assert outbox(app, "partner_activation") == []
    [row] = audit_rows(app, "partner.link")
    assert '"delivery": "shown"' in row["detail"] and token not in row["detail"]
    assert users.peek_login_link(app.state.db, token).id == partner.id


def test_activation_links_work_once_and_expire(app, client, auth, partner, frozen):
    first = partners.issue_link(app.state.db, audit.SYSTEM, partner.id, BASE_URL, by_mail=False)
    second = partners.issue_link(app.state.db, audit.SYSTEM, partner.id, BASE_URL, by_mail=False)
    assert auth.post(f"/login/link/{first}").status_code == 404  # a new link ends the previous one
    assert auth.post(f"/login/link/{second}").status_code == 303
    assert auth.post(f"/login/link/{second}").status_code == 404  # and works once
    late = partners.issue_link(app.state.db, audit.SYSTEM, partner.id, BASE_URL, by_mail=False)
    frozen.advance(hours=settings.SETTINGS["login_link_hours"].default, seconds=1)
    assert client.get(f"/login/link/{late}").status_code == 404
    assert auth.post(f"/login/link/{late}").status_code == 404


def test_institutions_are_one_whatever_the_case_and_group_their_partners(app, client, auth, staff):
    make_partner(app, staff, institution="CHU Liège")
    make_partner(app, staff, email="b.dubois@chu.example", name="Bea Dubois", institution="  chu  LIÈGE ")
    make_partner(app, staff, email="c.claes@uz.example", name="Cas Claes", institution="UZ Leuven")
    assert institutions.names(app.state.db) == ["CHU Liège", "UZ Leuven"]
    auth.login()
    page = client.get("/partners").text
    chu = page[page.index("CHU Liège"):page.index("UZ Leuven")]
    assert "An Peeters" in chu and "Bea Dubois" in chu and "Cas Claes" not in chu
    assert len(audit_rows(app, "institution.create")) == 2


@pytest.mark.parametrize("change, reason", [
    ({"email": "staff@registry.example"}, "already exists"),
    ({"email": "not an address"}, "valid e-mail address"),
    ({"name": "   "}, "full name"),
    ({"institution": ""}, "institution"),
    ({"contact_id": "999"}, "contact person"),
    ({"language": "xx"}, "language"),
])
def test_details_are_checked(app, client, auth, staff, change, reason):
    auth.login()
    form = {"name": "An Peeters", "institution": "AZ Sint-Jan", "email": PARTNER_EMAIL, "language": "nl",
            "contact_id": str(staff.id), **change}
    refused = auth.post("/partners", form)
    assert refused.status_code == 400 and reason in refused.text
    assert users.by_email(app.state.db, PARTNER_EMAIL) is None


def test_staff_edit_a_partners_details_and_the_audit_names_the_fields(app, client, auth, staff, make_user, partner):
    other = make_user(email="other@registry.example", name="Olga Other")
    auth.login(email=other.email)  # any staff member manages any partner
    saved = auth.post(f"/partners/{partner.id}", {
        "name": "An Peeters", "function": "Head of data", "institution": "AZ Sint-Jan Brugge", "email": PARTNER_EMAIL,
        "phone": "+32 50 45 21 11", "language": "fr", "contact_id": str(other.id)})
    assert saved.headers["location"] == f"/partners/{partner.id}?notice=saved"
    changed = partners.get(app.state.db, partner.id)
    assert (changed.function, changed.institution, changed.language, changed.contact_name) == (
        "Head of data", "AZ Sint-Jan Brugge", "fr", "Olga Other")
    [row] = audit_rows(app, "partner.update")
    assert row["actor"] == other.email and '"fields": ["contact", "function", "institution", "language"]' in row["detail"]
    # Only a partner's id finds one: a staff account is as absent as an unknown id.
    assert client.get(f"/partners/{staff.id}").status_code == 404
    assert auth.post(f"/partners/{staff.id}/sessions", {"confirm": "yes"}).status_code == 404
    assert client.get("/partners/987654").status_code == 404


# -- time-boxed access -------------------------------------------------------------------------

@pytest.mark.parametrize("after, allowed", [
    (timedelta(days=13), True),                              # the day before
    (timedelta(days=14) - timedelta(seconds=1), True),       # the day of, just before the moment
    (timedelta(days=14), False),                             # the day of, at the moment
    (timedelta(days=15), False),                             # the day after
])
def test_the_password_is_valid_for_partner_password_days(app, client, auth, active_partner, frozen, after, allowed):
    object.__setattr__(app.state.config, "registry_contact", "info@registry.example, 02 250 10 10")
    frozen.advance(seconds=after.total_seconds())
    response = auth.login(email=PARTNER_EMAIL, password=NEW_PASSWORD)
    if allowed:
        assert response.status_code == 303 and client.get("/space").status_code == 200
        return
    assert response.status_code == 403 and "__Host-relais_session" not in client.cookies
    assert "Your access has ended" in response.text
    assert "Sam Staff" in response.text and "mailto:staff@registry.example" in response.text
    assert "info@registry.example, 02 250 10 10" in response.text
    [refused] = audit_rows(app, "login.refused")
    assert refused["object"] == PARTNER_EMAIL and '"reason": "access_expired"' in refused["detail"]
    # A wrong password still gets the plain answer: the expired page tells only its owner.
    assert auth.login(email=PARTNER_EMAIL, password="not the password at all").status_code == 401


def test_a_session_open_across_the_boundary_ends_at_it(app, client, auth, active_partner, frozen):
    frozen.advance(days=14, minutes=-10)
    assert auth.login(email=PARTNER_EMAIL, password=NEW_PASSWORD).status_code == 303
    frozen.advance(minutes=9, seconds=59)
    assert client.get("/space").status_code == 200
    frozen.advance(seconds=1)
    assert client.get("/space", follow_redirects=False).headers["location"].startswith("/login")
    assert app.state.db.scalar("SELECT count(*) FROM sessions") == 0
    [ended] = audit_rows(app, "session.expired")
    assert ended["object"] == PARTNER_EMAIL and '"reason": "access_expired"' in ended["detail"]


def test_a_new_password_in_time_starts_a_new_period(app, client, auth, active_partner, frozen):
    frozen.advance(days=10)
    auth.login(email=PARTNER_EMAIL, password=NEW_PASSWORD)
    other = "amber kettle orchard 7"
    assert auth.post("/account/password", {"current_password": NEW_PASSWORD, "new_password": other,
                                           "confirm_password": other}).status_code == 303
    assert partners.get(app.state.db, active_partner.id).access_until == clock.iso(frozen.moment + timedelta(days=14))
    frozen.advance(days=13)  # 23 days after the first password: the second one still works
    assert auth.login(email=PARTNER_EMAIL, password=other).status_code == 303
    frozen.advance(days=1)
    assert auth.login(email=PARTNER_EMAIL, password=other).status_code == 403


def test_staff_renew_access_after_it_ended(app, client, auth, active_partner, staff, frozen):
    frozen.advance(days=20)
    assert auth.login(email=PARTNER_EMAIL, password=NEW_PASSWORD).status_code == 403
    with TestClient(app, base_url=BASE_URL) as staff_browser:
        staff_actions = AuthActions(staff_browser)
        staff_actions.login()
        assert "Access ended on" in staff_browser.get(f"/partners/{active_partner.id}").text
        shown = staff_actions.post(f"/partners/{active_partner.id}/link", {"delivery": "mail"})
        assert "sent to the partner by e-mail" in shown.text
    [renewal] = outbox(app, "partner_activation")
    assert renewal["language"] == "nl" and renewal["subject"] == i18n.gettext("nl", "Renew your access to Relais")
    token = LINK.search(renewal["body_text"]).group(1)
    # Until the partner uses the link, the old password (expired) stays refused; with it they choose one.
    assert auth.post(f"/login/link/{token}").headers["location"] == "/account/password"
    assert client.get("/account/password").status_code == 200  # the session lives: a password is being chosen
    renewed = "cedar violin meadow 9"
    assert auth.post("/account/password", {"new_password": renewed, "confirm_password": renewed}).status_code == 303
    assert client.get("/space").status_code == 200
    assert '"purpose": "renew"' in audit_rows(app, "partner.link")[-1]["detail"]


def test_the_reminder_goes_once_per_period(app, client, auth, active_partner, frozen):
    frozen.advance(days=10, hours=23)  # 3 days and 1 hour before the end: not yet
    assert retention.purge_all(app.state)["partner reminders"] == 0
    frozen.advance(hours=2)
    assert retention.purge_all(app.state)["partner reminders"] == 1
    assert retention.purge_all(app.state)["partner reminders"] == 0
    frozen.advance(days=1)
    assert retention.purge_all(app.state)["partner reminders"] == 0
    [reminder] = outbox(app, "partner_reminder")
    assert reminder["recipient"] == f"An Peeters <{PARTNER_EMAIL}>" and reminder["language"] == "nl"
    assert f"{BASE_URL}/account/password" in reminder["body_text"] and "Sam Staff" in reminder["body_text"]
    [row] = audit_rows(app, "partner.reminder")
    assert row["actor"] == "system" and row["object"] == PARTNER_EMAIL
    # A new password is a new period, with its own reminder.
    auth.login(email=PARTNER_EMAIL, password=NEW_PASSWORD)
    other = "amber kettle orchard 7"
    auth.post("/account/password", {"current_password": NEW_PASSWORD, "new_password": other, "confirm_password": other})
    frozen.advance(days=11, hours=1)
    assert retention.purge_all(app.state)["partner reminders"] == 1
    assert len(outbox(app, "partner_reminder")) == 2


def test_no_reminder_when_the_setting_is_zero_or_the_account_deactivated(app, active_partner, frozen):
    app.state.db.write(lambda db: settings.set_value(db, audit.SYSTEM, None, "partner_reminder_days", 0))
    frozen.advance(days=12)
    assert partners.remind(app.state.db, BASE_URL) == 0
    app.state.db.write(lambda db: settings.set_value(db, audit.SYSTEM, None, "partner_reminder_days", 3))
    users.set_active(app.state.db, audit.SYSTEM, active_partner.id, False)
    assert partners.remind(app.state.db, BASE_URL) == 0


def test_the_validity_follows_the_setting(app, client, auth, partner, frozen):
    app.state.db.write(lambda db: settings.set_value(db, audit.SYSTEM, None, "partner_password_days", 2))
    activate(app, client, partner)
    assert partners.get(app.state.db, partner.id).access_until == clock.iso(frozen.moment + timedelta(days=2))


# -- forgotten passwords -----------------------------------------------------------------------

def test_forgot_password_answers_the_same_for_everyone_and_sends_what_fits(
        app, client, auth, staff, admin, active_partner, make_user, frozen):
    expired = make_partner(app, staff, email="old@lab.example", name="Olle Old", institution="Lab")
    with TestClient(app, base_url=BASE_URL) as browser:
        activate(app, browser, expired)
    users.set_active(app.state.db, audit.SYSTEM, make_user(email="gone@registry.example").id, False)
    frozen.advance(days=15)  # both partners' access has ended ...
    with TestClient(app, base_url=BASE_URL) as browser:
        activate(app, browser, partners.get(app.state.db, active_partner.id))  # ... but An's was just renewed
    assert "Forgotten password?" in client.get("/login").text
    answers = {}
    for address in [PARTNER_EMAIL, "old@lab.example", staff.email, admin.email, "nobody@nowhere.example",
                    "gone@registry.example", "not an address"]:
        response = auth.post("/login/forgot", {"email": address})
        answers[address] = (response.status_code, response.text.replace(address, ""))
    assert len(set(answers.values())) == 1 and answers[PARTNER_EMAIL][0] == 200
    assert "If an account uses this address" in answers[PARTNER_EMAIL][1]
    outcomes = {r["object"]: re.search(r'"outcome": "(\w+)"', r["detail"]).group(1) for r in audit_rows(app, "password.forgot")}
    assert outcomes == {PARTNER_EMAIL: "sent", "old@lab.example": "expired", staff.email: "sent", admin.email: "admin",
                        "nobody@nowhere.example": "unknown", "gone@registry.example": "inactive",
                        "not an address": "unknown"}
    assert all(r["actor"] == "anonymous" for r in audit_rows(app, "password.forgot"))
    [to_partner] = [r for r in outbox(app, "partner_activation") if PARTNER_EMAIL in r["recipient"]
                    and r["subject"] == NEW_PASSWORD_SUBJECT]
    [to_expired] = outbox(app, "partner_expired")
    [to_staff] = outbox(app, "password_reset")
    assert "old@lab.example" in to_expired["recipient"] and not LINK.search(to_expired["body_text"])
    assert "Sam Staff" in to_expired["body_text"]
    assert LINK.search(to_staff["body_text"]) and staff.email in to_staff["recipient"]

    # The partner's link works as any: a new password, a new period.
    token = LINK.search(to_partner["body_text"]).group(1)
    with TestClient(app, base_url=BASE_URL) as browser:
        actions = AuthActions(browser)
        assert actions.post(f"/login/link/{token}").status_code == 303
        chosen = "birch lantern harbour 3"
        assert actions.post("/account/password", {"new_password": chosen, "confirm_password": chosen}).status_code == 303
        assert browser.get("/space").status_code == 200


def test_forgot_password_is_throttled(app, client, auth, active_partner):
    for _ in range(partners.FORGOT_PER_ACCOUNT + 2):
        assert auth.post("/login/forgot", {"email": PARTNER_EMAIL}).status_code == 200
    outcomes = [re.search(r'"outcome": "(\w+)"', r["detail"]).group(1) for r in audit_rows(app, "password.forgot")]
    assert outcomes == ["sent"] * partners.FORGOT_PER_ACCOUNT + ["throttled"] * 2
    assert len([r for r in outbox(app, "partner_activation") if r["subject"] == NEW_PASSWORD_SUBJECT]) == partners.FORGOT_PER_ACCOUNT


# -- deactivate, reactivate, end sessions ------------------------------------------------------

@pytest.mark.parametrize("manager", ["staff", "admin"])
def test_staff_or_admins_deactivate_reactivate_and_end_sessions(app, client, auth, active_partner, make_user, manager):
    who = make_user(email="manager@registry.example", role=manager, name="Mia Manager")
    with TestClient(app, base_url=BASE_URL) as partner_browser:
        partner_actions = AuthActions(partner_browser)
        partner_actions.login(email=PARTNER_EMAIL, password=NEW_PASSWORD)
        auth.login(email=who.email)

        confirm = client.get(f"/partners/{active_partner.id}/sessions")
        assert confirm.status_code == 200 and "1 open session ends" in confirm.text
        # Without the confirmation nothing ends.
        unconfirmed = auth.post(f"/partners/{active_partner.id}/sessions")
        assert unconfirmed.headers["location"] == f"/partners/{active_partner.id}/sessions"
        assert partner_browser.get("/space").status_code == 200
        assert auth.post(f"/partners/{active_partner.id}/sessions", {"confirm": "yes"}).status_code == 303
        assert partner_browser.get("/space", follow_redirects=False).status_code == 303
        [ended] = audit_rows(app, "partner.sessions_ended")
        assert ended["actor"] == who.email and '"sessions": 1' in ended["detail"]

        partner_actions.login(email=PARTNER_EMAIL, password=NEW_PASSWORD)
        page = client.get(f"/partners/{active_partner.id}/deactivate")
        assert page.status_code == 200 and "Deactivate this partner?" in page.text
        assert auth.post(f"/partners/{active_partner.id}/active?active=false").headers["location"].endswith("/deactivate")
        assert users.get(app.state.db, active_partner.id).active
        assert auth.post(f"/partners/{active_partner.id}/active?active=false", {"confirm": "yes"}).status_code == 303
        assert partner_browser.get("/space", follow_redirects=False).status_code == 303
        assert partner_actions.login(email=PARTNER_EMAIL, password=NEW_PASSWORD).status_code == 401
        assert "Deactivated" in client.get("/partners").text

        assert auth.post(f"/partners/{active_partner.id}/active?active=true").status_code == 303
        assert partner_actions.login(email=PARTNER_EMAIL, password=NEW_PASSWORD).status_code == 303
    assert [r["actor"] for r in audit_rows(app) if r["action"] in ("user.deactivate", "user.activate")] == [who.email] * 2


# -- partners never reach staff pages ----------------------------------------------------------

def _guards(handler) -> set[str]:
    return {getattr(getattr(g, "func", g), "__name__", "") for g in handler.resolve_guards()}


# Routes anyone may reach: the login flow, the public pages, and the links guests open.
PUBLIC = re.compile(r"^/(|terms|healthz|favicon\.ico|login|logout|language/.*|login/.*|s/.*|p/.*|r/.*|static/.*)$")


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+):(\w+)\}", lambda m: "1" if m.group(2) == "int" else "x", path)


def test_every_route_is_public_by_design_or_guarded(app):
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.http_methods == {"OPTIONS"} and not _guards(handler):
                continue
            guards = _guards(handler)
            assert guards or PUBLIC.match(route.path), f"{route.path} has no guard"
            if guards == {"requires_login"}:  # pages for every account: their own password and such
                assert route.path.startswith("/account/"), route.path


def test_a_partner_is_refused_on_every_staff_route_and_each_try_is_audited(app, client, auth, active_partner):
    auth.login(email=PARTNER_EMAIL, password=NEW_PASSWORD)
    token = csrf_token(client)
    tried = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not _guards(handler) & {"requires_staff", "requires_admin"}:
                continue
            for method in sorted(handler.http_methods):
                path = _concrete(route.path)
                response = client.request(method, path, data={"_csrf_token": token} if method == "POST" else None,
                                          headers={"x-csrftoken": token, "tus-resumable": "1.0.0"},
                                          follow_redirects=False)
                assert response.status_code == 403, (method, path, response.status_code)
                tried.append((method, path))
    assert len(tried) >= 40 and ("GET", "/admin/users") in tried and ("POST", "/partners") in tried
    refused = [(r["detail"], r["object"]) for r in audit_rows(app, "partner.refused")]
    assert [(f'{{"method": "{m}"}}', logs.redact(p)) for m, p in tried] == refused
    assert all(r["actor"] == PARTNER_EMAIL for r in audit_rows(app, "partner.refused"))


def test_staff_are_refused_on_every_admin_route(app, client, auth, staff):
    """Whatever admin pages there are, now or later: staff get 403 on each, and nothing changes."""
    auth.login()
    token = csrf_token(client)
    trail = len(audit_rows(app))
    tried = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if "requires_admin" not in _guards(handler):
                continue
            for method in sorted(handler.http_methods):
                path = _concrete(route.path)
                response = client.request(method, path, data={"_csrf_token": token} if method == "POST" else None,
                                          headers={"x-csrftoken": token}, follow_redirects=False)
                assert response.status_code == 403, (method, path, response.status_code)
                tried.append((method, path))
    assert ("GET", "/admin/users") in tried and ("POST", "/admin/settings") in tried and len(tried) >= 10
    assert len(audit_rows(app)) == trail


def test_staff_are_not_partners(app, client, auth, staff):
    auth.login()
    assert client.get("/space").status_code == 403
    assert audit_rows(app, "partner.refused") == []


def test_every_post_needs_its_csrf_token(app, client, auth, staff, partner):
    auth.login()
    posts = [_concrete(route.path).replace("/1", f"/{partner.id}") for route in app.routes
             for h in getattr(route, "route_handlers", []) if "POST" in h.http_methods
             and (route.path.startswith("/partners") or route.path == "/login/forgot")]
    assert len(posts) == 10  # the partner's details, link, activation, sessions; their space's delete, upload, tus; an institution's rename
    before = app.state.db.scalar("SELECT count(*) FROM audit_log")
    for path in posts:
        response = client.post(path, data={"confirm": "yes", "email": PARTNER_EMAIL, "delivery": "shown"},
                               follow_redirects=False)
        if path.endswith("/upload"):  # checks the token in its multipart body itself: no file, nothing stored
            assert response.status_code == 400, path
        elif path.endswith("/tus"):  # a tus answer, not a page
            assert response.status_code == 403, path
        else:
            assert response.status_code == 403 and "Form expired" in response.text, path
    assert app.state.db.scalar("SELECT count(*) FROM audit_log") == before
    assert users.get(app.state.db, partner.id).active


def test_a_logged_out_visitor_is_sent_to_log_in(client, partner):
    response = client.get("/partners", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert client.get("/space", follow_redirects=False).headers["location"].startswith("/login")


def test_the_expiring_soon_view_lists_who_ends_this_week(app, active_partner, frozen):
    # The view compares with SQLite's own clock: put the partner's end just ahead of the real now.
    real_now = datetime.now(timezone.utc)
    app.state.db.write(lambda db: db.execute("UPDATE partners SET access_until = ? WHERE user_id = ?",
                                             [clock.iso(real_now + timedelta(days=6)), active_partner.id]))
    [row] = app.state.db.query("SELECT * FROM partners_expiring_soon")
    assert row["email"] == PARTNER_EMAIL and row["institution"] == "AZ Sint-Jan" and row["contact"] == "staff@registry.example"
    app.state.db.write(lambda db: db.execute("UPDATE partners SET access_until = ? WHERE user_id = ?",
                                             [clock.iso(real_now + timedelta(days=8)), active_partner.id]))
    assert app.state.db.query("SELECT * FROM partners_expiring_soon") == []


def test_the_admin_console_row_is_for_admins_only(client, auth, staff, admin):
    auth.login()
    assert 'class="console-nav"' not in client.get("/").text
    auth.logout()
    auth.login(email=admin.email)
    home = client.get("/").text
    console = home[home.index('class="console-nav"'):]
    console = console[:console.index("</nav>")]
    for path in ("/admin/users", "/admin/audit", "/admin/settings", "/admin/terms", "/admin/outbox", "/admin/storage"):
        assert f'href="{path}"' in console, path
