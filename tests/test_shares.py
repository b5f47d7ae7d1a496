"""Send files: the whole journey over HTTP with a real SMTP server, and every rule of a share."""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import re
import zipfile

import pytest
from aiosmtpd.controller import Controller
from litestar.testing import TestClient

from relais import audit, files, mail, settings
from tests.conftest import BASE_URL, AuthActions, audit_rows
from tests.serving import free_port
from tests.test_mail import Inbox
from tests import aio

CSV = b"patient_id;diagnosis;date\n" + b"".join(b"%d;C50.%d;2026-01-%02d\n" % (i, i % 10, i % 28 + 1) for i in range(5000))
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 400


def store(app, owner, name: str, content: bytes):
    """A complete file in the owner's "My files", as the uploader leaves it."""
    state = app.state
    _, media_type = files.check_new(state.db, owner.id, name, len(content))
    file_id, writer = files.begin(state.db, state.file_keys, state.config.files_dir, owner.id, name, media_type)
    writer.write(content)
    return files.complete(state.db, state.file_keys, state.config.files_dir, audit.SYSTEM, file_id, writer)


@pytest.fixture
def smtp(app):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    for name, value in (("smtp_host", "127.0.0.1"), ("smtp_port", controller.port), ("smtp_tls", "none")):
        object.__setattr__(app.state.config, name, value)
    inbox.deliver = lambda: mail.send_due(app.state.db, mail.Transport(app.state.config))
    yield inbox
    controller.stop()


@pytest.fixture
def guest(app):
    with TestClient(app, base_url=BASE_URL) as browser:
        yield browser


def create_share(auth, file_ids, **fields):
    data = {"recipients": "dr.peeters@hospital.example", "message": "", "language": "en", "expires_days": "30",
            "download_limit": "", **fields}
    sent = auth.client.post("/shares", data={**data, "file_ids": file_ids, "_csrf_token": auth.client.cookies["__Host-csrf"]},
                            follow_redirects=False)
    if sent.status_code != 303:
        return sent
    # Post/Redirect/Get: the page the redirect leads to shows the password, once.
    return auth.client.get(sent.headers["location"], follow_redirects=False)


def link_token(app) -> str:
    """The link token from the newest share e-mail in the outbox (as the recipient gets it)."""
    body = app.state.db.query("SELECT body_text FROM outbox WHERE kind = 'share' ORDER BY id DESC LIMIT 1")[0]["body_text"]
    return re.search(r"/s/([A-Za-z0-9_-]+)", body).group(1)


def share_one_file(app, auth, staff, **fields):
    """Log in, store registry.csv and share it; returns (link, password, stored file, creation page)."""
    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    created = create_share(auth, [stored.id], **fields)
    return f"/s/{link_token(app)}", share_password(created.text), stored, created


def share_password(page: str) -> str:
    return re.search(r'id="share-password">([^<]+)<', page).group(1)


def unlock(browser, link: str, password: str):
    browser.get(link)
    return browser.post(link, data={"password": password, "_csrf_token": browser.cookies["__Host-csrf"]},
                        follow_redirects=False)


@pytest.fixture
def shared(app, auth, staff):
    """A share of two files for one recipient; returns (link, password, share id, stored files)."""
    auth.login()
    stored = [store(app, staff, "registry-2026.csv", CSV), store(app, staff, "pathology report.pdf", PDF)]
    created = create_share(auth, [s.id for s in stored])
    assert created.status_code == 200, created.text
    token = link_token(app)
    share_id = app.state.db.scalar("SELECT id FROM shares")
    return f"/s/{token}", share_password(created.text), share_id, stored


def test_the_whole_journey_with_real_mail(app, auth, staff, smtp, guest):
    auth.login()
    stored = [store(app, staff, "registry-2026.csv", CSV), store(app, staff, "pathology report.pdf", PDF)]
    created = create_share(auth, [s.id for s in stored], recipients="dr.peeters@hospital.example; lab@lab.example",
                           message="Les données de 2026.\nBien à vous,", language="fr", expires_days="10",
                           password_link="on")
    assert created.status_code == 200
    password = share_password(created.text)
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", password) and not set("01ilo") & set(password)
    assert smtp.deliver() == 2
    assert sorted(m["To"] for m in smtp.messages) == ["dr.peeters@hospital.example", "lab@lab.example"]
    message = smtp.messages[0]
    assert message["Subject"] == "Sam Staff a partagé des fichiers avec vous"
    text = message.get_body(("plain",)).get_content()
    assert "registry-2026.csv" in text and "Les données de 2026." in text and password not in text
    link = re.search(r"https://relais\.test(/s/[A-Za-z0-9_-]{43})", text).group(1)
    assert link in message.get_body(("html",)).get_content()

    # The recipient: opening the link (GET, HEAD) consumes nothing; the password unlocks it.
    assert guest.head(link).status_code == 200
    page = guest.get(link)
    assert page.status_code == 200 and "Access" in page.text and "terms of use" in page.text
    assert unlock(guest, link, "wrong-pass-word-here").status_code == 401
    assert unlock(guest, link, password).status_code == 303
    listing = guest.get(link)
    for s in stored:
        assert s.name in listing.text and s.sha256 in listing.text
    first = guest.get(f"{link}/files/{stored[0].id}")
    assert first.content == CSV and hashlib.sha256(first.content).hexdigest() == stored[0].sha256
    assert first.headers["content-disposition"].startswith("attachment")
    zipped = zipfile.ZipFile(io.BytesIO(guest.get(f"{link}/zip").content))
    assert {n: zipped.read(n) for n in zipped.namelist()} == {"registry-2026.csv": CSV, "pathology report.pdf": PDF}

    # The owner gets a receipt on the first complete download of everything, once.
    assert smtp.deliver() == 1
    receipt = smtp.messages[-1]
    assert receipt["To"] == staff.email and "downloaded" in receipt["Subject"]
    detail = auth.client.get(f"/shares/{app.state.db.scalar('SELECT id FROM shares')}")
    assert "Downloaded completely" in detail.text and "Wrong password" in detail.text and "testclient" in detail.text

    # The one-time password link shows the password once.
    password_link = re.search(r"https://relais\.test(/p/[A-Za-z0-9_-]+)", created.text).group(1)
    with TestClient(app, base_url=BASE_URL) as colleague:
        assert colleague.get(password_link).status_code == 200
        colleague.head(password_link)
        shown = colleague.post(password_link, data={"_csrf_token": colleague.cookies["__Host-csrf"]})
        assert shown.status_code == 200 and password in shown.text
        again = colleague.post(password_link, data={"_csrf_token": colleague.cookies["__Host-csrf"]})
        assert again.status_code == 404 and password not in again.text
    actions = {r["action"] for r in audit_rows(app)}
    assert {"share.create", "mail.queued", "mail.sent", "share.password_shown", "share.access", "share.access_refused",
            "share.download", "share.password_link_opened"} <= actions


def test_unknown_expired_and_revoked_links_look_the_same(app, auth, frozen, shared, guest):
    link, password, share_id, _ = shared
    unknown = guest.get("/s/" + "A" * 43)
    assert unknown.status_code == 404
    frozen.advance(days=30, seconds=-1)
    assert guest.get(link).status_code == 200
    frozen.advance(seconds=1)
    expired = guest.get(link)
    assert expired.status_code == 404 and expired.text.replace(link, "") == unknown.text.replace("/s/" + "A" * 43, "")
    assert unlock(guest, link, password).status_code == 404


def test_revoking_shreds_the_files(app, config, auth, shared, guest):
    link, password, share_id, stored = shared
    assert unlock(guest, link, password).status_code == 303
    assert auth.post(f"/shares/{share_id}/revoke", {"confirm": "yes"}).status_code == 303
    assert guest.get(link).status_code == 404
    assert guest.get(f"{link}/files/{stored[0].id}").status_code == 404
    for s in stored:
        assert not (config.files_dir / s.storage_name).exists()
    assert app.state.db.scalar("SELECT count(*) FROM files") == 0  # the wrapped keys are gone


def test_one_links_session_does_not_open_another(app, auth, staff, shared, guest):
    link_a, password_a, _, _ = shared
    other = store(app, staff, "other.csv", b"a;b\n1;2\n")
    create_share(auth, [other.id])
    token_b = link_token(app)
    assert unlock(guest, link_a, password_a).status_code == 303
    assert guest.get(f"/s/{token_b}/files/{other.id}").status_code == 404
    assert unlock(guest, f"/s/{token_b}", password_a).status_code == 401


def test_download_limit_and_partial_downloads(app, auth, staff, guest):
    link, password, stored, _ = share_one_file(app, auth, staff, download_limit="1")
    unlock(guest, link, password)
    partial = guest.get(f"{link}/files/{stored.id}", headers={"range": "bytes=0-99"})
    assert partial.status_code == 206 and partial.content == CSV[:100]
    assert app.state.db.scalar("SELECT downloaded_at FROM shares") is None  # a part is not a download
    # The same browser resumes where it stopped: not counted again, and now complete.
    resumed = guest.get(f"{link}/files/{stored.id}", headers={"range": "bytes=100-"})
    assert resumed.status_code == 206 and resumed.content == CSV[100:]
    assert app.state.db.scalar("SELECT downloaded_at FROM shares") is not None
    # The one download allowed has been used: from the start again is refused.
    refused = guest.get(f"{link}/files/{stored.id}")
    assert refused.status_code == 410 and "limit" in refused.text


def test_ranges_cannot_dodge_the_download_limit(app, auth, staff, guest):
    link, password, stored, _ = share_one_file(app, auth, staff, download_limit="1")
    unlock(guest, link, password)
    assert guest.get(f"{link}/files/{stored.id}").content == CSV
    with TestClient(app, base_url=BASE_URL) as other:
        unlock(other, link, password)
        # A range further in is only the resumption of a download this browser began.
        assert other.get(f"{link}/files/{stored.id}", headers={"range": "bytes=100-"}).status_code == 410
        assert other.get(f"{link}/files/{stored.id}", headers={"range": "bytes=0-"}).status_code == 410
        assert other.get(f"{link}/zip").status_code == 410
    starts = app.state.db.scalar("SELECT count(*) FROM link_events WHERE event = 'download_start'")
    assert starts == 1


def test_a_download_cut_off_is_not_complete(app, auth, staff, guest):
    from relais import shares
    from relais.links import downloads as links

    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    create_share(auth, [stored.id])
    share = shares.get(app.state.db, app.state.db.scalar("SELECT id FROM shares"))
    links.record_download(app.state.db, audit.SYSTEM, share, [(stored, 0, 1000)], "session-a", app.state.config)
    assert app.state.db.scalar("SELECT downloaded_at FROM shares") is None
    links.record_download(app.state.db, audit.SYSTEM, share, [(stored, 5000, len(CSV) - 5000)], "session-a", app.state.config)
    assert app.state.db.scalar("SELECT downloaded_at FROM shares") is None  # bytes 1000-5000 never arrived
    links.record_download(app.state.db, audit.SYSTEM, share, [(stored, 1000, 4000)], "session-b", app.state.config)
    assert app.state.db.scalar("SELECT downloaded_at FROM shares") is None  # another browser's part
    links.record_download(app.state.db, audit.SYSTEM, share, [(stored, 900, 4200)], "session-a", app.state.config)
    assert app.state.db.scalar("SELECT downloaded_at FROM shares") is not None


def test_delete_after_the_first_complete_download(app, config, auth, staff, guest):
    link, password, stored, _ = share_one_file(app, auth, staff, delete_after_download="on")
    unlock(guest, link, password)
    guest.get(f"{link}/files/{stored.id}", headers={"range": "bytes=0-9"})
    assert (config.files_dir / stored.storage_name).exists()
    assert guest.get(f"{link}/files/{stored.id}").content == CSV
    assert not (config.files_dir / stored.storage_name).exists()
    assert guest.get(link).status_code == 404
    assert audit_rows(app, "share.delete_after_download")


def test_wrong_passwords_slow_down_then_lock_the_link_and_tell_the_owner(app, auth, staff, frozen, shared, guest, smtp):
    link, password, share_id, _ = shared
    smtp.deliver()
    answers = []
    for _ in range(10):
        answers.append(unlock(guest, link, "not-the-password").status_code)
        frozen.advance(minutes=16)
    assert answers[:2] == [401, 401] and 401 in answers[2:]
    assert guest.get(link).status_code == 404  # locked: the right password no longer helps
    assert unlock(guest, link, password).status_code == 404
    assert smtp.deliver() == 1 and smtp.messages[-1]["To"] == staff.email and "locked" in smtp.messages[-1]["Subject"]
    limit = settings.get(app.state.db.conn, "link_failures_before_lock")
    assert f"a wrong password {limit} times on the link" in smtp.messages[-1].get_body(("plain",)).get_content()
    assert audit_rows(app, "share.locked")


def test_waiting_between_wrong_passwords(app, frozen, shared, guest):
    link, password, _, _ = shared
    for _ in range(3):
        unlock(guest, link, "not-the-password")
    waiting = unlock(guest, link, password)
    assert waiting.status_code == 429 and "Try again in 1 minute" in waiting.text
    frozen.advance(minutes=1, seconds=1)
    assert unlock(guest, link, password).status_code == 303


def test_opening_the_link_changes_nothing(app, shared, guest):
    link, _, share_id, _ = shared
    for _ in range(3):
        guest.get(link)
        guest.head(link)
    assert app.state.db.scalar("SELECT count(*) FROM link_events") == 0


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"recipients": "victim@hospital.example\r\nBcc: all@evil.example"}, "not a valid e-mail"),
        ({"recipients": ""}, "at least one recipient"),
        ({"recipients": ",".join(f"r{i}@x.example" for i in range(21))}, "At most 20"),
        ({"expires_days": "31"}, "from 1 to 30 days"),
        ({"expires_days": "0"}, "from 1 to 30 days"),
        ({"expires_days": "soon"}, "from 1 to 30 days"),
        ({"download_limit": "-1"}, "download limit"),
        ({"language": "es"}, "language"),
        ({"message": "x" * 5001}, "5,000"),
        ({"password": "password12345678"}, "too common"),
        ({"password": "violet-tug-map"}, "at least 15 characters"),
    ],
)
def test_bad_shares_are_refused_and_nothing_is_written(app, auth, staff, fields, message):
    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    response = create_share(auth, [stored.id], **fields)
    assert response.status_code == 400 and message in response.text
    assert app.state.db.scalar("SELECT count(*) FROM shares") == 0
    assert app.state.db.scalar("SELECT count(*) FROM outbox") == 0


def test_someone_elses_files_cannot_be_shared(app, auth, make_user, staff):
    other = make_user(email="other@registry.example")
    theirs = store(app, other, "theirs.csv", CSV)
    auth.login()
    response = create_share(auth, [theirs.id])
    assert response.status_code == 400 and "no longer available" in response.text


def test_a_typed_password_works(app, auth, staff, guest):
    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    create_share(auth, [stored.id], password="lighthouse cobalt meadow")
    token = link_token(app)
    assert unlock(guest, f"/s/{token}", "lighthouse cobalt meadow").status_code == 303


def test_only_the_owner_and_admins_see_a_share(app, client, shared, make_user):
    _, _, share_id, _ = shared
    make_user(email="colleague@registry.example")
    make_user(email="boss@registry.example", role="admin")
    colleague = AuthActions(client)
    colleague.logout()
    colleague.login(email="colleague@registry.example")
    assert client.get(f"/shares/{share_id}").status_code == 404
    assert colleague.post(f"/shares/{share_id}/delete").status_code == 404
    assert share_id not in client.get("/shares").text
    colleague.logout()
    colleague.login(email="boss@registry.example")
    assert client.get(f"/shares/{share_id}").status_code == 200


def test_extend_within_the_limit(app, auth, frozen, shared):
    _, _, share_id, _ = shared
    frozen.advance(days=10)
    auth.login()  # the staff session has long timed out
    assert auth.post(f"/shares/{share_id}/extend", {"days": "20"}).headers["location"].endswith("notice=extended")
    assert auth.post(f"/shares/{share_id}/extend", {"days": "21"}).headers["location"].endswith("error=extend")
    assert app.state.db.scalar("SELECT expires_at FROM shares").startswith("2026-12-24T09:00")


def test_deleting_a_share_shreds_its_files(app, config, auth, shared):
    _, _, share_id, stored = shared
    assert auth.post(f"/shares/{share_id}/delete", {"confirm": "yes"}).status_code == 303
    assert app.state.db.scalar("SELECT count(*) FROM files") == 0
    assert all(not (config.files_dir / s.storage_name).exists() for s in stored)
    assert "The files have been deleted" in auth.client.get(f"/shares/{share_id}").text


def test_shared_files_leave_my_files(app, auth, shared):
    _, _, _, stored = shared
    page = auth.client.get("/files")
    assert all(s.name not in page.text for s in stored)


def test_files_just_uploaded_on_the_page_come_back_chosen(app, auth, staff):
    auth.login()
    old = store(app, staff, "old.csv", CSV)
    new = store(app, staff, "new.csv", CSV)
    partial = auth.client.get("/shares/new/files", params={"seen": [old.id], "file_ids": []})
    assert re.search(rf'value="{new.id}" id="file-{new.id}" checked', partial.text)
    assert not re.search(rf'value="{old.id}" id="file-{old.id}" checked', partial.text)


def test_a_password_link_expires_after_seven_days_unopened(app, auth, staff, frozen, guest):
    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    created = create_share(auth, [stored.id], password_link="on")
    password_link = re.search(r"https://relais\.test(/p/[A-Za-z0-9_-]+)", created.text).group(1)
    frozen.advance(days=7, seconds=-1)
    assert guest.get(password_link).status_code == 200
    frozen.advance(seconds=1)
    assert guest.get(password_link).status_code == 404
    assert guest.post(password_link, data={"_csrf_token": guest.cookies["__Host-csrf"]}).status_code == 404


def test_the_password_link_stores_no_readable_password(app, auth, staff):
    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    created = create_share(auth, [stored.id], password_link="on")
    password = share_password(created.text)
    dump = "\n".join(app.state.db.conn.iterdump())
    assert password not in dump and password.encode().hex() not in dump


def test_link_pages_carry_the_security_headers(app, shared, guest):
    from tests.test_pages import assert_security_headers

    link, password, _, stored = shared
    assert_security_headers(guest.get(link))
    assert_security_headers(guest.get("/s/unknown"))
    unlock(guest, link, password)
    listing = guest.get(link)
    assert_security_headers(listing)
    assert listing.headers["cache-control"] == "no-store"
    download = guest.get(f"{link}/files/{stored[0].id}")
    assert download.headers["x-content-type-options"] == "nosniff" and download.headers["cache-control"] == "no-store"


def test_a_download_in_progress_stops_when_the_share_is_revoked(app, auth, staff, guest, monkeypatch):
    import httpx

    from relais import links
    from views import links as link_views

    auth.login()
    big = b"id;value\n" + b"1;2\n" * (1024 * 1024)  # 4 MiB: several chunks
    stored = store(app, staff, "big.csv", big)
    created = create_share(auth, [stored.id])
    token = link_token(app)
    unlock(guest, f"/s/{token}", share_password(created.text))
    monkeypatch.setattr(link_views, "CHECK_EVERY", 1)
    monkeypatch.setattr(links, "still_open", lambda database, kind, share_id: False)  # revoked meanwhile
    try:
        response = guest.get(f"/s/{token}/files/{stored.id}")
        received = len(response.content)
    except httpx.HTTPError:
        received = 0
    assert received < len(big)
    assert app.state.db.scalar("SELECT count(*) FROM link_events WHERE event = 'download'") == 0


def test_deleting_a_share_forgets_the_link_and_the_message(app, config, auth, shared):
    import sqlite3

    link, _, share_id, _ = shared
    mail.send_due(app.state.db, mail.Transport(app.state.config))  # written to data/outbox/
    assert list(config.outbox_dir.glob("*.eml"))
    app.state.db.write(lambda db: db.execute("UPDATE shares SET message = 'Biopsy result for J. Janssens' WHERE id = ?",
                                             [share_id]))
    assert auth.post(f"/shares/{share_id}/delete", {"confirm": "yes"}).status_code == 303
    token = link.rsplit("/", 1)[1]
    raw = b"".join(p.read_bytes() for p in config.data_dir.glob("relais.db*"))
    assert token.encode() not in raw and b"Janssens" not in raw
    assert list(config.outbox_dir.glob("*.eml")) == []
    assert (config.data_dir / "relais.db-wal").stat().st_size == 0  # checkpointed: no old frames
    assert sqlite3.connect(config.db_path).execute("SELECT message FROM shares").fetchone() == ("",)


def test_locked_shares_are_purged(app, config, shared):
    from relais import retention

    _, _, share_id, stored = shared
    app.state.db.write(lambda db: db.execute("UPDATE shares SET locked_at = '2026-01-01T00:00:00+00:00' WHERE id = ?",
                                             [share_id]))
    assert retention.purge_all(app.state)["shares"] == 1
    assert not (config.files_dir / stored[0].storage_name).exists()


def test_a_crash_before_delete_after_download_is_finished_by_purge(app, config, auth, staff, guest, monkeypatch):
    from relais import retention, shares

    link, password, stored, _ = share_one_file(app, auth, staff, delete_after_download="on")
    unlock(guest, link, password)
    monkeypatch.setattr(shares, "delete", lambda *args, **kwargs: None)  # the process dies after the download's write
    assert guest.get(f"{link}/files/{stored.id}").content == CSV
    monkeypatch.undo()
    assert app.state.db.scalar("SELECT downloaded_at FROM shares") and (config.files_dir / stored.storage_name).exists()
    assert retention.purge_all(app.state)["shares"] == 1
    assert not (config.files_dir / stored.storage_name).exists() and app.state.db.scalar("SELECT deleted_at FROM shares")


def test_guessing_password_links_is_throttled(app, guest):
    for i in range(25):
        guest.post(f"/p/guess{i}", data={"_csrf_token": guest.cookies.get("__Host-csrf") or csrf(guest)})
    refused = app.state.db.scalar("SELECT count(*) FROM audit_log WHERE action = 'share.password_link_refused'")
    assert refused == 20  # then the address is locked: no more checks, no more rows
    assert app.state.db.scalar("SELECT count(*) FROM audit_log WHERE action = 'login.lockout'") == 0


def csrf(browser) -> str:
    browser.get("/login")
    return browser.cookies["__Host-csrf"]


# -- counting downloads --------------------------------------------------------------------------

def downloads_of(app, file_id: str) -> int:
    return app.state.db.scalar("SELECT count(*) FROM link_events WHERE event = 'download' AND file_id = ?", [file_id])


def test_a_range_probe_does_not_use_up_the_limit(app, auth, staff, frozen, guest):
    link, password, stored, _ = share_one_file(app, auth, staff, download_limit="3")
    unlock(guest, link, password)
    probe = guest.get(f"{link}/files/{stored.id}", headers={"range": "bytes=0-27"})
    assert probe.status_code == 206 and len(probe.content) == 28
    assert downloads_of(app, stored.id) == 0
    with TestClient(app, base_url=BASE_URL) as prober:  # a second browser probes and goes away
        unlock(prober, link, password)
        assert prober.get(f"{link}/files/{stored.id}", headers={"range": "bytes=0-27"}).status_code == 206
    frozen.advance(minutes=16)  # its place, kept for a resumption, has lapsed
    for _ in range(3):
        whole = guest.get(f"{link}/files/{stored.id}")
        assert whole.status_code == 200 and whole.content == CSV
    assert downloads_of(app, stored.id) == 3
    assert guest.get(f"{link}/files/{stored.id}").status_code == 410
    assert guest.get(f"{link}/files/{stored.id}", headers={"range": "bytes=0-27"}).status_code == 410
    assert guest.get(link).text.count("Download limit reached") == 1


def test_several_ranged_requests_covering_a_file_are_one_download(app, auth, staff, guest, smtp):
    link, password, stored, _ = share_one_file(app, auth, staff, download_limit="2")
    smtp.deliver()
    unlock(guest, link, password)
    parts = [guest.get(f"{link}/files/{stored.id}", headers={"range": r}).content
             for r in ("bytes=5000-", "bytes=0-999", "bytes=900-5099")]  # out of order, overlapping
    assert parts[1] + parts[2][100:] + parts[0][100:] == CSV
    assert downloads_of(app, stored.id) == 1
    assert app.state.db.scalar("SELECT downloaded_at FROM shares") is not None
    assert smtp.deliver() == 1 and "downloaded" in smtp.messages[-1]["Subject"]  # the receipt, once
    with TestClient(app, base_url=BASE_URL) as other:
        unlock(other, link, password)
        assert other.get(f"{link}/files/{stored.id}").content == CSV
    assert downloads_of(app, stored.id) == 2
    assert guest.get(f"{link}/files/{stored.id}", headers={"range": "bytes=0-9"}).status_code == 410
    assert smtp.deliver() == 0
    detail = auth.client.get(f"/shares/{app.state.db.scalar('SELECT id FROM shares')}")
    assert detail.text.count("Downloaded completely") == 2


def test_parallel_requests_cannot_slip_past_the_limit(app, auth, staff, guest):
    """Twelve browsers ask at the same moment for the last download: one gets it."""
    from concurrent.futures import ThreadPoolExecutor

    from relais import shares
    from relais.links import downloads

    link, password, stored, _ = share_one_file(app, auth, staff, download_limit="1")
    unlock(guest, link, password)
    share = shares.get(app.state.db, app.state.db.scalar("SELECT id FROM shares"))
    sessions = [f"session-{i}" for i in range(12)]

    def open_sessions(db):
        for name in sessions:
            db.execute("INSERT INTO link_sessions (token_hash, kind, object_id, created_at, expires_at)"
                       " VALUES (?, 'share', ?, '2026-01-01', '2999-01-01')", [name, share.id])

    app.state.db.write(open_sessions)
    with ThreadPoolExecutor(12) as pool:
        admitted = list(pool.map(lambda s: downloads.start_download(app.state.db, audit.SYSTEM, share, stored, s),
                                 sessions))
    assert admitted.count(downloads.Admission.ADMITTED) == 1
    assert admitted.count(downloads.Admission.BUSY) == 11
    # The one admitted is still downloading: nobody else starts, and they are told to come back.
    busy = guest.get(f"{link}/files/{stored.id}")
    assert busy.status_code == 503 and busy.headers["retry-after"] == "900"
    assert "being downloaded" in busy.text
    winner = sessions[admitted.index(downloads.Admission.ADMITTED)]
    downloads.record_download(app.state.db, audit.SYSTEM, share, [(stored, 0, 100)], winner, app.state.config)
    assert guest.get(f"{link}/files/{stored.id}").status_code == 503  # cut off: its place waits for it
    # It resumes and completes: that is the one download of the limit.
    assert downloads.start_download(app.state.db, audit.SYSTEM, share, stored, winner) is downloads.Admission.ADMITTED
    downloads.record_download(app.state.db, audit.SYSTEM, share, [(stored, 100, len(CSV) - 100)], winner,
                              app.state.config)
    assert downloads_of(app, stored.id) == 1
    assert downloads.start_download(app.state.db, audit.SYSTEM, share, stored, sessions[0]) is downloads.Admission.LIMIT
    assert guest.get(f"{link}/files/{stored.id}").status_code == 410


def test_a_download_cut_off_keeps_its_place_for_a_while(app, auth, staff, frozen, guest):
    link, password, stored, _ = share_one_file(app, auth, staff, download_limit="1")
    unlock(guest, link, password)
    assert guest.get(f"{link}/files/{stored.id}", headers={"range": "bytes=0-999"}).status_code == 206
    with TestClient(app, base_url=BASE_URL) as other:
        unlock(other, link, password)
        frozen.advance(minutes=14)
        assert other.get(f"{link}/files/{stored.id}").status_code == 503
        frozen.advance(minutes=2)
        assert other.get(f"{link}/files/{stored.id}").content == CSV  # the first browser's place lapsed
    assert guest.get(f"{link}/files/{stored.id}", headers={"range": "bytes=1000-"}).status_code == 410


def test_a_zip_records_each_file_it_contained(app, auth, shared, guest, smtp):
    link, password, share_id, stored = shared
    smtp.deliver()
    unlock(guest, link, password)
    zipped = guest.get(f"{link}/zip")
    assert zipped.status_code == 200 and len(zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()) == 2
    assert [downloads_of(app, s.id) for s in stored] == [1, 1]
    assert app.state.db.scalar("SELECT downloaded_at FROM shares") is not None
    assert smtp.deliver() == 1 and "downloaded" in smtp.messages[-1]["Subject"]
    assert auth.client.get(f"/shares/{share_id}").text.count("Downloaded completely") == 2


def _raw_get(app, path: str, cookies: dict, hang_up_after: int = 0) -> bytes:
    """GET through the ASGI app itself, as a client that closes the connection once it has
    ``hang_up_after`` bytes (0: all of Content-Length, as curl and browsers do, even when the
    server's iterator has not ended yet)."""
    import asyncio

    async def run() -> bytes:
        body, length, complete = [], [0], asyncio.Event()
        asked = False

        async def receive():
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await complete.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                length[0] = int(dict(message["headers"]).get(b"content-length", b"0"))
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if sum(map(len, body)) >= (hang_up_after or length[0]):
                    complete.set()

        cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "https", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"relais.test"), (b"cookie", cookie.encode())],
                 "client": ("127.0.0.1", 50000), "server": ("relais.test", 443), "state": {}}
        await app(scope, receive, send)
        return b"".join(body)

    return aio.run(run())


def _pause_zip(monkeypatch, after_each_block: bool) -> None:
    """The zip's body pauses 5 s after each block (the client hangs up during a pause), or only
    after the last one (the server has not noticed the end yet when the client hangs up)."""
    import asyncio

    from views import downloads as download_views

    prefetch = download_views.streaming.prefetch

    async def pausing(iterator, *rest):
        async for block in prefetch(iterator, *rest):
            yield block
            if after_each_block:
                await asyncio.sleep(5)
        await asyncio.sleep(5)

    monkeypatch.setattr(download_views.streaming, "prefetch", pausing)


def test_a_zip_counts_when_the_client_hangs_up_after_the_last_byte(app, shared, guest, monkeypatch):
    link, password, _, stored = shared
    unlock(guest, link, password)
    _pause_zip(monkeypatch, after_each_block=False)
    content = _raw_get(app, f"{link}/zip", dict(guest.cookies))
    assert sorted(zipfile.ZipFile(io.BytesIO(content)).namelist()) == sorted(s.name for s in stored)
    assert [downloads_of(app, s.id) for s in stored] == [1, 1]


def test_a_zip_cut_off_records_nothing(app, shared, guest, monkeypatch):
    link, password, _, stored = shared
    unlock(guest, link, password)
    _pause_zip(monkeypatch, after_each_block=True)
    content = _raw_get(app, f"{link}/zip", dict(guest.cookies), hang_up_after=1)
    assert 0 < len(content) < sum(s.size for s in stored)
    assert [downloads_of(app, s.id) for s in stored] == [0, 0]
    assert app.state.db.scalar("SELECT downloaded_at FROM shares") is None


def test_a_stale_if_range_counts_the_whole_file_it_gets(app, auth, staff, guest):
    """A Range with an If-Range that does not match gets the whole file (200): that is a complete
    download, counted as one, so the limit holds (it used to record the asked range, never byte 0)."""
    link, password, stored, _ = share_one_file(app, auth, staff, download_limit="1", delete_after_download="on")
    unlock(guest, link, password)
    stale = {"range": "bytes=1-", "if-range": '"nope"'}
    first = guest.get(f"{link}/files/{stored.id}", headers=stale)
    assert first.status_code == 200 and first.content == CSV
    assert downloads_of(app, stored.id) == 1
    part = app.state.db.query_one("SELECT start, bytes FROM link_events WHERE event = 'download_part'")
    assert part == {"start": 0, "bytes": len(CSV)}
    assert app.state.db.scalar("SELECT downloaded_at FROM shares") is not None
    assert app.state.db.scalar("SELECT count(*) FROM share_files") == 0  # deleted after the download
    for _ in range(4):
        again = guest.get(f"{link}/files/{stored.id}", headers=stale)
        assert again.status_code in (404, 410) and CSV not in again.content
    assert downloads_of(app, stored.id) == 1


def test_a_stale_if_range_cannot_dodge_the_download_limit(app, auth, staff, guest):
    link, password, stored, _ = share_one_file(app, auth, staff, download_limit="1")
    unlock(guest, link, password)
    stale = {"range": "bytes=1-", "if-range": '"nope"'}
    answers = [guest.get(f"{link}/files/{stored.id}", headers=stale) for _ in range(5)]
    assert answers[0].status_code == 200 and answers[0].content == CSV
    assert [a.status_code for a in answers[1:]] == [410] * 4
    assert downloads_of(app, stored.id) == 1
    # The matching validator still resumes a range, which is counted as that range.
    assert guest.get(f"{link}/files/{stored.id}", headers={"range": "bytes=1-", "if-range": f'"{stored.sha256}"'}
                     ).status_code == 410


def test_a_cut_zip_holds_its_places_for_the_grace_only(app, auth, staff, frozen, guest, monkeypatch):
    """A zip cut off holds the limit's places for RESUME_GRACE (15 minutes), as a cut single
    download does; not for the link session's two hours."""
    import asyncio

    from views import downloads as download_views

    link, password, stored, _ = share_one_file(app, auth, staff, download_limit="1")
    unlock(guest, link, password)
    prefetch = download_views.streaming.prefetch

    async def one_block_then_stall(iterator, *rest):
        async for block in prefetch(iterator, *rest):
            yield block
            await asyncio.sleep(5)  # the client hangs up during this pause

    monkeypatch.setattr(download_views.streaming, "prefetch", one_block_then_stall)
    assert 0 < len(_raw_get(app, f"{link}/zip", dict(guest.cookies), hang_up_after=1)) < stored.size
    monkeypatch.setattr(download_views.streaming, "prefetch", prefetch)
    assert downloads_of(app, stored.id) == 0
    part = app.state.db.query_one("SELECT start, bytes FROM link_events WHERE event = 'download_part'")
    assert part == {"start": 0, "bytes": 0}
    assert audit_rows(app, "share.download_partial")
    with TestClient(app, base_url=BASE_URL) as other:
        unlock(other, link, password)
        frozen.advance(minutes=14)
        busy = other.get(f"{link}/files/{stored.id}")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "900"  # kept for a resumption
        frozen.advance(minutes=2)
        whole = other.get(f"{link}/files/{stored.id}")
        assert whole.status_code == 200 and whole.content == CSV  # the cut zip's place lapsed
    assert downloads_of(app, stored.id) == 1


# -- wrong passwords say when to try again -------------------------------------------------------

def test_the_wrong_password_that_starts_a_wait_says_until_when(app, frozen, shared, guest):
    link, password, _, _ = shared
    first = unlock(guest, link, "not-the-password")
    assert first.status_code == 401 and "retry-after" not in first.headers
    unlock(guest, link, "not-the-password")
    third = unlock(guest, link, "not-the-password")  # link_failures_before_wait: the next try must wait
    assert third.status_code == 401 and third.headers["retry-after"] == "60"
    assert "This password is not correct. You can try again in 1 minute." in third.text
    frozen.advance(seconds=20)
    waiting = unlock(guest, link, password)
    assert waiting.status_code == 429 and waiting.headers["retry-after"] == "40"
    assert "Try again in 1 minute" in waiting.text
    frozen.advance(seconds=41)
    fourth = unlock(guest, link, "not-the-password")
    assert fourth.status_code == 401 and fourth.headers["retry-after"] == "120"
    assert "You can try again in 2 minutes." in fourth.text


def test_the_wait_is_said_in_the_guests_language(app, shared, guest):
    link, _, _, _ = shared
    guest.cookies.set("__Host-relais_lang", "fr", domain="relais.test")
    for _ in range(3):
        answer = unlock(guest, link, "not-the-password")
    assert answer.headers["retry-after"] == "60"
    assert "Ce mot de passe n&#39;est pas correct. Vous pourrez réessayer dans 1 minute." in answer.text


# -- revoking is one transaction ------------------------------------------------------------------

def test_a_revoke_that_fails_halfway_leaves_everything_as_it_was(app, config, auth, shared, guest, monkeypatch):
    link, password, share_id, stored = shared
    unlock(guest, link, password)

    def broken(db, object):
        raise RuntimeError("disk I/O error")  # after the state change and the keys, before the audit row

    monkeypatch.setattr(mail, "forget", broken)
    with pytest.raises(RuntimeError):
        from relais import shares

        shares.revoke(app.state.db, config, audit.SYSTEM, shares.get(app.state.db, share_id))
    row = app.state.db.query_one("SELECT revoked_at, deleted_at, password_hash FROM shares")
    assert row["revoked_at"] is None and row["deleted_at"] is None and row["password_hash"]
    assert app.state.db.scalar("SELECT count(*) FROM files") == 2
    assert all((config.files_dir / s.storage_name).exists() for s in stored)
    assert not audit_rows(app, "share.revoke")
    assert guest.get(f"{link}/files/{stored[0].id}").content == CSV  # still working, as before


def test_a_crash_between_the_revoke_and_the_unlinking_is_repaired_by_purge(app, config, auth, shared, monkeypatch):
    import os

    from relais import retention, shares

    _, _, share_id, stored = shared

    def crash(path):
        raise SystemExit("killed")

    monkeypatch.setattr(files.storage, "shred_file", crash)
    with pytest.raises(SystemExit):
        shares.revoke(app.state.db, config, audit.SYSTEM, shares.get(app.state.db, share_id))
    monkeypatch.undo()
    row = app.state.db.query_one("SELECT revoked_at, deleted_at FROM shares")
    assert row["revoked_at"] and row["deleted_at"]  # committed together, with the keys and the audit row
    assert app.state.db.scalar("SELECT count(*) FROM files") == 0 and audit_rows(app, "share.revoke")
    leftovers = [config.files_dir / s.storage_name for s in stored]
    assert all(p.exists() for p in leftovers)  # noise without their keys, but still taking space
    for path in leftovers:
        os.utime(path, (0, 0))  # past the age at which an unnamed data file cannot be an upload's
    assert retention.purge_all(app.state)["orphans"] == 2
    assert not any(p.exists() for p in leftovers)
