"""tus against a real server process, with tuspy (a tus client written by others).

Upload, cut a PATCH off mid-body, resume; kill the server (SIGKILL) mid-upload, start it again on
the same data folder and port, resume; stop it (SIGTERM) while a client stalls mid-PATCH; each time the downloaded bytes and SHA-256 must match.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import time

import pytest
import requests
from tusclient.client import TusClient

from tests.serving import Server

EMAIL, PASSWORD = "tus@registry.example", "violet tugboat marmalade"
OTHER = "other@registry.example"
MIB = 1024 * 1024
GZIP = b"\x1f\x8b\x08\x00"  # the content must match the .gz name
GRACE = 4  # seconds a stopping server gives requests in flight


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("tus") / "data")
    srv.env["RELAIS_STOP_GRACE_SECONDS"] = str(GRACE)
    srv.command("create-admin", "--email", EMAIL, "--password-stdin", stdin=PASSWORD)
    srv.command("create-admin", "--email", OTHER, "--password-stdin", stdin=PASSWORD)
    srv.start()
    yield srv
    srv.stop()


def login(server, email: str = EMAIL) -> dict:
    """Headers of a logged-in staff session. Cookies are set by hand: they are Secure (__Host-),
    and Python's cookie jar would not send them over the test's plain http."""
    csrf = requests.get(server.url + "/login", timeout=10).cookies["__Host-csrf"]
    response = requests.post(server.url + "/login", data={"email": email, "password": PASSWORD, "_csrf_token": csrf},
                             headers={"Cookie": f"__Host-csrf={csrf}"}, allow_redirects=False, timeout=10)
    session = response.cookies["__Host-relais_session"]
    return {"Cookie": f"__Host-csrf={csrf}; __Host-relais_session={session}", "x-csrftoken": csrf}


def offset(server, headers, url) -> int:
    response = requests.head(url, headers={**headers, "Tus-Resumable": "1.0.0"}, timeout=30)
    assert response.status_code == 200, response.status_code
    return int(response.headers["upload-offset"])


def send_part_then_drop(server, headers, url, at: int, data: bytes, declared: int) -> None:
    """A PATCH that announces ``declared`` bytes, sends ``data`` and closes the connection."""
    head = (f"PATCH {url.removeprefix(server.url)} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {at}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {declared}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head.encode("latin-1") + data)
        time.sleep(0.3)


def download(server, headers, name) -> bytes:
    page = requests.get(server.url + "/files", headers=headers, timeout=10).text
    file_id = page.split(f"Download<span class=\"visually-hidden\"> {name}")[0].rsplit('href="/files/', 1)[1].split('"')[0]
    response = requests.get(f"{server.url}/files/{file_id}", headers=headers, timeout=30)
    assert response.status_code == 200
    return response.content


def test_upload_cut_off_mid_request_then_resume(server):
    headers = login(server)
    data = GZIP + os.urandom(9 * MIB + 12345)
    client = TusClient(server.url + "/tus/", headers=headers)
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=2 * MIB, metadata={"filename": "cut.csv.gz"},
                               upload_checksum=True)
    uploader.upload_chunk()  # 2 MiB, with a checksum (sha1) checked before it is stored
    assert offset(server, headers, uploader.url) == 2 * MIB

    sent = 3 * MIB + 777  # the connection drops 3 MiB and a bit into a PATCH announcing the rest
    send_part_then_drop(server, headers, uploader.url, 2 * MIB, data[2 * MIB : 2 * MIB + sent], len(data) - 2 * MIB)
    deadline = time.monotonic() + 10
    while offset(server, headers, uploader.url) != 2 * MIB + sent and time.monotonic() < deadline:
        time.sleep(0.1)
    assert offset(server, headers, uploader.url) == 2 * MIB + sent  # what arrived was kept

    resumed = client.uploader(file_stream=io.BytesIO(data), url=uploader.url, chunk_size=4 * MIB)
    assert resumed.offset == 2 * MIB + sent
    resumed.upload()
    got = download(server, headers, "cut.csv.gz")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest() and got == data


def test_server_killed_mid_upload_then_restarted(server):
    headers = login(server)
    data = GZIP + os.urandom(12 * MIB + 4321)
    client = TusClient(server.url + "/tus/", headers=headers)
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=3 * MIB, metadata={"filename": "killed.csv.gz"})
    uploader.upload_chunk()

    # Halfway through the next PATCH the process dies without a chance to clean up.
    head_and_part = 5 * MIB
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        path = uploader.url.removeprefix(server.url)
        sock.sendall((f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {3 * MIB}\r\n"
                      f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(data) - 3 * MIB}\r\n"
                      + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode("latin-1"))
        sock.sendall(data[3 * MIB : 3 * MIB + head_and_part])
        time.sleep(0.5)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
    server.start()  # same data folder, same port

    after = offset(server, headers, uploader.url)  # the session and the upload survived the restart
    assert 3 * MIB <= after <= 8 * MIB
    resumed = client.uploader(file_stream=io.BytesIO(data), url=uploader.url, chunk_size=4 * MIB)
    assert resumed.offset == after
    resumed.upload()
    got = download(server, headers, "killed.csv.gz")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest() and got == data


def open_patch(server, headers, url, at: int, declared: int) -> socket.socket:
    """A connection with the head of a PATCH announcing ``declared`` bytes from ``at`` sent."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall((f"PATCH {url.removeprefix(server.url)} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
                  f"Upload-Offset: {at}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {declared}\r\n"
                  + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode("latin-1"))
    return sock


def stop_during_patch(server, headers, url, at: int, data: bytes, before: int, after: int = 0) -> tuple[bytes, float, str]:
    """SIGTERM while a PATCH from ``at`` is open, ``before`` bytes in, ``after`` more sent once the
    signal is out; returns (the server's reply, seconds the stop took, what it logged meanwhile)."""
    logged_before = len(open(server.log.name).read())
    with open_patch(server, headers, url, at, len(data) - at) as sock:
        sock.sendall(data[at : at + before])
        time.sleep(0.5)
        asked = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        if after:
            time.sleep(0.2)
            sock.sendall(data[at + before : at + before + after])
        server.process.wait(timeout=GRACE + 15)
        took = time.monotonic() - asked
        reply = sock.recv(65536)
    assert server.process.returncode in (0, -signal.SIGTERM)  # uvicorn ends by re-raising the signal
    return reply, took, open(server.log.name).read()[logged_before:]


def resume_and_check(server, headers, client, url: str, data: bytes, name: str) -> None:
    """Resume from the offset the server reports; the download must match ``data``."""
    resumed = client.uploader(file_stream=io.BytesIO(data), url=url, chunk_size=4 * MIB)
    assert resumed.offset == offset(server, headers, url)
    resumed.upload()
    got = download(server, headers, name)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest() and got == data


def test_stop_does_not_wait_for_a_stalled_upload(server):
    """A whole file may come in one PATCH (the browser's uploader sends it so): a server asked to
    stop cuts such a request after the grace period instead of waiting for the client, and the
    upload goes on after the restart from what was durable."""
    headers = login(server)
    data = GZIP + os.urandom(10 * MIB + 99)
    client = TusClient(server.url + "/tus/", headers=headers)
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=3 * MIB, metadata={"filename": "stalled.csv.gz"})
    uploader.upload_chunk()

    # 2 MiB in, the client sends nothing more and keeps the connection open.
    reply, took, log = stop_during_patch(server, headers, uploader.url, 3 * MIB, data, before=2 * MIB)
    assert reply.startswith(b"HTTP/1.1 503 ")  # an answer the client retries on, not a reset
    assert took < GRACE + 10, took  # uvicorn alone would wait for the client for ever
    assert "Cancel 1 running task(s)" in log  # it was the grace period that ended the request
    assert "cut off: the server is stopping" in log and "Traceback" not in log
    server.start()
    assert 3 * MIB <= offset(server, headers, uploader.url) <= 5 * MIB
    resume_and_check(server, headers, client, uploader.url, data, "stalled.csv.gz")


def test_stop_during_a_flowing_upload_saves_what_arrived_and_answers_503(server):
    """Asked to stop, the server does not wait out its grace period for an upload that is still
    sending: at its next chunk the upload saves what arrived and answers 503, and the client
    resumes after the restart from exactly there."""
    headers = login(server)
    data = GZIP + os.urandom(12 * MIB + 7)
    client = TusClient(server.url + "/tus/", headers=headers)
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=3 * MIB, metadata={"filename": "flowing.csv.gz"})
    uploader.upload_chunk()

    # 5 MiB in, then the signal, then 64 KiB more: the next chunk is where the upload notices.
    reply, took, log = stop_during_patch(server, headers, uploader.url, 3 * MIB, data, before=5 * MIB, after=64 * 1024)
    assert reply.startswith(b"HTTP/1.1 503 ")
    assert took < GRACE, took  # the upload ended by itself, not by the grace period
    assert "Cancel" not in log and "Traceback" not in log
    server.start()
    assert 3 * MIB < offset(server, headers, uploader.url) <= 8 * MIB + 64 * 1024  # what arrived was kept
    resume_and_check(server, headers, client, uploader.url, data, "flowing.csv.gz")


def test_a_stop_as_the_last_bytes_arrive_still_stores_the_file(server):
    """The stop must not leave an upload whose bytes all arrived uncommitted: a client told "all
    here" would send nothing more. Either the PATCH ends normally, or the client resumes."""
    headers = login(server)
    data = GZIP + os.urandom(6 * MIB + 3)
    client = TusClient(server.url + "/tus/", headers=headers)
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=3 * MIB, metadata={"filename": "last.csv.gz"})
    uploader.upload_chunk()

    rest = len(data) - 3 * MIB
    reply, _, log = stop_during_patch(server, headers, uploader.url, 3 * MIB, data, before=rest - 32 * 1024, after=32 * 1024)
    assert reply.split(b" ")[1] in (b"204", b"503") and "Traceback" not in log
    server.start()
    if reply.startswith(b"HTTP/1.1 204 "):
        got = download(server, headers, "last.csv.gz")
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    else:
        resume_and_check(server, headers, client, uploader.url, data, "last.csv.gz")


def test_only_the_owner_sees_resumes_or_ends_an_upload_from_any_of_their_sessions(server):
    mine, again, other = login(server), login(server), login(server, OTHER)
    client = TusClient(server.url + "/tus/", headers=mine)
    uploader = client.uploader(file_stream=io.BytesIO(b"a,b\n" * 1000), chunk_size=1000, metadata={"filename": "mine.csv"})
    uploader.upload_chunk()
    tus = {"Tus-Resumable": "1.0.0"}
    guest = {"x-csrftoken": mine["x-csrftoken"], "Cookie": mine["Cookie"].split(";")[0]}  # no session cookie
    for asker, status in ((other, 404), (guest, 401)):  # another account, or no one, holding the stolen URL
        for response in (
            requests.head(uploader.url, headers={**asker, **tus}, timeout=10, allow_redirects=False),
            requests.patch(uploader.url, data=b"x", timeout=10, allow_redirects=False, headers={
                **asker, **tus, "Upload-Offset": "1000", "Content-Type": "application/offset+octet-stream"}),
            requests.delete(uploader.url, headers={**asker, **tus}, timeout=10, allow_redirects=False),
        ):
            assert response.status_code == status and response.headers["tus-resumable"] == "1.0.0"
            assert "location" not in response.headers and "a,b" not in response.text
    assert offset(server, mine, uploader.url) == 1000
    assert offset(server, again, uploader.url) == 1000  # the owner's other session sees it too
    assert requests.delete(uploader.url, headers={**again, **tus}, timeout=10).status_code == 204
    assert requests.head(uploader.url, headers={**mine, **tus}, timeout=10).status_code == 404
