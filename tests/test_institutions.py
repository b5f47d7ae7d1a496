"""Institutions seen whole (relais.institutions, views/institutions.py): the list with its counts,
an institution's page with its partners and the files of their spaces both ways (nobody else's),
the rename by admins, and partners kept off both pages."""

from __future__ import annotations

import re

import pytest

from relais import institutions
from tests.conftest import audit_rows
from tests.test_partners import NEW_PASSWORD, PARTNER_EMAIL, active_partner, make_partner, partner  # noqa: F401
from tests.test_request_guest import CSV, PDF
from tests.test_spaces import file_id, form, partner_browser, staff_browser, tus  # noqa: F401 (fixtures)

OTHER_EMAIL = "jo.janssens@uzgent.example"


@pytest.fixture
def exchanged(app, staff, active_partner, partner_browser, staff_browser):
    """AZ Sint-Jan: An Peeters (active) with a file placed for her and two she sent, one of them
    retrieved by staff, and Bea Maes (not activated yet, no files); UZ Gent: Jo Janssens with a
    file placed for him."""
    tus(partner_browser, "/space", "cohort.csv", CSV)
    tus(partner_browser, "/space", "stages.csv", CSV + CSV)
    form(staff_browser, f"/partners/{active_partner.id}/space", ("feedback.pdf", PDF, "application/pdf"))
    retrieved = staff_browser.get(f"/partners/{active_partner.id}/space/files/{file_id(app, active_partner.id, 'cohort.csv')}")
    assert retrieved.status_code == 200
    maes = make_partner(app, staff, email="bea.maes@azsintjan.example", name="Bea Maes")
    other = make_partner(app, staff, email=OTHER_EMAIL, name="Jo Janssens", institution="UZ Gent")
    form(staff_browser, f"/partners/{other.id}/space", ("uz-only.pdf", PDF, "application/pdf"))
    return {"peeters": active_partner, "maes": maes, "other": other}


def table_rows(text: str) -> list[list[str]]:
    """The cells of each body row of the page's first table, tags removed."""
    body = text[text.index("<tbody>"):text.index("</tbody>")]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in body.split("<tr>")[1:]]


def space_table(text: str, partner_id: int) -> str:
    """The table of one partner's space files on an institution's page."""
    table = text[text.index(f'id="space-files-{partner_id}"'):]
    return table[:table.index("</table>")]


def test_the_institutions_list_counts_partners_and_the_files_in_their_spaces(app, staff_browser, exchanged,
                                                                              frozen):
    page = staff_browser.get("/partners/institutions")
    assert page.status_code == 200
    assert table_rows(page.text) == [["AZ Sint-Jan", "1", "2", "3", "2"], ["UZ Gent", "0", "1", "1", "1"]]
    az = exchanged["peeters"].institution_id
    assert f'<a href="/partners/institutions/{az}">AZ Sint-Jan</a>' in page.text
    # Past An Peeters's access (14 days), nobody there has access any more (staff's session has ended too).
    frozen.advance(days=14, seconds=-1)
    assert institutions.list_page(app.state.db)[0].active_partners == 1
    frozen.advance(seconds=2)
    [az_then, _] = institutions.list_page(app.state.db)
    assert (az_then.name, az_then.active_partners, az_then.partners) == ("AZ Sint-Jan", 0, 2)


def test_the_institutions_are_sorted_by_name_and_paged(app, staff, staff_browser):
    for n in range(52):
        make_partner(app, staff, email=f"p{n}@inst.example", name=f"P {n}", institution=f"inst {n:02}")
    make_partner(app, staff, email="a@az.example", name="A", institution="AZ Alma")
    first = staff_browser.get("/partners/institutions").text
    names = [row[0] for row in table_rows(first)]
    assert names[:3] == ["AZ Alma", "inst 00", "inst 01"] and len(names) == 50  # by name, whatever the case
    assert "Page 1 of 2" in first and 'href="/partners/institutions?page=2"' in first
    assert [row[0] for row in table_rows(staff_browser.get("/partners/institutions?page=2").text)] == [
        "inst 49", "inst 50", "inst 51"]


def test_an_institution_shows_its_partners_and_their_files_both_ways_and_nobody_elses(app, staff, staff_browser,
                                                                                       exchanged):
    peeters, maes, other = exchanged["peeters"], exchanged["maes"], exchanged["other"]
    page = staff_browser.get(f"/partners/institutions/{peeters.institution_id}")
    assert page.status_code == 200 and "<h1>AZ Sint-Jan</h1>" in page.text
    partner_rows = table_rows(page.text)
    assert [row[0] for row in partner_rows] == ["An Peeters", "Bea Maes"]
    assert partner_rows[0][1:] == ["Data manager", PARTNER_EMAIL, "+32 50 45 21 11", "Sam Staff",
                                   "Access until 8 Dec 2026, 10:00 CET", "1 placed, 2 sent2 not retrieved yet"]
    assert partner_rows[1][4:] == ["Sam Staff", "Not activated yet", "–"]
    assert f'<a href="/partners/{peeters.id}">An Peeters</a>' in page.text
    assert f'<a href="/partners/{maes.id}">Bea Maes</a>' in page.text

    files = space_table(page.text, peeters.id)
    for name in ("feedback.pdf", "cohort.csv", "stages.csv"):
        link = f'href="/partners/{peeters.id}/space/files/{file_id(app, peeters.id, name)}" download>{name}</a>'
        assert link in files, name
    assert files.index("feedback.pdf") < files.index("cohort.csv")  # placed by the Registry first
    assert "Placed by the Registry" in files and "Sent by the partner" in files
    assert files.count("Not retrieved yet") == 2 and files.count("Retrieved on") == 1
    assert f'id="space-files-{maes.id}"' not in page.text  # no files, no table
    # Nothing of another institution.
    assert "Jo Janssens" not in page.text and "uz-only.pdf" not in page.text and OTHER_EMAIL not in page.text

    # Each file downloads through the partner's space, as on the partner's page.
    fid = file_id(app, peeters.id, "stages.csv")
    got = staff_browser.get(f"/partners/{peeters.id}/space/files/{fid}")
    assert got.status_code == 200 and got.content == CSV + CSV
    assert space_table(staff_browser.get(f"/partners/institutions/{peeters.institution_id}").text,
                       peeters.id).count("Retrieved on") == 2  # stages.csv is retrieved now


def test_the_partners_pages_lead_to_the_institution(app, staff_browser, partner):
    listing = staff_browser.get("/partners").text
    assert 'href="/partners/institutions"' in listing
    assert f'<a href="/partners/institutions/{partner.institution_id}">AZ Sint-Jan</a>' in listing
    detail = staff_browser.get(f"/partners/{partner.id}").text
    assert f'<a href="/partners/institutions/{partner.institution_id}">AZ Sint-Jan</a>' in detail


def test_an_unknown_institution_is_a_404_page(staff_browser, partner):
    for path in ("/partners/institutions/9999", "/partners/institutions/0"):
        missing = staff_browser.get(path)
        assert missing.status_code == 404 and "Page not found" in missing.text, path


def test_a_partner_is_refused_both_pages_and_each_try_is_audited(app, partner_browser, active_partner):
    paths = ["/partners/institutions", f"/partners/institutions/{active_partner.institution_id}"]
    for path in paths:
        refused = partner_browser.get(path)
        assert refused.status_code == 403 and "AZ Sint-Jan" not in refused.text, path
    assert partner_browser.post(paths[1], data={"name": "Mine now", "_csrf_token": partner_browser.cookies["__Host-csrf"]},
                                follow_redirects=False).status_code == 403
    refused = audit_rows(app, "partner.refused")
    assert [r["object"] for r in refused] == [*paths, paths[1]] and {r["actor"] for r in refused} == {PARTNER_EMAIL}
    assert institutions.get(app.state.db, active_partner.institution_id).name == "AZ Sint-Jan"


# -- renaming ----------------------------------------------------------------------------------------

def test_an_admin_renames_an_institution_and_a_clash_is_refused(app, client, auth, admin, staff, partner):
    make_partner(app, staff, email=OTHER_EMAIL, name="Jo Janssens", institution="UZ Gent")
    path = f"/partners/institutions/{partner.institution_id}"
    auth.login(email=admin.email)
    assert 'name="name"' in client.get(path).text
    renamed = auth.post(path, {"name": "  AZ  Sint-Jan Brugge "})
    assert renamed.status_code == 303 and renamed.headers["location"] == f"{path}?renamed"
    assert "The institution has been renamed." in client.get(renamed.headers["location"]).text
    assert institutions.get(app.state.db, partner.institution_id).name == "AZ Sint-Jan Brugge"
    assert "AZ Sint-Jan Brugge" in client.get(f"/partners/{partner.id}").text  # its partners keep it
    [row] = audit_rows(app, "institution.rename")
    assert row["object"] == "AZ Sint-Jan Brugge" and '"previous_name": "AZ Sint-Jan"' in row["detail"]

    clash = auth.post(path, {"name": "uz gent"})
    assert clash.status_code == 400 and "Another institution already has this name" in clash.text
    assert 'value="uz gent"' in clash.text  # what was typed, to correct
    empty = auth.post(path, {"name": "   "})
    assert empty.status_code == 400 and "Enter the institution&#39;s name." in empty.text
    assert auth.post("/partners/institutions/9999", {"name": "Nowhere"}).status_code == 404
    assert institutions.get(app.state.db, partner.institution_id).name == "AZ Sint-Jan Brugge"
    assert len(audit_rows(app, "institution.rename")) == 1
    # The same institution in another case is a rename too (a misspelling put right).
    assert auth.post(path, {"name": "AZ SINT-JAN BRUGGE"}).status_code == 303
    assert len(audit_rows(app, "institution.rename")) == 2


def test_staff_see_institutions_but_only_admins_rename_them(app, client, auth, staff, partner):
    path = f"/partners/institutions/{partner.institution_id}"
    auth.login()
    page = client.get(path)
    assert page.status_code == 200 and 'name="name"' not in page.text
    assert auth.post(path, {"name": "Something else"}).status_code == 403
    unguarded = client.post(path, data={"name": "Something else"}, follow_redirects=False)
    assert unguarded.status_code == 403 and "Form expired" in unguarded.text
    assert institutions.get(app.state.db, partner.institution_id).name == "AZ Sint-Jan"
    assert audit_rows(app, "institution.rename") == [] and audit_rows(app, "partner.refused") == []


def test_a_rename_to_the_same_name_changes_nothing_and_says_nothing(app, client, auth, admin, partner):
    path = f"/partners/institutions/{partner.institution_id}"
    auth.login(email=admin.email)
    same = auth.post(path, {"name": " AZ  Sint-Jan "})
    assert same.status_code == 303 and same.headers["location"] == path
    assert "The institution has been renamed." not in client.get(path).text
    assert audit_rows(app, "institution.rename") == []


def test_an_institution_shows_the_newest_files_of_each_way_and_links_to_the_rest(app, staff, staff_browser,
                                                                               active_partner):
    """A partner may hold 2,000 files: the institution's page shows the newest ten of each way
    and says how many more the partner's page has."""
    from tests.test_paging import add_files
    placed, sent = add_files(app, staff, 25), add_files(app, active_partner, 30, first=100)

    def into_space(db):
        for i, file_id in enumerate(placed + sent):
            way, by = ("to_partner", staff.id) if file_id in placed else ("from_partner", active_partner.id)
            db.execute("INSERT INTO space_files (file_id, partner_id, direction, placed_by, placed_at, delete_at)"
                       " VALUES (?, ?, ?, ?, ?, '2099-01-01T00:00:00+00:00')",
                       [file_id, active_partner.id, way, by, f"2026-11-01T00:{i // 60:02}:{i % 60:02}+00:00"])

    app.state.db.write(into_space)
    page = staff_browser.get(f"/partners/institutions/{active_partner.institution_id}")
    assert page.status_code == 200
    files = space_table(page.text, active_partner.id)
    shown = re.findall(r"download>(file-\d{4}\.csv)</a>", files)
    assert shown == [f"file-{i:04}.csv" for i in range(24, 14, -1)] + [f"file-{i:04}.csv" for i in range(129, 119, -1)]
    assert f'<a href="/partners/{active_partner.id}">and 35 more on the partner\'s page</a>' in page.text
