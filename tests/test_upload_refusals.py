"""A refused or cut-off upload leaves nothing but its row in the audit trail, saying why; a form
upload keeps its session alive and stops when the session ends."""

from __future__ import annotations

import base64

from views import files as files_view
from tests.conftest import audit_rows, csrf_token
from tests.test_shares import PDF


def multipart(name: str, content: bytes, token: str) -> tuple[bytes, str]:
    boundary = "relaisboundary42"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"_csrf_token\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_tus_upload_refused_for_its_content_is_in_the_trail(app, auth, staff):
    auth.login()
    client, token = auth.client, csrf_token(auth.client)
    exe = b"MZ" + b"\0" * 200  # an executable named .pdf
    created = client.post("/tus/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(exe)), "x-csrftoken": token,
                                            "Upload-Metadata": "filename " + base64.b64encode(b"report.pdf").decode()})
    assert created.status_code == 201, created.text
    sent = client.patch(created.headers["location"], content=exe, headers={
        "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream", "x-csrftoken": token})
    assert sent.status_code == 400
    assert app.state.db.scalar("SELECT count(*) FROM files") == 0
    refused = audit_rows(app, "upload.refused")
    assert len(refused) == 1 and '"reason": "content"' in refused[0]["detail"] and "report.pdf" in refused[0]["detail"]


def test_a_form_upload_refused_for_its_content_is_in_the_trail(app, auth, staff):
    auth.login()
    body, content_type = multipart("report.pdf", b"MZ" + b"\0" * 200, csrf_token(auth.client))
    answer = auth.client.post("/files/upload", content=body, headers={"Content-Type": content_type,
                                                                     "x-csrftoken": csrf_token(auth.client)})
    assert answer.status_code == 400
    assert app.state.db.scalar("SELECT count(*) FROM files") == 0
    assert [r["object"] != "" and '"reason": "content"' in r["detail"] for r in audit_rows(app, "upload.refused")] == [True]


def test_a_form_upload_whose_session_ends_keeps_nothing(app, auth, staff, monkeypatch):
    auth.login()
    monkeypatch.setattr("relais.auth.touch_every", lambda database: __import__("datetime").timedelta(0))
    monkeypatch.setattr("relais.auth.keep_alive", lambda database, id_hash: False)  # logged out elsewhere meanwhile
    body, content_type = multipart("report.pdf", PDF, csrf_token(auth.client))
    answer = auth.client.post("/files/upload", content=body, headers={"Content-Type": content_type,
                                                                     "x-csrftoken": csrf_token(auth.client)})
    assert answer.status_code == 401 and "Your session ended during the upload" in answer.text
    assert app.state.db.scalar("SELECT count(*) FROM files") == 0
    assert audit_rows(app, "file.upload") == []


def test_a_long_form_upload_keeps_its_session(app, auth, staff, frozen, monkeypatch):
    """20 minutes pass while the body arrives, 20 more after it: 40 minutes after the login, past the
    30-minute idle timeout, the session lives because the upload counted as activity."""
    auth.login()
    real_parse = files_view.PushMultipartParser.parse

    def slow_network(self, chunk):
        frozen.advance(minutes=20)  # the body takes 20 minutes to arrive
        return real_parse(self, chunk)

    monkeypatch.setattr(files_view.PushMultipartParser, "parse", slow_network)
    body, content_type = multipart("report.pdf", PDF, csrf_token(auth.client))
    answer = auth.client.post("/files/upload", content=body, headers={"Content-Type": content_type,
                                                                     "x-csrftoken": csrf_token(auth.client)},
                              follow_redirects=False)
    assert answer.status_code == 303, answer.text
    monkeypatch.setattr(files_view.PushMultipartParser, "parse", real_parse)
    frozen.advance(minutes=20)
    assert auth.client.get("/files", follow_redirects=False).status_code == 200
