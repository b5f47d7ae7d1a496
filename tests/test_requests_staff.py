"""Request files, staff's side, over HTTP: a new request, its list and page, the received files
downloaded one by one or as a zip (which marks them retrieved), revoke, extend, delete, and the
home page's list of what waits. The guest's files arrive through the real upload engine and
Transmit (relais.requests), as the guest's pages leave them."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from litestar.testing import TestClient

from relais import audit, request_staff, request_submissions, requests, settings, storage
from relais.targets import Target
from tests.conftest import BASE_URL, AuthActions, audit_rows
from tests.test_shares import _pause_zip, _raw_get
from tests.test_upload_targets import BIG, slow

CSV = b"patient_id;diagnosis;date\n" + b"".join(b"%d;C50.%d;2026-01-%02d\n" % (i, i % 10, i % 28 + 1) for i in range(5000))
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 400
GUEST = audit.Who(actor="anonymous", ip="192.0.2.44", user_agent="GuestBrowser/1.0")
FIELDS = {"recipient": "Dr.Peeters@Hospital.example", "message": "The 2026 batch, please.", "language": "en",
          "expires_days": "14", "max_file_size_mib": "100", "max_files": "10", "several": "no",
          "reference_label": ""}


def set_setting(app, name: str, value: int) -> None:
    app.state.db.write(lambda db: settings.set_value(db, audit.SYSTEM, None, name, value))


def post_request(auth: AuthActions, types=(), **fields):
    data = {**FIELDS, **fields, "_csrf_token": auth.client.cookies["__Host-csrf"]}
    return auth.client.post("/requests", data={**data, "types": list(types)}, follow_redirects=False)


def create(auth: AuthActions, **fields) -> str:
    """A new request through the form; returns its id (the password page is left unseen)."""
    sent = post_request(auth, **fields)
    assert sent.status_code == 303, sent.text
    return re.fullmatch(r"/requests/([0-9a-f]{32})/created", sent.headers["location"]).group(1)


def arrive(app, request_id: str, named: dict[str, bytes], reference: str = "") -> request_submissions.Submission:
    """The guest uploads these files into the request (the real engine) and clicks Transmit."""
    engine, target = app.state.uploads, Target.request(request_id)
    for name, content in named.items():
        file_id, writer = engine.begin_whole(target, name)
        writer.write(content)
        engine.complete_whole(GUEST, target, file_id, writer)
    return request_submissions.transmit(app.state.db, GUEST, requests.get(app.state.db, request_id), reference, "nl", BASE_URL)


def received(app, request_id: str) -> dict[str, str]:
    """name -> file id of the request's transmitted files."""
    found = requests.get(app.state.db, request_id)
    return {f.name: f.id for f in request_staff.received_files(app.state.db, found)}


def retrieved(app, file_id: str):
    return app.state.db.scalar("SELECT retrieved_at FROM request_files WHERE file_id = ?", [file_id])


@pytest.fixture
def logged_in(auth, staff):
    auth.login()
    return auth


@pytest.fixture
def with_files(app, logged_in):
    """A request to which two files arrived in one submission; returns (request id, name -> file id)."""
    request_id = create(logged_in, several="yes", reference_label="Batch number")
    arrive(app, request_id, {"registry-2026.csv": CSV, "pathology report.pdf": PDF}, reference="B-17")
    return request_id, received(app, request_id)


# -- a new request ------------------------------------------------------------------------------------

def test_the_form_offers_the_settings_defaults(app, logged_in):
    set_setting(app, "request_default_days", 9)
    page = logged_in.client.get("/requests/new")
    assert page.status_code == 200
    assert 'name="expires_days" type="number" min="1" max="30" value="9"' in page.text
    assert 'name="types" value="csv"' in page.text and "checked" not in page.text.split('name="types"')[1][:60]
    assert re.search(r'name="max_file_size_mib" type="number" min="1" max="(\d+)" value="\1"', page.text)


def test_creating_queues_the_invitation_and_shows_the_password_once(app, logged_in, staff):
    sent = post_request(logged_in, types=["csv", "pdf"], reference_label="Study number", password_link="on",
                        max_files="3", max_file_size_mib="5")
    assert sent.status_code == 303
    created = logged_in.client.get(sent.headers["location"])
    assert created.status_code == 200 and "dr.peeters@hospital.example" in created.text
    password = re.search(r'id="request-password">([^<]+)<', created.text).group(1)
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", password)
    assert re.search(r"https://relais\.test/p/[A-Za-z0-9_-]+", created.text)
    again = logged_in.client.get(sent.headers["location"])
    assert password not in again.text and 'id="password-gone"' in again.text

    row = app.state.db.query_one("SELECT * FROM requests")
    assert (row["recipient"], row["accepted_types"], row["max_files"], row["max_file_size"], row["several"],
            row["reference_label"], row["owner_id"]) == ("dr.peeters@hospital.example", "csv pdf", 3, 5 * 1024 * 1024,
                                                          0, "Study number", staff.id)
    invitation = app.state.db.query_one("SELECT * FROM outbox WHERE kind = 'request'")
    assert invitation["recipient"] == "dr.peeters@hospital.example"
    assert re.search(r"https://relais\.test/r/[A-Za-z0-9_-]{43}", invitation["body_text"])
    assert password not in invitation["body_text"]
    assert audit_rows(app, "request.create")[0]["object"] == row["id"]
    assert audit_rows(app, "request.password_shown") and audit_rows(app, "request.password_link_create")


@pytest.mark.parametrize("fields, message", [
    ({"recipient": "not an address"}, "Enter the e-mail address of the person who will send the files."),
    ({"recipient": ""}, "Enter the e-mail address of the person who will send the files."),
    ({"message": "x" * 5001}, "The message is at most 5,000 characters."),
    ({"language": "xx"}, "Choose the language of the e-mail."),
    ({"expires_days": "0"}, "The link can be valid from 1 to 30 days."),
    ({"expires_days": "31"}, "The link can be valid from 1 to 30 days."),
    ({"expires_days": "soon"}, "The link can be valid from 1 to 30 days."),
    ({"types": ["csv", "exe"]}, "Choose accepted file types from the list."),
    ({"max_file_size_mib": "0"}, "The largest file is a whole number of MiB from 1 to"),
    ({"max_file_size_mib": "99999999"}, "The largest file is a whole number of MiB from 1 to"),
    ({"max_file_size_mib": "1.5"}, "The largest file is a whole number of MiB from 1 to"),
    ({"max_files": "0"}, "The most files is a whole number from 1 to 100."),
    ({"max_files": "101"}, "The most files is a whole number from 1 to 100."),
    ({"reference_label": "Study\x07number"}, "The reference&#39;s name is at most 100 characters"),
    ({"reference_label": "x" * 101}, "The reference&#39;s name is at most 100 characters"),
    ({"password": "short"}, "at least 15 characters"),
])
def test_bad_requests_are_refused_and_nothing_is_written(app, logged_in, fields, message):
    types = fields.pop("types", ())
    refused = post_request(logged_in, types=types, **fields)
    assert refused.status_code == 400 and message in refused.text, refused.text
    assert 'role="alert"' in refused.text
    assert app.state.db.scalar("SELECT count(*) FROM requests") == 0
    assert app.state.db.scalar("SELECT count(*) FROM outbox") == 0
    assert not audit_rows(app, "request.create")


def test_a_refused_form_keeps_what_was_typed_but_not_the_password(app, logged_in):
    refused = post_request(logged_in, types=["csv"], max_files="0", password="a very long password of mine",
                           reference_label="Batch")
    assert 'value="Batch"' in refused.text and 'id="type-csv" checked' in refused.text
    assert "a very long password of mine" not in refused.text


# -- who sees what --------------------------------------------------------------------------------------

def test_someone_elses_request_is_a_404_on_every_route(app, with_files, make_user):
    request_id, names = with_files
    file_id = names["registry-2026.csv"]
    make_user(email="colleague@registry.example", name="Colin")
    with TestClient(app, base_url=BASE_URL) as other:
        colleague = AuthActions(other)
        colleague.login(email="colleague@registry.example")
        for path in ("", "/created", f"/files/{file_id}", "/zip", "/revoke", "/delete"):
            assert other.get(f"/requests/{request_id}{path}", follow_redirects=False).status_code == 404, path
        for path in ("/revoke", "/delete", "/extend"):
            assert colleague.post(f"/requests/{request_id}{path}", {"confirm": "yes", "days": "3"}).status_code == 404
        assert "dr.peeters" not in other.get("/requests").text
        assert "dr.peeters" not in other.get("/").text
    assert requests.get(app.state.db, request_id).open and retrieved(app, file_id) is None
    assert app.state.db.scalar("SELECT count(*) FROM request_files") == 2


def test_an_admin_sees_every_request_and_whose_it_is(app, with_files, admin):
    request_id, _ = with_files
    with TestClient(app, base_url=BASE_URL) as other:
        AuthActions(other).login(email="admin@registry.example")
        listing = other.get("/requests")
        assert f"/requests/{request_id}" in listing.text and "staff@registry.example" in listing.text
        detail = other.get(f"/requests/{request_id}")
        assert detail.status_code == 200 and "Requested by" in detail.text and "staff@registry.example" in detail.text


def test_without_a_login_the_pages_ask_for_one(app, client, with_files):
    request_id, _ = with_files
    client.cookies.delete("__Host-relais_session")
    asked = client.get(f"/requests/{request_id}", follow_redirects=False)
    assert asked.status_code == 303 and asked.headers["location"] == f"/login?next=/requests/{request_id}"
    assert client.post("/requests", data={**FIELDS, "_csrf_token": client.cookies["__Host-csrf"]},
                       follow_redirects=False).status_code == 401
    assert app.state.db.scalar("SELECT count(*) FROM requests") == 1


# -- the list, the page, the home panel ----------------------------------------------------------------

def test_the_list_and_the_page_show_the_state_and_what_arrived(app, logged_in, with_files):
    request_id, names = with_files
    listing = logged_in.client.get("/requests")
    assert "Files to retrieve" in listing.text and "dr.peeters@hospital.example" in listing.text
    detail = logged_in.client.get(f"/requests/{request_id}")
    assert detail.status_code == 200
    stored = {f.name: f for f in request_staff.received_files(app.state.db, requests.get(app.state.db, request_id))}
    for name, f in stored.items():
        assert name in detail.text and f.sha256 in detail.text and f"/requests/{request_id}/files/{f.id}" in detail.text
    assert "B-17" in detail.text and "192.0.2.44" in detail.text and "GuestBrowser/1.0" in detail.text
    assert "Files transmitted" in detail.text and "not yet" in detail.text
    assert f"/requests/{request_id}/zip?submission=" in detail.text and "Open: takes files" in detail.text
    assert "Revoke the link" in detail.text


def test_a_new_request_is_waiting(app, logged_in):
    request_id = create(logged_in)
    assert "Waiting for files" in logged_in.client.get("/requests").text
    assert "Nothing has been sent yet." in logged_in.client.get(f"/requests/{request_id}").text


def test_the_home_page_lists_what_waits_soonest_first(app, frozen, logged_in):
    first = create(logged_in, recipient="first@lab.example")
    arrive(app, first, {"a.csv": CSV})
    frozen.advance(days=2)
    logged_in.login()  # the staff session has long timed out
    later = create(logged_in, recipient="later@lab.example")
    arrive(app, later, {"b.csv": CSV, "c.pdf": PDF})
    nothing = create(logged_in, recipient="nothing@lab.example")
    home = logged_in.client.get("/")
    assert "Files waiting for you" in home.text
    panel = home.text.split("Files waiting for you")[1].split("</table>")[0]
    assert panel.index("first@lab.example") < panel.index("later@lab.example")
    assert f"/requests/{later}" in panel and "nothing@lab.example" not in panel and nothing
    assert re.search(r"later@lab\.example</a></td><td>2</td>", panel)
    assert re.search(r"first@lab\.example</a></td><td>1</td><td>8 Dec 2026, 10:00 CET", panel)
    # Retrieved files no longer wait.
    assert logged_in.client.get(f"/requests/{first}/zip").status_code == 200
    assert "first@lab.example" not in logged_in.client.get("/").text


def test_the_menu_offers_request_files(app, logged_in):
    page = logged_in.client.get("/requests")
    assert re.search(r'<a href="/requests" aria-current="page">Request files</a>', page.text)
    assert '<a href="/requests"' in logged_in.client.get("/files").text


# -- downloads mark the files retrieved ----------------------------------------------------------------

def test_downloading_each_file_retrieves_the_submission(app, logged_in, with_files):
    request_id, names = with_files
    got = logged_in.client.get(f"/requests/{request_id}/files/{names['registry-2026.csv']}")
    assert got.status_code == 200 and got.content == CSV and got.headers["content-disposition"].startswith("attachment")
    assert retrieved(app, names["registry-2026.csv"]) and not retrieved(app, names["pathology report.pdf"])
    assert app.state.db.scalar("SELECT retrieved_at FROM request_submissions") is None
    assert logged_in.client.get(f"/requests/{request_id}/files/{names['pathology report.pdf']}").content == PDF
    assert app.state.db.scalar("SELECT retrieved_at FROM request_submissions") is not None
    assert [r["action"] for r in audit_rows(app) if r["action"].startswith("request.")][-3:] == [
        "request.download", "request.download", "request.retrieved"]
    detail = logged_in.client.get(f"/requests/{request_id}").text
    assert "Downloaded completely" in detail and "Every file of a submission retrieved" in detail
    assert "Retrieved" in detail and "not yet" not in detail
    # Files are kept until their deadline unless the setting says otherwise.
    assert len(received(app, request_id)) == 2


def test_the_zip_retrieves_every_file_it_holds(app, logged_in, with_files):
    request_id, names = with_files
    got = logged_in.client.get(f"/requests/{request_id}/zip")
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(got.content))
    assert {n: archive.read(n) for n in archive.namelist()} == {"registry-2026.csv": CSV, "pathology report.pdf": PDF}
    assert all(retrieved(app, file_id) for file_id in names.values())
    assert app.state.db.scalar("SELECT retrieved_at FROM request_submissions") is not None


def test_a_one_submission_request_reads_retrieved_once_its_files_are(app, logged_in):
    request_id = create(logged_in)
    arrive(app, request_id, {"a.csv": CSV})
    assert "Files to retrieve" in logged_in.client.get("/requests").text
    assert "Closed: the files were sent" in logged_in.client.get(f"/requests/{request_id}").text
    logged_in.client.get(f"/requests/{request_id}/zip")
    listing = logged_in.client.get("/requests").text
    assert 'class="status status-retrieved">Retrieved<' in listing and "Files to retrieve" not in listing


def test_a_zip_of_one_submission_holds_only_its_files(app, logged_in, with_files):
    request_id, names = with_files
    second = arrive(app, request_id, {"later.csv": b"a;b\n1;2\n"}, reference="B-18")
    got = logged_in.client.get(f"/requests/{request_id}/zip?submission={second.id}")
    assert zipfile.ZipFile(io.BytesIO(got.content)).namelist() == ["later.csv"]
    assert app.state.db.scalar("SELECT retrieved_at FROM request_submissions WHERE id = ?", [second.id])
    assert not any(retrieved(app, file_id) for file_id in names.values())
    assert logged_in.client.get(f"/requests/{request_id}/zip?submission=unknown").status_code == 404


def test_a_partial_download_does_not_count_and_a_resumed_one_does(app, logged_in, with_files):
    request_id, names = with_files
    url = f"/requests/{request_id}/files/{names['registry-2026.csv']}"
    part = logged_in.client.get(url, headers={"range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == CSV[:100]
    probe = logged_in.client.get(url, headers={"range": "bytes=-1"})
    assert probe.status_code == 206 and probe.content == CSV[-1:]
    assert retrieved(app, names["registry-2026.csv"]) is None
    assert not audit_rows(app, "request.download")
    rest = logged_in.client.get(url, headers={"range": "bytes=100-"})  # the browser resumes the cut download
    assert rest.status_code == 206 and rest.content == CSV[100:]
    assert retrieved(app, names["registry-2026.csv"]) is not None
    assert len(audit_rows(app, "request.download")) == 1
    assert logged_in.client.get(url, headers={"range": "bytes=0-9"}).status_code == 206
    assert len(audit_rows(app, "request.download")) == 1  # a part after the download is not another one


def test_a_zip_cut_off_retrieves_nothing(app, logged_in, with_files, monkeypatch):
    request_id, names = with_files
    _pause_zip(monkeypatch, after_each_block=True)
    content = _raw_get(app, f"/requests/{request_id}/zip", dict(logged_in.client.cookies), hang_up_after=1)
    assert 0 < len(content) < len(CSV) + len(PDF)
    assert not any(retrieved(app, file_id) for file_id in names.values())
    assert not audit_rows(app, "request.download")


def test_pending_files_are_not_staffs(app, logged_in):
    request_id = create(logged_in)
    engine, target = app.state.uploads, Target.request(request_id)
    file_id, writer = engine.begin_whole(target, "pending.csv")
    writer.write(CSV)
    engine.complete_whole(GUEST, target, file_id, writer)
    assert logged_in.client.get(f"/requests/{request_id}/files/{file_id}").status_code == 404
    assert logged_in.client.get(f"/requests/{request_id}/zip").status_code == 404
    assert "pending.csv" not in logged_in.client.get(f"/requests/{request_id}").text


def test_with_the_setting_on_retrieved_files_are_deleted_at_once(app, config, logged_in, with_files):
    set_setting(app, "request_delete_when_retrieved", 1)
    request_id, names = with_files
    storage_names = [r["storage_name"] for r in app.state.db.query("SELECT storage_name FROM files")]
    logged_in.client.get(f"/requests/{request_id}/files/{names['registry-2026.csv']}")
    assert len(received(app, request_id)) == 2  # one file of two: the submission is not retrieved yet
    assert logged_in.client.get(f"/requests/{request_id}/files/{names['pathology report.pdf']}").content == PDF
    assert received(app, request_id) == {}
    assert all(not (config.files_dir / name).exists() for name in storage_names)
    purge = audit_rows(app, "request.purge")
    assert len(purge) == 1 and '"retrieved"' in purge[0]["detail"]
    detail = logged_in.client.get(f"/requests/{request_id}").text
    assert "Every file had been retrieved." in detail


# -- revoke, extend, delete ------------------------------------------------------------------------------

def test_revoking_asks_first_and_keeps_what_arrived(app, logged_in, with_files):
    request_id, names = with_files
    asked = logged_in.post(f"/requests/{request_id}/revoke")
    assert asked.status_code == 303 and asked.headers["location"] == f"/requests/{request_id}/revoke"
    assert requests.get(app.state.db, request_id).open
    page = logged_in.client.get(f"/requests/{request_id}/revoke")
    assert page.status_code == 200 and 'name="confirm" value="yes"' in page.text
    done = logged_in.post(f"/requests/{request_id}/revoke", {"confirm": "yes"})
    assert done.headers["location"] == f"/requests/{request_id}?notice=revoked"
    assert requests.get(app.state.db, request_id).link_state() == "revoked"
    assert len(audit_rows(app, "request.revoke")) == 1
    assert len(received(app, request_id)) == 2
    detail = logged_in.client.get(done.headers["location"]).text
    assert "The link was revoked" in detail and "Revoke the link" not in detail
    # Again: nothing more happens.
    logged_in.post(f"/requests/{request_id}/revoke", {"confirm": "yes"})
    assert len(audit_rows(app, "request.revoke")) == 1
    assert logged_in.client.get(f"/requests/{request_id}/revoke", follow_redirects=False).status_code == 303


def test_extend_within_the_limit(app, frozen, logged_in, admin):
    request_id = create(logged_in, expires_days="14")
    frozen.advance(days=10)
    logged_in.login()  # the staff session has long timed out
    assert logged_in.post(f"/requests/{request_id}/extend", {"days": "21"}).headers["location"].endswith("error=extend")
    assert logged_in.post(f"/requests/{request_id}/extend", {"days": "0"}).headers["location"].endswith("error=extend")
    assert logged_in.post(f"/requests/{request_id}/extend", {"days": "x"}).headers["location"].endswith("error=extend")
    assert not audit_rows(app, "request.extend")
    ok = logged_in.post(f"/requests/{request_id}/extend", {"days": "20"})  # to 30 days after creation, exactly
    assert ok.headers["location"].endswith("notice=extended")
    found = requests.get(app.state.db, request_id)
    assert found.expires_at.startswith("2026-12-24T09:00")
    assert "The link is valid longer now." in logged_in.client.get(ok.headers["location"]).text
    # An expired link may be reopened, within the limit.
    frozen.advance(days=20, seconds=1)
    assert requests.get(app.state.db, request_id).link_state() == "expired"
    logged_in.login()
    assert logged_in.post(f"/requests/{request_id}/extend", {"days": "1"}).headers["location"].endswith("error=extend")
    with TestClient(app, base_url=BASE_URL) as other:
        boss = AuthActions(other)
        boss.login(email="admin@registry.example")
        assert boss.post(f"/requests/{request_id}/extend", {"days": "5"}).headers["location"].endswith("notice=extended")
    assert requests.get(app.state.db, request_id).open
    rows = audit_rows(app, "request.extend")
    assert [json.loads(row["detail"])["beyond_limit"] for row in rows] == [False, True]


def test_a_revoked_request_cannot_be_extended(app, logged_in):
    request_id = create(logged_in)
    logged_in.post(f"/requests/{request_id}/revoke", {"confirm": "yes"})
    assert logged_in.post(f"/requests/{request_id}/extend", {"days": "3"}).headers["location"].endswith("error=extend")


def test_deleting_asks_first_then_shreds_everything(app, config, logged_in, with_files):
    request_id, names = with_files
    storage_names = [r["storage_name"] for r in app.state.db.query("SELECT storage_name FROM files")]
    assert logged_in.post(f"/requests/{request_id}/delete").headers["location"] == f"/requests/{request_id}/delete"
    page = logged_in.client.get(f"/requests/{request_id}/delete")
    assert "2 received files will be deleted" in page.text and "registry-2026.csv" in page.text
    assert len(received(app, request_id)) == 2
    done = logged_in.post(f"/requests/{request_id}/delete", {"confirm": "yes"})
    assert done.headers["location"] == f"/requests/{request_id}?notice=deleted"
    assert app.state.db.scalar("SELECT count(*) FROM files") == 0
    assert all(not (config.files_dir / name).exists() for name in storage_names)
    assert app.state.db.scalar("SELECT count(*) FROM outbox WHERE kind = 'request'") == 0  # the invitation is forgotten
    rows = audit_rows(app, "request.delete")
    assert len(rows) == 1 and rows[0]["object"] == request_id
    detail = logged_in.client.get(done.headers["location"]).text
    assert "Deleted" in detail and "The request was deleted." in detail and "Delete the request" not in detail
    assert logged_in.client.get(f"/requests/{request_id}/files/{names['registry-2026.csv']}").status_code == 404
    assert logged_in.client.get(f"/requests/{request_id}/delete", follow_redirects=False).status_code == 303


def test_a_long_download_keeps_the_staff_session_and_counts(app, frozen, logged_in, monkeypatch):
    """An hour by the clock for one file, with a 30-minute idle timeout: the session stays open."""
    request_id = create(logged_in)
    arrive(app, request_id, {"big.csv": BIG})
    file_id = received(app, request_id)["big.csv"]
    slow(monkeypatch, frozen, storage.RangeReader, "read", minutes=20)
    got = logged_in.client.get(f"/requests/{request_id}/files/{file_id}")
    assert got.status_code == 200 and got.content == BIG
    assert retrieved(app, file_id) is not None
    assert logged_in.client.get("/requests", follow_redirects=False).status_code == 200


def test_a_partner_cannot_request_files(app, make_user):
    from tests.test_partners import activate, make_partner

    account = make_partner(app, make_user(), email="partner@lab.example", name="Pat Partner")
    with TestClient(app, base_url=BASE_URL) as other:
        partner = AuthActions(other)
        activate(app, other, account)  # a partner account with access, logged in
        assert other.get("/requests", follow_redirects=False).status_code == 403
        assert post_request(partner).status_code == 403
        assert 'href="/requests"' not in other.get("/").text
    assert app.state.db.scalar("SELECT count(*) FROM requests") == 0


def test_the_home_lists_each_of_the_owners_requests_once_at_its_earliest_deadline(app, frozen, make_user, staff, logged_in):
    """Read in deadline order from the waiting submissions: a request with two is listed once, by
    the earlier; another's requests, and retrieved or purged submissions, are not listed."""
    from tests.test_admin_open import add_request, add_submission, at

    other = make_user(email="other@registry.example", name="Olga Other")

    def insert(db):
        add_request(db, "r-two", staff.id, at(40), several=1)
        add_submission(db, "r-two", at(35), files=1)
        add_submission(db, "r-two", at(27), files=2)
        add_request(db, "r-first", staff.id, at(40))
        add_submission(db, "r-first", at(26), files=1)
        add_request(db, "r-done", staff.id, at(40))
        add_submission(db, "r-done", at(25), retrieved_at=at(24))
        add_request(db, "r-purged", staff.id, at(40))
        add_submission(db, "r-purged", at(25), purged_at=at(24))
        add_request(db, "r-other", other.id, at(40))
        add_submission(db, "r-other", at(25))

    app.state.db.write(insert)
    panel = logged_in.client.get("/").text.split("Files waiting for you")[1].split("</table>")[0]
    assert re.findall(r'href="/requests/([\w-]+)"', panel) == ["r-first", "r-two"]
    assert re.search(r"r-two\">sender@example\.org</a></td><td>3</td><td>27 Nov 2026, 11:00 CET", panel)
