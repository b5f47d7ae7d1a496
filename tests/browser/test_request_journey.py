"""Journey 2 end to end in Chromium: staff request files, the guest sends three and removes one,
transmits and reads the receipt; staff find the notice in the outbox and download the zip."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_EMAIL, Outbox, check_accessibility, login, plain
from tests.browser.test_request_guest import DROP

CONTENTS = {"cohort 2026.csv": "id;stage\n" + "".join(f"{i};T{i % 4}\n" for i in range(200_000)),
            "labs.csv": "id;lab\n" * 2000, "mistake.csv": "wrong;file\n" * 10}
SENDER = "biobank@lab.example"


def test_request_files_from_the_invitation_to_the_staffs_zip(page, browser, server):
    outbox = Outbox(server)

    # Staff ask for CSV files, one submission, with a batch number.
    login(page, server)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Request files").click()
    page.get_by_role("link", name="Request files").last.click()
    page.get_by_label("Sender's e-mail address").fill(SENDER)
    page.get_by_label("Message (in the e-mail)").fill("Please send this year's cohort.")
    page.get_by_label(".csv", exact=True).check()
    page.get_by_label("Most files per submission").fill("5")
    page.get_by_label("Reference the sender must fill in (optional)").fill("Batch number")
    page.get_by_role("button", name="Send the request").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request sent")
    password = page.locator("#request-password").inner_text()

    [invitation] = outbox.wait(SENDER, where=lambda text: "/r/" in text)
    body = plain(invitation)
    assert "Please send this year's cohort." in body and password not in body
    link = re.search(r"http://127\.0\.0\.1:\d+/r/[A-Za-z0-9_-]+", body).group(0)

    # The guest, in a browser of their own.
    context = browser.new_context(locale="en-GB")
    guest = context.new_page()
    guest.set_default_timeout(10_000)
    try:
        guest.goto(link)
        guest.get_by_label("Password").fill(password)
        guest.get_by_role("button", name="Access").click()
        expect(guest.get_by_text("Please send this year's cohort.")).to_be_visible()
        transmit = guest.get_by_role("button", name="Transmit")
        assert guest.evaluate(DROP, CONTENTS) is True  # disabled while the three upload
        statuses = guest.locator("#transfers li .status")
        expect(statuses).to_have_count(3)
        for i in range(3):
            expect(statuses.nth(i)).to_have_text("Uploaded", timeout=30_000)
        expect(transmit).to_be_enabled()
        pending = guest.locator("#pending")
        pending.get_by_role("button", name="Remove mistake.csv").click()
        expect(pending.get_by_role("cell", name="mistake.csv", exact=True)).to_have_count(0)
        guest.get_by_label("Batch number").fill("B-2026-11")
        transmit.click()
        expect(guest.get_by_role("heading", level=1)).to_have_text("Files transmitted")
        for name in ("cohort 2026.csv", "labs.csv"):
            expect(guest.get_by_text(hashlib.sha256(CONTENTS[name].encode()).hexdigest())).to_be_visible()
        check_accessibility(guest)
    finally:
        context.close()

    # The receipt reaches the guest, the notice reaches staff: both with the hashes.
    [receipt] = outbox.wait(SENDER, where=lambda text: "/r/" not in text)
    [notice] = outbox.wait(ADMIN_EMAIL, where=lambda text: f"{SENDER} sent" in text)
    wanted = {hashlib.sha256(CONTENTS[n].encode()).hexdigest() for n in ("cohort 2026.csv", "labs.csv")}
    for message in (receipt, notice):
        text = plain(message)
        assert all(digest in text for digest in wanted)
        assert hashlib.sha256(CONTENTS["mistake.csv"].encode()).hexdigest() not in text
    staff_link = re.search(r"http://127\.0\.0\.1:\d+/requests/[0-9a-f]+", plain(notice))

    # Staff follow the notice's link and download everything as one zip.
    page.goto(staff_link.group(0))
    expect(page.get_by_text("B-2026-11")).to_be_visible()
    expect(page.locator("main")).to_contain_text("not yet")  # retrieved: not yet
    check_accessibility(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download every received file (zip)").click()
    with zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())) as archive:
        assert sorted(archive.namelist()) == ["cohort 2026.csv", "labs.csv"]
        for name in archive.namelist():
            assert archive.read(name).decode() == CONTENTS[name]
    page.reload()
    expect(page.locator("main")).not_to_contain_text("not yet")  # every file is marked retrieved
