"""An admin edits the terms of use in English and French and publishes them through the
confirmation; a French reader then sees the new French text, and a French staff member's next
login accepts the new version."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import expect

from relais import audit, passwords, terms, terms_text, users
from tests.browser.conftest import check_accessibility, login

SHOTS = Path(os.environ.get("RELAIS_SCREENSHOTS", "/tmp/shots"))
FR_EMAIL = "camille.lefevre@registry.example"
FR_PASSWORD = "lanterne verte orchestre 31"
NEW_PARAGRAPH = "Le Registre conserve la trace de chaque acceptation de ces conditions."


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"terms-{name}.png"), full_page=True)


def prepare(server) -> int:
    """A staff member who reads French, and the version in force now (the server is shared)."""
    database = server.database()
    try:
        if users.by_email(database, FR_EMAIL) is None:
            users.create(database, passwords.Hasher(time_cost=1, memory_kib=8192, parallelism=1), audit.SYSTEM,
                         email=FR_EMAIL, name="Camille Lefèvre", role="staff", password=FR_PASSWORD, language="fr")
        return database.read_sync(terms.current_version)
    finally:
        database.close()


def accepted_versions(server, email: str) -> list[int]:
    database = server.database()
    try:
        user = users.by_email(database, email)
        return [r["version"] for r in database.query(
            "SELECT version FROM terms_acceptances WHERE user_id = ? ORDER BY id", [user["id"]])]
    finally:
        database.close()


def test_an_admin_publishes_new_terms_and_a_french_reader_sees_them(page, server, browser):
    before = prepare(server)
    new = before + 1
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, server)
    page.get_by_role("navigation", name="Admin console").get_by_role("link", name="Terms of use").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Terms of use")
    expect(page.get_by_role("link", name="Terms of use").first).to_have_attribute("aria-current", "page")
    english = page.get_by_role("group", name="English")
    expect(english.get_by_label("Title")).not_to_have_value("")  # filled in from the version in force
    shot(page, "edit")
    check_accessibility(page)

    english.get_by_label("Title").fill(f"Terms of use, edition {new}")
    french_body = page.get_by_role("group", name="French").get_by_label("Text")
    french_body.fill(french_body.input_value() + "\n\n" + NEW_PARAGRAPH)
    page.get_by_role("button", name="Review the changes").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Publish version {new}?")
    expect(page.get_by_text("Everyone will be asked to accept it at their next login or link access.")).to_be_visible()
    expect(page.get_by_role("row", name="English Changed: the title")).to_be_visible()
    expect(page.get_by_role("row", name="French Changed: 1 paragraph")).to_be_visible()
    expect(page.get_by_role("row", name="Dutch Unchanged")).to_be_visible()
    expect(page.locator("ins", has_text=NEW_PARAGRAPH)).to_be_visible()
    shot(page, "confirm")
    check_accessibility(page)

    # Back to editing keeps the edits; reviewing again leads to the same confirmation.
    page.get_by_role("button", name="Back to editing").click()
    expect(page.get_by_role("group", name="English").get_by_label("Title")).to_have_value(f"Terms of use, edition {new}")
    assert page.get_by_role("group", name="French").get_by_label("Text").input_value().endswith(NEW_PARAGRAPH)
    page.get_by_role("button", name="Review the changes").click()
    page.get_by_role("button", name=f"Publish version {new}").click()

    expect(page.get_by_role("status")).to_have_text(
        f"Version {new} is published. Everyone is asked to accept it at their next login or link access.")
    expect(page.locator("dl.facts")).to_contain_text("Ada Admin (admin@registry.example)")
    shot(page, "published")
    check_accessibility(page)

    page.get_by_role("link", name="Who accepted which version").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Who accepted the terms of use")
    expect(page.get_by_role("link", name=f"Version {new}", exact=True)).to_be_visible()
    shot(page, "acceptances")
    check_accessibility(page)
    page.get_by_role("button", name="Log out").click()

    # A French reader: the login page asks for the new version, the terms it links to are the new text.
    context = browser.new_context(locale="fr-FR")
    french = context.new_page()
    french.set_default_timeout(10_000)
    french.set_viewport_size({"width": 1280, "height": 900})
    try:
        french.goto(server.url + "/login")
        expect(french.locator(".terms-note")).to_contain_text(f"(version {new})")
        french.locator(".terms-note").get_by_role("link").click()
        expect(french.get_by_text(f"Version {new}", exact=True)).to_be_visible()
        expect(french.get_by_text(NEW_PARAGRAPH)).to_be_visible()
        expect(french.get_by_role("heading", level=1)).to_have_text(terms_text.VERSION_1["fr"][0])
        shot(french, "french-reader")
        french.goto(server.url + "/login")
        french.get_by_label("Adresse e-mail").fill(FR_EMAIL)
        french.get_by_label("Mot de passe").fill(FR_PASSWORD)
        french.get_by_role("button", name="Se connecter").click()
        expect(french.get_by_role("button", name="Se déconnecter")).to_be_visible()
    finally:
        context.close()
    assert accepted_versions(server, FR_EMAIL)[-1] == new
