"""The admin's accounts page: every account (staff, admins, partners) filtered by role and searched,
a page at a time; the role change between staff and admin behind a confirmation, in force at the
person's next request; partners' access reset from here (views/admin.py, relais.users)."""

from __future__ import annotations

import re

import pytest
from litestar.testing import TestClient

from relais import audit, partners, users
from tests.conftest import BASE_URL, AuthActions, audit_rows
from tests.test_partners import LINK, NEW_PASSWORD, PARTNER_EMAIL, active_partner, make_partner, outbox, partner  # noqa: F401
from tests.test_two_factor import enrol, require_for_admins


@pytest.fixture
def other_browser(app):
    """A second browser, for the person whose account the admin changes."""
    with TestClient(app, base_url=BASE_URL) as browser:
        yield browser


def role_of(app, user) -> str:
    return users.get(app.state.db, user.id).role


def rows_of(page_text: str) -> list[str]:
    """The e-mail addresses in the accounts table, in order (none when no account matches)."""
    if "<tbody>" not in page_text:
        return []
    body = page_text[page_text.index("<tbody>"):page_text.index("</tbody>")]
    return re.findall(r"<tr>\s*<td>([^<]+)</td>", body)


# -- changing a role ---------------------------------------------------------------------------------

def test_an_admin_makes_staff_an_admin_through_a_confirmation(app, client, auth, admin, staff, other_browser):
    AuthActions(other_browser).login()  # the staff member, logged in before the change
    assert other_browser.get("/admin/users").status_code == 403
    auth.login(email=admin.email)
    listing = client.get("/admin/users")
    assert f'href="/admin/users/{staff.id}/role"' in listing.text and "Make admin" in listing.text

    asked = client.get(f"/admin/users/{staff.id}/role")
    assert asked.status_code == 200 and "Make this account an admin?" in asked.text
    assert f"Make {staff.email} an admin" in asked.text and 'name="role" value="admin"' in asked.text
    unconfirmed = auth.post(f"/admin/users/{staff.id}/role", {"role": "admin"})
    assert unconfirmed.status_code == 303 and unconfirmed.headers["location"] == f"/admin/users/{staff.id}/role"
    assert role_of(app, staff) == "staff" and audit_rows(app, "user.role_change") == []

    done = auth.post(f"/admin/users/{staff.id}/role", {"role": "admin", "confirm": "yes"})
    assert done.status_code == 303 and done.headers["location"] == "/admin/users?role_changed"
    assert role_of(app, staff) == "admin"
    assert "The role was changed" in client.get(done.headers["location"]).text
    [row] = audit_rows(app, "user.role_change")
    assert row["actor"] == admin.email and row["object"] == staff.email
    assert '"from_role": "staff"' in row["detail"] and '"role": "admin"' in row["detail"]
    # Their session opened as staff has the admin pages at its next request.
    assert other_browser.get("/admin/users").status_code == 200
    # The same form sent twice changes nothing more.
    assert auth.post(f"/admin/users/{staff.id}/role", {"role": "admin", "confirm": "yes"}).status_code == 303
    assert len(audit_rows(app, "user.role_change")) == 1


def test_a_demoted_admin_is_refused_the_admin_pages_at_their_next_request(app, client, auth, admin, make_user,
                                                                           other_browser):
    second = make_user(email="second.admin@registry.example", role="admin", name="Bo Admin")
    AuthActions(other_browser).login(email=second.email)
    assert other_browser.get("/admin/settings").status_code == 200
    auth.login(email=admin.email)
    asked = client.get(f"/admin/users/{second.id}/role")
    assert "Make this admin staff?" in asked.text and "lose the admin console at once" in asked.text
    assert auth.post(f"/admin/users/{second.id}/role", {"role": "staff", "confirm": "yes"}).status_code == 303
    assert role_of(app, second) == "staff"
    for path in ("/admin/users", "/admin/audit", "/admin/settings"):
        assert other_browser.get(path).status_code == 403, path
    assert other_browser.get("/shares").status_code == 200  # still staff, still logged in
    assert 'href="/admin/users"' not in other_browser.get("/").text  # and the menu says so
    row = audit_rows(app, "user.role_change")[0]
    assert '"from_role": "admin"' in row["detail"] and '"role": "staff"' in row["detail"]


def test_the_last_active_admin_stays_an_admin(app, client, auth, admin, make_user):
    retired = make_user(email="retired.admin@registry.example", role="admin", name="Old Admin")
    users.set_active(app.state.db, audit.SYSTEM, retired.id, False)  # a deactivated admin does not count
    auth.login(email=admin.email)
    refused = auth.post(f"/admin/users/{admin.id}/role", {"role": "staff", "confirm": "yes"})
    assert refused.status_code == 400 and "The last active admin cannot become staff" in refused.text
    assert role_of(app, admin) == "admin" and audit_rows(app, "user.role_change") == []
    assert client.get("/admin/users").status_code == 200


def test_an_admin_who_makes_themselves_staff_leaves_the_admin_pages(app, client, auth, admin, make_user):
    make_user(email="second.admin@registry.example", role="admin", name="Bo Admin")
    auth.login(email=admin.email)
    asked = client.get(f"/admin/users/{admin.id}/role")
    assert "This is your own account" in asked.text
    done = auth.post(f"/admin/users/{admin.id}/role", {"role": "staff", "confirm": "yes"})
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert client.get("/admin/users").status_code == 403


def test_partners_never_change_role_and_staff_never_become_partners(app, client, auth, admin, staff, partner):
    auth.login(email=admin.email)
    listing = client.get("/admin/users")
    assert f"/admin/users/{partner.id}/role" not in listing.text
    page = client.get(f"/admin/users/{partner.id}/role")
    assert page.status_code == 400 and "A partner account never becomes staff or admin" in page.text
    for account, role in ((partner, "admin"), (partner, "staff"), (staff, "partner")):
        refused = auth.post(f"/admin/users/{account.id}/role", {"role": role, "confirm": "yes"})
        assert refused.status_code == 400 and "never becomes staff or admin" in refused.text
    bad = auth.post(f"/admin/users/{staff.id}/role", {"role": "owner", "confirm": "yes"})
    assert bad.status_code == 400 and "Choose a role." in bad.text
    assert auth.post("/admin/users/9999/role", {"role": "admin", "confirm": "yes"}).status_code == 404
    assert client.get("/admin/users/9999/role").status_code == 404
    assert role_of(app, partner) == "partner" and role_of(app, staff) == "staff"
    assert audit_rows(app, "user.role_change") == []


def test_a_role_change_without_its_csrf_token_is_refused(app, client, auth, admin, staff):
    auth.login(email=admin.email)
    refused = client.post(f"/admin/users/{staff.id}/role", data={"role": "admin", "confirm": "yes"},
                          follow_redirects=False)
    assert refused.status_code == 403 and "Form expired" in refused.text
    assert role_of(app, staff) == "staff" and audit_rows(app, "user.role_change") == []


def test_a_new_admin_without_a_second_factor_sets_one_up_before_anything_else(app, client, auth, admin, staff,
                                                                                frozen, other_browser):
    auth.login(email=admin.email)
    enrol(app, users.get(app.state.db, admin.id), frozen)  # the acting admin has one; their session goes on
    require_for_admins(app)
    AuthActions(other_browser).login()
    assert other_browser.get("/shares").status_code == 200  # staff need none

    asked = client.get(f"/admin/users/{staff.id}/role")
    assert "asked to set one up, before anything else" in asked.text
    assert auth.post(f"/admin/users/{staff.id}/role", {"role": "admin", "confirm": "yes"}).status_code == 303
    for path in ("/shares", "/admin/users"):  # their open session first, before any page
        moved = other_browser.get(path, follow_redirects=False)
        assert moved.status_code == 303 and moved.headers["location"] == "/account/two-factor/enrol", path
    assert "must log in with a second factor" in other_browser.get("/account/two-factor/enrol").text
    # And at their next login, with the password alone.
    AuthActions(other_browser).logout()
    assert AuthActions(other_browser).login().status_code == 303
    assert other_browser.get("/", follow_redirects=False).headers["location"] == "/account/two-factor/enrol"


# -- every account in one place ------------------------------------------------------------------------

def test_the_role_filter_and_the_search(app, client, auth, admin, staff, make_user, frozen):
    make_user(email="kim.jacobs@registry.example", name="Kim Jacobs")
    peeters = make_partner(app, staff)
    make_partner(app, staff, email="b.dubois@chu.example", name="Bea Dubois", institution="CHU Liège")
    users.set_active(app.state.db, audit.SYSTEM, peeters.id, False)
    auth.login(email=admin.email)

    assert rows_of(client.get("/admin/users").text) == [
        admin.email, PARTNER_EMAIL, "b.dubois@chu.example", "kim.jacobs@registry.example", staff.email]
    only_partners = client.get("/admin/users", params={"role": "partner"}).text
    assert rows_of(only_partners) == [PARTNER_EMAIL, "b.dubois@chu.example"]
    assert '<option value="partner" selected>' in only_partners and "2 accounts" in only_partners
    # Partners with their institution (a link to it), their page, their state of access.
    assert f'href="/partners/{peeters.id}">An Peeters</a>' in only_partners
    assert f'href="/partners/institutions/{peeters.institution_id}">AZ Sint-Jan</a>' in only_partners
    assert "Deactivated" in only_partners and "Not activated yet" in only_partners
    assert rows_of(client.get("/admin/users", params={"role": "admin"}).text) == [admin.email]
    assert rows_of(client.get("/admin/users", params={"role": "staff"}).text) == ["kim.jacobs@registry.example",
                                                                                 staff.email]
    # By name or address, any case, each word; % and _ are letters like the others.
    assert rows_of(client.get("/admin/users", params={"q": "PEETERS"}).text) == [PARTNER_EMAIL]
    assert rows_of(client.get("/admin/users", params={"q": "registry.example kim"}).text) == [
        "kim.jacobs@registry.example"]
    assert rows_of(client.get("/admin/users", params={"q": "chu", "role": "staff"}).text) == []
    nothing = client.get("/admin/users", params={"q": "%"}).text
    assert "No account matches." in nothing and 'value="%"' in nothing
    assert rows_of(client.get("/admin/users", params={"role": "owner"}).text)[0] == admin.email  # unknown: all


def test_the_accounts_are_paged_and_the_pages_keep_the_filter(app, client, auth, admin, make_user):
    for n in range(55):
        users.create(app.state.db, app.state.hasher, audit.SYSTEM, email=f"person{n:02}@registry.example",
                     name=f"Person {n:02}", role="staff")
    auth.login(email=admin.email)
    first = client.get("/admin/users", params={"role": "staff", "q": "person"}).text
    assert len(rows_of(first)) == 50 and "55 accounts" in first and "Page 1 of 2" in first
    assert 'href="/admin/users?role=staff&amp;q=person&amp;page=2"' in first
    second = client.get("/admin/users", params={"role": "staff", "q": "person", "page": "2"}).text
    assert rows_of(second) == [f"person{n}@registry.example" for n in range(50, 55)]
    # An action on page 2 brings page 2 back, filtered.
    target = users.by_email(app.state.db, "person52@registry.example")["id"]
    moved = auth.post(f"/admin/users/{target}/active?active=false&role=staff&q=person&page=2", {"confirm": "yes"})
    assert moved.status_code == 303 and moved.headers["location"] == "/admin/users?role=staff&q=person&page=2"


def test_an_admin_resets_a_partners_access_and_the_link_works_once(app, client, auth, admin, active_partner,
                                                                    other_browser):
    auth.login(email=admin.email)
    listing = client.get("/admin/users", params={"role": "partner"}).text
    assert f'action="/admin/users/{active_partner.id}/access?role=partner"' in listing
    assert "Reset access, show the link" in listing and f"/admin/users/{active_partner.id}/login-link" not in listing

    shown = auth.post(f"/admin/users/{active_partner.id}/access?role=partner", {"delivery": "shown"})
    assert shown.status_code == 200 and "shown only once" in shown.text and PARTNER_EMAIL in shown.text
    token = LINK.search(shown.text).group(1)
    assert shown.text.count(token) == 1 and token not in client.get("/admin/users").text
    assert rows_of(shown.text) == [PARTNER_EMAIL]  # the filtered list, as it was
    assert outbox(app, "partner_activation") == []
    [row] = [r for r in audit_rows(app, "partner.link") if r["actor"] == admin.email]
    assert '"purpose": "renew"' in row["detail"] and '"delivery": "shown"' in row["detail"]

    # The partner chooses a new password with it, and logs in with that one.
    partner_auth = AuthActions(other_browser)
    assert partner_auth.post(f"/login/link/{token}").headers["location"] == "/account/password"
    chosen = partner_auth.post("/account/password", {"new_password": "slate meadow copper kite",
                                                     "confirm_password": "slate meadow copper kite"})
    assert chosen.status_code == 303
    partner_auth.logout()
    assert partner_auth.post(f"/login/link/{token}").status_code == 404  # once
    assert partner_auth.login(email=PARTNER_EMAIL, password=NEW_PASSWORD).status_code == 401  # the old one is gone
    assert partner_auth.login(email=PARTNER_EMAIL, password="slate meadow copper kite").status_code == 303
    assert audit_rows(app, "user.login_link_used")[-1]["object"] == PARTNER_EMAIL


def test_a_partners_reset_link_by_mail_and_the_refusals(app, client, auth, admin, staff, partner):
    auth.login(email=admin.email)
    mailed = auth.post(f"/admin/users/{partner.id}/access", {"delivery": "mail"})
    assert mailed.status_code == 200 and f"sent to {PARTNER_EMAIL} by e-mail" in mailed.text
    assert not LINK.search(mailed.text)
    [message] = outbox(app, "partner_activation")
    assert message["recipient"] == f"An Peeters <{PARTNER_EMAIL}>" and message["object"] == PARTNER_EMAIL
    # The staff accounts' own button gives a partner their activation link too, never a bare login link.
    shown = auth.post(f"/admin/users/{partner.id}/login-link")
    assert LINK.search(shown.text) and "Read this one-time link out to the partner" in shown.text
    assert len(audit_rows(app, "partner.link")) == 2

    assert auth.post(f"/admin/users/{staff.id}/access", {"delivery": "shown"}).status_code == 404
    assert auth.post("/admin/users/9999/access", {"delivery": "shown"}).status_code == 404
    users.set_active(app.state.db, audit.SYSTEM, partner.id, False)
    refused = auth.post(f"/admin/users/{partner.id}/access", {"delivery": "shown"})
    assert refused.status_code == 400 and "Reactivate the account first." in refused.text
    assert not LINK.search(refused.text) and len(audit_rows(app, "partner.link")) == 2


def test_an_admin_deactivates_and_reactivates_a_partner_from_the_accounts_page(app, client, auth, admin,
                                                                                active_partner, other_browser):
    AuthActions(other_browser).login(email=PARTNER_EMAIL, password=NEW_PASSWORD)
    assert other_browser.get("/space").status_code == 200
    auth.login(email=admin.email)
    asked = client.get(f"/admin/users/{active_partner.id}/deactivate?role=partner")
    assert asked.status_code == 200 and "1 open session ends" in asked.text and "open share" not in asked.text
    assert f'action="/admin/users/{active_partner.id}/active?active=false&amp;role=partner"' in asked.text
    done = auth.post(f"/admin/users/{active_partner.id}/active?active=false&role=partner", {"confirm": "yes"})
    assert done.headers["location"] == "/admin/users?role=partner"
    assert not partners.get(app.state.db, active_partner.id).active
    assert other_browser.get("/space", follow_redirects=False).headers["location"].startswith("/login")
    assert f"/admin/users/{active_partner.id}/active?active=true" in client.get("/admin/users?role=partner").text
    assert auth.post(f"/admin/users/{active_partner.id}/active?active=true&role=partner").status_code == 303
    assert partners.get(app.state.db, active_partner.id).active
    assert [r["action"] for r in audit_rows(app) if r["action"] in ("user.deactivate", "user.activate")] == [
        "user.deactivate", "user.activate"]


def test_the_accounts_page_offers_a_new_partner(client, auth, admin):
    auth.login(email=admin.email)
    assert 'href="/partners/new"' in client.get("/admin/users").text
    assert client.get("/partners/new").status_code == 200  # admins are staff too


def test_an_admin_who_never_logged_in_is_not_another_admin(app, client, auth, admin):
    """Admin A creates admin B, who has not used their login link yet (no password): B cannot log
    in, so A is still the last admin and may neither become staff nor deactivate themselves."""
    auth.login(email=admin.email)
    created = auth.post("/admin/users", {"email": "bo.new@registry.example", "name": "Bo New", "role": "admin"})
    assert created.status_code == 201
    newcomer = users.get(app.state.db, users.by_email(app.state.db, "bo.new@registry.example")["id"])
    assert newcomer.role == "admin" and newcomer.active
    demoted = auth.post(f"/admin/users/{admin.id}/role", {"role": "staff", "confirm": "yes"})
    assert demoted.status_code == 400 and "The last active admin cannot become staff" in demoted.text
    deactivated = auth.post(f"/admin/users/{admin.id}/active?active=false", {"confirm": "yes"})
    assert deactivated.status_code == 400 and "The last active admin cannot be deactivated." in deactivated.text
    assert role_of(app, admin) == "admin" and users.get(app.state.db, admin.id).active
    assert audit_rows(app, "user.role_change") == [] and audit_rows(app, "user.deactivate") == []
    # B (who cannot log in) may still be deactivated or made staff: A remains.
    assert auth.post(f"/admin/users/{newcomer.id}/role", {"role": "staff", "confirm": "yes"}).status_code == 303
    assert role_of(app, newcomer) == "staff"


def test_a_role_change_to_the_same_role_says_nothing_changed(app, client, auth, admin, staff):
    auth.login(email=admin.email)
    same = auth.post(f"/admin/users/{staff.id}/role", {"role": "staff", "confirm": "yes"})
    assert same.status_code == 303 and same.headers["location"] == "/admin/users"
    assert "The role was changed" not in client.get(same.headers["location"]).text
    assert audit_rows(app, "user.role_change") == []


def test_a_partner_deactivated_while_their_link_is_made_is_refused_clearly(app, client, auth, admin, partner,
                                                                          monkeypatch):
    """Another admin deactivates the partner between the account's read and the link's write."""
    real = partners.issue_link

    def deactivated_first(database, *args, **kwargs):
        users.set_active(database, audit.SYSTEM, partner.id, False)
        return real(database, *args, **kwargs)

    monkeypatch.setattr(partners, "issue_link", deactivated_first)
    auth.login(email=admin.email)
    refused = auth.post(f"/admin/users/{partner.id}/access", {"delivery": "shown"})
    assert refused.status_code == 400 and "Reactivate the account first." in refused.text
    assert not LINK.search(refused.text) and audit_rows(app, "partner.link") == []
