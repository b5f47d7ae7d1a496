"""Request files, the whole journey over HTTP against a real server process, with aiosmtpd
receiving every mail: staff ask, the guest unlocks the link, uploads through tus (tuspy) and the
plain form, transmits, gets the receipt; staff are told, reminded before the deadline, and the
deadline shreds the files. The server's clock is moved by days (tests/clocked.py)."""

from __future__ import annotations

import hashlib
import io
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from aiosmtpd.controller import Controller
from tusclient.client import TusClient

from relais import clock, i18n
from tests.serving import Server, free_port
from tests.test_mail import Inbox

STAFF_EMAIL, STAFF_PASSWORD = "contact@registry.example", "violet tugboat marmalade"
GUEST_EMAIL = "lab@hospital.example"
FIRST = b"patient,value\n1,2\n" * 40_000  # about 700 KiB, sent with tus in two chunks
SECOND = b"patient,value\n3,4\n"


class ClockedServer(Server):
    """The server and its commands, run through tests/clocked.py: ``to(moment)`` sets its clock."""

    program = "tests/clocked.py"

    def __init__(self, data_dir: Path, smtp_port: int):
        super().__init__(data_dir)
        self.offset_file = data_dir.parent / "clock-offset"
        self.offset_file.write_text("0")
        self.env.update({"RELAIS_TEST_CLOCK_OFFSET": str(self.offset_file), "RELAIS_SMTP_HOST": "127.0.0.1",
                         "RELAIS_SMTP_PORT": str(smtp_port), "RELAIS_SMTP_TLS": "none",
                         "RELAIS_MAIL_FROM": "Relais <relais@registry.example>"})

    def to(self, moment) -> None:
        """Set the server's clock (and its commands') to ``moment``."""
        self.offset_file.write_text(str((moment - clock.now()).total_seconds()))


class Visitor:
    """A browser over plain http: it keeps the server's cookies (Secure, ``__Host-``) and sends them
    itself, as Python's cookie jar will not over http, and puts the CSRF token in every form."""

    def __init__(self, server: Server):
        self.server, self.cookies = server, {}

    def headers(self, extra: dict | None = None) -> dict:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), **(extra or {})}

    def send(self, method: str, path: str, headers: dict | None = None, **kwargs) -> requests.Response:
        response = requests.request(method, self.server.url + path, headers=self.headers(headers),
                                    allow_redirects=False, timeout=60, **kwargs)
        self.cookies.update({cookie.name: cookie.value for cookie in response.cookies})
        return response

    def get(self, path: str, **kwargs) -> requests.Response:
        response = self.send("GET", path, **kwargs)
        while response.status_code in (302, 303):
            response = self.send("GET", response.headers["location"].removeprefix(self.server.url))
        return response

    @property
    def csrf(self) -> str:
        if "__Host-csrf" not in self.cookies:
            self.get("/login")
        return self.cookies["__Host-csrf"]

    def post(self, path: str, data: dict | None = None, **kwargs) -> requests.Response:
        return self.send("POST", path, data={**(data or {}), "_csrf_token": self.csrf}, **kwargs)


def wait_for(inbox: Inbox, count: int) -> list:
    """The first ``count`` mails, once they have arrived (the server sends them in its own thread)."""
    deadline = time.monotonic() + 30
    while len(inbox.messages) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(inbox.messages) >= count, [m["Subject"] for m in inbox.messages]
    return inbox.messages[:count]


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


@pytest.fixture(scope="module")
def inbox():
    received = Inbox()
    controller = Controller(received, hostname="127.0.0.1", port=free_port())
    controller.start()
    received.port = controller.port
    yield received
    controller.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, inbox):
    srv = ClockedServer(tmp_path_factory.mktemp("journey") / "data", inbox.port)
    srv.command("create-admin", "--email", STAFF_EMAIL, "--name", "Carla Contact", "--password-stdin",
                stdin=STAFF_PASSWORD)
    srv.start()
    yield srv
    srv.stop()


def staff_login(server) -> Visitor:
    staff = Visitor(server)
    assert staff.post("/login", {"email": STAFF_EMAIL, "password": STAFF_PASSWORD}).status_code == 303
    return staff


def test_request_files_from_invitation_to_deadline(server, inbox):
    staff = staff_login(server)
    # Staff's mails are in German from now on (a switch from Relais's own page: Fetch Metadata says so).
    assert staff.get("/language/de?next=/", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200

    # Staff ask for files: the invitation goes out in the language chosen for it.
    created = staff.post("/requests", {
        "recipient": GUEST_EMAIL, "message": "Bitte de export van studie 12.", "language": "nl", "expires_days": "7",
        "types": "csv", "max_file_size_mib": "10", "max_files": "3", "reference_label": "Studienummer",
    })
    assert created.status_code == 303, created.text
    request_id = created.headers["location"].split("/")[2]
    shown = staff.get(created.headers["location"])
    password = re.search(r'id="request-password">([^<]+)<', shown.text).group(1)

    [invitation] = wait_for(inbox, 1)
    assert invitation["To"] == GUEST_EMAIL and invitation["Content-Language"] == "nl"
    assert "Carla Contact" in invitation["Subject"]
    body = text_of(invitation)
    assert body.startswith(i18n.gettext("nl", "Hello,"))
    assert "Bitte de export van studie 12." in body and ".csv" in body and "10\u00a0MB" in body and "Studienummer" in body
    assert password not in body and password not in html_of(invitation)  # the password comes separately
    link = re.search(rf"{re.escape(server.url)}/r/([A-Za-z0-9_-]+)", body)
    token = link.group(1)
    assert link.group(0) in html_of(invitation)

    # The guest: the link alone shows the password form; with the password, the upload page.
    guest = Visitor(server)
    assert password not in guest.get(f"/r/{token}").text
    unlocked = guest.post(f"/r/{token}", {"password": password})
    assert unlocked.status_code == 303, unlocked.text
    assert guest.get("/language/fr?next=/r/" + token, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200

    tus = TusClient(f"{server.url}/r/{token}/tus/", headers=guest.headers({"x-csrftoken": guest.csrf}))
    uploader = tus.uploader(file_stream=io.BytesIO(FIRST), chunk_size=512 * 1024, metadata={"filename": "export.csv"})
    uploader.upload()
    form = guest.send("POST", f"/r/{token}/upload", headers={"x-csrftoken": guest.csrf},
                      files=[("_csrf_token", (None, guest.csrf)), ("file", ("extra.csv", SECOND, "text/csv"))])
    assert form.status_code == 303, form.text
    page = guest.get(f"/r/{token}")
    assert "export.csv" in page.text and "extra.csv" in page.text

    sent = guest.post(f"/r/{token}/transmit", {"reference": "S-12"})
    assert sent.status_code == 303, sent.text
    receipt_page = guest.get(sent.headers["location"])
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in (("export.csv", FIRST), ("extra.csv", SECOND))}
    assert all(digest in receipt_page.text for digest in hashes.values())

    # One submission: the link takes nothing more, by either way in.
    refused = guest.send("POST", f"/r/{token}/upload", headers={"x-csrftoken": guest.csrf},
                         files=[("_csrf_token", (None, guest.csrf)), ("file", ("late.csv", SECOND, "text/csv"))])
    assert refused.status_code in (404, 410), refused.status_code
    late = requests.post(f"{server.url}/r/{token}/tus/", headers=guest.headers({
        "x-csrftoken": guest.csrf, "Tus-Resumable": "1.0.0", "Upload-Length": str(len(SECOND)),
        "Upload-Metadata": "filename bGF0ZS5jc3Y="}), timeout=30, allow_redirects=False)
    assert late.status_code in (401, 404, 410), late.status_code

    # The receipt to the guest (in French, the page's language) and the notice to staff (in German).
    mails = wait_for(inbox, 3)[1:]
    receipt = next(m for m in mails if m["To"] == GUEST_EMAIL)
    notice = next(m for m in mails if m["To"] == STAFF_EMAIL)
    assert receipt["Content-Language"] == "fr" and text_of(receipt).startswith(i18n.gettext("fr", "Hello,"))
    assert all(name in text_of(receipt) and digest in text_of(receipt) for name, digest in hashes.items())
    assert "S-12" in text_of(receipt) and "/r/" not in text_of(receipt)  # a receipt leads to no file
    assert notice["Content-Language"] == "de" and text_of(notice).startswith(i18n.gettext("de", "Hello,"))
    assert GUEST_EMAIL in notice["Subject"]
    assert f"{server.url}/requests/{request_id}" in text_of(notice)
    assert all(digest in text_of(notice) for digest in hashes.values())

    # Staff do not retrieve them: a reminder the day it is due, then the deadline shreds them.
    database = server.database()
    try:
        retrieve_by = clock.parse(database.query_one("SELECT retrieve_by FROM request_submissions")["retrieve_by"])
        server.to(retrieve_by - timedelta(days=2) + timedelta(minutes=1))
        server.command("purge")
        [reminder] = wait_for(inbox, 4)[3:]
        assert reminder["To"] == STAFF_EMAIL and reminder["Content-Language"] == "de"
        assert GUEST_EMAIL in reminder["Subject"] and f"/requests/{request_id}" in text_of(reminder)
        server.command("purge")
        assert database.query("SELECT count(*) AS n FROM outbox WHERE kind = 'request_reminder'") == [{"n": 1}]

        stored = [row["storage_name"] for row in database.query(
            "SELECT storage_name FROM files JOIN request_files ON request_files.file_id = files.id")]
        assert len(stored) == 2
        server.to(retrieve_by + timedelta(minutes=1))
        server.command("purge")
        assert database.query("SELECT * FROM request_files") == []
        files_dir = Path(server.env["RELAIS_DATA_DIR"]) / "files"
        assert not any((files_dir / name).exists() for name in stored)
        assert database.query_one("SELECT purge_reason FROM request_submissions")["purge_reason"] == "deadline"
        kinds = [row["kind"] for row in database.query("SELECT kind FROM outbox ORDER BY id")]
        assert kinds == ["request", "request_receipt", "request_received", "request_reminder"]
    finally:
        database.close()
