"""Bytes that are not UTF-8 where text is expected: a 400 page, never a 500 or a stack trace.

Litestar decodes multipart fields strictly (UnicodeDecodeError deep in its parser) and
percent-encoded text leniently (U+FFFD); both kinds end in views.errors.bad_encoding. Each case is
tried on several routes: the login, a new share, a link's password form, the form upload, and
query strings.
"""

from __future__ import annotations

import logging
import socket

import pytest

from tests.conftest import csrf_token
from tests.serving import Server
from tests.test_shares import guest, shared  # noqa: F401 (fixtures)
from tests.test_tus import EMAIL, PASSWORD

MESSAGE = "The request contained text that is not valid UTF-8."
BOUNDARY = "bad-bytes"
URLENCODED = {"content-type": "application/x-www-form-urlencoded"}
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def multipart(token: str, name: str, value: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"_csrf_token\"\r\n\r\n{token}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").encode() + value + \
        f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def routes(app, client, auth, shared):  # noqa: F811
    """The form routes to try, each with the name of one of its text fields; logged in as staff."""
    link = shared[0]
    # The login last: a login, even a failed one, ends the session it came with.
    return [("/shares", "message"), (link, "password"), ("/account/password", "new_password"), ("/login", "email")]


def assert_refused(response, caplog) -> None:
    assert response.status_code == 400, response.text
    assert MESSAGE in response.text
    assert not [r for r in caplog.records if r.exc_info], "a stack trace was logged"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("value", [b"%FF%FE", b"caf%E9", b"\xff\xfe", b"%C3"])
def test_urlencoded_fields(client, routes, value, caplog):
    for path, field in routes:
        body = field.encode() + b"=" + value + b"&_csrf_token=" + csrf_token(client).encode()
        assert_refused(client.post(path, content=body, headers=URLENCODED), caplog)


def test_multipart_fields(client, routes, caplog):
    """Litestar's CSRF middleware parses the body to find the token, strictly."""
    for path, field in routes:
        response = client.post(path, content=multipart(csrf_token(client), field, b"\xff\xfe caf\xe9"), headers=MULTIPART)
        assert_refused(response, caplog)


def test_multipart_fields_with_the_token_in_a_header(client, routes, caplog):
    """Then the handler parses the body: a form that takes multipart (a new share) refuses it as
    above. The others read any body as urlencoded (Litestar's form extractor), so a multipart
    body is no form to them: its fields are not found and the route refuses it as it refuses an
    empty form (a wrong login, 401), never with a 500."""
    response = client.post("/shares", content=multipart("", "message", b"caf\xe9"),
                           headers={**MULTIPART, "x-csrftoken": csrf_token(client)})
    assert_refused(response, caplog)
    for path, field in routes[1:]:
        response = client.post(path, content=multipart("", field, b"caf\xe9"),
                               headers={**MULTIPART, "x-csrftoken": csrf_token(client)})
        assert response.status_code in (400, 401)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_a_field_name_that_is_not_utf8(client, routes, caplog):
    body = b"\xff=1&_csrf_token=" + csrf_token(client).encode()
    assert_refused(client.post("/login", content=body, headers=URLENCODED), caplog)


@pytest.mark.parametrize("query", ["next=%FF", "notice=%FF%FE", "x=caf%E9", "%FF=1"])
def test_query_strings(client, routes, query, caplog):
    for path in ("/login", "/files", "/shares", routes[1][0]):
        assert_refused(client.get(f"{path}?{query}"), caplog)


def test_valid_utf8_still_works(client, auth, routes):
    assert client.get("/files?notice=caf%C3%A9").status_code == 200
    body = "email=caf%C3%A9%40example.org&password=x&_csrf_token=".encode() + csrf_token(client).encode()
    assert client.post("/login", content=body, headers=URLENCODED).status_code == 401  # a wrong login, not a 400


def test_form_upload_with_a_file_name_that_is_not_utf8(app, client, routes, caplog):
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"_csrf_token\"\r\n\r\n{csrf_token(client)}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"").encode() + b"caf\xe9\xff.csv" + \
        f"\"\r\n\r\na,b\n1,2\n\r\n--{BOUNDARY}--\r\n".encode()
    response = client.post("/files/upload", content=body, headers=MULTIPART)
    assert response.status_code == 400
    assert app.state.db.query("SELECT id FROM files WHERE name LIKE 'caf%'") == []
    assert list(app.state.config.tmp_dir.iterdir()) == []
    assert not [r for r in caplog.records if r.exc_info]


def test_form_upload_posted_urlencoded(client, routes, caplog):
    body = b"file=%FF&_csrf_token=" + csrf_token(client).encode()
    assert_refused(client.post("/files/upload", content=body, headers=URLENCODED), caplog)


# -- raw bytes on the wire: what a test client would escape ------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("bad-bytes") / "data")
    srv.command("create-admin", "--email", EMAIL, "--password-stdin", stdin=PASSWORD)
    srv.start()
    yield srv
    srv.stop()


def raw_request(server, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + f"Host: 127.0.0.1:{server.port}\r\nContent-Length: {len(body)}\r\n"
                            "Connection: close\r\n\r\n".encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


def test_raw_bytes_in_a_query_string_and_a_body(server):
    # uvicorn's parser already refuses raw bytes in the request line (a 400 of its own)...
    status, _ = raw_request(server, b"GET /login?next=/caf\xe9\xff HTTP/1.1\r\n")
    assert status == 400
    # ...and lets percent-encoded ones through to us.
    status, answer = raw_request(server, b"GET /login?next=/caf%E9%FF HTTP/1.1\r\n")
    assert status == 400 and MESSAGE.encode() in answer
    status, answer = raw_request(server, b"POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n",
                                 b"email=\xff\xfe&password=x")
    assert status == 400 and MESSAGE.encode() in answer
    log = open(server.log.name).read()
    assert "Traceback" not in log


def test_the_page_is_in_the_persons_language(client, routes):
    response = client.get("/files?notice=%FF", headers={"accept-language": "nl"})
    assert response.status_code == 400 and "geen geldige UTF-8" in response.text


def test_tus_answers_as_tus(client, routes, caplog):
    response = client.post("/tus/?x=%FF", headers={"Tus-Resumable": "1.0.0", "x-csrftoken": csrf_token(client)})
    assert (response.status_code, response.headers.get("tus-resumable")) == (400, "1.0.0")
    assert MESSAGE in response.text and response.headers["content-type"].startswith("text/plain")
