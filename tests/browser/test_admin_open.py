"""The admin's "Open links" in a browser: from the nav, filtered by kind, a row followed to its page."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import expect

from relais import audit, clock, partners
from tests.browser.conftest import ADMIN_EMAIL, check_accessibility, login

SHOTS = Path(os.environ.get("RELAIS_SCREENSHOTS", "/tmp/shots"))


def open_items(server) -> dict:
    """An open share and an open request of the admin (the request with files waiting), and a
    partner with a file in their space; unique addresses, as the browser tests share one server."""
    tag = secrets.token_hex(3)
    database = server.database()
    try:
        admin = database.scalar("SELECT id FROM users WHERE email = ?", [ADMIN_EMAIL])
        partner = partners.create(database, audit.SYSTEM, partners.Details(
            email=f"an.peeters.{tag}@azsintjan.example", name="An Peeters", function="Data manager",
            phone="+32 50 45 21 11", institution="AZ Sint-Jan", language="nl", contact_id=admin), created_by=admin)
        now = clock.now()

        def insert(db):
            def stored(owner: int, name: str) -> str:
                file_id = secrets.token_hex(16)
                db.execute("INSERT INTO files (id, owner_id, name, size, sha256, media_type, wrapped_key, storage_name,"
                           " state, created_at, completed_at) VALUES (?, ?, ?, 4096, ?, 'text/csv', x'00', ?, 'complete',"
                           " ?, ?)", [file_id, owner, name, "0" * 64, secrets.token_hex(16), clock.iso(now), clock.iso(now)])
                return file_id

            share, request = secrets.token_hex(16), secrets.token_hex(16)
            db.execute("INSERT INTO shares (id, owner_id, token_hash, password_hash, language, created_at, expires_at)"
                       " VALUES (?, ?, ?, 'x', 'en', ?, ?)",
                       [share, admin, secrets.token_hex(32), clock.iso(now), clock.iso(now + timedelta(days=6))])
            db.execute("INSERT INTO share_recipients (share_id, email) VALUES (?, ?)", [share, f"guest.{tag}@example.org"])
            db.execute("INSERT INTO share_files (share_id, file_id) VALUES (?, ?)", [share, stored(admin, "cohort.csv")])
            db.execute("INSERT INTO requests (id, owner_id, token_hash, password_hash, recipient, language, max_file_size,"
                       " max_files, created_at, expires_at, closed_at) VALUES (?, ?, ?, 'x', ?, 'en', 1000000, 5, ?, ?, ?)",
                       [request, admin, secrets.token_hex(32), f"lab.{tag}@hospital.example", clock.iso(now),
                        clock.iso(now + timedelta(days=20)), clock.iso(now)])
            db.execute("INSERT INTO request_submissions (id, request_id, transmitted_at, language, files, bytes, retrieve_by)"
                       " VALUES (?, ?, ?, 'en', 1, 4096, ?)",
                       [request, request, clock.iso(now), clock.iso(now + timedelta(days=4))])
            db.execute("INSERT INTO request_files (file_id, request_id, submission_id) VALUES (?, ?, ?)",
                       [stored(admin, "scan.pdf"), request, request])
            db.execute("INSERT INTO space_files (file_id, partner_id, direction, placed_by, placed_at, delete_at)"
                       " VALUES (?, ?, 'from_partner', ?, ?, ?)", [stored(partner.id, f"registration-{tag}.csv"),
                                                                 partner.id, partner.id, clock.iso(now),
                                                                 clock.iso(now + timedelta(days=2))])
            return share, request

        share, request = database.write(insert)
    finally:
        database.close()
    return {"tag": tag, "share": share, "request": request, "partner": partner.id}


def test_an_admin_finds_what_is_open_filters_it_and_follows_a_row(page, server):
    made = open_items(server)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, server)
    page.get_by_role("navigation", name="Admin console").get_by_role("link", name="Open links").click()
    expect(page.get_by_role("heading", name="Open links")).to_be_visible()
    expect(page.get_by_role("link", name="Open links")).to_have_attribute("aria-current", "page")
    table = page.locator("table.open-items")
    expect(table.get_by_role("row").filter(has_text=f"registration-{made['tag']}.csv")).to_contain_text("AZ Sint-Jan")
    expect(table.get_by_role("row").filter(has_text=f"guest.{made['tag']}@example.org")).to_contain_text("Ada Admin")
    page.screenshot(path=str(SHOTS / "open-all.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    check_accessibility(page)

    page.get_by_label("Kind").select_option(label="Requests")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(f"{server.url}/admin/open?kind=request&person=&within=")
    row = table.get_by_role("row").filter(has_text=f"lab.{made['tag']}@hospital.example")
    expect(row).to_contain_text("received files are deleted")
    expect(row).to_contain_text("Files received: 1 (1 waiting for retrieval)")
    expect(table).not_to_contain_text(f"guest.{made['tag']}@example.org")
    expect(table).not_to_contain_text(f"registration-{made['tag']}.csv")
    page.screenshot(path=str(SHOTS / "open-requests.png"), full_page=True)

    row.get_by_role("link", name="Request").click()
    expect(page).to_have_url(f"{server.url}/requests/{made['request']}")
    expect(page.get_by_text(f"lab.{made['tag']}@hospital.example").first).to_be_visible()

    page.go_back()
    page.get_by_label("Kind").select_option(label="Space files")
    page.get_by_role("button", name="Show").click()
    page.locator("table.open-items").get_by_role("row").filter(has_text=f"registration-{made['tag']}.csv") \
        .get_by_role("link", name="Space file").click()
    expect(page).to_have_url(f"{server.url}/partners/{made['partner']}")
    expect(page.get_by_role("link", name=f"registration-{made['tag']}.csv", exact=True)).to_be_visible()
