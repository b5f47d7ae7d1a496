"""The link core with a kind other than shares: what a request link (issue 11) will reuse unchanged.

The kind here is a stand-in, a table made by the test with the columns every link kind has; the
core is called as a request's views will call it. Share links are tested in test_shares.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from relais import audit, clock, links, passwords, settings
from relais.links import core
from tests import aio
from tests.conftest import audit_rows

WHO = audit.Who(actor="anonymous", ip="192.0.2.7", user_agent="tuspy")
PASSWORD = "kite-lamp-rust-oval"


@dataclass(frozen=True)
class Request:
    id: str
    owner_id: int
    expires_at: str
    locked_at: str | None

    @classmethod
    def from_row(cls, row: dict) -> "Request":
        return cls(row["id"], row["owner_id"], row["expires_at"], row["locked_at"])

    @property
    def open(self) -> bool:
        return self.locked_at is None and self.expires_at > clock.now_iso()


REQUEST = links.Kind(name="request", table="test_requests", from_row=Request.from_row,
                     recipients=lambda db, object_id: ["lab@lab.example"], staff_path="/requests/{id}",
                     lock_mail="request_locked")


@pytest.fixture
def request_link(app, staff):
    """A request link in the stand-in table; returns (token, request id)."""
    token = passwords.new_token()

    def make(db):
        db.execute("CREATE TABLE test_requests (id TEXT PRIMARY KEY, owner_id INTEGER NOT NULL, token_hash TEXT NOT NULL,"
                   " password_hash TEXT NOT NULL, failed_attempts INTEGER NOT NULL DEFAULT 0, locked_at TEXT,"
                   " expires_at TEXT NOT NULL)")
        db.execute("INSERT INTO test_requests (id, owner_id, token_hash, password_hash, expires_at) VALUES (?, ?, ?, ?, ?)",
                   ["req1", staff.id, passwords.token_hash(token), app.state.hasher.hash(PASSWORD), "2999-01-01"])

    app.state.db.write(make)
    return token, "req1"


def unlock(app, token: str, password: str) -> links.UnlockResult:
    return aio.run(links.unlock(app.state.db, app.state.hasher, REQUEST, WHO, token, password,
                                app.state.config.base_url))


def test_a_request_link_unlocks_with_its_password(app, request_link):
    token, request_id = request_link
    database = app.state.db
    assert links.find_open(database, REQUEST, token).id == request_id
    assert links.find_open(database, REQUEST, "A" * 43) is None
    result = unlock(app, token, PASSWORD)
    assert result.outcome is links.Unlock.OK and result.session_token
    assert links.session_object(database, REQUEST, token, result.session_token).id == request_id
    assert links.session_object(database, REQUEST, token, "not-a-session") is None
    session = database.query_one("SELECT * FROM link_sessions")
    assert (session["kind"], session["object_id"]) == ("request", request_id)
    assert session["token_hash"] == passwords.token_hash(result.session_token)
    accepted = database.query_one("SELECT subject, version FROM terms_acceptances")
    assert accepted == {"subject": f"request:{request_id}", "version": 1}
    assert [e["event"] for e in links.events(database, REQUEST, request_id)] == ["access"]
    assert audit_rows(app, "request.access")[0]["object"] == request_id


def test_a_session_opens_only_its_own_kind_and_object(app, request_link):
    from relais import shares

    token, _ = request_link
    result = unlock(app, token, PASSWORD)
    # The same token and session, asked as a share: no such share.
    assert links.session_object(app.state.db, shares.KIND, token, result.session_token) is None


def test_wrong_passwords_wait_then_lock_the_request_and_tell_its_owner(app, request_link, frozen, staff):
    token, request_id = request_link
    database = app.state.db
    before_wait = settings.get(database.conn, "link_failures_before_wait")
    answers = [unlock(app, token, "wrong") for _ in range(before_wait)]
    assert [a.outcome for a in answers] == [links.Unlock.INVALID] * before_wait
    assert [a.retry_after for a in answers] == [0] * (before_wait - 1) + [60]  # the last one says so
    waiting = unlock(app, token, PASSWORD)  # even the right password waits: it is not checked
    assert waiting.outcome is links.Unlock.WAIT and 0 < waiting.retry_after <= 60
    for _ in range(settings.get(database.conn, "link_failures_before_lock") - before_wait):
        frozen.advance(minutes=16)
        unlock(app, token, "wrong")
    row = database.query_one("SELECT failed_attempts, locked_at FROM test_requests")
    assert row["locked_at"] and row["failed_attempts"] == settings.get(database.conn, "link_failures_before_lock")
    assert links.find_open(database, REQUEST, token) is None
    frozen.advance(minutes=16)
    assert unlock(app, token, PASSWORD).outcome is links.Unlock.INVALID
    warning = database.query_one("SELECT * FROM outbox WHERE kind = 'request_locked'")
    assert warning["recipient"] == staff.email and warning["object"] == request_id
    assert "https://relais.test/requests/req1" in warning["body_text"] and "lab@lab.example" in warning["body_text"]
    events = [e["event"] for e in links.events(database, REQUEST, request_id)]
    # Every wrong password and the one try that had to wait; once locked, the link is unknown.
    assert events.count("access_refused") == settings.get(database.conn, "link_failures_before_lock") + 1
    assert events[-1] == "locked"
    assert audit_rows(app, "request.locked") and audit_rows(app, "request.access_refused")
    assert database.scalar("SELECT count(*) FROM login_throttle WHERE key = 'request:req1'") == 1


def test_a_right_password_resets_the_count_before_the_lock(app, request_link, frozen):
    token, _ = request_link
    for _ in range(2):
        unlock(app, token, "wrong")
    assert unlock(app, token, PASSWORD).outcome is links.Unlock.OK
    assert app.state.db.scalar("SELECT failed_attempts FROM test_requests") == 0


def test_an_unknown_request_link_answers_like_a_wrong_password(app, request_link):
    assert unlock(app, "A" * 43, PASSWORD).outcome is links.Unlock.INVALID
    assert unlock(app, "x" * 500, PASSWORD).outcome is links.Unlock.INVALID
    assert audit_rows(app, "request.access_refused")[0]["object"] == "unknown"
    assert app.state.db.scalar("SELECT count(*) FROM link_events") == 0


def test_a_password_link_for_a_request(app, request_link):
    _, request_id = request_link
    token = app.state.db.write(links.create_password_link, audit.SYSTEM, REQUEST, request_id, PASSWORD)
    row = app.state.db.query_one("SELECT kind, object_id FROM password_links")
    assert row == {"kind": "request", "object_id": request_id}
    assert links.password_link_valid(app.state.db, token)
    assert links.reveal_password(app.state.db, WHO, token) == PASSWORD
    assert links.reveal_password(app.state.db, WHO, token) is None  # once
    assert audit_rows(app, "request.password_link_create") and audit_rows(app, "request.password_link_opened")


def test_forgetting_a_request_leaves_other_links_alone(app, request_link):
    token, request_id = request_link
    unlock(app, token, PASSWORD)
    app.state.db.write(links.create_password_link, audit.SYSTEM, REQUEST, request_id, PASSWORD)

    def other_share_rows(db):
        db.execute("INSERT INTO link_sessions (token_hash, kind, object_id, created_at, expires_at)"
                   " VALUES ('h', 'share', ?, '2026-01-01', '2999-01-01')", [request_id])

    app.state.db.write(other_share_rows)  # a share that happens to have the same id
    app.state.db.write(links.forget, REQUEST, request_id)
    assert app.state.db.query("SELECT kind FROM link_sessions") == [{"kind": "share"}]
    assert app.state.db.scalar("SELECT count(*) FROM password_links") == 0


def test_a_link_session_slides_while_it_is_used_never_past_its_longest(app, frozen, request_link):
    token, request_id = request_link
    session = unlock(app, token, PASSWORD).session_token
    session_hash, database = passwords.token_hash(session), app.state.db
    opened = frozen.moment
    for _ in range(10):  # used every 100 minutes: more than LINK_SESSION apart in all, never idle that long
        frozen.advance(minutes=100)
        assert links.keep_alive(database, REQUEST, request_id, session_hash)
        assert links.session_object(database, REQUEST, token, session).id == request_id
    assert database.scalar("SELECT expires_at FROM link_sessions") == clock.iso(frozen.moment + links.LINK_SESSION)
    for _ in range(4):  # up to 1400 minutes after it opened: a touch gives no more than 24 hours in all
        frozen.advance(minutes=100)
        assert links.keep_alive(database, REQUEST, request_id, session_hash)
    assert database.scalar("SELECT expires_at FROM link_sessions") == clock.iso(opened + links.LINK_SESSION_LONGEST)
    frozen.advance(minutes=40)  # its longest has passed, however busy
    assert not links.keep_alive(database, REQUEST, request_id, session_hash)
    assert links.session_object(database, REQUEST, token, session) is None
    # Another link's id, an unknown session, a forgotten one: nothing to keep alive.
    fresh = passwords.token_hash(unlock(app, token, PASSWORD).session_token)
    assert not links.keep_alive(database, REQUEST, "other", fresh)
    assert not links.keep_alive(database, REQUEST, request_id, "unknown")
    assert links.keep_alive(database, REQUEST, request_id, fresh)
    database.write(links.forget, REQUEST, request_id)
    assert not links.keep_alive(database, REQUEST, request_id, fresh)


def test_a_session_after_the_link_closed_is_kept_only_when_asked(app, request_link):
    """forget(sessions=False) keeps the sessions (what a request's receipt needs); they open
    nothing through session_object once the link is closed, only session_after_close."""
    token, request_id = request_link
    session = unlock(app, token, PASSWORD).session_token
    app.state.db.write(links.create_password_link, audit.SYSTEM, REQUEST, request_id, PASSWORD)
    app.state.db.write(links.forget, REQUEST, request_id, sessions=False)
    assert app.state.db.scalar("SELECT count(*) FROM password_links") == 0
    app.state.db.execute("UPDATE test_requests SET locked_at = '2026-01-01'")  # the stand-in's way to close
    assert links.session_object(app.state.db, REQUEST, token, session) is None
    assert links.session_after_close(app.state.db, REQUEST, token, session).id == request_id
    assert links.session_after_close(app.state.db, REQUEST, "A" * 43, session) is None
    assert links.session_after_close(app.state.db, REQUEST, token, None) is None
    app.state.db.write(links.forget, REQUEST, request_id)
    assert links.session_after_close(app.state.db, REQUEST, token, session) is None


def test_events_hide_the_bookkeeping_of_downloads(app, request_link):
    _, request_id = request_link

    def record(db):
        for what in ("download_start", "download_response", "download_part", "download"):
            core.event(db, WHO, REQUEST, request_id, what, "file1")

    app.state.db.write(record)
    assert [e["event"] for e in links.events(app.state.db, REQUEST, request_id)] == ["download_start", "download"]
    assert not audit_rows(app, "request.download_part") and not audit_rows(app, "request.download_response")


def test_the_migration_moves_share_rows_onto_the_core(tmp_path):
    """A database from before 0006_link_core keeps its events, link sessions and password links."""
    from relais.db import connect
    from relais.migrations import migrations

    db = connect(tmp_path / "old.db")
    migrations.apply(db, stop_before="0006_link_core")
    db.execute("INSERT INTO users (id, email, role, created_at) VALUES (1, 's@r.example', 'staff', '2026-01-01')")
    db.execute("INSERT INTO shares (id, owner_id, token_hash, password_hash, language, created_at, expires_at)"
               " VALUES ('s1', 1, 't', 'p', 'en', '2026-01-01', '2999-01-01')")
    db.execute("INSERT INTO share_events (share_id, at, event, file_id, ip, detail, session, start, bytes)"
               " VALUES ('s1', '2026-01-02', 'download_part', 'f1', '192.0.2.1', 'a.csv', 'h', 10, 20)")
    db.execute("INSERT INTO link_sessions (token_hash, share_id, created_at, expires_at) VALUES ('h', 's1', 'a', 'b')")
    db.execute("INSERT INTO password_links (token_hash, share_id, secret, created_at, expires_at)"
               " VALUES ('p', 's1', x'00', 'a', 'b')")
    migrations.apply(db)
    event = db.execute("SELECT kind, object_id, event, file_id, detail, session, start, bytes FROM link_events").fetchone()
    assert event == ("share", "s1", "download_part", "f1", "a.csv", "h", 10, 20)
    assert db.execute("SELECT kind, object_id FROM link_sessions").fetchall() == [("share", "s1")]
    assert db.execute("SELECT kind, object_id, secret FROM password_links").fetchall() == [("share", "s1", b"\x00")]
    assert db.execute("SELECT share_id, kind, file_name FROM who_accessed_what").fetchall() == [("s1", "share", "a.csv")]
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'share_events'").fetchall()
    db.conn.close()
