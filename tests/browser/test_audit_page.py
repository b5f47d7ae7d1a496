"""The audit page at 1,280 px: no sideways scrolling, no column squeezed to a character a line,
in English and in French (longer words), with the longest things the trail holds."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from relais import audit
from tests.browser.conftest import check_accessibility, login


def fill_the_trail(server) -> None:
    """Rows as wide as real ones get: a zip of 20 files (its object is their ids, with no space),
    a 254-character address typed at the login, an IPv6 client, a long SMTP error, hashes."""
    database = server.database()
    ids = [os.urandom(16).hex() for _ in range(20)]
    who = audit.Who(actor="ada.admin@registry.example", ip="2001:db8:85a3:8d3:1319:8a2e:370:7348",
                    user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0 Safari/537.36")
    typed = "a" * 64 + "@" + ".".join(["averyveryverylongsubdomainname"] * 6) + ".example"
    try:
        database.write(lambda db: audit.record(db, who, "file.download_zip", ",".join(ids), count=len(ids)))
        database.write(lambda db: audit.record(db, audit.Who(actor=typed, ip="203.0.113.7"), "login.failure", typed,
                                               reason="unknown_account"))
        database.write(lambda db: audit.record(db, audit.SYSTEM, "share.delete", ids[0], files=[os.urandom(32).hex() for _ in range(5)]))
        database.write(lambda db: audit.record(db, audit.SYSTEM, "mail.deferred", ids[1], kind="share", outbox_id=12,
                                               error="SMTPRecipientsRefused: {'dr.peeters@hospital.example': (550, b'5.1.1 mailbox unavailable')}" * 2))
        database.write(lambda db: audit.record(db, who, "file.upload", ids[2], name="Pathologie-verslag 2026 " * 8 + ".pdf",
                                               size=123456789, sha256=os.urandom(32).hex()))
    finally:
        database.close()


@pytest.mark.parametrize("code", ["en", "fr"])
def test_the_audit_page_fits_1280_pixels(page, server, tmp_path, code):
    fill_the_trail(server)
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, server)
    page.goto(f"{server.url}/language/{code}?next=/admin/audit")
    expect(page.locator("table.audit")).to_be_visible()
    page.screenshot(path=str(tmp_path / f"audit-{code}.png"), full_page=True)
    if os.environ.get("RELAIS_SCREENSHOTS"):
        page.screenshot(path=f"{os.environ['RELAIS_SCREENSHOTS']}/audit-{code}.png")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the page is {width} px wide at 1,280"
    # No cell squeezed to a character a line: every column keeps room for a word.
    narrowest = page.evaluate("Math.min(...[...document.querySelectorAll('table.audit tbody tr:first-child td')]"
                              ".map(td => td.getBoundingClientRect().width))")
    assert narrowest >= 120
    tallest = page.evaluate("Math.max(...[...document.querySelectorAll('table.audit tbody tr')]"
                            ".map(tr => tr.getBoundingClientRect().height))")
    assert tallest < 900, f"a row {tallest} px tall: something wraps a character a line"
    label = {"en": "Files downloaded as a zip", "fr": "Fichiers téléchargés en zip"}[code]
    expect(page.get_by_role("cell", name=label).first).to_be_visible()
    check_accessibility(page)
