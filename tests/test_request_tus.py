"""A request's link against a real server process, with tuspy (a tus client written by others).

The guest unlocks the link, uploads through tus (cut off mid-PATCH and resumed) and through the
plain form, transmits and reads the receipt's hashes; a closed request refuses more; a guest of
request A cannot reach request B's uploads; refusals keep nothing; without a link session tus
answers 401, and the upload goes on after the password is typed again.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest
import requests as http
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError

from relais import audit, passwords, requests, users
from tests.serving import Server
from tests.test_tus import send_part_then_drop

STAFF, PASSWORD = "asker@registry.example", "violet tugboat marmalade"
MIB = 1024 * 1024
GZIP = b"\x1f\x8b\x08\x00"  # the content must match the .gz name
CSV = b"id,value\n1,2\n3,4\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("request-tus") / "data")
    srv.command("create-admin", "--email", STAFF, "--password-stdin", stdin=PASSWORD)
    srv.start()
    yield srv
    srv.stop()


def make_request(server, owner_email: str = STAFF, **fields) -> tuple[str, str, str]:
    """A request made as staff make it, straight into the server's database; (token, password, id)."""
    database = server.database()
    try:
        owner = users.User.from_row(users.by_email(database, owner_email))
        new = requests.NewRequest(**{"recipient": "lab@lab.example", "language": "en", **fields})
        made, token, password, _ = requests.create(database, passwords.Hasher(1, 8192, 1), audit.SYSTEM, owner, new,
                                                   server.url)
    finally:
        database.close()
    return token, password, made.id


def link_cookie(token: str) -> str:
    return "__Host-relais_link_" + hashlib.sha256(token.encode()).hexdigest()[:16]


def unlock(server, token: str, password: str) -> dict:
    """Headers of a browser past the link's password. Cookies by hand: they are Secure (__Host-),
    and Python's cookie jar would not send them over the test's plain http."""
    csrf = http.get(f"{server.url}/r/{token}", timeout=10).cookies["__Host-csrf"]
    answer = http.post(f"{server.url}/r/{token}", data={"password": password, "_csrf_token": csrf},
                       headers={"Cookie": f"__Host-csrf={csrf}"}, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    session = answer.cookies[link_cookie(token)]
    return {"Cookie": f"__Host-csrf={csrf}; {link_cookie(token)}={session}", "x-csrftoken": csrf}


def csrf_of(headers: dict) -> str:
    return headers["x-csrftoken"]


def tus(server, token: str, headers: dict) -> TusClient:
    return TusClient(f"{server.url}/r/{token}/tus/", headers=headers)


def offset(url: str, headers: dict) -> int:
    answer = http.head(url, headers={**headers, "Tus-Resumable": "1.0.0"}, timeout=30)
    assert answer.status_code == 200, answer.status_code
    return int(answer.headers["upload-offset"])


def query(server, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(Path(server.env["RELAIS_DATA_DIR"]) / "relais.db", timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def uploading(server, request_id: str) -> list[tuple]:
    """What of the request is unfinished: upload rows and files not complete."""
    return query(server, "SELECT id FROM uploads WHERE target_id = ?", [request_id]) + query(
        server, "SELECT id FROM files WHERE state = 'uploading' AND id IN"
        " (SELECT file_id FROM uploads WHERE target_id = ?)", [request_id])


def form_upload(server, token: str, headers: dict, name: str, data: bytes):
    return http.post(f"{server.url}/r/{token}/upload", headers={"Cookie": headers["Cookie"]},
                     data={"_csrf_token": csrf_of(headers)}, files={"file": (name, data)}, allow_redirects=False,
                     timeout=30)


def pending(server, token: str, headers: dict) -> str:
    answer = http.get(f"{server.url}/r/{token}/files", headers={"Cookie": headers["Cookie"]}, timeout=10)
    assert answer.status_code == 200
    return answer.text


def test_upload_by_tus_and_form_then_transmit_and_read_the_receipt(server):
    token, password, request_id = make_request(server, accepted_types=("gz", "csv"))
    guest = unlock(server, token, password)
    data = GZIP + os.urandom(5 * MIB + 4321)
    client = tus(server, token, guest)
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=2 * MIB,
                               metadata={"filename": "batch.csv.gz"}, upload_checksum=True)
    uploader.upload_chunk()
    assert uploader.url.startswith(f"{server.url}/r/{token}/tus/")
    # The line drops 1 MiB and a bit into the next PATCH: what arrived is kept, and tuspy resumes.
    send_part_then_drop(server, guest, uploader.url, 2 * MIB, data[2 * MIB : 3 * MIB + 99], len(data) - 2 * MIB)
    deadline = time.monotonic() + 10
    while offset(uploader.url, guest) != 3 * MIB + 99 and time.monotonic() < deadline:
        time.sleep(0.1)
    listed = pending(server, token, guest)
    assert "batch.csv.gz" in listed and "Uploads not finished" in listed
    resumed = client.uploader(file_stream=io.BytesIO(data), url=uploader.url, chunk_size=4 * MIB)
    assert resumed.offset == 3 * MIB + 99
    resumed.upload()
    assert form_upload(server, token, guest, "counts.csv", CSV).status_code == 303
    listed = pending(server, token, guest)
    assert "batch.csv.gz" in listed and "counts.csv" in listed and "Uploads not finished" not in listed
    assert "href=" not in listed  # names and sizes, never a way to a file

    sent = http.post(f"{server.url}/r/{token}/transmit", data={"_csrf_token": csrf_of(guest)},
                     headers={"Cookie": guest["Cookie"]}, allow_redirects=False, timeout=10)
    assert sent.status_code == 303, sent.text
    receipt = http.get(server.url + sent.headers["location"], headers={"Cookie": guest["Cookie"]}, timeout=10)
    assert receipt.status_code == 200
    assert hashlib.sha256(data).hexdigest() in receipt.text and hashlib.sha256(CSV).hexdigest() in receipt.text
    assert query(server, "SELECT files, bytes FROM request_submissions WHERE request_id = ?", [request_id]) == [
        (2, len(data) + len(CSV))]

    # One submission: the request is closed and refuses more, every way in.
    assert http.get(f"{server.url}/r/{token}", headers={"Cookie": guest["Cookie"]}, timeout=10).status_code == 404
    with pytest.raises(TusCommunicationError) as refused:
        client.uploader(file_stream=io.BytesIO(CSV), chunk_size=MIB, metadata={"filename": "more.csv"}).upload()
    assert refused.value.status_code == 410
    assert form_upload(server, token, guest, "more.csv", CSV).status_code == 404
    assert uploading(server, request_id) == []


def test_a_patch_of_an_upload_started_before_the_close_is_refused_and_nothing_stays(server):
    """The close came while the upload was on its way (a creation racing a Transmit in another tab)."""
    token, password, request_id = make_request(server)
    guest = unlock(server, token, password)
    uploader = tus(server, token, guest).uploader(file_stream=io.BytesIO(CSV * 1000), chunk_size=4096,
                                                 metadata={"filename": "late.csv"})
    uploader.upload_chunk()
    query(server, "UPDATE requests SET closed_at = '2026-01-01T00:00:00.000000+00:00' WHERE id = ?", [request_id])
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()
    assert refused.value.status_code == 410
    assert uploading(server, request_id) == []


def test_a_guest_of_request_a_cannot_reach_request_bs_uploads(server):
    token_a, password_a, _ = make_request(server)
    token_b, password_b, request_b = make_request(server)
    guest_a, guest_b = unlock(server, token_a, password_a), unlock(server, token_b, password_b)
    uploader = tus(server, token_b, guest_b).uploader(file_stream=io.BytesIO(CSV * 1000), chunk_size=4096,
                                                     metadata={"filename": "b.csv"})
    uploader.upload_chunk()
    b_id = uploader.url.rsplit("/", 1)[1]
    through_a = f"{server.url}/r/{token_a}/tus/{b_id}"
    tus_a = {**guest_a, "Tus-Resumable": "1.0.0"}
    assert http.head(through_a, headers=tus_a, timeout=10).status_code == 404
    assert http.patch(through_a, data=b"x" * 10, headers={**tus_a, "Upload-Offset": "4096",
                                                         "Content-Type": "application/offset+octet-stream"},
                      timeout=10).status_code == 404
    assert http.delete(through_a, headers=tus_a, timeout=10).status_code == 404
    # B's own URL with A's session: A holds no session of B.
    assert http.head(uploader.url, headers=tus_a, timeout=10).status_code == 401
    with pytest.raises(TusCommunicationError) as refused:
        tus(server, token_b, guest_a).uploader(file_stream=io.BytesIO(CSV * 1000), url=uploader.url, chunk_size=4096)
    assert refused.value.status_code == 401
    assert offset(uploader.url, guest_b) == 4096  # untouched
    # And no file of B, by any URL a guest could try.
    uploader.upload()
    file_id = query(server, "SELECT file_id FROM request_files WHERE request_id = ?", [request_b])[0][0]
    for path in (f"/files/{file_id}", f"/files/zip?id={file_id}", f"/requests/{request_b}/files/{file_id}",
                 f"/r/{token_b}/files/{file_id}"):
        answer = http.get(server.url + path, headers={"Cookie": guest_b["Cookie"]}, allow_redirects=False, timeout=10)
        assert answer.status_code in (303, 401, 404, 405), (path, answer.status_code)
        assert b"id,value" not in answer.content


def test_refusals_keep_nothing(server):
    token, password, request_id = make_request(server, accepted_types=("csv",), max_files=1, max_file_size_mib=1)
    guest = unlock(server, token, password)
    client = tus(server, token, guest)
    for name, data, status in (("notes.pdf", b"%PDF-1.7\n", 400), ("big.csv", b"1,2\n" * (MIB // 4 + 1), 413)):
        with pytest.raises(TusCommunicationError) as refused:
            client.uploader(file_stream=io.BytesIO(data), chunk_size=MIB, metadata={"filename": name}).upload()
        assert refused.value.status_code == status
    client.uploader(file_stream=io.BytesIO(CSV), chunk_size=MIB, metadata={"filename": "one.csv"}).upload()
    with pytest.raises(TusCommunicationError) as refused:
        client.uploader(file_stream=io.BytesIO(CSV), chunk_size=MIB, metadata={"filename": "two.csv"}).upload()
    assert refused.value.status_code == 403
    form = form_upload(server, token, guest, "two.csv", CSV)
    assert form.status_code == 403 and "at most 1 files" in form.text
    assert uploading(server, request_id) == []
    assert [r[0] for r in query(server, "SELECT files.name FROM files JOIN request_files ON file_id = files.id"
                                " WHERE request_id = ?", [request_id])] == ["one.csv"]


def test_without_a_link_session_tus_hears_401_and_the_upload_goes_on_after_the_password(server):
    token, password, request_id = make_request(server)
    guest = unlock(server, token, password)
    data = CSV * 5000
    uploader = tus(server, token, guest).uploader(file_stream=io.BytesIO(data), chunk_size=16384,
                                                 metadata={"filename": "resume.csv"})
    uploader.upload_chunk()
    # The link session ends (two hours without a request).
    query(server, "UPDATE link_sessions SET expires_at = '2026-01-01T00:00:00.000000+00:00' WHERE object_id = ?",
          [request_id])
    head = http.head(uploader.url, headers={**guest, "Tus-Resumable": "1.0.0"}, timeout=10)
    assert head.status_code == 401 and head.headers["tus-resumable"] == "1.0.0" and "location" not in head.headers
    assert "password" in http.utils.unquote(head.headers["relais-message"])
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()
    assert refused.value.status_code == 401
    again = unlock(server, token, password)
    resumed = tus(server, token, again).uploader(file_stream=io.BytesIO(data), url=uploader.url, chunk_size=MIB)
    assert resumed.offset == 16384
    resumed.upload()
    assert re.search(r"resume\.csv", pending(server, token, again))
    assert uploading(server, request_id) == []
