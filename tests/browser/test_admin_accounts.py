"""The admin's accounts page and the institutions in Chromium: an admin filters the accounts to
partners and resets one's access (the one-time link shown once, which the partner then uses),
makes a staff member an admin through the confirmation; staff open an institution from the
partners list and see its partners and the files of their spaces."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import check_accessibility, choose_password, login, new_staff_account
from tests.browser.test_spaces import drop

SHOTS = Path("/tmp/shots")
PARTNER = "noor.wouters@azdelta.example"
PARTNER_PASSWORD = "granite willow harbour 8"
STAFF = "mila.peeters@registry.example"
INSTITUTION = "AZ Delta Roeselare"


def shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"accounts-{name}.png"), full_page=True)


def new_partner(page, server, name: str, email: str, institution: str) -> str:
    """Through the accounts page's link to the partner form; returns the activation link shown."""
    page.goto(server.url + "/admin/users")
    page.get_by_role("link", name="New partner").click()
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Institution").fill(institution)
    page.get_by_label("Professional e-mail address (their login)").fill(email)
    page.get_by_label("Language of their e-mails").select_option("en")
    page.get_by_label("Show it once here, to read out by phone").check()
    page.get_by_role("button", name="Create the partner account").click()
    return page.locator("#activation-link").inner_text()


def test_an_admin_filters_to_partners_and_resets_ones_access(page, browser, server):
    login(page, server)
    new_partner(page, server, "Noor Wouters", PARTNER, INSTITUTION)  # the first link is never used
    page.get_by_role("navigation", name="Admin console").get_by_role("link", name="Accounts").click()
    page.get_by_label("Which accounts").select_option("partner")
    page.get_by_label("Search").fill("wouters")
    page.get_by_role("button", name="Show", exact=True).click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_contain_text(PARTNER)
    expect(row.get_by_role("link", name=INSTITUTION)).to_be_visible()
    expect(row).to_contain_text("Not activated yet")
    expect(row.get_by_role("button", name="Make admin")).to_have_count(0)
    check_accessibility(page)
    shot(page, "partners-filtered")

    row.get_by_role("button", name=f"Reset access, show the link {PARTNER}").click()
    link = page.locator("#activation-link").inner_text()
    assert "/login/link/" in link
    expect(page.get_by_role("status").first).to_contain_text(f"Read this one-time link out to the partner {PARTNER}")
    expect(page.locator("tbody tr")).to_have_count(1)  # still the filtered list
    expect(page.get_by_label("Which accounts")).to_have_value("partner")
    shot(page, "partner-link")

    # The partner chooses a password with it and lands in their space.
    context = browser.new_context(locale="en-GB")
    partner = context.new_page()
    partner.set_default_timeout(10_000)
    try:
        choose_password(partner, link, PARTNER_PASSWORD)
        expect(partner.get_by_role("heading", level=1)).to_have_text("My space")
    finally:
        context.close()
    page.goto(server.url + "/admin/users?role=partner&q=wouters")
    expect(page.locator("tbody tr").first).to_contain_text("Access until")


def test_an_admin_makes_a_staff_member_an_admin(page, server):
    new_staff_account(page, server, STAFF, "Mila Peeters")
    page.get_by_label("Search").fill("mila")
    page.get_by_role("button", name="Show", exact=True).click()
    page.get_by_role("link", name=f"Make admin {STAFF}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Make this account an admin?")
    check_accessibility(page)
    shot(page, "role-confirm")
    page.get_by_role("button", name=f"Make {STAFF} an admin").click()
    expect(page.get_by_role("status").first).to_contain_text("The role was changed")
    row = page.locator("tbody tr", has_text=STAFF)
    expect(row.get_by_role("cell", name="Admin", exact=True)).to_be_visible()
    expect(row.get_by_role("link", name=f"Make staff {STAFF}")).to_be_visible()
    expect(page.get_by_label("Search")).to_have_value("mila")  # back to the list as it was
    shot(page, "role-changed")


def test_staff_open_an_institution_from_the_partners_list(page, server):
    login(page, server)
    new_partner(page, server, "Arne Maes", "arne.maes@azdelta.example", INSTITUTION)
    # A file placed for him, from his page.
    drop(page, {"protocol v3.txt": "the protocol, third version\n"})
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Partners").click()
    page.get_by_role("link", name="Institutions", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Institutions")
    listed = page.locator("tbody tr", has_text=INSTITUTION)
    expect(listed).to_have_count(1)
    check_accessibility(page)
    shot(page, "institutions")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Partners").click()
    page.get_by_role("heading", name=INSTITUTION).get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(INSTITUTION)
    partners = page.locator("#institution-partners")
    expect(partners.get_by_role("link", name="Arne Maes")).to_be_visible()
    files = page.get_by_role("region", name="Arne Maes")
    expect(files.get_by_role("link", name="protocol v3.txt")).to_be_visible()
    expect(files).to_contain_text("Placed by the Registry")
    expect(files).to_contain_text("Not retrieved yet")
    check_accessibility(page)
    shot(page, "institution")
    with page.expect_download() as download:
        files.get_by_role("link", name="protocol v3.txt").click()
    assert Path(download.value.path()).read_text() == "the protocol, third version\n"
    page.get_by_role("link", name="Arne Maes").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Arne Maes")
    expect(page.get_by_role("link", name=INSTITUTION)).to_be_visible()
