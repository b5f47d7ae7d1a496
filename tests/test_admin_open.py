"""The admin's "Open links" (/admin/open): every open share, request and space file with whose it
is and its deadlines, nearest deadline first; filters, keyset pages, and for admins only."""

from __future__ import annotations

import re
import secrets

import pytest

from relais import audit, open_items, spaces
from tests.conftest import PASSWORD, audit_rows
from tests.test_partners import NEW_PASSWORD, PARTNER_EMAIL, make_partner

NOW = "2026-11-24T09:00:00.000000+00:00"  # the frozen clock


def at(day: int, hour: int = 10) -> str:
    return f"2026-{11 + (day > 30):02}-{(day - 1) % 30 + 1:02}T{hour:02}:00:00.000000+00:00"


def add_file(db, owner_id: int, name: str) -> str:
    file_id = secrets.token_hex(16)
    db.execute("INSERT INTO files (id, owner_id, name, size, sha256, media_type, wrapped_key, storage_name, state,"
               " created_at, completed_at) VALUES (?, ?, ?, 2048, ?, 'text/csv', x'00', ?, 'complete', ?, ?)",
               [file_id, owner_id, name, "0" * 64, secrets.token_hex(16), NOW, NOW])
    return file_id


def add_share(db, share_id: str, owner_id: int, expires_at: str, files: int = 1, recipient="guest@example.org",
              **ended) -> None:
    columns = ", ".join(["id", "owner_id", "token_hash", "password_hash", "language", "created_at", "expires_at", *ended])
    db.execute(f"INSERT INTO shares ({columns}) VALUES ({', '.join('?' * (7 + len(ended)))})",
               [share_id, owner_id, share_id + "-token", "x", "en", "2026-11-20T08:00:00.000000+00:00", expires_at,
                *ended.values()])
    db.execute("INSERT INTO share_recipients (share_id, email) VALUES (?, ?)", [share_id, recipient])
    for n in range(files):
        db.execute("INSERT INTO share_files (share_id, file_id) VALUES (?, ?)", [share_id, add_file(db, owner_id, f"{n}.csv")])


def add_request(db, request_id: str, owner_id: int, expires_at: str, recipient="sender@example.org", **ended) -> None:
    columns = ", ".join(["id", "owner_id", "token_hash", "password_hash", "recipient", "language", "max_file_size",
                         "max_files", "created_at", "expires_at", *ended])
    db.execute(f"INSERT INTO requests ({columns}) VALUES ({', '.join('?' * (10 + len(ended)))})",
               [request_id, owner_id, request_id + "-token", "x", recipient, "en", 1000, 5,
                "2026-11-20T08:00:00.000000+00:00", expires_at, *ended.values()])


def add_submission(db, request_id: str, retrieve_by: str, files: int = 2, **done) -> None:
    submission_id = secrets.token_hex(8)
    columns = ", ".join(["id", "request_id", "transmitted_at", "language", "files", "bytes", "retrieve_by", *done])
    db.execute(f"INSERT INTO request_submissions ({columns}) VALUES ({', '.join('?' * (7 + len(done)))})",
               [submission_id, request_id, "2026-11-21T08:00:00.000000+00:00", "en", files, 100, retrieve_by,
                *done.values()])
    owner = db.execute("SELECT owner_id FROM requests WHERE id = ?", [request_id]).fetchone()[0]
    for n in range(files):
        db.execute("INSERT INTO request_files (file_id, request_id, submission_id) VALUES (?, ?, ?)",
                   [add_file(db, owner, f"scan-{n}.pdf"), request_id, submission_id])


def add_space_file(db, partner_id: int, placed_by: int, delete_at: str, name: str = "results.csv") -> str:
    file_id = add_file(db, partner_id, name)
    db.execute("INSERT INTO space_files (file_id, partner_id, direction, placed_by, placed_at, delete_at)"
               " VALUES (?, ?, 'to_partner', ?, ?, ?)", [file_id, partner_id, placed_by, NOW, delete_at])
    return file_id


@pytest.fixture
def partner(app, staff, frozen):
    return make_partner(app, staff)


@pytest.fixture
def items(app, staff, admin, partner):
    """One of each open kind and one of each way an item is no longer open."""
    def insert(db):
        add_share(db, "s-open", staff.id, at(30), files=2)  # 30 Nov
        db.execute("INSERT INTO link_events (kind, object_id, at, event, ip, user_agent)"
                   " VALUES ('share', 's-open', ?, 'download', '192.0.2.7', 'agent')", [NOW])
        add_share(db, "s-revoked", staff.id, at(29), revoked_at=NOW)
        add_share(db, "s-expired", staff.id, at(23))
        add_share(db, "s-locked", staff.id, at(29), locked_at=NOW)
        add_request(db, "r-open", admin.id, at(40), recipient="lab@hospital.example")  # 10 Dec
        add_request(db, "r-sent", staff.id, at(40), closed_at=at(21))  # closed after its Transmit...
        add_submission(db, "r-sent", at(28))  # ...its files wait until 28 Nov
        add_request(db, "r-done", staff.id, at(40), closed_at=at(21))
        add_submission(db, "r-done", at(28), retrieved_at=at(22))
        add_request(db, "r-revoked", staff.id, at(40), revoked_at=NOW)
        space = add_space_file(db, partner.id, staff.id, at(26), name="results.csv")  # 26 Nov
        gone = add_space_file(db, partner.id, staff.id, at(25), name="gone.csv")
        return space, gone

    space, gone = app.state.db.write(insert)
    assert spaces.delete(app.state.db, app.state.config.files_dir, audit.SYSTEM, partner.id, gone)
    return space


def rows(html: str) -> list[str]:
    """The rows' links, in the page's order: /shares/<id>, /requests/<id>, /partners/<id>."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<a href="(/(?:shares|requests|partners)/[^"]+)">', body)


def test_only_admins_see_it(app, client, auth, staff, admin, partner, frozen):
    assert client.get("/admin/open", follow_redirects=False).status_code in (302, 303, 401)
    auth.login()
    assert client.get("/admin/open").status_code == 403
    assert "/admin/open" not in client.get("/").text  # no nav link for staff
    auth.logout()
    from tests.test_partners import activate
    activate(app, client, partner)
    assert client.get("/admin/open", follow_redirects=False).status_code == 403
    assert [r["object"] for r in audit_rows(app, "partner.refused")] == ["/admin/open"]
    auth.logout()
    auth.login(email=admin.email)
    page = client.get("/")
    assert re.search(r'<a href="/admin/users"[^>]*>Accounts</a></li>\s*<li><a href="/admin/open"', page.text)
    assert client.get("/admin/open").status_code == 200


def test_every_open_item_with_its_owner_and_deadlines_nearest_first(app, client, auth, admin, staff, partner, items,
                                                                     frozen):
    auth.login(email=admin.email)
    page = client.get("/admin/open")
    assert page.status_code == 200
    # 26 Nov the space file, 28 Nov the request's received files, 30 Nov the share, 10 Dec the open request.
    assert rows(page.text) == [f"/partners/{partner.id}", "/requests/r-sent", "/shares/s-open", "/requests/r-open"]
    assert "4 open items" in page.text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    # Times in the registry's zone (Brussels: UTC+1 in November), as every page shows them.
    assert "26 Nov 2026, 11:00 CET the file is deleted" in text
    assert "An Peeters an.peeters@azsintjan.example AZ Sint-Jan" in text and "results.csv (2 KB)" in text
    assert "28 Nov 2026, 11:00 CET received files are deleted" in text
    assert "Files received: 2 (2 waiting for retrieval)" in text and "the link no longer takes files" in text
    assert "30 Nov 2026, 11:00 CET the link ends" in text
    assert "Sam Staff staff@registry.example" in text
    assert "Recipients: guest@example.org Files: 2 Downloads so far: 1" in text
    assert "Link valid until: 30 Nov 2026, 11:00 CET" in text
    assert "Ada Admin admin@registry.example" in text and "Recipient: lab@hospital.example" in text
    for gone in ("s-revoked", "s-expired", "s-locked", "r-done", "r-revoked", "gone.csv"):
        assert gone not in page.text
    # The share's page opens for the admin, who may act on it there (revoke asks first).
    assert client.get("/shares/s-open").status_code == 200
    assert client.get("/requests/r-sent").status_code == 200
    assert client.get(f"/partners/{partner.id}").status_code == 200


def test_a_request_is_listed_once_at_its_nearest_deadline(app, client, auth, admin, staff, frozen):
    def insert(db):
        add_request(db, "r-several", staff.id, at(40), several=1)  # link until 10 Dec
        add_submission(db, "r-several", at(27))  # files due 27 Nov
        add_submission(db, "r-several", at(35))
        add_request(db, "r-later", staff.id, at(26), several=1)  # link until 26 Nov, files due 3 Dec
        add_submission(db, "r-later", at(33))

    app.state.db.write(insert)
    auth.login(email=admin.email)
    page = client.get("/admin/open")
    assert rows(page.text) == ["/requests/r-later", "/requests/r-several"]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert "26 Nov 2026, 11:00 CET the link ends" in text and "27 Nov 2026, 11:00 CET received files are deleted" in text
    assert "Retrieve by: 3 Dec 2026, 11:00 CET" in text
    # Once r-later's link has ended, it is listed by its files' deadline.
    frozen.advance(days=3)
    auth.login(email=admin.email)  # the session has ended meanwhile
    assert rows(client.get("/admin/open").text) == ["/requests/r-several", "/requests/r-later"]


def test_filters_by_kind_person_and_deadline(app, client, auth, admin, staff, partner, items, frozen):
    auth.login(email=admin.email)

    def listed(**params) -> list[str]:
        response = client.get("/admin/open", params=params)
        assert response.status_code == 200
        return rows(response.text)

    assert listed(kind="share") == ["/shares/s-open"]
    assert listed(kind="request") == ["/requests/r-sent", "/requests/r-open"]
    assert listed(kind="space") == [f"/partners/{partner.id}"]
    assert listed(person="ada") == ["/requests/r-open"]  # the owner's name
    assert listed(person="STAFF@registry") == ["/requests/r-sent", "/shares/s-open"]  # an address, any case
    assert listed(person="peeters") == [f"/partners/{partner.id}"]  # the partner
    assert listed(person="nobody") == []
    assert listed(person="%") == []  # typed text, not a pattern
    assert listed(within="5") == [f"/partners/{partner.id}", "/requests/r-sent"]  # before 29 Nov, 09:00 UTC
    assert listed(within="4") == [f"/partners/{partner.id}"]  # the request's files are due 28 Nov, 10:00
    assert listed(within="0") == []
    assert listed(kind="request", person="sam", within="30") == ["/requests/r-sent"]
    # Unreadable filters are left out.
    assert listed(kind="files", within="soon") == listed()
    page = client.get("/admin/open", params={"kind": "share", "person": "sam"})
    assert '<option value="share" selected>' in page.text and 'value="sam"' in page.text
    assert "Clear the filters" in page.text


def test_pages_go_both_ways_and_lose_or_repeat_nothing(app, client, auth, admin, staff, partner, frozen, monkeypatch):
    monkeypatch.setattr(open_items.paging, "PER_PAGE", 7)

    def insert(db):
        for n in range(9):
            add_share(db, f"s-{n}", staff.id, at(25 + n % 4, 8 + n))
        for n in range(6):
            add_request(db, f"r-{n}", staff.id, at(25 + n % 3, 10))  # ties at one deadline, by id
        add_request(db, "r-files", staff.id, at(40), several=1)
        add_submission(db, "r-files", at(26, 10))
        for n in range(5):
            add_space_file(db, partner.id, staff.id, at(25 + n, 10))

    app.state.db.write(insert)
    expected = app.state.db.read_sync(open_items.keys, open_items.Filters(), limit=1000)
    assert len(expected) == 9 + 7 + 5
    assert expected == sorted(expected, key=lambda k: (k.due, k.id, k.kind))
    auth.login(email=admin.email)
    seen, pages, href = [], [], "/admin/open"
    while href:
        page = client.get(href)
        pages.append(href)
        seen += rows(page.text)
        later = re.search(r'href="([^"]+)" rel="next"', page.text)
        href = later.group(1).replace("&amp;", "&") if later else ""
    assert len(pages) == 3
    wanted = [{"share": "/shares/", "request": "/requests/"}.get(k.kind, "/partners/") + (
        k.id if k.kind != "space" else str(partner.id)) for k in expected]
    assert seen == wanted
    # Back from the last page: the pages before it, the same rows.
    last = client.get(pages[-1])
    sooner = re.search(r'href="([^"]+)" rel="prev"', last.text).group(1).replace("&amp;", "&")
    assert rows(client.get(sooner).text) == wanted[7:14]
    # Filters stay with the pages.
    filtered = client.get("/admin/open", params={"kind": "share"})
    later = re.search(r'href="([^"]+)" rel="next"', filtered.text).group(1).replace("&amp;", "&")
    assert "kind=share" in later and rows(client.get(later).text) == [w for w in wanted if "/shares/" in w][7:]
    # A cursor that is none is the first page.
    assert rows(client.get("/admin/open", params={"after": "nonsense"}).text) == wanted[:7]


def test_no_page_sorts_a_whole_table(app):
    """Each kind is read in deadline order from its index (migration 0016), whatever the filters
    and in both directions: a page reads about a page of rows, never all of them sorted."""
    conn = app.state.db.conn
    for filters in (open_items.Filters(), open_items.Filters(person="sam", within_days=7),
                    open_items.Filters(kind="request")):
        for start, descending in ((None, False), (open_items.Key(NOW, "share", "x"), False),
                                  (open_items.Key(NOW, "request", "x"), True)):
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + open_items.stream_sql(filters, start, descending),
                                                   open_items.params(filters, start, 51))]
            assert not [step for step in plan if "TEMP B-TREE" in step], plan
            used = {re.search(r"USING (?:COVERING )?INDEX (\w+)", step).group(1) for step in plan if "INDEX" in step}
            wanted = {re.search(r"INDEXED BY (\w+)", arm.source).group(1) for arm in open_items._arms(filters)}
            assert wanted <= used, plan
