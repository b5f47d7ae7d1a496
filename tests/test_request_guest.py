"""The guest's side of a request (/r/...), over HTTP: the password, the upload page, uploads by tus
and by the plain form, pending files, Remove, Transmit and the receipt, refusals, and what a
guest can never reach. A real server process with tuspy is in test_request_tus.py."""

from __future__ import annotations

import base64
import json
import hashlib
import re
from urllib.parse import unquote

import pytest
from litestar.testing import TestClient

from relais import audit, links, request_staff, requests, storage
from tests.conftest import BASE_URL, audit_rows

OCTETS = "application/offset+octet-stream"
CSV = b"id,value\n1,2\n3,4\n"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 2


def make_request(app, owner, **fields) -> tuple[str, str, requests.Request]:
    """A request as staff make it; returns (link token, password, request)."""
    new = requests.NewRequest(**{"recipient": "lab@lab.example", "message": "Please send the batch.",
                                 "language": "en", **fields})
    made, token, password, _ = requests.create(app.state.db, app.state.hasher, audit.SYSTEM, owner, new, BASE_URL)
    return token, password, made


@pytest.fixture
def guest(app):
    with TestClient(app, base_url=BASE_URL) as browser:
        yield browser


@pytest.fixture
def asked(app, staff):
    """A one-submission request for .csv and .pdf files, at most 3 of at most 1 KiB; (token, password, request)."""
    token, password, made = make_request(app, staff, accepted_types=("csv", "pdf"), max_files=3)
    app.state.db.execute("UPDATE requests SET max_file_size = 1024 WHERE id = ?", [made.id])
    return token, password, requests.get(app.state.db, made.id)


def csrf(browser) -> str:
    if "__Host-csrf" not in browser.cookies:
        browser.get("/login")
    return browser.cookies["__Host-csrf"]


def unlock(browser, token: str, password: str):
    browser.get(f"/r/{token}")
    return browser.post(f"/r/{token}", data={"password": password, "_csrf_token": csrf(browser)},
                        follow_redirects=False)


@pytest.fixture
def inside(guest, asked):
    """The guest, past the password; returns (browser, token, request)."""
    token, password, made = asked
    assert unlock(guest, token, password).status_code == 303
    return guest, token, made


def tus_headers(browser, **extra) -> dict:
    return {"Tus-Resumable": "1.0.0", "x-csrftoken": csrf(browser), **extra}


def metadata(name: str) -> str:
    return "filename " + base64.b64encode(name.encode()).decode()


def create(browser, token: str, name: str, length: int):
    return browser.post(f"/r/{token}/tus/", headers=tus_headers(browser, **{"Upload-Length": str(length),
                                                                           "Upload-Metadata": metadata(name)}))


def patch(browser, url: str, at: int, data: bytes):
    return browser.patch(url, content=data, headers=tus_headers(browser, **{"Upload-Offset": str(at),
                                                                           "Content-Type": OCTETS}))


def tus_upload(browser, token: str, name: str, data: bytes) -> str:
    created = create(browser, token, name, len(data))
    assert created.status_code == 201, created.text
    assert created.headers["location"].startswith(f"/r/{token}/tus/")
    done = patch(browser, created.headers["location"], 0, data)
    assert done.status_code == 204, done.text
    return created.headers["location"]


def form_upload(browser, token: str, *parts, token_field: str | None = "valid"):
    data = {} if token_field is None else {"_csrf_token": csrf(browser) if token_field == "valid" else token_field}
    return browser.post(f"/r/{token}/upload", data=data, files=[("file", part) for part in parts],
                        follow_redirects=False)


def transmit(browser, token: str, reference: str = ""):
    return browser.post(f"/r/{token}/transmit", data={"reference": reference, "_csrf_token": csrf(browser)},
                        follow_redirects=False)


def pending_names(app, request_id: str) -> list[str]:
    return [f.name for f in requests.pending_files(app.state.db, request_id)]


def nothing_uploading(app) -> None:
    """No unfinished file, no upload row, no data file without its row, no spool."""
    config = app.state.config
    assert app.state.db.query("SELECT id FROM files WHERE state = 'uploading'") == []
    assert app.state.db.query("SELECT id FROM uploads") == []
    known = {r["storage_name"] for r in app.state.db.query("SELECT storage_name FROM files")}
    assert sorted(p.name for p in config.files_dir.iterdir()) == sorted(known)
    assert list(config.tmp_dir.iterdir()) == []


def assert_tus(response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["tus-resumable"] == "1.0.0"
    assert "location" not in response.headers or status == 201
    assert "<html" not in response.text.lower()


def assert_invalid(response) -> None:
    assert response.status_code == 404, response.text
    assert "This link is not valid" in response.text


def main(response) -> str:
    return response.text[response.text.index("<main"):response.text.index("</main>")]


# -- opening and unlocking ---------------------------------------------------------------------------

def test_opening_the_link_shows_the_password_form_in_the_requests_language_and_changes_nothing(app, staff, guest):
    token, _, made = make_request(app, staff, language="nl")
    for answer in (guest.get(f"/r/{token}"), guest.head(f"/r/{token}")):
        assert answer.status_code == 200
    page = guest.get(f"/r/{token}")
    assert '<html lang="nl">' in page.text and f'action="/r/{token}"' in page.text
    assert "Toegang" in page.text and "Sam Staff" in page.text  # Access, in Dutch; who asks
    assert "Gebruiksvoorwaarden" in page.text  # the terms
    assert app.state.db.query("SELECT * FROM link_sessions") == []
    assert links.events(app.state.db, requests.KIND, made.id).total == 0
    # The language switch works as on every page: the guest's choice wins over the request's.
    switched = guest.get(f"/language/fr?next=/r/{token}", follow_redirects=False)
    assert switched.headers["location"] == f"/r/{token}"
    assert '<html lang="fr">' in guest.get(f"/r/{token}").text


def test_unknown_expired_revoked_closed_and_locked_links_look_the_same(app, frozen, staff, guest):
    token, password, made = make_request(app, staff)
    unknown = guest.get("/r/" + "A" * 43)
    assert_invalid(unknown)
    assert_invalid(guest.get("/r/" + "A" * 500))
    database = app.state.db
    for column in ("closed_at", "revoked_at", "locked_at", "deleted_at"):
        database.execute(f"UPDATE requests SET {column} = '2026-01-01' WHERE id = ?", [made.id])
        answer = guest.get(f"/r/{token}")
        assert_invalid(answer)
        assert main(answer) == main(unknown)  # word for word: a guess learns nothing
        assert_invalid(unlock(guest, token, password))
        database.execute(f"UPDATE requests SET {column} = NULL WHERE id = ?", [made.id])
    assert guest.get(f"/r/{token}").status_code == 200
    frozen.advance(days=15)  # past its 14 days
    assert main(guest.get(f"/r/{token}")) == main(unknown)


def test_the_password_opens_the_upload_page(app, staff, guest):
    token, password, made = make_request(app, staff, accepted_types=("csv", "pdf"), max_files=4, several=True,
                                         reference_label="Batch number", max_file_size_mib=2)
    wrong = unlock(guest, token, "not the password")
    assert wrong.status_code == 401 and "This password is not correct" in wrong.text
    opened = unlock(guest, token, password)
    assert opened.status_code == 303 and opened.headers["location"] == f"/r/{token}"
    cookie = opened.headers["set-cookie"]
    assert "Max-Age=7200" in cookie and "HttpOnly" in cookie and token not in cookie
    page = guest.get(f"/r/{token}")
    assert page.status_code == 200
    text = page.text
    assert "Send files to Sam Staff" in text and "staff@registry.example" in text
    assert "Please send the batch." in text
    assert "File types: csv, pdf" in text and "Largest file: 2\u00a0MB" in text
    assert "At most 4 files at a time." in text and "several times" in text
    assert f'data-endpoint="/r/{token}/tus/"' in text and f'action="/r/{token}/upload"' in text
    assert 'id="transmit"' in text and 'name="reference"' in text and "Batch number" in text
    assert "valid until" in text
    assert "<script>" not in text and "style=" not in text
    assert audit_rows(app, "request.access")[0]["object"] == made.id
    assert app.state.db.scalar("SELECT subject FROM terms_acceptances") == f"request:{made.id}"


# -- uploads, pending files, Remove ---------------------------------------------------------------

def test_files_uploaded_by_tus_and_by_the_form_wait_for_transmit_and_can_be_removed(app, inside):
    guest, token, made = inside
    tus_upload(guest, token, "registry.csv", CSV)
    sent = form_upload(guest, token, ("report.pdf", PDF, "application/pdf"))
    assert sent.status_code == 303 and sent.headers["location"] == f"/r/{token}?notice=uploaded"
    assert pending_names(app, made.id) == ["registry.csv", "report.pdf"]
    # Request files are not the owner's My files.
    assert app.state.db.scalar("SELECT count(*) FROM request_files WHERE request_id = ?", [made.id]) == 2
    listed = guest.get(f"/r/{token}/files")
    assert listed.status_code == 200 and "registry.csv" in listed.text and "report.pdf" in listed.text
    assert "17\u00a0B" in listed.text
    assert "href=" not in listed.text  # names and sizes, never a link to a file
    page = guest.get(f"/r/{token}?notice=uploaded")
    assert "Your files were uploaded." in page.text and 'hx-get="/r/' in page.text

    # An unfinished upload: how much arrived, Remove, and how to continue it.
    url = create(guest, token, "half.csv", len(CSV)).headers["location"]
    assert patch(guest, url, 0, CSV[:5]).status_code == 204
    listed = guest.get(f"/r/{token}/files").text
    assert "half.csv" in listed and "5\u00a0B of 17\u00a0B" in listed and "add the same file again" in listed
    upload_id = url.rsplit("/", 1)[1]
    # While it receives data (another window sends it), it cannot be removed: said once, where asked.
    assert app.state.uploads.claim(upload_id)
    try:
        busy = guest.post(f"/r/{token}/uploads/{upload_id}/remove", data={"_csrf_token": csrf(guest)})
        assert busy.status_code == 409 and busy.text.count("receiving data right now") == 1
        busy = guest.post(f"/r/{token}/uploads/{upload_id}/remove", headers={"hx-request": "true", "x-csrftoken": csrf(guest)})
        assert busy.status_code == 200 and busy.text.count("receiving data right now") == 1 and "half.csv" in busy.text
    finally:
        app.state.uploads.release(upload_id)
    removed = guest.post(f"/r/{token}/uploads/{upload_id}/remove", data={"_csrf_token": csrf(guest)},
                         follow_redirects=False)
    assert removed.status_code == 303 and removed.headers["location"] == f"/r/{token}?notice=upload_removed"
    assert app.state.db.query("SELECT id FROM uploads") == []

    file_id = next(f.id for f in requests.pending_files(app.state.db, made.id) if f.name == "report.pdf")
    # htmx asks for the refreshed list instead of a redirect.
    removed = guest.post(f"/r/{token}/files/{file_id}/remove", headers={"hx-request": "true", "x-csrftoken": csrf(guest)})
    assert removed.status_code == 200 and "report.pdf" not in removed.text and "registry.csv" in removed.text
    assert pending_names(app, made.id) == ["registry.csv"]
    assert guest.post(f"/r/{token}/files/{file_id}/remove", data={"_csrf_token": csrf(guest)}).status_code == 404
    assert audit_rows(app, "request.file_remove")[0]["object"] == made.id
    nothing_uploading(app)


def test_refusals_come_from_the_request_and_keep_nothing(app, inside):
    """Type, size and count, decided by the request's own rules, before a byte (tus creation, the
    form's part) and after the upload (the content); in the guest's words; nothing refused stays."""
    guest, token, made = inside
    wrong_type = create(guest, token, "notes.docx", 10)
    assert_tus(wrong_type, 400)
    assert "Accepted: csv, pdf" in wrong_type.text
    never_allowed = create(guest, token, "notes.bin", 10)  # a type Relais refuses everywhere
    assert_tus(never_allowed, 400)
    assert "Accepted: csv, pdf." in never_allowed.text and "docx" not in never_allowed.text
    too_large = create(guest, token, "big.csv", 1025)
    assert_tus(too_large, 413)
    assert "1\u00a0KB" in too_large.text
    refused_page = form_upload(guest, token, ("notes.docx", b"PK\x03\x04", "application/zip"))
    assert refused_page.status_code == 400
    # The page that says so keeps working: its forms carry the cookie's token (they had none).
    assert set(re.findall(r'name="_csrf_token" value="([^"]*)"', refused_page.text)) == {csrf(guest)}
    assert refused_page.text.count('role="alert"') == 1  # said once, at the top
    big = form_upload(guest, token, ("big.csv", CSV * 100, "text/csv"))
    assert big.status_code == 413 and "larger than the limit" in big.text and "Send files to" in big.text
    fake = form_upload(guest, token, ("fake.pdf", b"MZ\x90\x00 not a pdf", "application/pdf"))
    assert fake.status_code == 400 and "does not match its type" in fake.text
    nothing_uploading(app)
    assert pending_names(app, made.id) == []
    # Each refusal is in the trail, those before a byte (no file row tells of them) included.
    trail = [json.loads(row["detail"]) | {"object": row["object"]} for row in audit_rows(app, "upload.refused")]
    assert [(t["reason"], t["name"]) for t in trail] == [
        ("extension", "notes.docx"), ("extension", "notes.bin"), ("too_large", "big.csv"),  # tus, before a byte
        ("extension", "notes.docx"), ("too_large", "big.csv"), ("content", "fake.pdf")]  # the form's
    assert {t["object"] for t in trail[:4]} == {made.id}  # refused before a file existed: the request

    for n in range(3):
        tus_upload(guest, token, f"part-{n}.csv", CSV)
    too_many = create(guest, token, "part-3.csv", len(CSV))
    assert_tus(too_many, 403)
    assert "at most 3 files" in too_many.text
    refused = form_upload(guest, token, ("part-3.csv", CSV, "text/csv"))
    assert refused.status_code == 403 and "at most 3 files" in refused.text
    assert pending_names(app, made.id) == ["part-0.csv", "part-1.csv", "part-2.csv"]
    nothing_uploading(app)


def test_the_count_is_checked_again_when_an_upload_completes(app, staff, guest):
    """The place an upload had when it was created may be gone when it completes (two creations
    racing for the last place): completing it is refused then, and it is discarded."""
    token, password, made = make_request(app, staff, max_files=2)
    unlock(guest, token, password)
    tus_upload(guest, token, "first.csv", CSV)
    url = create(guest, token, "second.csv", len(CSV)).headers["location"]
    app.state.db.execute("UPDATE requests SET max_files = 1 WHERE id = ?", [made.id])  # its place taken
    refused = patch(guest, url, 0, CSV)
    assert_tus(refused, 403)
    assert "at most 1 files" in refused.text
    assert pending_names(app, made.id) == ["first.csv"]
    nothing_uploading(app)
    trail = audit_rows(app, "upload.refused")
    assert len(trail) == 1 and '"reason": "request_too_many"' in trail[0]["detail"]


# -- Transmit and the receipt -------------------------------------------------------------------------

def test_transmit_refuses_nothing_and_unfinished_uploads_then_leads_to_the_receipt(app, staff, guest):
    token, password, made = make_request(app, staff, reference_label="Batch number")
    unlock(guest, token, password)
    nothing = transmit(guest, token, "B-1")
    assert nothing.status_code == 409 and "Add at least one file" in nothing.text
    tus_upload(guest, token, "registry.csv", CSV)
    url = create(guest, token, "slow.csv", len(CSV)).headers["location"]
    busy = transmit(guest, token, "B-1")
    assert busy.status_code == 409 and "still uploading" in busy.text
    assert patch(guest, url, 0, CSV).status_code == 204
    missing = transmit(guest, token, "  ")
    assert missing.status_code == 400 and "Fill in the Batch number" in missing.text
    done = transmit(guest, token, "B-1")
    assert done.status_code == 303
    receipt_url = done.headers["location"]
    submission_id = app.state.db.scalar("SELECT id FROM request_submissions")
    assert receipt_url == f"/r/{token}/receipt/{submission_id}"
    receipt = guest.get(receipt_url)
    assert receipt.status_code == 200
    digest = hashlib.sha256(CSV).hexdigest()
    assert receipt.text.count(digest) == 2  # both files, same content
    assert "registry.csv" in receipt.text and "slow.csv" in receipt.text and "17\u00a0B" in receipt.text
    assert "<dt>Batch number</dt><dd>B-1</dd>" in receipt.text
    assert "href=\"/r/" not in receipt.text  # a one-submission request: nothing more to send
    assert audit_rows(app, "request.transmit")[0]["object"] == made.id
    assert app.state.db.scalar("SELECT count(*) FROM outbox WHERE kind = 'request_receipt'") == 1


def test_a_closed_request_refuses_more_but_shows_its_receipt(app, inside):
    guest, token, made = inside
    tus_upload(guest, token, "registry.csv", CSV)
    receipt_url = transmit(guest, token).headers["location"]
    assert requests.get(app.state.db, made.id).closed_at
    assert_invalid(guest.get(f"/r/{token}"))
    assert_invalid(guest.get(f"/r/{token}/files"))
    assert_invalid(transmit(guest, token))
    assert_invalid(form_upload(guest, token, ("more.csv", CSV, "text/csv")))
    refused = create(guest, token, "more.csv", len(CSV))
    assert_tus(refused, 410)
    assert "no longer accepts files" in refused.text
    assert guest.get(receipt_url).status_code == 200  # still, for the session that transmitted
    assert_invalid(guest.get(f"/r/{token}/receipt/" + "0" * 32))
    with TestClient(app, base_url=BASE_URL) as stranger:  # no session of the link: no receipt
        assert_invalid(stranger.get(receipt_url))
    nothing_uploading(app)
    assert app.state.db.scalar("SELECT count(*) FROM password_links") == 0


def test_an_upload_started_before_the_close_is_refused_and_removed(app, inside):
    """Creation read the link as open while another tab's Transmit was closing it: the PATCH that
    follows is refused and what arrived goes (it could never be delivered)."""
    guest, token, made = inside
    url = create(guest, token, "late.csv", len(CSV)).headers["location"]
    assert patch(guest, url, 0, CSV[:4]).status_code == 204
    app.state.db.execute("UPDATE requests SET closed_at = '2026-01-01' WHERE id = ?", [made.id])
    refused = patch(guest, url, 4, CSV[4:])
    assert_tus(refused, 410)
    assert "no longer accepts files" in refused.text
    nothing_uploading(app)
    assert pending_names(app, made.id) == []
    assert_tus(guest.head(url, headers=tus_headers(guest)), 410)


def test_a_request_for_several_submissions_takes_a_second_transmit(app, staff, guest):
    token, password, made = make_request(app, staff, several=True)
    unlock(guest, token, password)
    tus_upload(guest, token, "first.csv", CSV)
    first = guest.get(transmit(guest, token).headers["location"])
    assert f'href="/r/{token}"' in first.text  # Send more files
    assert guest.get(f"/r/{token}").status_code == 200
    assert pending_names(app, made.id) == []
    form_upload(guest, token, ("second.csv", CSV, "text/csv"))
    second = transmit(guest, token)
    assert second.status_code == 303
    assert "second.csv" in guest.get(second.headers["location"]).text
    assert "first.csv" not in guest.get(second.headers["location"]).text
    assert app.state.db.scalar("SELECT count(*) FROM request_submissions WHERE request_id = ?", [made.id]) == 2
    assert requests.get(app.state.db, made.id).closed_at is None


# -- what a guest cannot reach ---------------------------------------------------------------------

def test_a_guest_of_one_request_cannot_reach_another_requests_uploads_or_files(app, staff, guest):
    token_a, password_a, made_a = make_request(app, staff)
    token_b, password_b, made_b = make_request(app, staff, several=True)
    with TestClient(app, base_url=BASE_URL) as other:
        unlock(other, token_b, password_b)
        b_url = create(other, token_b, "b.csv", len(CSV)).headers["location"]
        assert patch(other, b_url, 0, CSV[:3]).status_code == 204
        tus_upload(other, token_b, "b-done.csv", CSV)
    unlock(guest, token_a, password_a)
    b_upload = b_url.rsplit("/", 1)[1]
    # B's upload through A's link and session: as if it did not exist.
    a_url = f"/r/{token_a}/tus/{b_upload}"
    assert_tus(guest.head(a_url, headers=tus_headers(guest)), 404)
    assert_tus(patch(guest, a_url, 3, CSV[3:]), 404)
    assert_tus(guest.delete(a_url, headers=tus_headers(guest)), 404)
    assert guest.post(f"/r/{token_a}/uploads/{b_upload}/remove", data={"_csrf_token": csrf(guest)}).status_code == 404
    b_file = requests.pending_files(app.state.db, made_b.id)[0]
    assert guest.post(f"/r/{token_a}/files/{b_file.id}/remove", data={"_csrf_token": csrf(guest)}).status_code == 404
    # B's own URLs with A's session: no session of B, so the tus answer is a 401 and the page a password form.
    assert_tus(guest.head(b_url, headers=tus_headers(guest)), 401)
    assert_tus(patch(guest, b_url, 3, CSV[3:]), 401)
    assert 'name="password"' in guest.get(f"/r/{token_b}").text
    assert app.state.db.scalar('SELECT "offset" FROM uploads WHERE id = ?', [b_upload]) == 3
    assert pending_names(app, made_b.id) == ["b-done.csv"]
    # No guest route serves a file; the staff's file URLs want a staff login.
    for path in (f"/files/{b_file.id}", f"/files/zip?id={b_file.id}", f"/requests/{made_b.id}/files/{b_file.id}",
                 f"/requests/{made_b.id}/zip", f"/r/{token_a}/files/{b_file.id}", f"/r/{token_b}/files/{b_file.id}"):
        answer = guest.get(path, follow_redirects=False)
        assert answer.status_code in (303, 401, 404, 405), (path, answer.status_code)
        assert CSV not in answer.content


def test_no_session_is_a_tus_401_in_the_guests_words_and_the_upload_goes_on_after_the_password(app, asked, guest):
    token, password, made = asked
    unlock(guest, token, password)
    url = create(guest, token, "resume.csv", len(CSV)).headers["location"]
    assert patch(guest, url, 0, CSV[:6]).status_code == 204
    guest.cookies.clear()
    with TestClient(app, base_url=BASE_URL) as fresh:
        for answer in (fresh.head(url, headers=tus_headers(fresh)), patch(fresh, url, 6, CSV[6:]),
                       create(fresh, token, "x.csv", 3), fresh.delete(url, headers=tus_headers(fresh)),
                       fresh.options(f"/r/{token}/tus/", headers=tus_headers(fresh))):
            assert_tus(answer, 401)
        head = fresh.head(url, headers={**tus_headers(fresh), "Accept-Language": "fr"})
        assert "type the password" in unquote(head.headers["relais-message"])  # the request's language: en
        unlock(fresh, token, password)  # the password again: the same upload, the same URL
        assert fresh.head(url, headers=tus_headers(fresh)).headers["upload-offset"] == "6"
        assert patch(fresh, url, 6, CSV[6:]).status_code == 204
    assert pending_names(app, made.id) == ["resume.csv"]


def test_expiry_ends_uploads_pages_and_forms(app, frozen, staff, guest):
    token, password, made = make_request(app, staff, expires_days=1)
    unlock(guest, token, password)
    url = create(guest, token, "late.csv", len(CSV)).headers["location"]
    assert patch(guest, url, 0, CSV[:4]).status_code == 204
    frozen.advance(hours=23, minutes=59)
    assert 'name="password"' in guest.get(f"/r/{token}").text  # the link session ended long ago
    unlock(guest, token, password)  # a new one: the same uploads
    assert "late.csv" in guest.get(f"/r/{token}/files").text
    frozen.advance(minutes=1)  # the link's last moment is past
    assert_invalid(guest.get(f"/r/{token}"))
    assert_invalid(form_upload(guest, token, ("x.csv", CSV, "text/csv")))
    assert_tus(create(guest, token, "x.csv", len(CSV)), 410)
    refused = patch(guest, url, 4, CSV[4:])
    assert_tus(refused, 410)
    nothing_uploading(app)


def test_csrf_is_required_on_every_post(app, inside):
    guest, token, made = inside
    tus_upload(guest, token, "kept.csv", CSV)
    url = create(guest, token, "open.csv", len(CSV)).headers["location"]
    file_id = requests.pending_files(app.state.db, made.id)[0].id
    upload_id = url.rsplit("/", 1)[1]
    for path in (f"/r/{token}", f"/r/{token}/transmit", f"/r/{token}/files/{file_id}/remove",
                 f"/r/{token}/uploads/{upload_id}/remove"):
        assert guest.post(path, data={"password": "x"}, follow_redirects=False).status_code == 403, path
        assert guest.post(path, data={"_csrf_token": "forged"}, follow_redirects=False).status_code == 403, path
    forged = {"Tus-Resumable": "1.0.0", "x-csrftoken": "forged"}
    assert_tus(guest.post(f"/r/{token}/tus/", headers={**forged, "Upload-Length": "3",
                                                      "Upload-Metadata": metadata("a.csv")}), 403)
    assert_tus(guest.patch(url, content=CSV, headers={**forged, "Upload-Offset": "0", "Content-Type": OCTETS}), 403)
    assert_tus(guest.delete(url, headers=forged), 403)
    for field in (None, "forged"):
        refused = form_upload(guest, token, ("f.csv", CSV, "text/csv"), token_field=field)
        assert refused.status_code == 403 and "Reload the page" in refused.text
    assert pending_names(app, made.id) == ["kept.csv"]
    assert app.state.db.scalar("SELECT count(*) FROM uploads") == 1
    assert app.state.db.scalar("SELECT count(*) FROM request_submissions") == 0


# -- the link session lives as long as the guest is busy ---------------------------------------------

def test_a_busy_guest_keeps_the_link_session(app, frozen, inside):
    guest, token, made = inside
    for _ in range(3):  # a page every 90 minutes: more than the 2 hours in all
        frozen.advance(minutes=90)
        page = guest.get(f"/r/{token}")
        assert page.status_code == 200
        assert "Max-Age=7200" in page.headers["set-cookie"]  # and the browser keeps the cookie as long
    frozen.advance(hours=2, seconds=1)  # idle too long
    assert 'name="password"' in guest.get(f"/r/{token}").text


def test_a_patch_longer_than_the_link_session_keeps_it(app, frozen, inside, monkeypatch):
    """One PATCH that runs for three hours by the clock (a multi-GB file over a slow line)."""
    guest, token, made = inside
    big = b"id,value\n" + b"1,2\n" * (3 * 1024 * 1024 // 4)
    app.state.db.execute("UPDATE requests SET max_file_size = ? WHERE id = ?", [len(big), made.id])
    url = create(guest, token, "long.csv", len(big)).headers["location"]
    original = storage.SegmentWriter.write

    def slow(self, data):
        result = original(self, data)
        frozen.advance(minutes=50)
        return result

    monkeypatch.setattr(storage.SegmentWriter, "write", slow)
    done = patch(guest, url, 0, big)
    assert done.status_code == 204, done.text
    assert "Max-Age=7200" in done.headers["set-cookie"]
    session = app.state.db.query_one("SELECT created_at, expires_at FROM link_sessions")
    assert session["expires_at"] > requests.clock.now_iso()
    assert guest.get(f"/r/{token}").status_code == 200 and 'name="password"' not in guest.get(f"/r/{token}").text
    assert pending_names(app, made.id) == ["long.csv"]


def test_a_patch_whose_link_is_revoked_meanwhile_stops(app, frozen, inside, monkeypatch):
    guest, token, made = inside
    big = b"id,value\n" + b"1,2\n" * (3 * 1024 * 1024 // 4)
    app.state.db.execute("UPDATE requests SET max_file_size = ? WHERE id = ?", [len(big), made.id])
    url = create(guest, token, "cut.csv", len(big)).headers["location"]
    original, calls = storage.SegmentWriter.write, []

    def write(self, data):
        result = original(self, data)
        frozen.advance(minutes=2)
        calls.append(1)
        if len(calls) == 1:
            request_staff.revoke(app.state.db, audit.SYSTEM, requests.get(app.state.db, made.id))
        return result

    monkeypatch.setattr(storage.SegmentWriter, "write", write)
    answer = patch(guest, url, 0, big)
    assert_tus(answer, 410)
    assert len(calls) < 4  # stopped on the way, not at the end
    assert pending_names(app, made.id) == []
    nothing_uploading(app)  # it could never complete: nothing of it stays


def test_a_link_session_in_the_receipts_only(app, inside):
    """After the close the session leads to the receipt and nowhere else (the core's two checks)."""
    guest, token, made = inside
    tus_upload(guest, token, "registry.csv", CSV)
    transmit(guest, token)
    cookie = next(v for k, v in guest.cookies.items() if k.startswith("__Host-relais_link_"))
    assert links.session_object(app.state.db, requests.KIND, token, cookie) is None
    assert links.session_after_close(app.state.db, requests.KIND, token, cookie).id == made.id
    assert links.session_after_close(app.state.db, requests.KIND, token, "another") is None
    request_staff.revoke(app.state.db, audit.SYSTEM, requests.get(app.state.db, made.id))
    assert links.session_after_close(app.state.db, requests.KIND, token, cookie) is None
