"""Paged lists in Chromium: the send form's file picker pages in place (htmx) and keeps what was
ticked on other pages; without JavaScript the same links load the next page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_PASSWORD, check_accessibility, login

EMAIL = "pager@registry.example"


@pytest.fixture(scope="module")
def account(server):
    """An account holding 55 listed files (rows only: a list never opens the data)."""
    server.command("create-admin", "--email", EMAIL, "--name", "Pat Pager", "--password-stdin", stdin=ADMIN_PASSWORD)
    server.add_listed_files(EMAIL, [f"file-{i:04}.csv" for i in range(55)])
    return EMAIL


def chosen(page) -> list[str]:
    """The file ids the share form would send."""
    return page.evaluate("[...new FormData(document.querySelector('#share-form')).getAll('file_ids')]")


def test_the_file_picker_pages_in_place_and_keeps_choices(page, server, account):
    login(page, server, email=account)
    page.goto(server.url + "/shares/new")
    picker = page.locator("#file-choices")
    page.get_by_role("checkbox", name=re.compile("file-0054.csv")).check()
    expect(picker.get_by_text("Page 1 of 2")).to_be_visible()
    check_accessibility(page)

    picker.get_by_role("link", name="Next page").click()
    expect(picker.get_by_text("Page 2 of 2")).to_be_visible()
    assert page.url == server.url + "/shares/new"  # only the picker changed: the rest of the form stays
    expect(picker.get_by_text("1 more file chosen on another page.")).to_be_visible()
    assert not page.get_by_role("checkbox", name=re.compile("file-0004.csv")).is_checked()  # old, not new
    page.get_by_role("checkbox", name=re.compile("file-0000.csv")).check()
    assert len(chosen(page)) == 2

    picker.get_by_role("link", name="Previous page").click()
    expect(picker.get_by_text("Page 1 of 2")).to_be_visible()
    expect(page.get_by_role("checkbox", name=re.compile("file-0054.csv"))).to_be_checked()
    expect(picker.get_by_text("1 more file chosen on another page.")).to_be_visible()
    assert len(chosen(page)) == 2
    check_accessibility(page)


def test_without_javascript_the_pager_links_load_the_next_page(browser, server, account):
    context = browser.new_context(locale="en-GB", java_script_enabled=False)
    page = context.new_page()
    try:
        login(page, server, email=account)
        page.goto(server.url + "/files")
        expect(page.get_by_role("cell", name="file-0054.csv", exact=True)).to_be_visible()
        page.get_by_role("navigation", name="Pages of your files").get_by_role("link", name="Next page").click()
        assert page.url == server.url + "/files?page=2"
        expect(page.get_by_role("cell", name="file-0004.csv", exact=True)).to_be_visible()
        expect(page.get_by_role("cell", name="file-0054.csv", exact=True)).to_have_count(0)
        expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    finally:
        context.close()
