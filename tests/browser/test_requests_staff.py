"""Request files in Chromium, staff's side: the form, the password once, the request's page, the
list, revoke through its confirm page; every page passes axe and its CSP."""

from __future__ import annotations

import re
from playwright.sync_api import expect

from tests.browser.conftest import Outbox, check_accessibility, login, plain


def test_request_files_then_revoke(page, server):
    outbox = Outbox(server)
    login(page, server)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Request files").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Requests")
    check_accessibility(page)
    page.get_by_role("link", name="Request files").last.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request files")
    check_accessibility(page)

    page.get_by_label("Sender's e-mail address").fill("lab@lab.example")
    page.get_by_label("Most files per submission").fill("100")
    page.get_by_label(".csv", exact=True).check()
    page.get_by_label(".pdf", exact=True).check()
    page.get_by_label("Several times, until the link expires").check()
    page.get_by_label("Language of the e-mail").select_option("nl")
    page.get_by_label("Reference the sender must fill in (optional)").fill("Batch number")
    page.get_by_role("button", name="Send the request").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request sent")
    password = page.locator("#request-password").inner_text()
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", password)
    check_accessibility(page)
    page.reload()
    expect(page.locator("#password-gone")).to_be_visible()

    [message] = outbox.wait("lab@lab.example", where=lambda text: "/r/" in text)
    assert password not in plain(message)

    page.get_by_role("link", name="See this request and what arrives").click()
    expect(page.get_by_text("Waiting for files")).to_be_visible()
    expect(page.get_by_text("Batch number")).to_be_visible()
    check_accessibility(page)
    page.get_by_role("link", name="Revoke the link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke the link?")
    check_accessibility(page)
    page.get_by_role("button", name="Revoke the link").click()
    expect(page.get_by_role("status")).to_contain_text("The link was revoked")
    page.get_by_role("link", name="Delete the request and its files").click()
    check_accessibility(page)
    page.get_by_role("button", name="Delete the request and its files for good").click()
    expect(page.get_by_role("status")).to_contain_text("deleted")
    page.goto(server.url + "/")
    check_accessibility(page)
