"""What a new user met: one click destroyed for good, a refresh re-sent the form, labels that all said
"deleted", a shared file deletable alone, no favicon. Confirm pages, Post/Redirect/Get, status
labels by cause, the shared-file refusal and the icon, over HTTP."""

from __future__ import annotations

import re
import struct
import zlib
from contextlib import contextmanager

import pytest
from litestar.testing import TestClient

from relais import clock
from tests.conftest import BASE_URL, AuthActions, audit_rows, csrf_token
from tests.test_shares import CSV, PDF, create_share, share_password, store
from views.common import human_size


@pytest.fixture
def share(app, auth, staff):
    """A share of two files for two recipients, by staff (logged in on ``auth``); returns its id and files."""
    auth.login()
    stored = [store(app, staff, "registry-2026.csv", CSV), store(app, staff, "pathology report.pdf", PDF)]
    create_share(auth, [s.id for s in stored], recipients="dr.peeters@hospital.example, lab@lab.example")
    return app.state.db.scalar("SELECT id FROM shares"), stored


@contextmanager
def other_browser(app, email: str):
    """Someone else (or the same person elsewhere), logged in in a browser of their own."""
    with TestClient(app, base_url=BASE_URL) as browser:
        actions = AuthActions(browser)
        assert actions.login(email=email).status_code == 303
        yield actions


def files_left(app, config, stored) -> list[bool]:
    return [app.state.db.scalar("SELECT count(*) FROM files WHERE id = ?", [s.id]) == 1
            and (config.files_dir / s.storage_name).exists() for s in stored]


# -- revoke and "Delete the files now" -----------------------------------------------------------

@pytest.mark.parametrize("action", ["revoke", "delete"])
def test_the_confirm_page_names_the_files_and_the_recipients(app, auth, share, action):
    share_id, stored = share
    detail = auth.client.get(f"/shares/{share_id}")
    # The share's page offers a link to the confirm page, not a button that destroys.
    assert f'href="/shares/{share_id}/{action}"' in detail.text
    assert f'action="/shares/{share_id}/{action}"' not in detail.text
    page = auth.client.get(f"/shares/{share_id}/{action}")
    assert page.status_code == 200
    for s in stored:
        assert s.name in page.text and human_size("en", s.size) in page.text
    assert "dr.peeters@hospital.example" in page.text and "lab@lab.example" in page.text
    assert "2 files will be deleted" in page.text and "cannot be undone" in page.text
    assert 'name="confirm" value="yes"' in page.text and f'action="/shares/{share_id}/{action}"' in page.text


@pytest.mark.parametrize("action", ["revoke", "delete"])
def test_without_the_confirmation_nothing_is_destroyed(app, config, auth, share, action):
    share_id, stored = share
    response = auth.post(f"/shares/{share_id}/{action}")  # the old one-click form
    assert response.status_code == 303 and response.headers["location"] == f"/shares/{share_id}/{action}"
    row = app.state.db.query_one("SELECT revoked_at, deleted_at FROM shares")
    assert row == {"revoked_at": None, "deleted_at": None}
    assert files_left(app, config, stored) == [True, True]
    assert not [r for r in audit_rows(app) if r["action"] in ("share.revoke", "share.delete")]


@pytest.mark.parametrize("action", ["revoke", "delete"])
def test_the_confirmation_needs_its_csrf_token(app, config, auth, share, action):
    share_id, stored = share
    response = auth.client.post(f"/shares/{share_id}/{action}", data={"confirm": "yes"}, follow_redirects=False)
    assert response.status_code == 403
    response = auth.client.post(f"/shares/{share_id}/{action}", data={"confirm": "yes", "_csrf_token": "forged" * 10},
                                follow_redirects=False)
    assert response.status_code == 403
    assert files_left(app, config, stored) == [True, True]


@pytest.mark.parametrize("action, audited, notice", [("revoke", "share.revoke", "revoked"), ("delete", "share.delete", "deleted")])
def test_confirmed_it_is_done(app, config, auth, share, action, audited, notice):
    share_id, stored = share
    response = auth.post(f"/shares/{share_id}/{action}", {"confirm": "yes"})
    assert response.status_code == 303 and response.headers["location"] == f"/shares/{share_id}?notice={notice}"
    assert files_left(app, config, stored) == [False, False]
    row = app.state.db.query_one("SELECT revoked_at, deleted_at FROM shares")
    assert row["deleted_at"] and bool(row["revoked_at"]) == (action == "revoke")
    assert [r["object"] for r in audit_rows(app, audited)] == [share_id]
    # Done: the confirm page has nothing left to ask and goes back to the share.
    assert auth.client.get(f"/shares/{share_id}/delete", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("action", ["revoke", "delete"])
def test_another_staff_member_can_neither_see_nor_confirm(app, config, share, make_user, action):
    share_id, stored = share
    make_user(email="colleague@registry.example")
    with other_browser(app, "colleague@registry.example") as colleague:
        assert colleague.client.get(f"/shares/{share_id}/{action}").status_code == 404
        assert colleague.post(f"/shares/{share_id}/{action}", {"confirm": "yes"}).status_code == 404
    assert files_left(app, config, stored) == [True, True]


def test_the_confirm_page_works_in_french(app, auth, share):
    share_id, _ = share
    auth.client.get("/language/fr")
    page = auth.client.get(f"/shares/{share_id}/revoke")
    assert "Révoquer le lien ?" in page.text and "2 fichiers seront supprimés" in page.text


# -- deactivating an account ---------------------------------------------------------------------

def test_deactivating_asks_first_naming_the_account_its_sessions_and_open_shares(app, client, auth, admin, staff):
    with other_browser(app, staff.email) as staff_browser:  # staff is logged in elsewhere
        stored = store(app, staff, "registry.csv", CSV)
        create_share(staff_browser, [stored.id], recipients="dr.peeters@hospital.example")
        share_id = app.state.db.scalar("SELECT id FROM shares")
        auth.login(email=admin.email)
        users_page = client.get("/admin/users")
        assert f'href="/admin/users/{staff.id}/deactivate"' in users_page.text
        page = client.get(f"/admin/users/{staff.id}/deactivate")
        assert page.status_code == 200
        assert "Sam Staff" in page.text and staff.email in page.text
        assert "1 open session ends" in page.text and "1 open share" in page.text
        assert f'href="/shares/{share_id}"' in page.text and "dr.peeters@hospital.example" in page.text

        # The old one-click form: a redirect to the confirm page, the account untouched.
        response = auth.post(f"/admin/users/{staff.id}/active?active=false")
        assert response.status_code == 303 and response.headers["location"] == f"/admin/users/{staff.id}/deactivate"
        assert app.state.db.scalar("SELECT active FROM users WHERE id = ?", [staff.id]) == 1
        assert staff_browser.client.get("/files").status_code == 200  # still logged in

        # Without the CSRF token: refused.
        forged = client.post(f"/admin/users/{staff.id}/active?active=false", data={"confirm": "yes"}, follow_redirects=False)
        assert forged.status_code == 403
        assert app.state.db.scalar("SELECT active FROM users WHERE id = ?", [staff.id]) == 1

        assert auth.post(f"/admin/users/{staff.id}/active?active=false", {"confirm": "yes"}).status_code == 303
        assert app.state.db.scalar("SELECT active FROM users WHERE id = ?", [staff.id]) == 0
        assert app.state.db.scalar("SELECT count(*) FROM sessions WHERE user_id = ?", [staff.id]) == 0
        assert [r["object"] for r in audit_rows(app, "user.deactivate")] == [staff.email]


def test_staff_cannot_reach_the_deactivate_page(app, auth, staff, admin):
    auth.login()
    assert auth.client.get(f"/admin/users/{admin.id}/deactivate").status_code == 403
    assert auth.post(f"/admin/users/{admin.id}/active?active=false", {"confirm": "yes"}).status_code == 403
    assert app.state.db.scalar("SELECT active FROM users WHERE id = ?", [admin.id]) == 1


# -- Send: Post/Redirect/Get, the password once ----------------------------------------------------

def test_send_redirects_and_the_password_is_shown_once(app, auth, staff):
    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    sent = auth.client.post("/shares", data={
        "file_ids": [stored.id], "recipients": "dr.peeters@hospital.example", "language": "en", "expires_days": "30",
        "password_link": "on", "_csrf_token": csrf_token(auth.client)}, follow_redirects=False)
    assert sent.status_code == 303
    share_id = app.state.db.scalar("SELECT id FROM shares")
    assert sent.headers["location"] == f"/shares/{share_id}/created"  # no secret in the URL
    first = auth.client.get(sent.headers["location"])
    assert first.status_code == 200
    password = share_password(first.text)
    assert app.state.hasher.verify(app.state.db.scalar("SELECT password_hash FROM shares"), password)
    assert re.search(r"https://relais\.test/p/[A-Za-z0-9_-]+", first.text)
    # A refresh, the back button: the page is there, the password is not, and nothing is sent again.
    again = auth.client.get(sent.headers["location"])
    assert again.status_code == 200 and password not in again.text and "/p/" not in again.text
    assert "is not shown again" in again.text
    assert app.state.db.scalar("SELECT count(*) FROM shares") == 1


def test_only_the_session_that_sent_sees_the_password(app, auth, staff, admin):
    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    sent = auth.client.post("/shares", data={
        "file_ids": [stored.id], "recipients": "dr.peeters@hospital.example", "language": "en", "expires_days": "30",
        "_csrf_token": csrf_token(auth.client)}, follow_redirects=False)
    with other_browser(app, admin.email) as elsewhere:  # an admin may see the share, not its password
        peek = elsewhere.client.get(sent.headers["location"])
        assert peek.status_code == 200 and 'id="share-password"' not in peek.text
    assert 'id="share-password"' in auth.client.get(sent.headers["location"]).text


def test_what_is_kept_for_one_display_is_taken_once_and_not_kept_long():
    from relais.once import ShownOnce

    kept = ShownOnce(seconds=600, most=2)
    kept.put("a", 1)
    assert kept.take("a") == 1 and kept.take("a") is None
    for key in ("b", "c", "d"):
        kept.put(key, key)
    assert kept.take("b") is None and kept.take("d") == "d"  # the oldest made room
    stale = ShownOnce(seconds=-1)  # already past its time
    stale.put("e", 1)
    assert stale.take("e") is None


def test_a_refused_send_still_answers_with_the_form(app, auth, staff):
    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    response = create_share(auth, [stored.id], recipients="not an address")
    assert response.status_code == 400 and "not a valid e-mail address" in response.text


# -- status labels -------------------------------------------------------------------------------

def make_shares(app, auth, staff, frozen) -> dict[str, str]:
    """One share in each state, as it comes about; returns {state: share id}."""
    from relais import retention, shares

    auth.login()
    ids = {}
    for state in ("active", "downloaded", "expired", "locked", "revoked", "deleted", "downloaded_deleted"):
        stored = store(app, staff, f"{state}.csv", CSV)
        create_share(auth, [stored.id], delete_after_download="on" if state == "downloaded_deleted" else "",
                     expires_days="1" if state == "expired" else "30")
        ids[state] = app.state.db.scalar("SELECT id FROM shares ORDER BY created_at DESC, rowid DESC LIMIT 1")
        frozen.advance(minutes=1)
    db, config, now = app.state.db, app.state.config, clock.now_iso()
    db.execute("UPDATE shares SET downloaded_at = ? WHERE id IN (?, ?)", [now, ids["downloaded"], ids["downloaded_deleted"]])
    shares.delete(db, config, staff_who(staff), shares.get(db.conn, ids["downloaded_deleted"]), action="share.delete_after_download")
    db.execute("UPDATE shares SET locked_at = ? WHERE id = ?", [now, ids["locked"]])
    shares.revoke(db, config, staff_who(staff), shares.get(db.conn, ids["revoked"]))
    shares.delete(db, config, staff_who(staff), shares.get(db.conn, ids["deleted"]))
    frozen.advance(days=2)
    retention.purge_all(app.state)  # the expired and the locked share lose their files
    auth.login()
    return ids


def staff_who(staff):
    from relais import audit

    return audit.Who(staff.email, "127.0.0.1", "test")


EXPECTED = {  # state: (class, label, "(files deleted)" shown)
    "active": ("active", "Active", False), "downloaded": ("downloaded", "Downloaded", False),
    "expired": ("expired", "Expired", True), "locked": ("locked", "Locked", True),
    "revoked": ("revoked", "Revoked", True), "deleted": ("deleted", "Files deleted", False),
    "downloaded_deleted": ("downloaded", "Downloaded", True),
}


def test_each_status_has_its_own_label_in_the_list_and_on_the_share(app, auth, staff, frozen):
    ids = make_shares(app, auth, staff, frozen)
    listing = auth.client.get("/shares").text
    for state, share_id in ids.items():
        css, label, gone = EXPECTED[state]
        row = re.search(rf'href="/shares/{share_id}".*?</tr>', listing, re.S).group(0)
        assert f'<span class="status status-{css}">{label}</span>' in row, (state, row)
        assert ("(files deleted)" in row) == gone, state
        detail = auth.client.get(f"/shares/{share_id}").text
        assert f'<span class="status status-{css}">{label}</span>' in detail, state
        assert ("(files deleted)" in detail) == gone, state


def test_status_labels_are_translated(app, auth, staff, frozen):
    ids = make_shares(app, auth, staff, frozen)
    auth.client.get("/language/fr")
    listing = auth.client.get("/shares").text
    for label in ("Actif", "Téléchargé", "Expiré", "Bloqué", "Révoqué", "Fichiers supprimés", "(fichiers supprimés)"):
        assert label in listing, label
    assert ids


def test_each_status_has_a_symbol_besides_its_colour():
    css = open("static/relais.css", encoding="utf-8").read()
    symbols = {state: re.search(rf'\.status-{state}::before \{{ content: "([^"]+)"', css).group(1) for state in
               ("active", "downloaded", "expired", "locked", "revoked", "deleted")}
    assert len(set(symbols.values())) == 6


# -- a shared file is deleted with its share, never alone --------------------------------------------

def test_a_shared_file_cannot_be_deleted_from_my_files(app, config, auth, share):
    share_id, stored = share
    response = auth.post(f"/files/{stored[0].id}/delete")
    assert response.status_code == 409
    assert "it is deleted with the share" in response.text and f'href="/shares/{share_id}"' in response.text
    htmx = auth.client.post(f"/files/{stored[0].id}/delete", headers={"x-csrftoken": csrf_token(auth.client),
                                                                     "hx-request": "true"})
    assert htmx.status_code == 200 and 'role="alert"' in htmx.text and f'href="/shares/{share_id}"' in htmx.text
    assert files_left(app, config, stored) == [True, True]
    assert app.state.db.scalar("SELECT count(*) FROM share_files WHERE share_id = ?", [share_id]) == 2
    assert not audit_rows(app, "file.delete")


def test_in_french_the_refusal_is_french(app, auth, share):
    _, stored = share
    auth.client.get("/language/fr")
    response = auth.post(f"/files/{stored[0].id}/delete")
    assert response.status_code == 409 and "il est supprimé avec le partage" in response.text


def test_a_file_not_shared_is_still_deleted(app, config, auth, staff):
    auth.login()
    stored = store(app, staff, "alone.csv", CSV)
    response = auth.post(f"/files/{stored.id}/delete")
    assert response.status_code == 303 and files_left(app, config, [stored]) == [False]


def test_the_send_form_and_my_files_say_that_sent_files_move(app, auth, staff):
    auth.login()
    assert "they belong to the share from then on, and are deleted for good with it" in auth.client.get("/shares/new").text
    assert "A file you send moves to its share" in auth.client.get("/files").text


# -- the favicon -------------------------------------------------------------------------------------

def test_the_favicon_is_served(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    reserved, kind, count = struct.unpack("<HHH", icon.content[:6])
    assert (reserved, kind, count) == (0, 1, 1)
    width, height, _, _, _, _, length, offset = struct.unpack("<BBBBHHII", icon.content[6:22])
    png = icon.content[offset:offset + length]
    assert (width, height) == (32, 32) and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) == length
    idat = png[png.index(b"IDAT") + 4:png.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == 32 * (1 + 32 * 4)  # 32 rows of 32 RGBA pixels
    assert icon.headers["cache-control"].startswith("public")


def test_pages_name_the_svg_icon(client):
    page = client.get("/login")
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page.text
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content

