"""Journey 3 in Chromium: an admin creates a partner, who activates their account, sends files,
downloads and deletes one; staff place a file for them and retrieve what they sent; the partner
takes the placed file as a zip. Both sides' mails are read from the outbox."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_EMAIL, Outbox, check_accessibility, choose_password, login, plain

PARTNER = "lieve.claes@azgroeninge.example"
PASSWORD = "copper lantern orchard nine"
DROP = """(contents) => {
  const transfer = new DataTransfer();
  for (const [name, text] of Object.entries(contents)) { transfer.items.add(new File([text], name, {type: "text/plain"})); }
  document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""
SENT = {"follow-up 2026.csv": "id;status\n" + "".join(f"{i};alive\n" for i in range(50_000)),
        "mistake.txt": "not this one\n"}
PLACED = {"feedback.txt": "Registry feedback on the 2025 batch\n" * 100}


def drop(page, contents: dict[str, str]) -> None:
    page.evaluate(DROP, contents)
    statuses = page.locator("#transfers li .status")
    expect(statuses).to_have_count(len(contents))
    for i in range(len(contents)):
        expect(statuses.nth(i)).to_have_text("Uploaded", timeout=30_000)


def downloaded(page, click) -> bytes:
    with page.expect_download() as download:
        click()
    return Path(download.value.path()).read_bytes()


def test_a_partner_exchanges_files_with_the_registry_both_ways(page, browser, server):
    outbox = Outbox(server)

    # An admin creates the partner and reads the activation link out to them.
    login(page, server)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Partners").click()
    page.get_by_role("link", name="New partner").click()
    page.get_by_label("Full name").fill("Lieve Claes")
    page.get_by_label("Role or function").fill("Data manager")
    page.get_by_label("Institution").fill("AZ Groeninge")
    page.get_by_label("Professional e-mail address (their login)").fill(PARTNER)
    page.get_by_label("Language of their e-mails").select_option("en")
    page.get_by_label("Show it once here, to read out by phone").check()
    page.get_by_role("button", name="Create the partner account").click()
    link = page.locator("#activation-link").inner_text()

    # The partner activates, chooses a password and lands in their space.
    context = browser.new_context(locale="en-GB", accept_downloads=True)
    partner = context.new_page()
    partner.set_default_timeout(10_000)
    try:
        choose_password(partner, link, PASSWORD)
        expect(partner.get_by_role("heading", level=1)).to_have_text("My space")
        check_accessibility(partner)
        drop(partner, SENT)
        sent = partner.locator("#sent-files")
        for name in SENT:
            expect(sent.get_by_role("link", name=name, exact=True)).to_be_visible()
        body = downloaded(partner, lambda: sent.get_by_role("link", name="mistake.txt", exact=True).click())
        assert body.decode() == SENT["mistake.txt"]
        sent.get_by_role("link", name="Delete mistake.txt").click()
        expect(partner.get_by_role("heading", level=1)).to_have_text("Delete this file?")
        partner.get_by_role("button", name="Delete mistake.txt for good").click()
        expect(partner.get_by_role("status")).to_have_text("The file was deleted.")
        expect(partner.locator("#sent-files").get_by_role("link", name="mistake.txt", exact=True)).to_have_count(0)
        check_accessibility(partner)

        # Their contact person (the admin who created them) is told, and retrieves the file.
        [notice] = outbox.wait(ADMIN_EMAIL, where=lambda text: "follow-up 2026.csv" in text and "Lieve Claes" in text)
        assert f"{server.url}/partners/" in plain(notice)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Partners").click()
        page.get_by_role("link", name="Lieve Claes").click()
        theirs = page.locator("#sent-files")
        body = downloaded(page, lambda: theirs.get_by_role("link", name="follow-up 2026.csv", exact=True).click())
        assert body.decode() == SENT["follow-up 2026.csv"]
        page.reload()
        expect(page.locator("#sent-files")).to_contain_text("Retrieved on")

        # Staff place a file for the partner, who is told and takes it as a zip.
        drop(page, PLACED)
        expect(page.locator("#placed-files").get_by_role("link", name="feedback.txt", exact=True)).to_be_visible()
        check_accessibility(page)
        [placed] = outbox.wait(PARTNER, where=lambda text: "feedback.txt" in text)
        assert f"{server.url}/space" in plain(placed)
        partner.reload()
        ours = partner.locator("#placed-files")
        ours.get_by_role("checkbox", name="Choose feedback.txt").check()
        archive = downloaded(partner, lambda: partner.get_by_role("button", name="Download the ticked files (zip)").click())
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            assert zipped.namelist() == ["feedback.txt"] and zipped.read("feedback.txt").decode() == PLACED["feedback.txt"]
        partner.reload()
        expect(partner.locator("#placed-files")).to_contain_text("Retrieved on")
        assert re.search(r"Deleted on", partner.locator("#placed-files").inner_text()) is not None
    finally:
        context.close()
