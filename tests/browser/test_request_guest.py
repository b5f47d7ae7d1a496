"""In Chromium: the person asked for files opens the link, types the password, drops three files,
removes one, transmits once every upload is complete, and reads the receipt's hashes."""

from __future__ import annotations

import hashlib

from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_EMAIL, check_accessibility
from tests.test_request_tus import make_request

CONTENTS = {"visits.csv": "id;visit\n" * 300000, "labs.csv": "id;lab\n" * 1000, "notes.txt": "a note\n" * 100}
DROP = """(contents) => {
  const transfer = new DataTransfer();
  for (const [name, text] of Object.entries(contents)) { transfer.items.add(new File([text], name, {type: "text/plain"})); }
  document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
  return document.getElementById("transmit").disabled;
}"""


def test_the_guest_drops_three_files_removes_one_transmits_and_sees_the_hashes(page, server):
    token, password, _ = make_request(server, owner_email=ADMIN_EMAIL, accepted_types=("csv", "txt"),
                                      reference_label="Batch number", message="The visits of 2026, please.")
    page.goto(f"{server.url}/r/{token}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Send files to Ada Admin")
    check_accessibility(page)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Access").click()
    expect(page.get_by_text("The visits of 2026, please.")).to_be_visible()
    expect(page.locator("#upload-form")).to_be_hidden()  # the script took over from the plain form
    transmit = page.get_by_role("button", name="Transmit")
    expect(transmit).to_be_enabled()
    check_accessibility(page)

    # Transmit waits while the uploads run (disabled in the same moment the files were dropped).
    assert page.evaluate(DROP, CONTENTS) is True
    statuses = page.locator("#transfers li .status")
    expect(statuses).to_have_count(3)
    for i in range(3):
        expect(statuses.nth(i)).to_have_text("Uploaded", timeout=30_000)
    expect(transmit).to_be_enabled()
    pending = page.locator("#pending")
    for name in CONTENTS:
        expect(pending.get_by_role("cell", name=name, exact=True)).to_be_visible()
    expect(pending.locator("a")).to_have_count(0)  # never a link to a file

    pending.get_by_role("button", name="Remove notes.txt").click()
    expect(pending.get_by_role("cell", name="notes.txt", exact=True)).to_have_count(0)
    expect(pending.get_by_role("cell", name="labs.csv", exact=True)).to_be_visible()

    page.get_by_label("Batch number").fill("B-2026-07")
    transmit.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Files transmitted")
    for name in ("visits.csv", "labs.csv"):
        expect(page.get_by_text(hashlib.sha256(CONTENTS[name].encode()).hexdigest())).to_be_visible()
    expect(page.get_by_text(hashlib.sha256(CONTENTS["notes.txt"].encode()).hexdigest())).to_have_count(0)
    expect(page.get_by_text("B-2026-07")).to_be_visible()
    check_accessibility(page)
    # One submission: the link is closed now.
    page.goto(f"{server.url}/r/{token}")
    expect(page.get_by_role("heading", level=1)).to_have_text("This link is not valid")
