"""The audit trail's search: every filter, keyset pages, the index in step with the trail, the
chain untouched, the CSV export (formulas neutralised, streamed, audited) and who may use it."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from datetime import date

import pytest

from relais import audit, audit_export, audit_labels, audit_search, i18n, paging
from relais.migrations import migrations
from tests.aio import run
from tests.conftest import PASSWORD, audit_rows
from tests.serving import Server

PER_PAGE = paging.PER_PAGE


def record(app, action="test.event", object="", who=audit.SYSTEM, **detail):
    app.state.db.write(lambda db: audit.record(db, who, action, object, **detail))


def objects(html: str) -> list[str]:
    return re.findall(r'<code class="audit-sub">([^<]+)</code>', html)


@pytest.fixture
def admin_client(client, auth, admin):
    assert auth.login(email=admin.email).status_code == 303
    return client


def search(client, **params) -> str:
    page = client.get("/admin/audit", params=params)
    assert page.status_code == 200
    return page.text


# -- each filter -----------------------------------------------------------------------------------

def test_person_by_name_by_part_of_an_address_and_as_typed(app, admin_client, staff):
    ada = audit.Who(actor="admin@registry.example")
    record(app, "file.upload", "by-ada", who=ada)
    record(app, "file.upload", "by-sam", who=audit.Who(actor=staff.email))
    record(app, "login.failure", "typed@nowhere.example", who=audit.Who(actor="typed@nowhere.example"))
    record(app, "file.upload", "by-relais")
    assert objects(search(admin_client, person="Ada", action="file.upload")) == ["by-ada"]  # the account's name
    assert objects(search(admin_client, person="staff@regis", action="file.upload")) == ["by-sam"]
    # An address that is no account (a failed login) is found when typed whole.
    assert objects(search(admin_client, person="TYPED@nowhere.example")) == ["typed@nowhere.example"]
    # Relais itself, by its label.
    assert "by-relais" in objects(search(admin_client, person="Relais", action="file.upload"))
    assert "by-ada" not in objects(search(admin_client, person="Relais", action="file.upload"))


def test_action_is_a_choice_of_labels_in_the_readers_language(app, client, auth, admin):
    record(app, "share.download", "whole")
    record(app, "share.download_start", "started")
    client.get("/language/fr")
    auth.login(email=admin.email)
    page = search(client, action="share.download")
    assert objects(page) == ["whole"]  # that action exactly, not those whose code begins with it
    assert '<option value="share.download" selected>Entièrement téléchargé</option>' in page
    assert "<option value=\"share.download_start\">" in page  # every action to choose from


def test_object_exactly(app, admin_client):
    record(app, "file.delete", "abc123")
    record(app, "file.delete", "abc1234")
    assert objects(search(admin_client, object="abc123")) == ["abc123"]


def test_dates_are_days_in_the_registrys_zone_both_included(app, client, auth, admin, frozen):
    from datetime import datetime, timezone

    for moment, name in [(datetime(2026, 11, 22, 22, 59, tzinfo=timezone.utc), "sat-late"),  # 23:59 in Brussels
                         (datetime(2026, 11, 22, 23, 1, tzinfo=timezone.utc), "sun-early"),  # Sunday 00:01
                         (datetime(2026, 11, 23, 22, 59, tzinfo=timezone.utc), "sun-late"),
                         (datetime(2026, 11, 23, 23, 0, tzinfo=timezone.utc), "mon")]:
        frozen.moment = moment
        record(app, "file.delete", name)
    frozen.moment = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
    auth.login(email=admin.email)
    assert objects(search(client, action="file.delete", **{"from": "2026-11-23", "to": "2026-11-23"})) == [
        "sun-late", "sun-early"]
    assert objects(search(client, action="file.delete", **{"from": "2026-11-24"})) == ["mon"]
    assert objects(search(client, action="file.delete", to="2026-11-22")) == ["sat-late"]
    # A date that is none is left out, not an error.
    assert len(objects(search(client, action="file.delete", **{"from": "2026-13-45"}))) == 4


def test_dates_allow_for_a_clock_set_back(app, client, auth, admin, frozen):
    """Ids follow the order of writing, and the range is read by id; a clock set back by less than
    audit_search.CLOCK_SLACK must not hide rows from it."""
    from datetime import datetime, timezone

    frozen.moment = datetime(2026, 11, 19, 12, 0, tzinfo=timezone.utc)
    record(app, "file.delete", "the-day-before")
    frozen.moment = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
    record(app, "file.delete", "later-clock")
    frozen.moment = datetime(2026, 11, 20, 11, 30, tzinfo=timezone.utc)  # set back half an hour
    record(app, "file.delete", "set-back")
    frozen.moment = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
    record(app, "file.delete", "the-day-after")
    auth.login(email=admin.email)
    assert objects(search(client, action="file.delete", **{"from": "2026-11-20", "to": "2026-11-20"})) == [
        "set-back", "later-clock"]


def test_words_are_prefixes_and_all_must_match(app, admin_client):
    record(app, "file.upload", "f1", name="quarterly-report.pdf", size=10)
    record(app, "file.upload", "f2", name="annual-report.pdf", size=10)
    record(app, "share.create", "s1", recipients=1, note="quarterly")
    assert objects(search(admin_client, q="quarter")) == ["s1", "f1"]
    assert objects(search(admin_client, q="quarter report")) == ["f1"]
    assert objects(search(admin_client, q="Annual")) == ["f2"]  # case aside
    assert objects(search(admin_client, q='"odd " quotes*')) == []  # typed quotes and stars are only text


def test_addresses_and_ids_are_found_by_their_start(app, admin_client):
    record(app, "login.success", "x", who=audit.Who(actor="someone@registry.example", ip="10.9.8.7"))
    record(app, "login.success", "y", who=audit.Who(actor="other@registry.example", ip="10.9.87.1"))
    record(app, "login.success", "z", who=audit.Who(actor="third@registry.example", ip="10.9.123.4"))
    assert objects(search(admin_client, q="10.9.8")) == ["x"]  # a last part of 1 or 2 characters is a whole word
    assert objects(search(admin_client, q="10.9.87")) == ["y"]
    assert objects(search(admin_client, q="10.9.12")) == []
    assert objects(search(admin_client, q="10.9.123")) == ["z"]
    assert objects(search(admin_client, q="third@registry.exa")) == ["z"]  # from 3 characters, the start of a word
    assert objects(search(admin_client, q="someone@reg")) == ["x"]
    assert objects(search(admin_client, q="someone@registry")) == ["x"]
    assert objects(search(admin_client, q="login.success someone")) == ["x"]


@pytest.mark.parametrize("lang, words", [("nl", "aangemeld"), ("fr", "Échec de la connexion"), ("de", "anmeldung fehlgeschlagen"),
                                         ("en", "login failed")])
def test_words_of_a_label_in_the_readers_language_find_its_action(app, client, auth, admin, lang, words):
    record(app, "login.failure" if lang != "nl" else "login.success", "the-one")
    record(app, "file.upload", "not-this")
    client.get(f"/language/{lang}")
    auth.login(email=admin.email)
    found = objects(search(client, q=words))
    assert "the-one" in found and "not-this" not in found


def test_labels_map_to_actions():
    assert audit_search.actions_labelled("Downloaded completely", "en") == ["share.download"]
    assert "login.success" in audit_search.actions_labelled("aangemeld", "nl")
    assert audit_search.actions_labelled("ab", "en") == []  # too short to mean a label
    expression = audit_search.match_expression("downloaded completely", "en")
    assert "code : (a" + "share.download".encode().hex().upper() + ")" in expression


def test_a_search_that_finds_nothing_says_so(app, admin_client):
    record(app, "file.upload", "f1", name="a.pdf")
    page = search(admin_client, q="nothing-matches-this")
    assert "No events match." in page and "0 events" in page


# -- pages -----------------------------------------------------------------------------------------

def add_rows(app, count: int, action: str = "test.event", prefix: str = "object") -> None:
    def insert(db):
        for i in range(count):
            audit.record(db, audit.SYSTEM, action, f"{prefix}-{i:04}")

    app.state.db.write(insert)


def test_pages_go_older_and_back_newer_keeping_the_filters(app, admin_client):
    add_rows(app, 2 * PER_PAGE + 7, action="probe.found")
    add_rows(app, 30, action="probe.other", prefix="other")
    first = search(admin_client, action="probe.found")
    assert objects(first)[0] == f"object-{2 * PER_PAGE + 6:04}" and len(objects(first)) == PER_PAGE
    assert f"{2 * PER_PAGE + 7} events" in first and 'rel="prev"' not in first
    older = re.search(r'href="(/admin/audit\?[^"]*older=\d+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "action=probe.found" in older
    second = admin_client.get(older).text
    assert objects(second)[0] == f"object-{PER_PAGE + 6:04}"
    third = admin_client.get(re.search(r'href="([^"]*older=\d+)" rel="next"', second).group(1).replace("&amp;", "&")).text
    assert objects(third) == [f"object-{i:04}" for i in range(6, -1, -1)] and 'rel="next"' not in third
    back = admin_client.get(re.search(r'href="([^"]*newer=\d+)" rel="prev"', third).group(1).replace("&amp;", "&")).text
    assert objects(back) == objects(second)
    top = admin_client.get(re.search(r'href="([^"]*newer=\d+)" rel="prev"', back).group(1).replace("&amp;", "&")).text
    assert objects(top) == objects(first) and 'rel="prev"' not in top


def test_the_count_is_capped(app, admin_client, monkeypatch):
    monkeypatch.setattr(audit_search, "COUNT_CAP", 20)
    add_rows(app, 25)
    assert "More than 20 events" in search(admin_client, action="test.event")
    # "object-000" is the words "object" and "000", the start of 0000 to 0009: ten rows, under the cap.
    assert "10 events" in search(admin_client, action="test.event", q="object-000")


def test_bad_cursors_are_the_first_page(app, admin_client):
    add_rows(app, 3)
    for raw in ("abc", "-1", "9" * 40, ""):
        assert len(objects(search(admin_client, action="test.event", older=raw))) == 3


# -- the index and the chain -------------------------------------------------------------------

def test_rows_written_after_the_migration_are_found_and_the_chain_verifies(app, admin_client):
    add_rows(app, 3, prefix="early")
    assert len(objects(search(admin_client, q="early"))) == 3
    add_rows(app, 2, prefix="late")  # through audit.record, as every row is written
    assert objects(search(admin_client, q="late")) == ["late-0001", "late-0000"]
    count = app.state.db.scalar("SELECT count(*) FROM audit_log")
    assert app.state.db.scalar("SELECT count(*) FROM audit_search") == count
    checked, problem = audit.verify(app.state.db, app.state.audit_key, app.state.audit_marker)
    assert problem is None and checked == count


def test_the_migration_indexes_the_rows_already_there(config, tmp_path):
    from relais.db import Database

    path = tmp_path / "old.db"
    database = Database(path)
    db = database.conn
    migrations.apply(db, stop_before="0012_audit_search")
    db.execute("INSERT INTO audit_log (at, actor, action, object, ip, user_agent, detail, prev_hash, hash)"
               " VALUES ('2026-01-01T00:00:00.000000+00:00', 'old@registry.example', 'file.upload', 'old-file', '',"
               " '', '{\"name\": \"ancient.pdf\"}', '', '')")
    migrations.apply(db)
    conn = sqlite3.connect(path)
    try:
        filters = audit_search.Filters(text="ancient")
        from relais.db import connect

        found = audit_search.page(connect(path), filters, "en")
        assert [r["object"] for r in found] == ["old-file"]
    finally:
        conn.close()
        database.close()


# -- the CSV export --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_every_formula_start_is_neutralised(value):
    assert audit_export.csv_cell(value) == "'" + value
    assert audit_export.csv_cell("a" + value) == "a" + value


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_export_neutralises_formulas_from_the_trail(app, admin_client):
    for i, start in enumerate("=+-@"):
        record(app, "file.upload", f"{start}HYPERLINK(\"http://evil.example\")", name=f"{start}cmd|' /C calc'!A0")
    rows = rows_of(admin_client.get("/admin/audit.csv", params={"action": "file.upload"}).text)
    assert rows[0][:4] == ["id", "at", "actor", "action"]
    assert len(rows) == 5
    for row in rows[1:]:
        assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)
        assert row[5].startswith("'")


def test_the_export_is_the_current_search_in_the_readers_language_and_is_audited(app, client, auth, admin):
    record(app, "share.download", "wanted")
    record(app, "share.download_start", "not-wanted")
    client.get("/language/nl")
    auth.login(email=admin.email)
    export = client.get("/admin/audit.csv", params={"action": "share.download", "from": "2020-01-01", "q": "wanted"})
    assert export.headers["content-type"].startswith("text/csv")
    assert export.headers["content-disposition"] == 'attachment; filename="relais-audit.csv"'
    rows = rows_of(export.text)
    assert [r[5] for r in rows[1:]] == ["wanted"]
    assert rows[1][4] == "Volledig gedownload"
    [row] = audit_rows(app, "audit.export")
    import json

    detail = json.loads(row["detail"])["filters"] | {"through": json.loads(row["detail"])["through"]}
    assert detail["action"] == "share.download" and detail["text"] == "wanted" and detail["since"] == "2020-01-01"
    assert detail["through"] == row["id"] - 1 and row["actor"] == admin.email


def test_the_export_streams_a_batch_at_a_time(app, monkeypatch):
    monkeypatch.setattr(audit_search.batch_below, "__defaults__", (7,))
    add_rows(app, 50)
    through = app.state.db.scalar("SELECT max(id) FROM audit_log")
    add_rows(app, 3, prefix="after")  # written once the export began: not in it

    async def pieces():
        return [p async for p in audit_export.stream(app.state.db, audit_search.Filters(), "en", through)]

    got = run(pieces())
    assert len(got) == 1 + 8  # the header, then 50 rows in batches of 7
    rows = rows_of(b"".join(got).decode())
    assert [r[5] for r in rows[1:]] == [f"object-{i:04}" for i in range(49, -1, -1)]


def rss_kib(pid: int) -> int:
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


def test_the_export_holds_constant_memory_on_a_real_server(tmp_path):
    """150,000 rows (the old export stopped at 100,000 and held them all): the server's resident
    memory while it streams them stays within a few MB of what it was (it grew by ~286 MB for
    100,000 rows before). Measured from /proc, not timed."""
    import httpx

    (tmp_path / "data").mkdir()
    server = Server(tmp_path / "data")
    server.env["RELAIS_COOKIE_SECURE"] = "false"
    server.command("create-admin", "--email", "admin@registry.example", "--password-stdin", stdin=PASSWORD)
    db = sqlite3.connect(tmp_path / "data" / "relais.db")
    with db:  # rows straight in (their hashes do not matter to an export); the trigger indexes them
        db.executemany("INSERT INTO audit_log (at, actor, action, object, ip, user_agent, detail, prev_hash, hash)"
                       " VALUES (?, 'someone@registry.example', 'file.download', ?, '10.0.0.1', 'agent', ?, '', '')",
                       [(f"2026-11-01T00:00:00.{i % 1000000:06}+00:00", f"{i:032x}", '{"name": "%s.pdf", "start": 0}' % ("x" * 200))
                        for i in range(150_000)])
    db.close()
    server.start()
    try:
        client = httpx.Client(base_url=server.url, timeout=120)
        client.get("/login")
        client.post("/login", data={"email": "admin@registry.example", "password": PASSWORD,
                                    "_csrf_token": client.cookies["__Host-csrf"]})
        client.get("/admin/audit.csv", params={"object": "warm"})  # the code paths loaded once
        before = rss_kib(server.process.pid)
        peak, rows, pieces = before, 0, 0
        with client.stream("GET", "/admin/audit.csv") as response:
            assert response.status_code == 200
            for piece in response.iter_raw():
                rows += piece.count(b"\n")
                pieces += 1
                peak = max(peak, rss_kib(server.process.pid))
        assert rows > 150_000 and pieces > 100  # every row (no cap at 100,000), in pieces
        assert peak - before < 40 * 1024, f"the server grew by {(peak - before) // 1024} MB while exporting"
    finally:
        server.stop()


# -- who may --------------------------------------------------------------------------------------

ROUTES = ["/admin/audit", "/admin/audit?q=x&action=login.success", "/admin/audit.csv", "/admin/audit.csv?person=a"]


def test_staff_are_refused_on_every_audit_route(app, client, auth, staff):
    auth.login()
    for path in ROUTES:
        assert client.get(path, follow_redirects=False).status_code == 403, path
    assert audit_rows(app, "audit.export") == []


def test_partners_are_refused_on_every_audit_route(app, client, staff):
    from tests.test_partners import activate, make_partner

    activate(app, client, make_partner(app, staff))  # a partner account with access, logged in
    for path in ROUTES:
        assert client.get(path, follow_redirects=False).status_code == 403, path
    assert audit_rows(app, "audit.export") == []


def test_nobody_logged_in_is_sent_to_the_login(client):
    for path in ROUTES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code in (302, 303) and response.headers["location"].startswith("/login"), path


def test_filters_from_a_query_string():
    filters = audit_search.from_query({"person": " ada ", "from": "2026-11-01", "to": "nonsense", "q": "x" * 500})
    assert filters == audit_search.Filters(person="ada", since=date(2026, 11, 1), text="x" * audit_search.TEXT_LIMIT)
    assert filters.recorded() == {"person": "ada", "since": "2026-11-01", "text": "x" * audit_search.TEXT_LIMIT}
    assert audit_search.from_query({}).empty


@pytest.mark.parametrize("words", ["report", "quarterly report", "10.9.8", "10.9.123", "someone@reg", "Échec", "nothing"])
def test_rows_checked_here_match_as_the_index_does(app, monkeypatch, words):
    """Broad words are checked on the rows read through the table (audit_search._matches): the
    same rows as through the index."""
    for i, (name, ip) in enumerate([("quarterly-report.pdf", "10.9.8.7"), ("report.csv", "10.9.123.4"),
                                    ("Échec.txt", "10.9.87.1"), ("other.pdf", "192.0.2.1")]):
        record(app, "file.upload", f"f{i}", who=audit.Who(actor="someone@registry.example", ip=ip), name=name)
        record(app, "login.failure", f"l{i}", reason="wrong_password")
    filters = audit_search.Filters(text=words, person="someone")
    by_index = [r["id"] for r in audit_search.page(app.state.db.conn, filters, "fr")]
    monkeypatch.setattr(audit_search, "MANY_WORDS", -1)  # every word is "many": rows checked here
    assert not audit_search._query(app.state.db.conn, filters, "fr").by_text
    checked = audit_search.page(app.state.db.conn, filters, "fr")
    assert [r["id"] for r in checked] == by_index


def test_no_two_actions_share_a_label_in_any_language():
    """The Action list of the search offers labels: two actions with one label could not be told apart."""
    for language in i18n.LANGUAGES:
        labels = [i18n.gettext(language, label) for label in audit_labels.ACTIONS.values()]
        assert len(labels) == len(set(labels)), (language, sorted({x for x in labels if labels.count(x) > 1}))
