"""Times in the registry's zone with its name, in each language; each person's language on their
account, and every e-mail to them in it."""

from __future__ import annotations

import html
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from relais import audit, config as config_module, settings, times
from tests.conftest import BASE_URL, AuthActions, audit_rows
from tests.test_shares import CSV, create_share, link_token, share_password, store, unlock

WINTER = "2026-11-24T09:00:00.000000+00:00"  # 10:00 in Brussels (CET, UTC+1)
SUMMER = "2026-07-01T09:00:05.000000+00:00"  # 11:00 in Brussels (CEST, UTC+2)
BRUSSELS = times.zone("Europe/Brussels")


@pytest.mark.parametrize("iso, lang, date, expected", [
    (WINTER, "nl", "long", "24 november 2026, 10:00 CET"),
    (SUMMER, "nl", "long", "1 juli 2026, 11:00 CEST"),
    (WINTER, "fr", "medium", "24 nov. 2026, 10:00 UTC+01:00"),
    (SUMMER, "fr", "long", "1 juillet 2026, 11:00 UTC+02:00"),
    (WINTER, "de", "medium", "24.11.2026, 10:00 MEZ"),
    (SUMMER, "de", "long", "1. Juli 2026, 11:00 MESZ"),
    (WINTER, "en", "medium", "24 Nov 2026, 10:00 CET"),
    (SUMMER, "en", "long", "1 July 2026, 11:00 CEST"),
])
def test_a_time_in_each_language_with_its_zone(iso, lang, date, expected):
    assert times.show(iso, lang, date=date, where=BRUSSELS) == expected


def test_seconds_and_other_zones():
    assert times.show(SUMMER, "en", seconds=True, where=BRUSSELS) == "1 Jul 2026, 11:00:05 CEST"
    assert times.show(WINTER, "en", where=times.zone("UTC")) == "24 Nov 2026, 09:00 UTC"
    assert times.show(WINTER, "fr", where=times.zone("Asia/Kolkata")) == "24 nov. 2026, 14:30 UTC+05:30"
    assert times.show(None, "en") == "" and times.show("", "nl") == ""
    assert times.show("2026-11-24T09:00:00", "en", where=BRUSSELS) == "24 Nov 2026, 10:00 CET"  # bare: UTC


def test_the_zone_is_a_setting_with_brussels_by_default(tmp_path):
    assert config_module.from_env({}).timezone == "Europe/Brussels"
    assert config_module.from_env({"RELAIS_TIMEZONE": "America/New_York"}).timezone == "America/New_York"
    with pytest.raises(times.UnknownZone, match="RELAIS_TIMEZONE='Europe/Bruxelles' is not a known time zone"):
        config_module.from_env({"RELAIS_TIMEZONE": "Europe/Bruxelles"})
    with pytest.raises(times.UnknownZone):
        config_module.from_env({"RELAIS_TIMEZONE": "../../etc/passwd"})


def test_an_unknown_zone_stops_the_start_with_a_clear_message(tmp_path):
    env = {"RELAIS_DATA_DIR": str(tmp_path / "data"), "RELAIS_TIMEZONE": "Mars/Olympus", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "app.py", "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: RELAIS_TIMEZONE='Mars/Olympus' is not a known time zone: use an IANA name"
                                     " such as Europe/Brussels")
    assert not (tmp_path / "data").exists()  # refused before anything was made


def use_language(client, lang):
    """Click the language switch on one of Relais' own pages (as the browser says, Fetch Metadata)."""
    response = client.get(f"/language/{lang}?next=/", headers={"sec-fetch-site": "same-origin"}, follow_redirects=False)
    assert response.status_code == 303


def language_of(app, email):
    return app.state.db.scalar("SELECT language FROM users WHERE email = ?", [email])


# -- pages -------------------------------------------------------------------------------------

def test_pages_in_french_show_french_times_in_brussels(app, auth, staff, frozen):
    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    create_share(auth, [stored.id], expires_days="30")
    use_language(auth.client, "fr")
    share_id = app.state.db.scalar("SELECT id FROM shares")
    listing = html.unescape(auth.client.get("/shares").text)
    assert "24 nov. 2026, 10:00 UTC+01:00" in listing  # created
    assert "24 déc. 2026, 10:00 UTC+01:00" in listing  # valid until, 30 days later
    detail = html.unescape(auth.client.get(f"/shares/{share_id}").text)
    assert "24 déc. 2026, 10:00 UTC+01:00" in detail and "UTC</" not in detail and "09:00" not in detail


def test_pages_in_dutch_and_in_summer(app, auth, staff, frozen):
    frozen.moment = datetime(2026, 7, 1, 9, 0, tzinfo=timezone.utc)
    auth.login()
    store(app, staff, "registry.csv", CSV)
    use_language(auth.client, "nl")
    page = html.unescape(auth.client.get("/files").text)
    assert "1 jul 2026, 11:00 CEST" in page


def test_the_recipient_sees_the_expiry_in_the_registrys_zone(app, auth, staff, frozen):
    from litestar.testing import TestClient

    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    created = create_share(auth, [stored.id], expires_days="10")
    with TestClient(app, base_url=BASE_URL) as guest:
        guest.get("/language/de")
        link = f"/s/{link_token(app)}"
        assert unlock(guest, link, share_password(created.text)).status_code == 303
        assert "Der Link ist bis 04.12.2026, 10:00 MEZ gültig." in html.unescape(guest.get(link).text)


@pytest.fixture
def new_york(config):
    return config.replace(timezone="America/New_York")


def test_another_registry_zone_applies_to_pages_and_mails(new_york, auth, staff, frozen):
    from app import create_app
    from litestar.testing import TestClient

    app = create_app(new_york)
    try:
        with TestClient(app, base_url=BASE_URL) as client:
            helper = AuthActions(client)
            helper.login()
            stored = store(app, staff, "registry.csv", CSV)
            create_share(helper, [stored.id], expires_days="1")
            assert "24 Nov 2026, 04:00" in html.unescape(client.get("/shares").text)
            body = app.state.db.scalar("SELECT body_text FROM outbox WHERE kind = 'share'")
            assert "25 November 2026, 04:00" in body
    finally:
        app.state.db.close()
        times.use_zone("Europe/Brussels")


# -- the language on the account -------------------------------------------------------------

def test_the_switch_stores_the_language_on_the_account(app, auth, staff):
    auth.login()
    use_language(auth.client, "nl")
    assert language_of(app, staff.email) == "nl"
    [row] = audit_rows(app, "user.language")
    assert row["actor"] == staff.email and '"language": "nl"' in row["detail"]
    use_language(auth.client, "nl")  # no change, no new row
    assert len(audit_rows(app, "user.language")) == 1


def test_a_link_from_another_site_sets_the_cookie_only(app, auth, staff):
    auth.login()
    response = auth.client.get("/language/de", headers={"sec-fetch-site": "cross-site"}, follow_redirects=False)
    assert response.status_code == 303 and "__Host-relais_lang=de" in response.headers["set-cookie"]
    assert language_of(app, staff.email) == "en"
    assert audit_rows(app, "user.language") == []


def test_anonymous_visitors_keep_the_cookie(app, client, staff):
    response = client.get("/language/fr", headers={"sec-fetch-site": "same-origin"}, follow_redirects=False)
    assert "__Host-relais_lang=fr" in response.headers["set-cookie"]
    assert language_of(app, staff.email) == "en" and audit_rows(app, "user.language") == []


def test_logging_in_with_a_chosen_language_stores_it(app, client, auth, staff):
    client.get("/language/nl")  # on the login page, before logging in
    assert auth.login().status_code == 303
    assert language_of(app, staff.email) == "nl"
    assert audit_rows(app, "user.language")[0]["actor"] == staff.email


def test_logging_in_with_a_browser_in_french_does_not_store_it(app, client, auth, staff):
    """Only a choice is stored: the browser's preference may be someone else's (tests/test_auth.py)."""
    assert auth.login(headers={"accept-language": "fr-BE,fr;q=0.9"}).status_code == 303
    assert language_of(app, staff.email) == "en"


# -- e-mails to staff --------------------------------------------------------------------------

def dutch_staff_shares_a_file(app, auth, staff):
    auth.login()
    use_language(auth.client, "nl")
    stored = store(app, staff, "registry.csv", CSV)
    created = create_share(auth, [stored.id], language="en")
    return f"/s/{link_token(app)}", share_password(created.text), stored


@pytest.mark.parametrize("moment, expected", [
    (datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc), "24 november 2026, 10:00 CET"),
    (datetime(2026, 7, 1, 9, 0, tzinfo=timezone.utc), "1 juli 2026, 11:00 CEST"),
])
def test_a_dutch_speaking_owner_gets_the_receipt_in_dutch_in_brussels_time(app, auth, staff, frozen, moment, expected):
    from litestar.testing import TestClient

    frozen.moment = moment
    link, password, stored = dutch_staff_shares_a_file(app, auth, staff)
    with TestClient(app, base_url=BASE_URL) as guest:
        unlock(guest, link, password)
        assert guest.get(f"{link}/files/{stored.id}").content == CSV
    receipt = app.state.db.query_one("SELECT * FROM outbox WHERE kind = 'receipt'")
    assert receipt["language"] == "nl" and receipt["subject"] == "Uw bestanden zijn gedownload"
    assert expected in receipt["body_text"] and expected in html.unescape(receipt["body_html"])
    # The recipient's mail stays in the language the owner chose for it.
    assert app.state.db.scalar("SELECT language FROM outbox WHERE kind = 'share'") == "en"


def test_a_dutch_speaking_owner_gets_the_lock_warning_in_dutch(app, auth, staff, frozen):
    from litestar.testing import TestClient

    app.state.db.write(lambda db: settings.set_value(db, audit.SYSTEM, None, "link_failures_before_lock", 1))
    link, _, _ = dutch_staff_shares_a_file(app, auth, staff)
    with TestClient(app, base_url=BASE_URL) as guest:
        unlock(guest, link, "not-the-password")
    warning = app.state.db.query_one("SELECT * FROM outbox WHERE kind = 'share_locked'")
    assert warning["language"] == "nl"
    assert warning["subject"] == "Gedeelde link geblokkeerd na foute wachtwoorden"


def test_the_recipients_mail_gives_the_expiry_with_its_zone(app, auth, staff, frozen):
    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    create_share(auth, [stored.id], language="fr", expires_days="10")
    body = app.state.db.scalar("SELECT body_text FROM outbox WHERE kind = 'share'")
    assert "Le lien est valable jusqu'au 4 décembre 2026, 10:00 UTC+01:00." in " ".join(body.split())
