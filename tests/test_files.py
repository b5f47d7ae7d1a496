"""The file engine over HTTP: tus rules, the form upload, downloads, zips, deletion, expiry.

Every refusal is checked twice: the answer the person gets, and that nothing was left behind in
the database or on disk.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import os
import unicodedata
import zipfile

import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from relais import files, settings, storage
from tests.conftest import PASSWORD, audit_rows, csrf_token

OCTETS = "application/offset+octet-stream"
CSV = b"id,value\n1,2\n3,4\n"


@pytest.fixture
def staff_client(client, auth, staff):
    auth.login()
    return client


def tus_headers(client, **extra) -> dict:
    return {"Tus-Resumable": "1.0.0", "x-csrftoken": csrf_token(client), **extra}


def metadata(name: str) -> str:
    return "filename " + base64.b64encode(name.encode("utf-8")).decode("ascii")


def create(client, name: str, length: int):
    return client.post("/tus/", headers=tus_headers(client, **{"Upload-Length": str(length), "Upload-Metadata": metadata(name)}))


def patch(client, url: str, at: int, data: bytes, **extra):
    return client.patch(url, content=data, headers=tus_headers(client, **{"Upload-Offset": str(at), "Content-Type": OCTETS, **extra}))


def upload(client, name: str, data: bytes) -> str:
    """A whole tus upload; returns the new file's id."""
    created = create(client, name, len(data))
    assert created.status_code == 201, created.text
    done = patch(client, created.headers["location"], 0, data)
    assert done.status_code == 204, done.text
    return client.app.state.db.scalar("SELECT id FROM files WHERE name = ? AND state = 'complete'", [name])


def form_upload(client, *parts, token: str | None = "valid"):
    data = {} if token is None else {"_csrf_token": csrf_token(client) if token == "valid" else token}
    return client.post("/files/upload", data=data, files=[("file", part) for part in parts], follow_redirects=False)


def nothing_left(app) -> None:
    """No row, no data file, no checkpoint, no spool: a refused upload leaves no trace."""
    config = app.state.config
    assert app.state.db.query("SELECT id, name, state FROM files WHERE state = 'uploading'") == []
    assert app.state.db.query("SELECT id FROM uploads") == []
    known = {r["storage_name"] for r in app.state.db.query("SELECT storage_name FROM files")}
    assert sorted(p.name for p in config.files_dir.iterdir()) == sorted(known)
    assert list(config.tmp_dir.iterdir()) == []


# -- names, types, contents and limits -------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "../../etc/passwd.csv", "a/b.csv", "a\\b.csv", "bell\x07.csv", "line\nbreak.csv", "evil\u202etxt.csv",
    "isolate\u2066.csv", "zero\u200bwidth.csv", "CON.csv", "lpt1.txt", "Nul", "aux .csv", "x" * 10_000 + ".csv",
    "y" * 252 + ".csv", "", "   ", "..", "trailing.csv.", "what?.csv", "pipe|.csv",
])
def test_bad_names_are_refused_before_any_byte(app, staff_client, name):
    response = create(staff_client, name, 10)
    assert response.status_code == 400
    assert response.text  # a message the uploader shows
    nothing_left(app)


@pytest.mark.parametrize("name", ["program.exe", "script.sh", "page.html", "no-extension", "archive.csv.exe"])
def test_extensions_outside_the_allow_list_are_refused(app, staff_client, name):
    response = create(staff_client, name, 10)
    assert response.status_code == 400 and "not accepted" in response.text
    nothing_left(app)


def test_a_good_name_with_unicode_is_kept(app, staff_client):
    file_id = upload(staff_client, "Résultats 2026 (été).csv", CSV)
    assert files.get(app.state.db, 1, file_id).name == "Résultats 2026 (été).csv"


def test_name_limit_counts_bytes_not_characters(app, staff_client):
    accented = "é" * 126 + ".csv"  # 130 characters, 256 bytes in UTF-8: too long for ext4
    response = create(staff_client, accented, 10)
    assert response.status_code == 400 and "255 bytes" in response.text
    nothing_left(app)
    longest = "é" * 125 + "x.csv"  # exactly 255 bytes
    assert files.get(app.state.db, 1, upload(staff_client, longest, CSV)).name == longest


@pytest.mark.parametrize("raw, kept", [("-rf.csv", "_-rf.csv"), (".bashrc.csv", "_.bashrc.csv"), ("--help.txt", "_--help.txt")])
def test_a_leading_dash_or_dot_is_made_harmless(app, staff_client, raw, kept):
    upload(staff_client, raw, CSV)
    assert [f.name for f in files.list_files(app.state.db, 1)] == [kept]
    listing = staff_client.get("/files").text
    assert kept in listing


@pytest.mark.parametrize("name, content", [
    ("report.csv", b"MZ\x90\x00" + b"\0" * 100), ("notes.txt", b"\x7fELF\x02\x01\x01" + b"\0" * 50),
    ("data.csv", b"#!/bin/sh\nrm -rf /\n"), ("table.tsv", b"\xcf\xfa\xed\xfe" + b"\0" * 40),
    ("fat.json", b"\xca\xfe\xba\xbe" + b"\0" * 40), ("scan.pdf", b"not a pdf at all"),
    ("sheet.xlsx", b"plain text pretending"), ("binary.csv", b"a,b\n\x00\x01\x02"),
])
def test_content_that_does_not_match_its_name_is_refused_and_discarded(app, staff_client, name, content):
    created = create(staff_client, name, len(content))
    assert created.status_code == 201
    refused = patch(staff_client, created.headers["location"], 0, content)
    assert refused.status_code == 400 and "does not match" in refused.text
    nothing_left(app)
    assert audit_rows(app, "file.upload") == []


def test_matching_binary_content_is_accepted(app, staff_client):
    assert upload(staff_client, "scan.pdf", b"%PDF-1.7\n" + bytes(range(256)))
    assert upload(staff_client, "utf16.txt", b"\xff\xfeh\x00i\x00")


def test_empty_files_are_refused(app, staff_client):
    assert create(staff_client, "empty.csv", 0).status_code == 400
    nothing_left(app)


def test_size_and_count_limits_come_from_the_settings(app, staff_client):
    app.state.db.write(lambda db: settings.set_value(db, files.audit.SYSTEM, None, "max_file_size_mib", 1))
    app.state.db.write(lambda db: settings.set_value(db, files.audit.SYSTEM, None, "max_files_per_account", 2))
    assert staff_client.options("/tus/", headers=tus_headers(staff_client)).headers["tus-max-size"] == str(1024 * 1024)
    too_large = create(staff_client, "big.csv", 1024 * 1024 + 1)
    assert too_large.status_code == 413 and "limit of 1\xa0MB." in too_large.text
    upload(staff_client, "one.csv", CSV)
    assert create(staff_client, "two.csv", 5).status_code == 201  # an unfinished upload counts too
    too_many = create(staff_client, "three.csv", 5)
    assert too_many.status_code == 403 and "limit of 2 files" in too_many.text


# -- the tus protocol ------------------------------------------------------------------------------

def test_options_describes_the_server(staff_client):
    response = staff_client.options("/tus/", headers=tus_headers(staff_client))
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-extension"] == "creation,termination,expiration,checksum"
    assert response.headers["tus-checksum-algorithm"] == "sha1,sha256"


def test_upload_in_chunks_with_head_in_between(app, staff_client):
    created = create(staff_client, "chunks.csv", len(CSV))
    url = created.headers["location"]
    assert created.headers["upload-expires"].endswith("GMT")
    assert patch(staff_client, url, 0, CSV[:5]).headers["upload-offset"] == "5"
    head = staff_client.head(url, headers=tus_headers(staff_client))
    assert (head.status_code, head.headers["upload-offset"], head.headers["upload-length"]) == (200, "5", str(len(CSV)))
    assert head.headers["cache-control"] == "no-store"
    assert staff_client.get("/files").text.count("chunks.csv") == 0  # invisible until complete
    assert patch(staff_client, url, 5, CSV[5:]).status_code == 204
    stored = files.list_files(app.state.db, 1)[0]
    assert (stored.name, stored.size, stored.sha256) == ("chunks.csv", len(CSV), hashlib.sha256(CSV).hexdigest())
    assert staff_client.head(url, headers=tus_headers(staff_client)).status_code == 404  # the upload is over
    nothing_left(app)


def test_patch_rules(app, staff_client):
    url = create(staff_client, "rules.csv", len(CSV)).headers["location"]
    assert patch(staff_client, url, 3, CSV).status_code == 409  # wrong offset
    assert staff_client.patch(url, content=CSV, headers=tus_headers(staff_client, **{
        "Upload-Offset": "0", "Content-Type": "application/octet-stream"})).status_code == 415
    assert patch(staff_client, url, 0, CSV + b"more").status_code == 413  # beyond Upload-Length
    no_version = staff_client.patch(url, content=CSV, headers={"x-csrftoken": csrf_token(staff_client),
                                                              "Upload-Offset": "0", "Content-Type": OCTETS})
    assert no_version.status_code == 412
    assert patch(staff_client, url, 0, CSV, **{"Upload-Checksum": "md5 AAAA"}).status_code == 400
    assert staff_client.head(url, headers=tus_headers(staff_client)).headers["upload-offset"] == "0"


def test_checksum_is_verified_before_the_chunk_is_stored(app, staff_client):
    url = create(staff_client, "sums.csv", len(CSV)).headers["location"]
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    mismatch = patch(staff_client, url, 0, CSV[:6], **{"Upload-Checksum": f"sha256 {wrong}"})
    assert mismatch.status_code == 460
    assert staff_client.head(url, headers=tus_headers(staff_client)).headers["upload-offset"] == "0"
    right = base64.b64encode(hashlib.sha1(CSV[:6]).digest()).decode()
    assert patch(staff_client, url, 0, CSV[:6], **{"Upload-Checksum": f"sha1 {right}"}).headers["upload-offset"] == "6"
    assert patch(staff_client, url, 6, CSV[6:]).status_code == 204
    assert files.list_files(app.state.db, 1)[0].sha256 == hashlib.sha256(CSV).hexdigest()
    assert list(app.state.config.tmp_dir.iterdir()) == []


def test_creation_needs_version_length_and_metadata(staff_client):
    assert staff_client.post("/tus/", headers={"x-csrftoken": csrf_token(staff_client), "Upload-Length": "3",
                                               "Upload-Metadata": metadata("a.csv")}).status_code == 412
    assert staff_client.post("/tus/", headers=tus_headers(staff_client, **{"Upload-Metadata": metadata("a.csv")})).status_code == 400
    assert staff_client.post("/tus/", headers=tus_headers(staff_client, **{"Upload-Length": "3",
                                                                          "Upload-Metadata": "filename !!!"})).status_code == 400


def test_tus_requests_need_the_csrf_header_and_a_login(app, client, auth, staff):
    assert client.post("/tus/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "3"}).status_code in (401, 403)
    auth.login()
    url = create(client, "csrf.csv", len(CSV)).headers["location"]
    no_token = client.patch(url, content=CSV, headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": OCTETS})
    assert no_token.status_code == 403
    forged = client.patch(url, content=CSV, headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                                                     "Content-Type": OCTETS, "x-csrftoken": "forged"})
    assert forged.status_code == 403
    assert client.delete(url, headers={"Tus-Resumable": "1.0.0"}).status_code == 403
    assert client.head(url, headers=tus_headers(client)).headers["upload-offset"] == "0"


def test_uploads_belong_to_their_owner_not_to_one_session(app, client, auth, make_user):
    make_user()
    make_user(email="other@registry.example")
    auth.login()
    url = create(client, "mine.csv", len(CSV)).headers["location"]
    patch(client, url, 0, CSV[:4])
    auth.login(email="other@registry.example")  # another account holding the URL: as if it did not exist
    assert client.head(url, headers=tus_headers(client)).status_code == 404
    assert patch(client, url, 4, CSV[4:]).status_code == 404
    assert client.delete(url, headers=tus_headers(client)).status_code == 404
    auth.login()  # a new session of the owner: the upload goes on
    assert client.head(url, headers=tus_headers(client)).headers["upload-offset"] == "4"
    assert patch(client, url, 4, CSV[4:]).status_code == 204
    assert files.list_files(app.state.db, 1)[0].sha256 == hashlib.sha256(CSV).hexdigest()


def test_termination_removes_everything(app, staff_client):
    url = create(staff_client, "gone.csv", len(CSV)).headers["location"]
    patch(staff_client, url, 0, CSV[:4])
    assert app.state.uploads.claim(url.rsplit("/", 1)[1])  # while a PATCH writes to it, it cannot be terminated
    assert staff_client.delete(url, headers=tus_headers(staff_client)).status_code == 409
    app.state.uploads.release(url.rsplit("/", 1)[1])
    assert staff_client.delete(url, headers=tus_headers(staff_client)).status_code == 204
    assert staff_client.head(url, headers=tus_headers(staff_client)).status_code == 404
    nothing_left(app)
    assert [r["action"] for r in audit_rows(app) if r["action"].startswith("upload")] == ["upload.start", "upload.terminate"]


def test_expired_uploads_are_refused_and_purged(app, staff_client, frozen):
    for name, value in [("session_idle_minutes", 24 * 60), ("session_absolute_hours", 7 * 24)]:  # outlive a day
        app.state.db.write(lambda db: settings.set_value(db, files.audit.SYSTEM, None, name, value))
    url = create(staff_client, "late.csv", len(CSV)).headers["location"]
    patch(staff_client, url, 0, CSV[:4])
    frozen.advance(hours=23)
    assert staff_client.head(url, headers=tus_headers(staff_client)).status_code == 200
    frozen.advance(hours=2)
    gone = staff_client.head(url, headers=tus_headers(staff_client))
    assert gone.status_code == 410 and gone.headers["tus-resumable"] == "1.0.0"  # tus: expired uploads are gone
    assert patch(staff_client, url, 4, CSV[4:]).status_code == 410
    upload_id = url.rsplit("/", 1)[1]
    assert app.state.uploads.claim(upload_id)  # a request still writing to it: its writer is not closed under it
    assert app.state.uploads.purge_expired() == 0
    app.state.uploads.release(upload_id)
    assert app.state.uploads.purge_expired() == 1
    nothing_left(app)
    assert len(audit_rows(app, "upload.expire")) == 1


def test_after_a_restart_the_upload_resumes_from_disk(app, staff_client):
    url = create(staff_client, "restart.csv", len(CSV)).headers["location"]
    patch(staff_client, url, 0, CSV[:7])
    app.state.uploads.forget(url.rsplit("/", 1)[1])  # as if the process had restarted: no open writer
    assert staff_client.head(url, headers=tus_headers(staff_client)).headers["upload-offset"] == "7"
    assert patch(staff_client, url, 7, CSV[7:]).status_code == 204
    assert files.list_files(app.state.db, 1)[0].sha256 == hashlib.sha256(CSV).hexdigest()


def test_open_writers_are_capped_and_a_closed_one_resumes(app, staff_client, monkeypatch):
    """Unfinished uploads do not each keep a descriptor and a segment in memory for 24 hours: past
    the cap the least recently used idle writer is closed, and its upload resumes from disk."""
    monkeypatch.setattr(app.state.uploads, "max_open_writers", 2)
    monkeypatch.setattr(app.state.uploads, "idle_seconds", 0)  # every writer between two requests counts as idle
    files_dir = str(app.state.config.files_dir)

    def open_data_files() -> int:
        return sum(os.readlink(f"/proc/self/fd/{fd}").startswith(files_dir) for fd in os.listdir("/proc/self/fd")
                   if os.path.exists(f"/proc/self/fd/{fd}"))

    urls = [create(staff_client, f"cap{i}.csv", len(CSV)).headers["location"] for i in range(4)]
    ids = [url.rsplit("/", 1)[1] for url in urls]
    assert app.state.uploads.open_writers() == ids[2:] and open_data_files() == 2
    assert patch(staff_client, urls[0], 0, CSV[:7]).status_code == 204  # resumed from disk; closes cap2
    assert app.state.uploads.open_writers() == [ids[3], ids[0]]
    assert staff_client.head(urls[0], headers=tus_headers(staff_client)).headers["upload-offset"] == "7"
    assert app.state.uploads.claim(ids[3])  # a request is writing to cap3: it is never closed under it
    try:
        assert patch(staff_client, urls[1], 0, CSV).status_code == 204
        assert ids[3] in app.state.uploads.open_writers() and ids[0] not in app.state.uploads.open_writers()
    finally:
        app.state.uploads.release(ids[3])
    for url, at in ((urls[0], 7), (urls[2], 0), (urls[3], 0)):
        assert patch(staff_client, url, at, CSV[at:]).status_code == 204
    assert sorted(f.name for f in files.list_files(app.state.db, 1)) == [f"cap{i}.csv" for i in range(4)]
    assert {f.sha256 for f in files.list_files(app.state.db, 1)} == {hashlib.sha256(CSV).hexdigest()}
    assert app.state.uploads.open_writers() == [] and open_data_files() == 0


def test_writers_in_steady_use_stay_open_past_the_cap(app, staff_client, monkeypatch):
    """Closing an upload between two of its requests would make each request re-read all of it:
    writers used within idle_seconds stay open, whatever their number."""
    monkeypatch.setattr(app.state.uploads, "max_open_writers", 2)
    urls = [create(staff_client, f"busy{i}.csv", len(CSV)).headers["location"] for i in range(4)]
    assert len(app.state.uploads.open_writers()) == 4
    for url in urls:
        assert patch(staff_client, url, 0, CSV).status_code == 204
    assert app.state.uploads.open_writers() == []


def test_a_crash_between_finishing_and_committing_is_completed_on_resume(app, staff_client):
    url = create(staff_client, "finished.csv", len(CSV)).headers["location"]
    upload_id = url.rsplit("/", 1)[1]
    writer = app.state.uploads.take(upload_id)
    writer.write(CSV)
    writer.finish()  # the data file is whole, but the process "died" before the commit
    assert files.list_files(app.state.db, 1) == []
    head = staff_client.head(url, headers=tus_headers(staff_client))
    assert head.headers["upload-offset"] == str(len(CSV))
    assert files.list_files(app.state.db, 1)[0].sha256 == hashlib.sha256(CSV).hexdigest()


def test_an_upload_whose_bytes_all_arrived_but_was_not_committed_is_committed_by_head(app, staff_client):
    """All bytes checkpointed, then a crash before the commit: a client that asks for the offset
    hears "all here" and sends nothing more, so the HEAD itself must commit the file."""
    url = create(staff_client, "unfinished.csv", len(CSV)).headers["location"]
    upload_id = url.rsplit("/", 1)[1]
    writer = app.state.uploads.take(upload_id)
    writer.write(CSV)
    writer.checkpoint()
    writer.close()  # the process "died" here, before finishing and committing
    assert files.list_files(app.state.db, 1) == []
    head = staff_client.head(url, headers=tus_headers(staff_client))
    assert head.status_code == 200 and head.headers["upload-offset"] == str(len(CSV))
    assert files.list_files(app.state.db, 1)[0].sha256 == hashlib.sha256(CSV).hexdigest()
    assert staff_client.head(url, headers=tus_headers(staff_client)).status_code == 404  # the upload is done


def test_an_upload_damaged_before_its_checkpoint_is_removed(app, staff_client):
    data = b"x," * (700 * 1024)  # more than one 1 MiB segment
    url = create(staff_client, "damaged.csv", len(data) + 10).headers["location"]
    patch(staff_client, url, 0, data)
    app.state.uploads.forget(url.rsplit("/", 1)[1])
    stored = app.state.db.query_one("SELECT storage_name FROM files")
    path = files.data_path(app.state.config.files_dir, stored)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 1  # a bit flipped inside a record the last checkpoint vouched for
    path.write_bytes(raw)
    assert staff_client.head(url, headers=tus_headers(staff_client)).status_code == 404
    nothing_left(app)
    assert len(audit_rows(app, "upload.terminate")) == 1


def test_a_full_disk_is_reported_and_the_upload_continues_later(app, staff_client, monkeypatch):
    url = create(staff_client, "disk.csv", len(CSV)).headers["location"]
    original = storage.SegmentWriter.write

    def full(self, data):
        self.close()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.SegmentWriter, "write", full)
    response = patch(staff_client, url, 0, CSV)
    assert response.status_code == 507 and "disk full" in response.text
    monkeypatch.setattr(storage.SegmentWriter, "write", original)
    assert staff_client.head(url, headers=tus_headers(staff_client)).headers["upload-offset"] == "0"
    assert patch(staff_client, url, 0, CSV).status_code == 204


# -- the form upload (no JavaScript) ---------------------------------------------------------------

def test_form_upload_stores_encrypted_files(app, staff_client):
    response = form_upload(staff_client, ("first.csv", CSV, "text/csv"), ("second.txt", b"hello there", "text/plain"))
    assert (response.status_code, response.headers["location"]) == (303, "/files?notice=uploaded")
    listed = {f.name: f for f in files.list_files(app.state.db, 1)}
    assert set(listed) == {"first.csv", "second.txt"}
    assert listed["first.csv"].sha256 == hashlib.sha256(CSV).hexdigest()
    for stored in listed.values():
        on_disk = files.data_path(app.state.config.files_dir, stored).read_bytes()
        assert CSV not in on_disk and b"hello there" not in on_disk
    assert "Your files were uploaded." in staff_client.get("/files?notice=uploaded").text
    nothing_left(app)


@pytest.mark.parametrize("token", [None, "forged", "é" * 200])
def test_form_upload_without_a_valid_token_stores_nothing(app, staff_client, token):
    response = form_upload(staff_client, ("first.csv", CSV, "text/csv"), token=token)
    assert response.status_code == 403
    assert files.list_files(app.state.db, 1) == []
    nothing_left(app)


def test_form_token_must_come_before_the_file(app, staff_client):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\n" + CSV +
            b"\r\n--b\r\nContent-Disposition: form-data; name=\"_csrf_token\"\r\n\r\n" + csrf_token(staff_client).encode() +
            b"\r\n--b--\r\n")
    response = staff_client.post("/files/upload", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 403
    nothing_left(app)


@pytest.mark.parametrize("part, status, message", [
    (("run.csv", b"MZ\x90\x00rest", "text/csv"), 400, "does not match"),
    (("empty.csv", b"", "text/csv"), 400, "The file is empty."),
    (("bad\u202ename.csv", CSV, "text/csv"), 400, "cannot contain"),
    (("tool.exe", CSV, "application/octet-stream"), 400, "not accepted"),
])
def test_form_upload_refusals_leave_nothing(app, staff_client, part, status, message):
    response = form_upload(staff_client, part)
    assert response.status_code == status and message in response.text
    assert files.list_files(app.state.db, 1) == []
    nothing_left(app)


def test_form_upload_over_the_size_limit(app, staff_client):
    app.state.db.write(lambda db: settings.set_value(db, files.audit.SYSTEM, None, "max_file_size_mib", 1))
    response = form_upload(staff_client, ("big.csv", b"a," * (600 * 1024), "text/csv"))
    assert response.status_code == 413 and "limit of 1\xa0MB." in response.text
    nothing_left(app)


def test_form_upload_on_a_full_disk_leaves_nothing(app, staff_client, monkeypatch):
    def full(self, data):
        self.close()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.SegmentWriter, "write", full)
    response = form_upload(staff_client, ("first.csv", CSV, "text/csv"))
    assert response.status_code == 507 and "its disk is full" in response.text
    nothing_left(app)


def test_form_upload_cut_off_mid_file_leaves_nothing(app, staff_client):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"_csrf_token\"\r\n\r\n" + csrf_token(staff_client).encode() +
            b"\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\n" + CSV)
    response = staff_client.post("/files/upload", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 400 and "stopped before" in response.text
    nothing_left(app)


def test_form_upload_with_no_file_chosen(app, staff_client):
    response = form_upload(staff_client, ("", b"", "application/octet-stream"))
    assert response.status_code == 400 and "Choose a file" in response.text


# -- downloads -------------------------------------------------------------------------------------

def test_download_headers(app, staff_client):
    file_id = upload(staff_client, "Überblick «2026».csv", CSV)
    response = staff_client.get(f"/files/{file_id}")
    assert response.status_code == 200 and response.content == CSV
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"Uberblick 2026.csv\"; filename*=UTF-8''%C3%9Cberblick%20%C2%AB2026%C2%BB.csv")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-length"] == str(len(CSV))
    assert response.headers["accept-ranges"] == "bytes"
    assert audit_rows(app, "file.download")[-1]["object"] == file_id


@pytest.mark.parametrize("name, fallback", [
    ("日本語.csv", "download.csv"), ('say "hi".txt', "say _hi_.txt"), ("back\u00a0slash.csv", "back slash.csv"),
    ("plain.csv", "plain.csv"),
])
def test_content_disposition_fallbacks(name, fallback):
    from views.downloads import content_disposition

    assert content_disposition(name).startswith(f'attachment; filename="{fallback}"; filename*=UTF-8\'\'')


def test_downloads_read_from_the_disk_in_worker_threads(app, staff_client, monkeypatch):
    """Records not in the page cache are read by a worker thread, never by the event loop."""
    import asyncio

    data = b"0123456789" * 300_000  # two full 1 MiB records and a final one
    file_id = upload(staff_client, "cold.txt", data)
    readers = []
    original = storage.RangeReader._fill

    def fill(self, index, wait):
        if not wait:
            raise BlockingIOError()  # as RWF_NOWAIT says of a record that is not cached
        try:
            asyncio.get_running_loop()
            readers.append("the event loop")
        except RuntimeError:  # no loop runs in this thread: a worker thread
            readers.append("a worker thread")
        return original(self, index, wait)

    monkeypatch.setattr(storage.RangeReader, "_fill", fill)
    response = staff_client.get(f"/files/{file_id}")
    assert response.status_code == 200 and response.content == data
    assert readers == ["a worker thread"] * 2
    assert staff_client.get(f"/files/{file_id}", headers={"Range": "bytes=1048570-1048580"}).content == data[1048570:1048581]


def test_download_ranges(app, staff_client):
    data = b"0123456789" * 300_000  # 3 MB: ranges cross segment boundaries
    file_id = upload(staff_client, "digits.txt", data)
    url = f"/files/{file_id}"
    for header, start, end in [("bytes=0-9", 0, 10), ("bytes=1048570-1048580", 1048570, 1048581),
                               ("bytes=2999990-", 2999990, 3000000), ("bytes=-5", 2999995, 3000000),
                               ("bytes=100-99999999", 100, 3000000)]:
        response = staff_client.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == data[start:end]
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(data)}"
    unsatisfiable = staff_client.get(url, headers={"Range": "bytes=3000000-"})
    assert (unsatisfiable.status_code, unsatisfiable.headers["content-range"]) == (416, "bytes */3000000")
    assert staff_client.get(url, headers={"Range": "bytes=0-1,5-6"}).status_code == 200  # several ranges: all of it
    etag = staff_client.get(url, headers={"Range": "bytes=0-0"}).headers["etag"]
    assert staff_client.get(url, headers={"Range": "bytes=0-0", "If-Range": etag}).status_code == 206
    assert staff_client.get(url, headers={"Range": "bytes=0-0", "If-Range": '"other"'}).status_code == 200


def test_zip_of_several_files(app, staff_client):
    first = upload(staff_client, "a.csv", CSV)
    second = upload(staff_client, "b.txt", b"bee")
    response = staff_client.get(f"/files/zip?id={first}&id={second}")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert response.headers["content-length"] == str(len(response.content))
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert {i.filename: archive.read(i) for i in archive.infolist()} == {"a.csv": CSV, "b.txt": b"bee"}
    assert archive.testzip() is None


def test_other_people_cannot_reach_my_files(app, client, auth, make_user):
    make_user()
    make_user(email="other@registry.example", name="Other")
    auth.login()
    file_id = upload(client, "private.csv", CSV)
    auth.logout()
    auth.login(email="other@registry.example", password=PASSWORD)
    assert client.get(f"/files/{file_id}").status_code == 404
    assert client.get(f"/files/zip?id={file_id}").status_code == 404
    assert client.post(f"/files/{file_id}/delete", headers={"x-csrftoken": csrf_token(client)}).status_code == 404
    assert "private.csv" not in client.get("/files").text
    assert app.state.db.scalar("SELECT count(*) FROM files") == 1


def test_unfinished_uploads_are_not_downloadable(app, staff_client):
    create(staff_client, "half.csv", len(CSV))
    file_id = app.state.db.scalar("SELECT id FROM files")
    assert staff_client.get(f"/files/{file_id}").status_code == 404


def test_login_is_needed(client):
    assert client.get("/files", follow_redirects=False).status_code == 303
    assert client.get("/files/abc", follow_redirects=False).status_code == 303


# -- deleting --------------------------------------------------------------------------------------

def test_delete_shreds_key_and_data(app, staff_client):
    file_id = upload(staff_client, "secret.csv", CSV)
    stored = files.list_files(app.state.db, 1)[0]
    path = files.data_path(app.state.config.files_dir, stored)
    assert path.exists()
    response = staff_client.post(f"/files/{file_id}/delete", headers={"x-csrftoken": csrf_token(staff_client)},
                                 follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/files?notice=deleted")
    assert app.state.db.query("SELECT * FROM files") == [] and not path.exists()
    assert audit_rows(app, "file.delete")[0]["object"] == file_id
    assert staff_client.get(f"/files/{file_id}").status_code == 404


def test_delete_through_htmx_returns_the_list(app, staff_client):
    upload(staff_client, "keep.csv", CSV)
    file_id = upload(staff_client, "drop.csv", CSV)
    response = staff_client.post(f"/files/{file_id}/delete", headers={"x-csrftoken": csrf_token(staff_client), "hx-request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.text and "keep.csv" in response.text and "drop.csv" not in response.text


def test_delete_needs_csrf(app, staff_client):
    file_id = upload(staff_client, "stay.csv", CSV)
    assert staff_client.post(f"/files/{file_id}/delete").status_code == 403
    assert len(files.list_files(app.state.db, 1)) == 1


def test_page_and_partial(app, staff_client):
    upload(staff_client, "listed.csv", CSV)
    page = staff_client.get("/files").text
    assert "<h1>My files</h1>" in page and "listed.csv" in page and hashlib.sha256(CSV).hexdigest() in page
    assert 'action="/files/upload"' in page and 'enctype="multipart/form-data"' in page
    partial = staff_client.get("/files", headers={"hx-request": "true"}).text
    assert "<html" not in partial and "listed.csv" in partial
    assert 'href="/files"' in staff_client.get("/").text


def test_purge_removes_orphaned_data_files(app, frozen):
    config = app.state.config
    orphan = config.files_dir / "0123abcd"
    orphan.write_bytes(b"left by a crash")
    assert files.purge_orphans(app.state.db, config.files_dir) == 0  # young: its row may be on its way
    os.utime(orphan, (0, 0))
    assert files.purge_orphans(app.state.db, config.files_dir) == 1 and not orphan.exists()


# -- the name rule itself --------------------------------------------------------------------------

@settings_(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_accepted_name_is_safe_to_show(raw):
    try:
        name = files.clean_name(raw)
    except files.FileRefused:
        return
    assert 0 < len(name.encode("utf-8")) <= 255 and name == name.strip()
    assert not name.startswith(("-", "."))
    assert not set(name) & set('/\\<>:"|?*')
    assert all(unicodedata.category(c) not in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co"} for c in name)
    assert name.split(".")[0].strip().lower() not in {"con", "prn", "aux", "nul", "com1", "lpt1"}


def test_clean_name_normalises_and_keeps_ordinary_names():
    assert files.clean_name("  Cafe\u0301 notes.txt ") == "Café notes.txt"
    assert files.clean_name("console.csv") == "console.csv"  # only the exact reserved stems are refused
    assert files.clean_name("COM10.csv") == "COM10.csv"
