"""Every list is paged: My files (and its htmx fragment), the send form's file picker and the
shares list show at most ``paging.PER_PAGE`` rows, with Previous / Next links that work
without JavaScript, however much the account holds."""

from __future__ import annotations

import re
import secrets

from relais import paging

PER_PAGE = paging.PER_PAGE


def add_files(app, owner, count: int, first: int = 0) -> list[str]:
    """Listed files (rows only: a list never opens the data), the higher ``i`` the newer."""
    ids = [secrets.token_hex(16) for _ in range(count)]

    def insert(db):
        for i, file_id in enumerate(ids, start=first):
            at = f"2026-11-01T00:00:{i // 1000:02}.{i % 1000:06}+00:00"
            db.execute(
                "INSERT INTO files (id, owner_id, name, size, sha256, media_type, wrapped_key, storage_name, state,"
                " created_at, completed_at) VALUES (?, ?, ?, 100, ?, 'text/csv', x'00', ?, 'complete', ?, ?)",
                [file_id, owner.id, f"file-{i:04}.csv", "0" * 64, secrets.token_hex(16), at, at],
            )

    app.state.db.write(insert)
    return ids


def add_shares(app, owner, count: int) -> None:
    def insert(db):
        for i in range(count):
            db.execute(
                "INSERT INTO shares (id, owner_id, token_hash, password_hash, language, created_at, expires_at)"
                " VALUES (?, ?, ?, 'x', 'en', ?, '2099-01-01T00:00:00+00:00')",
                [secrets.token_hex(16), owner.id, secrets.token_hex(32), f"2026-11-01T00:{i // 60:02}:{i % 60:02}+00:00"],
            )
            db.execute("INSERT INTO share_recipients (share_id, email) SELECT id, ? FROM shares WHERE created_at = ?",
                       [f"recipient-{i:03}@example.org", f"2026-11-01T00:{i // 60:02}:{i % 60:02}+00:00"])

    app.state.db.write(insert)


def names(html: str) -> list[str]:
    return re.findall(r"<td>(file-\d{4}\.csv)</td>", html)


def test_my_files_shows_one_page_newest_first_with_links_to_the_others(app, auth, staff):
    add_files(app, staff, 2 * PER_PAGE + 20)
    auth.login()
    first = auth.client.get("/files")
    assert first.status_code == 200
    assert names(first.text) == [f"file-{i:04}.csv" for i in range(2 * PER_PAGE + 19, PER_PAGE + 19, -1)]
    assert "120 files" in first.text  # the caption counts them all
    assert "Page 1 of 3" in first.text
    assert 'href="/files?page=2" rel="next"' in first.text and 'rel="prev"' not in first.text

    last = auth.client.get("/files", params={"page": "3"})
    assert names(last.text) == [f"file-{i:04}.csv" for i in range(19, -1, -1)]
    assert "Page 3 of 3" in last.text
    assert 'href="/files?page=2" rel="prev"' in last.text and 'rel="next"' not in last.text


def test_a_page_does_not_grow_with_the_files(app, auth, staff):
    add_files(app, staff, PER_PAGE)
    auth.login()
    before = auth.client.get("/files").text
    add_files(app, staff, 20 * PER_PAGE, first=PER_PAGE)
    after = auth.client.get("/files").text
    assert len(names(before)) == len(names(after)) == PER_PAGE
    assert len(after) < len(before) * 1.1


def test_page_numbers_out_of_range_or_not_numbers_are_refused_gently(app, auth, staff):
    add_files(app, staff, PER_PAGE + 1)
    auth.login()
    for raw, shown in (("999", "Page 2 of 2"), ("0", "Page 1 of 2"), ("-1", "Page 1 of 2"), ("abc", "Page 1 of 2"),
                       ("9" * 40, "Page 1 of 2")):
        response = auth.client.get("/files", params={"page": raw})
        assert response.status_code == 200 and shown in response.text, raw


def test_the_htmx_fragment_is_paged_too_and_a_delete_keeps_its_page(app, auth, staff):
    ids = add_files(app, staff, PER_PAGE + 5)
    auth.login()
    fragment = auth.client.get("/files", params={"page": "2"}, headers={"hx-request": "true"})
    assert "<html" not in fragment.text
    assert names(fragment.text) == [f"file-{i:04}.csv" for i in range(4, -1, -1)]
    assert f'hx-post="/files/{ids[0]}/delete?page=2"' in fragment.text


def test_one_page_needs_no_pager(app, auth, staff):
    add_files(app, staff, 3)
    auth.login()
    page = auth.client.get("/files").text
    assert len(names(page)) == 3 and "Page 1 of" not in page and 'class="pager"' not in page


def test_the_pager_is_translated(app, auth, staff):
    add_files(app, staff, PER_PAGE + 1)
    auth.login()
    page = auth.client.get("/files", headers={"accept-language": "nl"}).text
    assert "Pagina 1 van 2" in page and "Volgende pagina" in page


def test_the_shares_list_is_paged(app, auth, staff):
    add_shares(app, staff, PER_PAGE + 10)
    auth.login()
    first = auth.client.get("/shares")
    assert first.status_code == 200
    assert len(re.findall(r'<a href="/shares/[0-9a-f]{32}">', first.text)) == PER_PAGE
    assert "recipient-059@example.org" in first.text and "recipient-009@example.org" not in first.text  # newest first
    assert 'href="/shares?page=2" rel="next"' in first.text
    second = auth.client.get("/shares", params={"page": "2"})
    assert len(re.findall(r'<a href="/shares/[0-9a-f]{32}">', second.text)) == 10
    assert "recipient-009@example.org" in second.text and "Page 2 of 2" in second.text


def test_the_file_picker_is_paged_and_keeps_choices_made_on_other_pages(app, auth, staff):
    ids = add_files(app, staff, PER_PAGE + 5)
    auth.login()
    form = auth.client.get("/shares/new").text
    assert len(re.findall(r'type="checkbox" name="file_ids"', form)) == PER_PAGE
    assert 'href="/shares/new?page=2" rel="next"' in form
    assert 'hx-get="/shares/new/files?page=2"' in form
    listed_at = re.search(r'name="listed_at" value="([^"]+)"', form).group(1)

    # Ticking the newest file, then going to page 2 (what htmx sends: the picker's inputs).
    newest = ids[-1]
    on_page_one = ids[-PER_PAGE:]
    second = auth.client.get("/shares/new/files", params={
        "page": "2", "file_ids": [newest], "seen": on_page_one, "listed_at": listed_at})
    assert len(re.findall(r'type="checkbox" name="file_ids"', second.text)) == 5
    assert f'<input type="hidden" name="file_ids" value="{newest}">' in second.text  # still sent with the form
    assert "1 more file chosen on another page." in second.text
    # Files merely on a page not seen before are not taken for new uploads, so none is ticked.
    assert " checked" not in second.text


def test_a_file_stored_after_the_picker_was_shown_comes_back_chosen(app, auth, staff, frozen):
    add_files(app, staff, PER_PAGE + 5)
    auth.login()
    form = auth.client.get("/shares/new").text
    listed_at = re.search(r'name="listed_at" value="([^"]+)"', form).group(1)
    frozen.advance(seconds=5)

    def upload(db):  # a file completed after the picker was shown, as the uploader leaves it
        now = "2026-11-24T09:00:05.000000+00:00"
        db.execute(
            "INSERT INTO files (id, owner_id, name, size, sha256, media_type, wrapped_key, storage_name, state,"
            " created_at, completed_at) VALUES ('a' || hex(randomblob(15)), ?, 'fresh.csv', 100, ?, 'text/csv', x'00',"
            " hex(randomblob(16)), 'complete', ?, ?)", [staff.id, "0" * 64, now, now])

    app.state.db.write(upload)
    refreshed = auth.client.get("/shares/new/files", params={"listed_at": listed_at, "seen": []})
    fresh = re.search(r'value="([0-9a-fA-F]+)" id="file-[0-9a-fA-F]+" checked>\s*<input type="hidden" name="seen" value="[^"]+">\s*'
                      r'<label[^>]*>fresh\.csv', refreshed.text)
    assert fresh is not None
    assert len(re.findall(r" checked>", refreshed.text)) == 1


# -- a share's activity, the accounts and the audit trail ---------------------------------------------

def add_accesses(app, share_id: str, count: int) -> None:
    """Accesses to a share's link, as the link core writes them, each from its own address."""
    def insert(db):
        for i in range(count):
            db.execute(
                "INSERT INTO link_events (kind, object_id, at, event, ip, user_agent) VALUES ('share', ?, ?, 'access', ?, 'x')",
                [share_id, f"2026-11-02T00:{i // 60:02}:{i % 60:02}+00:00", f"10.9.{i // 256}.{i % 256}"],
            )

    app.state.db.write(insert)


def addresses(html: str) -> list[str]:
    return re.findall(r"<td>(10\.9\.\d+\.\d+)</td>", html)


def test_a_shares_activity_is_paged_oldest_first(app, auth, staff):
    add_shares(app, staff, 1)
    share_id = app.state.db.scalar("SELECT id FROM shares")
    add_accesses(app, share_id, PER_PAGE)
    auth.login()
    before = auth.client.get(f"/shares/{share_id}").text
    add_accesses(app, share_id, 20 * PER_PAGE)  # the next accesses (their addresses repeat from 10.9.0.0)
    first = auth.client.get(f"/shares/{share_id}")
    assert first.status_code == 200
    assert len(addresses(before)) == len(addresses(first.text)) == PER_PAGE
    assert len(first.text) < len(before) * 1.1
    assert addresses(first.text)[:2] == ["10.9.0.0", "10.9.0.1"]  # in the order they happened
    assert "Page 1 of 21" in first.text and f'href="/shares/{share_id}?page=2" rel="next"' in first.text

    last = auth.client.get(f"/shares/{share_id}", params={"page": "21"})
    assert addresses(last.text)[-1] == f"10.9.{(20 * PER_PAGE - 1) // 256}.{(20 * PER_PAGE - 1) % 256}"
    assert f'href="/shares/{share_id}?page=20" rel="prev"' in last.text and 'rel="next"' not in last.text
    for raw, shown in (("999", "Page 21 of 21"), ("0", "Page 1 of 21"), ("abc", "Page 1 of 21")):
        response = auth.client.get(f"/shares/{share_id}", params={"page": raw})
        assert response.status_code == 200 and shown in response.text, raw
    # The page still does what it did: the facts, the files, the actions.
    assert "Revoke the link" in first.text


def add_accounts(app, count: int, first: int = 0) -> None:
    def insert(db):
        for i in range(first, first + count):
            db.execute("INSERT INTO users (email, name, role, created_at) VALUES (?, ?, 'staff', '2026-11-01T00:00:00+00:00')",
                       [f"member-{i:04}@registry.example", f"Member {i}"])

    app.state.db.write(insert)


def accounts(html: str) -> list[str]:
    return re.findall(r"<td>member-(\d{4})@registry\.example</td>", html)


def test_the_accounts_list_is_paged(app, auth, admin):
    add_accounts(app, PER_PAGE)
    auth.login(email="admin@registry.example")
    before = auth.client.get("/admin/users").text
    add_accounts(app, 3 * PER_PAGE - 45, first=PER_PAGE)  # 155 staff and the admin: 4 pages
    first = auth.client.get("/admin/users")
    assert first.status_code == 200
    # Admins first (by role), then staff by address: one page whatever the number of accounts.
    assert "admin@registry.example" in first.text
    assert len(accounts(before)) == len(accounts(first.text)) == PER_PAGE - 1
    assert len(first.text) < len(before) * 1.1
    assert 'href="/admin/users?page=2" rel="next"' in first.text and "Page 1 of 4" in first.text
    last = auth.client.get("/admin/users", params={"page": "4"})
    assert accounts(last.text) == [f"{i:04}" for i in range(3 * PER_PAGE - 1, 3 * PER_PAGE + 5)]
    assert 'href="/admin/users?page=3" rel="prev"' in last.text and 'rel="next"' not in last.text
    assert "Page 4 of 4" in auth.client.get("/admin/users", params={"page": "99"}).text
    assert "Page 1 of 4" in auth.client.get("/admin/users", params={"page": "-3"}).text


def add_audit_events(app, count: int, what: str = "test.event") -> None:
    from relais import audit

    def record(db):
        for i in range(count):
            audit.record(db, audit.SYSTEM, what, f"object-{i:04}")

    app.state.db.write(record)


def audited(html: str) -> list[str]:
    return re.findall(r"object-(\d{4})", html)


def test_the_audit_trail_is_paged_and_its_search_too(app, auth, admin):
    """Keyset pages (relais.paging.Cursor): "older than row N", whatever the trail holds."""
    add_audit_events(app, PER_PAGE)
    auth.login(email="admin@registry.example")
    before = auth.client.get("/admin/audit").text
    add_audit_events(app, 4 * PER_PAGE + 7)
    first = auth.client.get("/admin/audit")
    assert first.status_code == 200
    # Most recent first: the last event written tops the first page; nothing is capped at 200.
    assert audited(first.text)[0] == f"{4 * PER_PAGE + 6:04}"
    assert len(first.text) < len(before) * 1.1
    seen, page = set(), first.text
    while True:
        seen.update(re.findall(r"object-\d{4}", page))
        older = re.search(r'href="(/admin/audit\?[^"]*older=\d+)" rel="next"', page)
        if not older:
            break
        page = auth.client.get(older.group(1).replace("&amp;", "&")).text
    assert "object-0000" in page and len(seen) == 4 * PER_PAGE + 7  # every event can be reached

    # A search is paged with its words kept in the links.
    add_audit_events(app, PER_PAGE + 3, what="probe.found")
    found = auth.client.get("/admin/audit", params={"q": "probe.found"})
    assert f"{PER_PAGE + 3} events" in found.text
    older = re.search(r'href="(/admin/audit\?q=probe.found&amp;older=\d+)" rel="next"', found.text)
    second = auth.client.get(older.group(1).replace("&amp;", "&")).text
    assert audited(second) == ["0002", "0001", "0000"]


def test_files_a_share_or_a_request_takes_leave_my_files_and_its_count(app, auth, staff):
    """``files.attached`` (set by triggers on share_files and request_files) is what keeps them
    out: rows put in by any code path, as here, count."""
    ids = add_files(app, staff, PER_PAGE + 2)

    def attach(db):
        db.execute("INSERT INTO shares (id, owner_id, token_hash, password_hash, language, created_at, expires_at)"
                   " VALUES ('s1', ?, 't1', 'x', 'en', '2026-11-01T00:00:00+00:00', '2099-01-01T00:00:00+00:00')", [staff.id])
        db.execute("INSERT INTO share_files (share_id, file_id) VALUES ('s1', ?)", [ids[-1]])
        db.execute("INSERT INTO requests (id, owner_id, token_hash, password_hash, recipient, language, max_file_size,"
                   " max_files, created_at, expires_at) VALUES ('r1', ?, 't2', 'x', 'a@example.org', 'en', 10, 5,"
                   " '2026-11-01T00:00:00+00:00', '2099-01-01T00:00:00+00:00')", [staff.id])
        db.execute("INSERT INTO request_files (file_id, request_id) VALUES (?, 'r1')", [ids[-2]])

    app.state.db.write(attach)
    assert [r["attached"] for r in app.state.db.query(
        "SELECT attached FROM files WHERE id IN (?, ?) ORDER BY attached", [ids[-1], ids[-2]])] == ["request", "share"]
    auth.login()
    first = auth.client.get("/files")
    assert f"{PER_PAGE} files" in first.text and "Page 1 of 1" not in first.text
    assert "file-0051.csv" not in first.text and "file-0050.csv" not in first.text
    assert names(first.text)[0] == "file-0049.csv"


def test_the_partners_list_is_paged_by_institution(app, auth, staff):
    from tests.test_partners import make_partner

    for n in range(PER_PAGE + 5):
        make_partner(app, staff, email=f"p{n:03}@lab.example", name=f"Partner {n:03}",
                     institution="AZ Groeninge" if n < PER_PAGE - 2 else "UZ Leuven")
    auth.login()
    first = auth.client.get("/partners")
    assert len(re.findall(r'<a href="/partners/\d+">', first.text)) == PER_PAGE
    assert "Page 1 of 2" in first.text and 'href="/partners?page=2" rel="next"' in first.text
    assert "AZ Groeninge" in first.text and "UZ Leuven" in first.text and "Partner 049" in first.text
    second = auth.client.get("/partners", params={"page": "2"})
    # UZ Leuven goes on at the top of the next page, under its name again.
    assert "AZ Groeninge" not in second.text and "UZ Leuven" in second.text
    assert [f"Partner {n:03}" in second.text for n in range(PER_PAGE, PER_PAGE + 5)] == [True] * 5
    assert "Partner 049" not in second.text
