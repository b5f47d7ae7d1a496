"""Two-factor login in Chromium: a staff member gets an account, enrols an authenticator app from
the QR page (its key read from the page, the codes computed with pyotp as a phone would), logs out
and logs in with password and code."""

from __future__ import annotations

import re
import time

import pyotp
from playwright.sync_api import expect

from tests.browser.conftest import check_accessibility, choose_password, login, new_staff_account

EMAIL = "totp.staff@registry.example"
PASSWORD = "amber kettle orchard 27"


def test_a_staff_member_enrols_and_logs_in_with_a_code(page, server):
    # An admin makes the account; its one-time link is shown once.
    link = new_staff_account(page, server, EMAIL, "Tess Totp")
    page.get_by_role("button", name="Log out").click()

    choose_password(page, link, PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Tess Totp")

    # Staff need no second factor by default: she chooses to set one up.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Two-factor login").click()
    expect(page.locator("#two-factor-status")).to_contain_text("Off")
    check_accessibility(page)
    page.get_by_role("link", name="Set up two-factor login").click()
    expect(page.get_by_role("img", name="QR code to scan with your authenticator app")).to_be_visible()
    check_accessibility(page)
    secret = page.locator("#totp-key").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from your app").fill("000000" if totp.now() != "000000" else "111111")
    page.get_by_role("button", name="Turn on two-factor login").click()
    expect(page.get_by_role("alert")).to_contain_text("not correct")
    page.get_by_label("Code from your app").fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor login").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your recovery codes")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    check_accessibility(page)
    page.get_by_role("link", name="I have kept them, continue").click()
    page.get_by_role("button", name="Log out").click()

    # The password alone no longer opens a session: the code's page comes next.
    login(page, server, email=EMAIL, password=PASSWORD)
    expect(page).to_have_url(re.compile(r"/login/code$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor login")
    check_accessibility(page)
    # The code just used at enrolment would be a replay: the app's next one (accepted in the window).
    page.get_by_label("Code from your app").fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Tess Totp")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Two-factor login").click()
    expect(page.locator("#two-factor-status")).to_contain_text("On")
