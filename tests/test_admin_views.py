"""The views docs/schema.md offers admins who query SQLite directly, on real rows: each example
query of the doc about them runs here and answers the question it says it answers."""

from __future__ import annotations

import re

from tests.conftest import PASSWORD
from tests.test_schema_doc import DOC

FAR = "2099-01-01T00:00:00.000000+00:00"


def example(starting: str) -> str:
    """The example query in docs/schema.md that follows the comment line beginning with ``starting``."""
    text = DOC.read_text()
    match = re.search(rf"^-- {re.escape(starting)}[^\n]*\n(.*?;)", text, re.S | re.M)
    assert match, f"docs/schema.md has no example '-- {starting}'"
    return match.group(1)


def links(app, staff):
    """An open share and an open request of the staff member, a closed share, and accesses to them."""
    def insert(db):
        for sid, revoked in (("s-open", None), ("s-revoked", "2026-11-02T00:00:00.000000+00:00")):
            db.execute("INSERT INTO shares (id, owner_id, token_hash, password_hash, language, created_at, expires_at,"
                       " revoked_at) VALUES (?, ?, ?, 'x', 'en', '2026-11-01T00:00:00.000000+00:00', ?, ?)",
                       [sid, staff.id, sid + "-token", FAR, revoked])
        db.execute("INSERT INTO share_recipients (share_id, email) VALUES ('s-open', 'guest@example.org')")
        db.execute("INSERT INTO requests (id, owner_id, token_hash, password_hash, recipient, language, max_file_size,"
                   " max_files, created_at, expires_at) VALUES ('r-open', ?, 'r-token', 'x', 'sender@example.org', 'en',"
                   " 1000, 5, '2026-11-01T00:00:00.000000+00:00', ?)", [staff.id, FAR])
        for kind, object_id, at in (("share", "s-open", "2026-11-10T10:00:00.000000+00:00"),
                                    ("request", "r-open", "2026-11-11T10:00:00.000000+00:00"),
                                    ("request", "r-open", "2026-10-31T10:00:00.000000+00:00")):
            db.execute("INSERT INTO link_events (kind, object_id, at, event, ip, user_agent) VALUES (?, ?, ?, 'access',"
                       " '192.0.2.7', 'agent')", [kind, object_id, at])

    app.state.db.write(insert)


def test_every_open_link_of_every_kind_by_owner(app, staff):
    links(app, staff)
    rows = app.state.db.query(example("Every open link of every kind"))
    assert sorted((r["owner"], r["kind"], r["links"]) for r in rows) == [
        (staff.email, "request", 1), (staff.email, "share", 1)]
    every = app.state.db.query("SELECT kind, id, recipients FROM open_links_all ORDER BY kind")
    assert every == [{"kind": "request", "id": "r-open", "recipients": "sender@example.org"},
                     {"kind": "share", "id": "s-open", "recipients": "guest@example.org"}]


def test_who_accessed_what_covers_requests_too(app, staff):
    links(app, staff)
    rows = app.state.db.query(example("Who accessed which request or share"))
    assert [(r["kind"], r["object_id"], r["owner"], r["ip"]) for r in rows] == [
        ("share", "s-open", staff.email, "192.0.2.7"), ("request", "r-open", staff.email, "192.0.2.7")]


def test_failed_logins_by_account(app, auth, staff, frozen):
    for _ in range(3):
        auth.login(password="wrong wrong wrong")
    auth.login(email="nobody@registry.example", password="wrong wrong wrong")
    assert auth.login(password=PASSWORD).status_code == 303
    database = app.state.db
    # The doc's query is about the last 7 days by SQLite's clock; the frozen clock wrote these rows.
    query = example("Failed logins by account").replace("'now'", f"'{frozen.moment.isoformat()}'")
    rows = database.query(query)
    assert [(r["account"], r["failures"]) for r in rows] == [(staff.email, 3), ("nobody@registry.example", 1)]
    reasons = {r["reason"] for r in database.query("SELECT reason FROM failed_logins")}
    assert reasons == {"wrong_password", "unknown_account"}


def test_files_waiting_for_retrieval(app, staff):
    links(app, staff)

    def insert(db):
        db.execute("INSERT INTO files (id, owner_id, name, size, sha256, media_type, wrapped_key, storage_name, state,"
                   " created_at, completed_at) VALUES ('f1', ?, 'scan.pdf', 10, 'ab', 'application/pdf', x'00', 'n1',"
                   " 'complete', '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00')", [staff.id])
        db.execute("INSERT INTO request_submissions (id, request_id, transmitted_at, language, files, bytes, retrieve_by)"
                   " VALUES ('sub1', 'r-open', '2026-11-01T00:00:00+00:00', 'en', 1, 10, '2026-11-15T00:00:00+00:00')")
        db.execute("INSERT INTO request_files (file_id, request_id, submission_id) VALUES ('f1', 'r-open', 'sub1')")

    app.state.db.write(insert)
    rows = app.state.db.query(example("Which received files have not been retrieved"))
    assert [(r["owner"], r["sender"], r["name"]) for r in rows] == [(staff.email, "sender@example.org", "scan.pdf")]


def test_the_audit_index_example(app, staff):
    from relais import audit

    app.state.db.write(lambda db: audit.record(db, audit.SYSTEM, "file.upload", "f9", name="report.pdf"))
    rows = app.state.db.query(example("Audit events by words"))
    assert [(r["action"], r["object"]) for r in rows] == [("file.upload", "f9")]


def test_partner_access_about_to_expire(app, staff):
    """The view compares with SQLite's own clock ('now'): access ends are set relative to it."""
    def insert(db):
        db.execute("INSERT INTO institutions (name, name_key, created_at) VALUES ('St. Elsewhere', 'st. elsewhere',"
                   " '2026-11-01T00:00:00+00:00')")
        for email, ends in (("soon@partner.example", "+3 days"), ("later@partner.example", "+30 days"),
                            ("past@partner.example", "-1 days")):
            db.execute("INSERT INTO users (email, name, role, created_at) VALUES (?, ?, 'partner', '2026-11-01T00:00:00+00:00')",
                       [email, email.split("@")[0]])
            db.execute("INSERT INTO partners (user_id, institution_id, contact_id, access_until, updated_at)"
                       " SELECT users.id, institutions.id, ?, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', ?),"
                       " '2026-11-01T00:00:00+00:00' FROM users, institutions WHERE users.email = ?", [staff.id, ends, email])

    app.state.db.write(insert)
    rows = app.state.db.query(example("Partners whose access ends this week"))
    assert [(r["email"], r["institution"], r["contact"]) for r in rows] == [
        ("soon@partner.example", "St. Elsewhere", staff.email)]
