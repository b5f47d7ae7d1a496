"""Partner spaces over HTTP: both ways in (tus and the plain form), the lists, downloads and the
retrieval they record, the mails to the other side (one per batch), delete behind a
confirmation, retention with a frozen clock, and one partner never reaching another's files."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
from litestar.testing import TestClient

from relais import audit, clock, i18n, retention, settings, spaces
from tests.conftest import BASE_URL, AuthActions, audit_rows
from tests.test_partners import NEW_PASSWORD, PARTNER_EMAIL, activate, active_partner, make_partner, outbox, partner  # noqa: F401 (fixtures)
from tests.test_request_guest import CSV, PDF, metadata

OTHER_EMAIL = "jo.janssens@uzgent.example"


def tus(browser, base: str, name: str, data: bytes, complete: bool = True) -> str:
    """A tus upload into ``base``/tus/ (whole, or only its first half); returns its URL."""
    token = browser.cookies["__Host-csrf"]
    created = browser.post(f"{base}/tus/", headers={"Tus-Resumable": "1.0.0", "x-csrftoken": token,
                                                    "Upload-Length": str(len(data)), "Upload-Metadata": metadata(name)})
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    assert url.startswith(f"{base}/tus/")
    part = data if complete else data[: len(data) // 2]
    sent = browser.patch(url, content=part, headers={"Tus-Resumable": "1.0.0", "x-csrftoken": token, "Upload-Offset": "0",
                                                     "Content-Type": "application/offset+octet-stream"})
    assert sent.status_code == 204, sent.text
    return url


def form(browser, base: str, *parts) -> object:
    return browser.post(f"{base}/upload", data={"_csrf_token": browser.cookies["__Host-csrf"]},
                        files=[("file", part) for part in parts], follow_redirects=False)


def file_id(app, partner_id: int, name: str) -> str:
    return next(f.id for d in spaces.DIRECTIONS for f in spaces.list_files(app.state.db, partner_id, d) if f.name == name)


@pytest.fixture
def partner_browser(app, active_partner):
    with TestClient(app, base_url=BASE_URL) as browser:
        AuthActions(browser).login(email=PARTNER_EMAIL, password=NEW_PASSWORD)
        yield browser


@pytest.fixture
def staff_browser(app, staff):
    with TestClient(app, base_url=BASE_URL) as browser:
        AuthActions(browser).login()
        yield browser


def test_the_partner_sends_and_their_contact_person_retrieves(app, partner_browser, staff_browser, active_partner, staff):
    page = partner_browser.get("/space")
    assert page.status_code == 200 and 'data-endpoint="/space/tus/"' in page.text and 'action="/space/upload"' in page.text
    tus(partner_browser, "/space", "cohort.csv", CSV)
    listed = partner_browser.get("/space/list").text
    assert "cohort.csv" in listed and hashlib.sha256(CSV).hexdigest() in listed and "Files you sent" in listed
    [sent] = audit_rows(app, "space.sent")
    assert sent["object"] == PARTNER_EMAIL and json.loads(sent["detail"])["sha256"] == hashlib.sha256(CSV).hexdigest()

    # Their contact person is told, in their own language, with a link to the partner's page.
    [notice] = outbox(app, "space_received")
    assert staff.email in notice["recipient"] and "cohort.csv" in notice["body_text"]
    assert f"{BASE_URL}/partners/{active_partner.id}" in notice["body_text"]

    # Staff see it on the partner's page and download it: retrieved, once.
    detail = staff_browser.get(f"/partners/{active_partner.id}").text
    assert "Files the partner sent" in detail and "cohort.csv" in detail
    fid = file_id(app, active_partner.id, "cohort.csv")
    got = staff_browser.get(f"/partners/{active_partner.id}/space/files/{fid}")
    assert got.status_code == 200 and got.content == CSV and "cohort.csv" in got.headers["content-disposition"]
    assert spaces.get(app.state.db, active_partner.id, fid).retrieved_at is not None
    assert len(audit_rows(app, "space.retrieved")) == 1
    # The partner downloading their own file again is no retrieval by the other side.
    assert partner_browser.get(f"/space/files/{fid}").content == CSV
    assert len(audit_rows(app, "space.retrieved")) == 1


def test_staff_place_files_the_partner_is_told_once_and_downloads_them_as_a_zip(
        app, partner_browser, staff_browser, active_partner, staff):
    base = f"/partners/{active_partner.id}/space"
    assert form(staff_browser, base, ("report.pdf", PDF, "application/pdf")).headers["location"] == \
        f"/partners/{active_partner.id}?notice=uploaded"
    [placed] = outbox(app, "space_placed")
    assert PARTNER_EMAIL in placed["recipient"] and placed["language"] == "nl"
    assert placed["subject"] == i18n.ngettext("nl", "The Registry placed a file in your space",
                                              "The Registry placed %(num)s files in your space", 1)
    assert f"{BASE_URL}/space" in placed["body_text"]

    # Two at once: one mail, once the second is in (the first waits for its batch).
    half = tus(staff_browser, base, "labs.csv", CSV * 10, complete=False)
    tus(staff_browser, base, "stages.csv", CSV)
    assert len(outbox(app, "space_placed")) == 1
    token = staff_browser.cookies["__Host-csrf"]
    rest = staff_browser.patch(half, content=(CSV * 10)[len(CSV) * 5:], headers={
        "Tus-Resumable": "1.0.0", "x-csrftoken": token, "Upload-Offset": str(len(CSV) * 5),
        "Content-Type": "application/offset+octet-stream"})
    assert rest.status_code == 204
    batches = outbox(app, "space_placed")
    assert len(batches) == 2 and "labs.csv" in batches[1]["body_text"] and "stages.csv" in batches[1]["body_text"]
    by = {row["actor"] for row in audit_rows(app, "upload.start")}
    assert by == {staff.email}

    listed = partner_browser.get("/space").text
    assert "Files the Registry placed for you" in listed and all(n in listed for n in ("report.pdf", "labs.csv", "stages.csv"))
    ids = [file_id(app, active_partner.id, n) for n in ("report.pdf", "labs.csv")]
    got = partner_browser.get("/space/zip", params=[("id", i) for i in ids])
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        assert sorted(archive.namelist()) == ["labs.csv", "report.pdf"] and archive.read("report.pdf") == PDF
    assert {f.name for f in spaces.list_files(app.state.db, active_partner.id, spaces.TO_PARTNER) if f.retrieved_at} == \
        {"report.pdf", "labs.csv"}
    # Staff see every space's files on the partners list, by institution.
    row = next(line for line in staff_browser.get("/partners").text.split("<tr>") if "An Peeters" in line)
    assert "3 placed, 0 sent" in row and "1 not retrieved yet" in row


def test_a_file_is_deleted_only_after_its_confirmation(app, partner_browser, active_partner):
    tus(partner_browser, "/space", "wrong.csv", CSV)
    fid = file_id(app, active_partner.id, "wrong.csv")
    confirm = partner_browser.get(f"/space/files/{fid}/delete")
    assert confirm.status_code == 200 and "wrong.csv" in confirm.text and "cannot be undone" in confirm.text
    token = partner_browser.cookies["__Host-csrf"]
    unconfirmed = partner_browser.post(f"/space/files/{fid}/delete", data={"_csrf_token": token}, follow_redirects=False)
    assert unconfirmed.headers["location"] == f"/space/files/{fid}/delete"
    assert spaces.get(app.state.db, active_partner.id, fid) is not None
    done = partner_browser.post(f"/space/files/{fid}/delete", data={"_csrf_token": token, "confirm": "yes"},
                                follow_redirects=False)
    assert done.headers["location"] == "/space?notice=deleted"
    assert spaces.get(app.state.db, active_partner.id, fid) is None
    assert app.state.db.scalar("SELECT count(*) FROM files") == 0
    [row] = audit_rows(app, "space.delete")
    assert row["actor"] == PARTNER_EMAIL and "wrong.csv" in row["detail"]


def test_a_partner_never_reaches_another_partners_space(app, staff, partner_browser, staff_browser, active_partner):
    other = make_partner(app, staff, email=OTHER_EMAIL, name="Jo Janssens", institution="UZ Gent")
    with TestClient(app, base_url=BASE_URL) as browser:
        activate(app, browser, other)
        theirs = tus(browser, "/space", "theirs.csv", CSV)
        half = tus(browser, "/space", "unfinished.csv", CSV * 4, complete=False)
    placed = form(staff_browser, f"/partners/{other.id}/space", ("for-jo.pdf", PDF, "application/pdf"))
    assert placed.status_code == 303
    their_files = [file_id(app, other.id, n) for n in ("theirs.csv", "for-jo.pdf")]
    token = partner_browser.cookies["__Host-csrf"]
    tus_headers = {"Tus-Resumable": "1.0.0", "x-csrftoken": token}

    for fid in their_files:
        assert partner_browser.get(f"/space/files/{fid}").status_code == 404
        assert partner_browser.get("/space/zip", params={"id": fid}).status_code == 404
        assert partner_browser.get(f"/space/files/{fid}/delete").status_code == 404
        assert partner_browser.post(f"/space/files/{fid}/delete", data={"_csrf_token": token, "confirm": "yes"}).status_code == 404
        for path in (f"/partners/{other.id}/space/files/{fid}", f"/partners/{active_partner.id}/space/files/{fid}"):
            assert partner_browser.get(path, follow_redirects=False).status_code == 403  # staff routes
    for url in (theirs, half):  # their uploads, by URL, under the partner's own tus path
        upload = url.rsplit("/", 1)[1]
        assert partner_browser.head(f"/space/tus/{upload}", headers=tus_headers).status_code == 404
        assert partner_browser.patch(f"/space/tus/{upload}", content=b"x", headers={
            **tus_headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}).status_code == 404
        assert partner_browser.delete(f"/space/tus/{upload}", headers=tus_headers).status_code == 404
    assert "theirs.csv" not in partner_browser.get("/space").text and "for-jo.pdf" not in partner_browser.get("/space/list").text
    # Staff on the wrong partner's page find nothing either.
    assert staff_browser.get(f"/partners/{active_partner.id}/space/files/{their_files[0]}").status_code == 404

    refused = audit_rows(app, "space.refused")
    assert len(refused) == 8 and {r["actor"] for r in refused} == {PARTNER_EMAIL}
    assert all(spaces.get(app.state.db, other.id, fid) is not None for fid in their_files)
    assert app.state.db.scalar("SELECT count(*) FROM uploads") == 1  # theirs, untouched


def test_staff_accounts_have_no_space_and_partners_no_staff_side(app, staff, staff_browser, partner_browser, active_partner):
    assert staff_browser.get("/space", follow_redirects=False).status_code == 403
    assert staff_browser.get(f"/partners/{staff.id}/space/list").status_code == 404  # a staff account has no space
    assert partner_browser.get(f"/partners/{active_partner.id}/space/list", follow_redirects=False).status_code == 403


def test_files_go_at_their_date_or_once_retrieved(app, partner_browser, staff_browser, active_partner, frozen):
    tus(partner_browser, "/space", "kept.csv", CSV)
    kept = file_id(app, active_partner.id, "kept.csv")
    assert "24 Dec 2026" in partner_browser.get("/space").text  # 30 days after 24 Nov, the date it goes

    # With the setting on, a file the other side downloaded whole goes at the next run.
    app.state.db.write(lambda db: settings.set_value(db, audit.SYSTEM, None, "space_delete_when_retrieved", 1))
    tus(partner_browser, "/space", "retrieved.csv", CSV)
    fid = file_id(app, active_partner.id, "retrieved.csv")
    assert partner_browser.get(f"/space/files/{fid}").content == CSV  # the partner's own download: not retrieved
    assert retention.purge_all(app.state)["space files"] == 0
    ranged = staff_browser.get(f"/partners/{active_partner.id}/space/files/{fid}", headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 206
    assert retention.purge_all(app.state)["space files"] == 0  # a part is no retrieval
    assert staff_browser.get(f"/partners/{active_partner.id}/space/files/{fid}").content == CSV
    assert retention.purge_all(app.state)["space files"] == 1
    assert [f.name for f in spaces.list_files(app.state.db, active_partner.id, spaces.FROM_PARTNER)] == ["kept.csv"]
    assert '"reason": "space_retrieved"' in audit_rows(app, "space.purge")[-1]["detail"]

    # The rest goes at its date, to the second.
    frozen.advance(days=30, seconds=-1)
    assert retention.purge_all(app.state)["space files"] == 0
    frozen.advance(seconds=1)
    assert retention.purge_all(app.state)["space files"] == 1
    assert retention.purge_all(app.state)["space files"] == 0  # a second run finds nothing more
    assert spaces.get(app.state.db, active_partner.id, kept) is None
    assert app.state.db.scalar("SELECT count(*) FROM files") == 0
    assert '"reason": "space_deadline"' in audit_rows(app, "space.purge")[-1]["detail"]
    assert audit_rows(app, "space.purge")[-1]["actor"] == "system"


def test_a_notice_a_crash_kept_back_goes_with_the_retention_run(app, partner_browser, active_partner, monkeypatch):
    monkeypatch.setattr(spaces, "notify", lambda *args, **kwargs: 0)  # as if the process died right after the upload
    tus(partner_browser, "/space", "late.csv", CSV)
    monkeypatch.undo()
    assert outbox(app, "space_received") == []
    assert retention.purge_all(app.state)["space notices"] == 1
    assert retention.purge_all(app.state)["space notices"] == 0
    assert "late.csv" in outbox(app, "space_received")[0]["body_text"]


def test_the_retention_setting_sets_the_date(app, partner_browser, active_partner, frozen):
    app.state.db.write(lambda db: settings.set_value(db, audit.SYSTEM, None, "space_retention_days", 7))
    tus(partner_browser, "/space", "week.csv", CSV)
    fid = file_id(app, active_partner.id, "week.csv")
    assert spaces.get(app.state.db, active_partner.id, fid).delete_at == clock.iso(frozen.moment + timedelta(days=7))


def test_each_list_of_a_space_is_paged_and_keeps_the_other_where_it_is(app, client, auth, staff, active_partner):
    """Each way a page at a time, newest first, with its own pages; the partner's page too."""
    from relais import paging

    def insert(db):
        for n in range(paging.PER_PAGE + 3):
            file_id = f"{n:032x}"
            at = f"2026-11-24T09:{n // 60:02}:{n % 60:02}.000000+00:00"
            db.execute("INSERT INTO files (id, owner_id, name, size, sha256, media_type, wrapped_key, storage_name,"
                       " state, created_at, completed_at) VALUES (?, ?, ?, 10, ?, 'text/csv', x'00', ?, 'complete', ?, ?)",
                       [file_id, active_partner.id, f"placed-{n:03}.csv", "0" * 64, file_id, at, at])
            db.execute("INSERT INTO space_files (file_id, partner_id, direction, placed_by, placed_at, delete_at)"
                       " VALUES (?, ?, 'to_partner', ?, ?, '2026-12-24T09:00:00.000000+00:00')",
                       [file_id, active_partner.id, staff.id, at])

    app.state.db.write(insert)
    auth.login()
    first = client.get(f"/partners/{active_partner.id}")
    listed = re.findall(r'download>(placed-\d{3}\.csv)</a>', first.text)
    assert listed == [f"placed-{n:03}.csv" for n in range(paging.PER_PAGE + 2, 2, -1)]
    assert f'href="/partners/{active_partner.id}?sent_page=1&amp;placed_page=2" rel="next"' in first.text
    second = client.get(f"/partners/{active_partner.id}", params={"sent_page": "1", "placed_page": "2"})
    assert re.findall(r'download>(placed-\d{3}\.csv)</a>', second.text) == ["placed-002.csv", "placed-001.csv",
                                                                          "placed-000.csv"]
