"""Log in, look around, switch language, log out: in Chromium, with axe on every page."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_EMAIL, check_accessibility, login


def test_login_navigate_switch_language_and_log_out(page, server, tmp_path):
    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    check_accessibility(page)

    login(page, server)
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Ada Admin")
    check_accessibility(page)
    page.screenshot(path=str(tmp_path / "home.png"), full_page=True)

    for nav, link, heading in [("Admin console", "Accounts", "Accounts"), ("Admin console", "Audit trail", "Audit trail"),
                               ("Admin console", "Settings", "Settings"), ("Main", "Change password", "Change password")]:
        page.get_by_role("navigation", name=nav).get_by_role("link", name=link).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        check_accessibility(page)

    page.get_by_role("link", name="Audit trail").click()
    expect(page.get_by_role("cell", name="login.success").first).to_be_visible()

    # The footer's: the public page (an admin's nav has its own "Terms of use", the edit page).
    page.get_by_role("contentinfo").get_by_role("link", name="Terms of use").click()
    expect(page).to_have_url(server.url + "/terms")
    check_accessibility(page)

    for code, name, heading in [("fr", "Français", "Conditions d'utilisation"), ("nl", "Nederlands", "Gebruiksvoorwaarden"),
                                ("de", "Deutsch", "Nutzungsbedingungen")]:
        page.get_by_role("navigation", name=re.compile("Language|Langue|Taal|Sprache")).get_by_role("link", name=name).click()
        expect(page.locator("html")).to_have_attribute("lang", code)
        expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
        check_accessibility(page)

    page.get_by_role("navigation", name=re.compile("Sprache")).get_by_role("link", name="English").click()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login\?logged_out$"))
    expect(page.get_by_role("status")).to_have_text("You have been logged out.")
    page.goto(server.url + "/admin/users")
    expect(page).to_have_url(re.compile(r"/login\?next=/admin/users$"))


def test_wrong_password_is_announced(page, server):
    login(page, server, password="not the right one at all")
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("The e-mail address or the password is not correct.")
    expect(page.get_by_label("E-mail address")).to_have_value(ADMIN_EMAIL)
    check_accessibility(page)


def test_login_page_in_each_language(page, server):
    for code, button in [("nl", "Aanmelden"), ("fr", "Se connecter"), ("de", "Anmelden"), ("en", "Log in")]:
        page.goto(f"{server.url}/language/{code}?next=/login")
        expect(page.locator("html")).to_have_attribute("lang", code)
        expect(page.get_by_role("button", name=button)).to_be_visible()
        check_accessibility(page)
