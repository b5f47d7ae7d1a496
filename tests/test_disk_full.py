"""A full disk, for real: the data folder on a small tmpfs, and uploads larger than what fits.

Both upload paths (the form, and tus through tuspy against a real server) answer 507 and leave
nothing behind (no row, no data file, no temporary file), and the instance keeps serving right
after: ``/healthz`` answers 200 and a login (a session row and audit rows in the same full file
system) succeeds.
"""

from __future__ import annotations

import io
import os
import subprocess

import pytest
import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError

from relais import space
from relais.config import Config
from tests.conftest import BASE_URL, csrf_token
from tests.serving import Server
from tests.test_tus import EMAIL, PASSWORD, login

MIB = 1024 * 1024
SIZE_MIB = 48  # the tmpfs: the database's reserve (relais.space.RESERVE) plus room for some uploads
GZIP = b"\x1f\x8b\x08\x00"  # the content must match the .gz name


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m,mode=0700", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    yield mount_point
    # Lazily: worker threads may still hold a read connection to the database on it; the memory
    # goes when they close it.
    subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


@pytest.fixture
def config(small_disk, tmp_path) -> Config:
    return Config(
        data_dir=small_disk / "data", base_url=BASE_URL, argon2_time_cost=1, argon2_memory_kib=8192,
        argon2_parallelism=1, master_key_file=tmp_path / "master.key", background_jobs=False,
    )


def nothing_left(data_dir, rows) -> None:
    assert rows("SELECT id, state FROM files") == []
    assert rows("SELECT id FROM uploads") == []
    assert list((data_dir / "files").iterdir()) == []
    assert list((data_dir / "tmp").iterdir()) == []


def still_serving(client, auth) -> None:
    assert client.get("/healthz").status_code == 200
    assert auth.logout().status_code == 303
    assert auth.login().status_code == 303
    assert client.get("/files").status_code == 200


def form_body(client, size: int) -> tuple[bytes, dict]:
    boundary = "disk-full-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"_csrf_token\"\r\n\r\n{csrf_token(client)}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode() + b"a," * (size // 2) + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def chunked(body: bytes):
    """The body without a Content-Length: the server learns its size only as it arrives."""
    for start in range(0, len(body), MIB):
        yield body[start:start + MIB]


def assert_refused(app, response) -> None:
    assert response.status_code == 507
    assert "its disk is full" in response.text and "Nothing was kept" in response.text
    nothing_left(app.state.config.data_dir, app.state.db.query)


def test_a_form_upload_larger_than_the_free_space_is_refused_before_a_byte_is_stored(app, client, auth, staff,
                                                                                    monkeypatch):
    auth.login()
    stored = []
    monkeypatch.setattr(space, "checked", lambda folder, write: stored.append(1) or write)
    body, headers = form_body(client, 40 * MIB)
    assert_refused(app, client.post("/files/upload", content=body, headers=headers))
    assert stored == []  # refused on its Content-Length, before a writer was opened
    still_serving(client, auth)


def test_a_form_upload_without_a_length_stops_at_the_reserve(app, client, auth, staff):
    auth.login()
    body, headers = form_body(client, 40 * MIB)
    assert_refused(app, client.post("/files/upload", content=chunked(body), headers=headers))
    assert space.free(app.state.config.data_dir) > 40 * MIB  # what the partial took is free again
    still_serving(client, auth)


def test_a_form_upload_that_fills_the_disk_to_the_last_byte(app, client, auth, staff, monkeypatch):
    """As if something else had eaten the reserve: the write fails with the system's own ENOSPC and
    SQLite, on the same file system, cannot log the deletion of the partial until it is unlinked."""
    auth.login()
    monkeypatch.setattr(space, "ensure_space", lambda folder, length: None)
    body, headers = form_body(client, 60 * MIB)
    assert_refused(app, client.post("/files/upload", content=chunked(body), headers=headers))
    still_serving(client, auth)


def test_the_page_is_in_the_persons_language(app, client, auth, staff):
    auth.login()
    body, headers = form_body(client, 40 * MIB)
    response = client.post("/files/upload", content=body, headers={**headers, "accept-language": "fr"})
    assert response.status_code == 507 and "son disque est plein" in response.text


def test_a_small_form_upload_still_fits(app, client, auth, staff):
    auth.login()
    body, headers = form_body(client, 4 * MIB)
    response = client.post("/files/upload", content=body, headers=headers, follow_redirects=False)
    assert response.status_code == 303
    assert app.state.db.scalar("SELECT count(*) FROM files WHERE state = 'complete'") == 1


# -- tus, against a real server whose data folder is on the small disk ------------------------------

@pytest.fixture
def server(small_disk):
    srv = Server(small_disk / "data")
    srv.command("create-admin", "--email", EMAIL, "--password-stdin", stdin=PASSWORD)
    srv.start()
    yield srv
    srv.stop()


def server_rows(srv):
    import sqlite3

    def rows(sql):
        with sqlite3.connect(srv.env["RELAIS_DATA_DIR"] + "/relais.db") as conn:
            return conn.execute(sql).fetchall()

    return rows


def test_a_tus_upload_larger_than_the_free_space(server, small_disk):
    headers = login(server)
    client = TusClient(server.url + "/tus/", headers=headers)
    uploader = client.uploader(file_stream=io.BytesIO(GZIP + os.urandom(40 * MIB)), chunk_size=8 * MIB,
                               metadata={"filename": "big.gz"}, retries=0)
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()
    assert refused.value.status_code == 507
    # As tus expects it: Tus-Resumable, and a text the uploader shows, not an HTML page.
    created = requests.post(server.url + "/tus/", timeout=10, headers={
        **headers, "Tus-Resumable": "1.0.0", "Upload-Length": str(40 * MIB), "Upload-Metadata": "filename YmlnLmd6"})
    assert (created.status_code, created.headers.get("tus-resumable")) == (507, "1.0.0")
    assert created.headers["content-type"].startswith("text/plain") and "its disk is full" in created.text
    nothing_left(small_disk / "data", server_rows(server))
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    assert login(server)  # a new session, and its audit rows, are written


def test_a_tus_upload_stopped_by_a_disk_filled_meanwhile(server, small_disk):
    """The upload fitted when it was created; then something else filled the disk. The PATCH stops
    at the reserve (507), the instance keeps serving, and once room is made the upload resumes."""
    headers = login(server)
    data = GZIP + os.urandom(20 * MIB)
    client = TusClient(server.url + "/tus/", headers=headers)
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=len(data), metadata={"filename": "late.gz"},
                               retries=0)
    uploader.set_url(uploader.create_url())
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (space.free(small_disk) - space.RESERVE - 8 * MIB))
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload_chunk()
    assert refused.value.status_code == 507
    assert space.free(small_disk) >= space.RESERVE - 2 * MIB
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    assert login(server)
    ballast.unlink()
    resumed = TusClient(server.url + "/tus/", headers=headers).uploader(
        file_stream=io.BytesIO(data), chunk_size=len(data), url=uploader.url, retries=0)
    resumed.upload()
    assert server_rows(server)("SELECT name, size FROM files WHERE state = 'complete'") == [("late.gz", len(data))]
