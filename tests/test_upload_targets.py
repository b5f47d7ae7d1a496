"""Uploads belong to their target, not to a session; transfers keep their session alive; tus
errors are tus answers. In-process, with the clock moved while a transfer runs."""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import io
import os
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import pytest
import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from anyio import to_thread

from relais import audit, auth, settings, storage, targets
from relais.db import Database
from relais.spool import Spool
from relais.migrations import migrations
from tests.test_files import CSV, OCTETS, create, metadata, patch, tus_headers, upload

MIB = 1024 * 1024
GZIP_HEAD = b"\x1f\x8b\x08\x00"  # the content must match the .gz name
BIG = b"id,value\n" + b"1,2\n" * (3 * MIB // 4)  # three 1 MiB blocks and a bit: the PATCH ticks on each


@pytest.fixture
def staff_client(client, auth, staff):
    auth.login()
    return client


def set_setting(app, name: str, value: int) -> None:
    app.state.db.write(lambda db: settings.set_value(db, audit.SYSTEM, None, name, value))


def logged_in(client) -> bool:
    return client.get("/files", follow_redirects=False).status_code == 200


def slow(monkeypatch, frozen, cls, method: str, minutes: int, then=None) -> None:
    """Each call of ``cls.method`` (a block written, a block read) moves the clock ``minutes`` on,
    as if a slow line carried it; ``then()`` runs after the first call."""
    original, calls = getattr(cls, method), []

    def moved(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        frozen.advance(minutes=minutes)
        calls.append(1)
        if then is not None and len(calls) == 1:
            then()
        return result

    monkeypatch.setattr(cls, method, moved)


# -- a transfer keeps its session alive -----------------------------------------------------------

@pytest.mark.parametrize("checked", [False, True], ids=["plain", "with Upload-Checksum"])
def test_a_patch_longer_than_the_idle_timeout_keeps_its_session(frozen, app, staff_client, monkeypatch, checked):
    """A 20 GB upload is one PATCH of half an hour: here one that takes an hour by the clock, with
    a 30-minute idle timeout. Without being touched on the way, the session would have ended."""
    url = create(staff_client, "long.csv", len(BIG)).headers["location"]
    # A checked chunk goes to the spool while it arrives, and to the writer once verified.
    slow(monkeypatch, frozen, Spool if checked else storage.SegmentWriter, "write", minutes=20)
    extra = {"Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(BIG).digest()).decode()} if checked else {}
    done = patch(staff_client, url, 0, BIG, **extra)
    assert done.status_code == 204, done.text
    seen = auth.clock.parse(app.state.db.scalar("SELECT last_seen_at FROM sessions"))
    assert frozen.moment - seen <= auth.TOUCH_EVERY  # touched on the way and at the end
    assert logged_in(staff_client)
    assert app.state.db.scalar("SELECT sha256 FROM files WHERE state = 'complete'") == hashlib.sha256(BIG).hexdigest()


def test_without_a_transfer_the_same_hour_ends_the_session(frozen, app, staff_client):
    """The counterpart: an hour of nothing ends the session (so the test above means something)."""
    frozen.advance(minutes=60)
    assert not logged_in(staff_client)


def test_a_long_download_keeps_its_session(frozen, app, staff_client, monkeypatch):
    file_id = upload(staff_client, "down.csv", BIG)
    slow(monkeypatch, frozen, storage.RangeReader, "read", minutes=20)
    got = staff_client.get(f"/files/{file_id}")
    assert got.status_code == 200 and got.content == BIG
    assert logged_in(staff_client)
    zipped = staff_client.get(f"/files/zip?id={file_id}")
    assert zipped.status_code == 200 and logged_in(staff_client)


def test_a_session_that_ends_during_a_patch_ends_it_with_401_and_keeps_what_arrived(frozen, app, client, auth, staff,
                                                                                  monkeypatch):
    auth.login()
    url = create(client, "cut.csv", len(BIG)).headers["location"]
    # Logged out (from another tab) while the PATCH runs: it stops at its next block.
    write = storage.SegmentWriter.write
    slow(monkeypatch, frozen, storage.SegmentWriter, "write", minutes=2,
         then=lambda: app.state.db.execute("DELETE FROM sessions"))
    response = patch(client, url, 0, BIG)
    assert response.status_code == 401 and response.headers["tus-resumable"] == "1.0.0"
    assert "Log in again" in response.text
    kept = app.state.db.scalar('SELECT "offset" FROM uploads')
    assert 0 < kept < len(BIG)  # checkpointed before answering
    monkeypatch.setattr(storage.SegmentWriter, "write", write)
    auth.login()
    assert client.head(url, headers=tus_headers(client)).headers["upload-offset"] == str(kept)
    assert patch(client, url, kept, BIG[kept:]).status_code == 204
    assert app.state.db.scalar("SELECT sha256 FROM files WHERE state = 'complete'") == hashlib.sha256(BIG).hexdigest()


def test_a_short_idle_timeout_is_refreshed_often_enough(frozen, app, staff_client):
    """At a one-minute timeout a session used every 50 seconds stays open (it used to be touched
    only once a minute, so it ended at the second request)."""
    set_setting(app, "session_idle_minutes", 1)
    for _ in range(5):
        frozen.advance(seconds=50)
        assert logged_in(staff_client)
    frozen.advance(seconds=61)
    assert not logged_in(staff_client)


def test_keep_alive_never_outlives_the_absolute_timeout_or_a_deactivation(frozen, app, staff_client):
    id_hash = app.state.db.scalar("SELECT id_hash FROM sessions")
    assert auth.keep_alive(app.state.db, id_hash)
    frozen.advance(hours=12, seconds=1)
    assert not auth.keep_alive(app.state.db, id_hash)
    frozen.advance(hours=-12, seconds=-1)
    app.state.db.execute("UPDATE users SET active = 0")
    assert not auth.keep_alive(app.state.db, id_hash)


# -- tus answers, never HTML redirects --------------------------------------------------------------

def assert_tus(response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["tus-resumable"] == "1.0.0"
    assert "location" not in response.headers and "<html" not in response.text.lower()


def test_without_a_session_every_tus_request_is_401(app, client, auth, staff):
    auth.login()
    url = create(client, "left.csv", len(CSV)).headers["location"]
    auth.logout()
    headers = tus_headers(client)
    assert_tus(client.head(url, headers=headers), 401)
    assert_tus(client.patch(url, content=CSV, headers={**headers, "Upload-Offset": "0", "Content-Type": OCTETS}), 401)
    assert_tus(client.delete(url, headers=headers), 401)
    assert_tus(client.post("/tus/", headers={**headers, "Upload-Length": "3", "Upload-Metadata": metadata("a.csv")}), 401)
    assert_tus(client.options("/tus/", headers=headers), 401)
    assert "Log in again" in client.delete(url, headers=headers).text  # what the uploader shows


def test_expired_session_is_401_not_a_redirect(frozen, app, staff_client):
    url = create(staff_client, "idle.csv", len(CSV)).headers["location"]
    frozen.advance(minutes=31)
    head = staff_client.head(url, headers={**tus_headers(staff_client), "Accept-Language": "fr"})
    assert_tus(head, 401)
    # A HEAD has no body: the uploader reads the person's text from this header.
    assert unquote(head.headers["relais-message"]).startswith("Votre session a pris fin.")


def test_tus_refusals_carry_tus_resumable(app, staff_client, monkeypatch):
    headers = tus_headers(staff_client)
    url = create(staff_client, "codes.csv", len(CSV)).headers["location"]
    forged = staff_client.patch(url, content=CSV, headers={**headers, "x-csrftoken": "forged", "Upload-Offset": "0",
                                                            "Content-Type": OCTETS})
    assert_tus(forged, 403)
    assert "Reload the page" in forged.text
    assert_tus(staff_client.head("/tus/" + "0" * 32, headers=headers), 404)
    assert_tus(patch(staff_client, url, 5, CSV), 409)
    assert_tus(patch(staff_client, url, 0, CSV + b"more"), 413)
    assert_tus(patch(staff_client, url, 0, CSV, **{"Upload-Checksum": "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="}), 460)
    set_setting(staff_client.app, "max_files_per_account", 1)
    assert_tus(create(staff_client, "second.csv", 3), 403)

    def full(self, data):
        self.close()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.SegmentWriter, "write", full)
    assert_tus(patch(staff_client, url, 0, CSV), 507)


def test_a_password_change_first_is_403_not_a_redirect(app, client, auth, make_user):
    make_user()
    app.state.db.execute("UPDATE users SET must_change_password = 1")
    auth.login()
    response = client.post("/tus/", headers=tus_headers(client, **{"Upload-Length": "3", "Upload-Metadata": metadata("a.csv")}))
    assert_tus(response, 403)
    assert "new password" in response.text


# -- targets ------------------------------------------------------------------------------------

def test_the_target_decides_where_the_file_goes_and_its_limits(app, staff_client, monkeypatch):
    """A new kind plugs in without the engine changing: its own owner, limit, accepted types and
    delivery (here a stand-in for a request link, the next kind)."""
    delivered = []

    class Inbox(targets.MyFiles):
        def max_size(self, database, target):
            return 10

        def check_new(self, database, target, raw_name, length):
            if length > 10:
                raise targets.files.FileRefused("too_large", limit=10)
            return raw_name, "text/csv"

        def deliver(self, db, target, file_id):
            delivered.append((target, file_id, db.execute("SELECT state FROM files WHERE id = ?", [file_id]).fetchone()[0]))

    monkeypatch.setitem(targets.KINDS, "inbox", Inbox())
    engine, inbox = app.state.uploads, targets.Target("inbox", "1")
    with pytest.raises(targets.files.FileRefused):
        engine.create(inbox, "big.csv", 11, audit.SYSTEM)
    made = engine.create(inbox, "small.csv", len(CSV[:10]), audit.SYSTEM)
    assert engine.find(made.id, targets.Target.my_files(1)) is None  # another target's upload does not exist
    assert engine.find(made.id, inbox).target == inbox
    writer = engine.writer_for(made)
    writer.write(CSV[:10])
    stored = engine.finish(audit.SYSTEM, made, writer)
    assert delivered == [(inbox, stored.id, "complete")]  # in the completing transaction


def test_migration_keeps_uploads_in_progress_for_their_owner(tmp_path):
    database = Database(tmp_path / "old.db")
    db = database.conn
    migrations.apply(db, stop_before="0005_upload_targets")
    db.execute("INSERT INTO users (id, email, role, created_at) VALUES (7, 'a@b.example', 'staff', 'x')")
    db.execute("INSERT INTO files (id, owner_id, name, media_type, wrapped_key, storage_name, state, created_at,"
               " expires_at) VALUES ('f', 7, 'a.csv', 'text/csv', x'00', 's', 'uploading', 'x', '2999')")
    db.execute("INSERT INTO uploads (id, file_id, owner_id, session_hash, length, \"offset\", created_at, expires_at)"
               " VALUES ('u', 'f', 7, 'some-session', 100, 40, 'x', '2999')")
    database.migrate()
    from relais.uploads import Engine

    upload = Engine(database, b"\0" * 32, tmp_path).find("u", targets.Target.my_files(7))
    assert upload is not None and upload.offset == 40 and upload.target == targets.Target("files", "7")
    assert "session_hash" not in {c.name for c in database.conn["uploads"].columns}
    database.close()


# -- against a real server, with tuspy ---------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.serving import Server
    from tests.test_tus import EMAIL, OTHER, PASSWORD

    srv = Server(tmp_path_factory.mktemp("targets") / "data")
    srv.command("create-admin", "--email", EMAIL, "--password-stdin", stdin=PASSWORD)
    srv.command("create-admin", "--email", OTHER, "--password-stdin", stdin=PASSWORD)
    with sqlite3.connect(srv.env["RELAIS_DATA_DIR"] + "/relais.db") as conn:  # the shortest idle timeout there is
        conn.execute("INSERT INTO settings (name, value, updated_at) VALUES ('session_idle_minutes', '1', 'now')")
    srv.start()
    yield srv
    srv.stop()


def test_an_upload_outlasting_the_idle_timeout_is_cut_and_resumes_after_a_new_login(server):
    """Journey 4 at the size it exists for, scaled down: the idle timeout is one minute and one
    PATCH runs for 70 seconds, then the line drops. The session lived through the PATCH; once it
    has ended, tus hears a 401 (not a login page), and after a new login the same upload goes on
    from where it was cut, with tuspy, and arrives whole."""
    from tests.test_tus import download, login, offset, open_patch

    mine = login(server)
    data = GZIP_HEAD + os.urandom(12 * MIB + 321)
    client = TusClient(server.url + "/tus/", headers=mine)
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=MIB, metadata={"filename": "long.csv.gz"})
    uploader.upload_chunk()
    url, sent, piece = uploader.url, 0, 512 * 1024
    with open_patch(server, mine, url, MIB, len(data) - MIB) as sock:
        for _ in range(18):  # 72 seconds, 9 MiB: slower than the idle timeout allows without activity
            sock.sendall(data[MIB + sent : MIB + sent + piece])
            sent += piece
            time.sleep(4)
    # cut: the connection closed mid-body
    deadline = time.monotonic() + 15
    while offset(server, mine, url) != MIB + sent and time.monotonic() < deadline:
        time.sleep(0.2)
    assert offset(server, mine, url) == MIB + sent  # the session outlived the idle timeout: the PATCH kept it

    # The line stays down past the idle timeout (the session's last activity moved two minutes back).
    with sqlite3.connect(server.env["RELAIS_DATA_DIR"] + "/relais.db", timeout=30) as conn:
        conn.execute("UPDATE sessions SET last_seen_at = ?",
                     [(datetime.now(timezone.utc) - timedelta(minutes=2)).isoformat(timespec="microseconds")])
    head = requests.head(url, headers={**mine, "Tus-Resumable": "1.0.0"}, timeout=10, allow_redirects=False)
    assert head.status_code == 401 and head.headers["tus-resumable"] == "1.0.0" and "location" not in head.headers
    with pytest.raises(TusCommunicationError) as refused:  # what tuspy tells its user
        client.uploader(file_stream=io.BytesIO(data), url=url, chunk_size=4 * MIB)
    assert refused.value.status_code == 401

    again = login(server)  # a new login, a new session: the same upload, the same URL
    resumed = TusClient(server.url + "/tus/", headers=again).uploader(file_stream=io.BytesIO(data), url=url,
                                                                      chunk_size=4 * MIB)
    assert resumed.offset == MIB + sent
    resumed.upload()
    got = download(server, again, "long.csv.gz")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def test_another_account_a_guest_and_a_stolen_url_get_nothing(server):
    from tests.test_tus import OTHER, login, offset

    mine, other = login(server), login(server, OTHER)
    client = TusClient(server.url + "/tus/", headers=mine)
    uploader = client.uploader(file_stream=io.BytesIO(b"a,b\n" * 1000), chunk_size=1000, metadata={"filename": "own.csv"})
    uploader.upload_chunk()
    with pytest.raises(TusCommunicationError) as stolen:  # tuspy of another account, with the URL
        TusClient(server.url + "/tus/", headers=other).uploader(file_stream=io.BytesIO(b"x"), url=uploader.url)
    assert stolen.value.status_code == 404
    with pytest.raises(TusCommunicationError) as guest:  # no session at all
        TusClient(server.url + "/tus/").uploader(file_stream=io.BytesIO(b"x"), url=uploader.url)
    assert guest.value.status_code == 401
    end = requests.delete(uploader.url, headers={**other, "Tus-Resumable": "1.0.0"}, timeout=10)
    assert end.status_code == 404 and end.headers["tus-resumable"] == "1.0.0"
    assert offset(server, mine, uploader.url) == 1000  # untouched by all of them


def test_an_account_without_a_target_is_403_not_a_redirect(app, client, auth, make_user):
    """A partner has no My files (their space is the next kind of target): refused as tus refuses."""
    from tests.test_partners import activate, make_partner

    activate(app, client, make_partner(app, make_user(), email="partner@firm.example"))  # logged in after
    response = client.post("/tus/", headers=tus_headers(client, **{"Upload-Length": "3", "Upload-Metadata": metadata("a.csv")}))
    assert_tus(response, 403)
    assert "do not have access" in response.text
    assert app.state.db.query("SELECT id FROM uploads") == []


# -- transfers have their own threads -----------------------------------------------------------

class _PoolTakenOver:
    """Takes every free place of anyio's default thread pool (the one the sync page handlers and
    ``common.in_thread`` share) from the app's event loop, as a flood of slow pages would, and
    gives them back when told or, as a safety net, after a minute. ``order`` tells which came
    first: the transfer ending, or the places coming back."""

    def __init__(self, client):
        self.portal, self.held, self.order = client.blocking_portal, [], []
        self.given_back, self.waiting, self.timer = threading.Event(), None, None

    def take(self) -> None:
        """From any thread but the loop's: the places are taken in the loop, the free ones at
        once, and each one in use as soon as it is let go (first in the queue, as a flood's)."""
        def take_free():
            limiter = to_thread.current_default_thread_limiter()
            while limiter.available_tokens:
                borrower = object()
                limiter.acquire_on_behalf_of_nowait(borrower)
                self.held.append(borrower)

        async def take_the_rest():
            limiter = to_thread.current_default_thread_limiter()
            while len(self.held) < limiter.total_tokens:
                borrower = object()
                await limiter.acquire_on_behalf_of(borrower)
                self.held.append(borrower)

        self.portal.call(take_free)
        self.waiting = self.portal.start_task_soon(take_the_rest)
        self.timer = threading.Timer(60, self.give_back, ["timer"])
        self.timer.daemon = True
        self.timer.start()

    def give_back(self, why: str) -> None:
        if self.given_back.is_set():
            return
        self.given_back.set()
        self.order.append(why)
        if why != "timer" and self.timer is not None:
            self.timer.cancel()

        if self.waiting is not None:
            self.waiting.cancel()

        def release_all():
            limiter = to_thread.current_default_thread_limiter()
            for borrower in self.held:
                limiter.release_on_behalf_of(borrower)
        self.portal.call(release_all)


def test_a_patch_goes_on_while_the_page_threads_are_all_taken(app, staff_client, monkeypatch):
    """After its first block, every place of the shared pool is taken: the rest of the PATCH
    (blocks, checkpoint, keeping the session alive, completing the file) still goes through, in
    the transfers' own threads. Before, it waited for the places to come back."""
    pool = _PoolTakenOver(staff_client)
    url = create(staff_client, "flooded.csv", len(BIG)).headers["location"]
    original = storage.SegmentWriter.write

    def write(self, data):
        if not pool.held:
            pool.take()
        return original(self, data)

    monkeypatch.setattr(storage.SegmentWriter, "write", write)
    try:
        done = patch(staff_client, url, 0, BIG)
        pool.order.append("transfer")
    finally:
        pool.give_back("test")
    assert pool.held and pool.order[0] == "transfer", (len(pool.held), pool.order)
    assert done.status_code == 204, done.text
    assert app.state.db.scalar("SELECT sha256 FROM files WHERE state = 'complete'") == hashlib.sha256(BIG).hexdigest()


def test_a_download_goes_on_while_the_page_threads_are_all_taken(app, staff_client, monkeypatch):
    """The same for a download whose reads wait for the disk (forced here: every read is cold)."""
    file_id = upload(staff_client, "flooded.csv", BIG)
    pool = _PoolTakenOver(staff_client)
    original = storage.RangeReader.read

    def cold_read(self, wait=True):
        if not wait:
            raise BlockingIOError()  # not in the page cache: read in a thread
        if not pool.held:
            pool.take()
        return original(self)

    monkeypatch.setattr(storage.RangeReader, "read", cold_read)
    try:
        got = staff_client.get(f"/files/{file_id}")
        pool.order.append("transfer")
    finally:
        pool.give_back("test")
    assert pool.held and pool.order[0] == "transfer", (len(pool.held), pool.order)
    assert got.status_code == 200 and got.content == BIG


# -- the plain-form upload goes through the target -------------------------------------------------

def test_a_form_upload_lands_where_its_target_says(app, staff_client, make_user, monkeypatch):
    """The no-JavaScript upload uses the same target as tus: its checks, its limit, the account
    the file belongs to and its delivery (a stand-in kind, for a request link or a partner space)."""
    from tests.test_files import form_upload, nothing_left
    from views import uploads as tus_views

    other = make_user("inbox@registry.example", name="Ines Inbox")
    delivered, checked = [], []

    class Inbox(targets.MyFiles):
        def owner_id(self, database, target):
            return other.id

        def max_size(self, database, target):
            return len(CSV)

        def check_new(self, database, target, raw_name, length):
            checked.append((raw_name, length))
            if raw_name.endswith(".exe"):
                raise targets.files.FileRefused("extension", extensions=".csv")
            return "inbox-" + raw_name, "text/csv"

        def deliver(self, db, target, file_id):
            delivered.append((target, file_id, db.execute("SELECT state FROM files WHERE id = ?", [file_id]).fetchone()[0]))

    inbox = targets.Target("inbox", "7")
    monkeypatch.setitem(targets.KINDS, "inbox", Inbox())
    monkeypatch.setattr(tus_views, "target_of", lambda request: inbox)
    response = form_upload(staff_client, ("data.csv", CSV, "text/csv"))
    assert response.status_code == 303, response.text
    row = app.state.db.query_one("SELECT id, owner_id, name, state FROM files")
    assert (row["owner_id"], row["name"], row["state"]) == (other.id, "inbox-data.csv", "complete")
    assert delivered == [(inbox, row["id"], "complete")]  # in the completing transaction
    assert checked == [("data.csv", None)]  # the form's size is known only once it has arrived
    # The target's limit and types, and nothing left of a refused file.
    too_big = form_upload(staff_client, ("big.csv", CSV + b"1,2\n", "text/csv"))
    assert too_big.status_code == 413
    refused = form_upload(staff_client, ("tool.exe", b"MZ", "application/octet-stream"))
    assert refused.status_code == 400
    assert app.state.db.scalar("SELECT count(*) FROM files") == 1
    nothing_left(app)


# -- nothing of the disk on the event loop --------------------------------------------------------

def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_a_refused_form_upload_closes_its_writer_off_the_event_loop(app, staff_client, monkeypatch):
    """Closing a writer waits for its sealing batch: never on the event loop."""
    from tests.test_files import form_upload, nothing_left

    set_setting(app, "max_file_size_mib", 1)
    closed_on_loop = []
    original = storage.SegmentWriter.close

    def close(self):
        closed_on_loop.append(_on_loop())
        return original(self)

    monkeypatch.setattr(storage.SegmentWriter, "close", close)
    response = form_upload(staff_client, ("big.csv", BIG, "text/csv"))
    assert response.status_code == 413
    assert closed_on_loop and not any(closed_on_loop), closed_on_loop
    nothing_left(app)


def test_the_checksum_spool_is_made_and_removed_off_the_event_loop(app, staff_client, monkeypatch):
    on_loop = []
    made, close = Spool.__init__, Spool.close

    def spy_init(self, folder):
        on_loop.append(("made", _on_loop()))
        made(self, folder)

    def spy_close(self):
        on_loop.append(("removed", _on_loop()))
        close(self)

    monkeypatch.setattr(Spool, "__init__", spy_init)
    monkeypatch.setattr(Spool, "close", spy_close)
    url = create(staff_client, "checked.csv", len(CSV)).headers["location"]
    done = patch(staff_client, url, 0, CSV, **{"Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(CSV).digest()).decode()})
    assert done.status_code == 204, done.text
    assert on_loop == [("made", False), ("removed", False)]
    assert list(app.state.config.tmp_dir.iterdir()) == []
