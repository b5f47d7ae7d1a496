"""Browser tests: a real server process and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.serving import Server

AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"
CHROMIUM = "/usr/bin/chromium"
ADMIN_EMAIL = "admin@registry.example"
ADMIN_PASSWORD = "violet tugboat marmalade"
# Without the background-networking flags Chromium tries to reach Google at every start.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("relais") / "data"
    srv = Server(data_dir)
    srv.command("create-admin", "--email", ADMIN_EMAIL, "--name", "Ada Admin", "--password-stdin", stdin=ADMIN_PASSWORD)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: apt-get install chromium (see .ci/run)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(locale="en-GB", accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.csp_violations = []
    # A page that breaks its own Content-Security-Policy would work in tests and fail for people.
    page.on("console", lambda m: "Content Security Policy" in m.text and page.csp_violations.append(m.text))
    yield page
    assert page.csp_violations == []
    context.close()


def check_accessibility(page) -> None:
    """axe-core over the current page: no WCAG 2.0/2.1 A or AA violation."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # evaluate() runs through the DevTools protocol, so the page's CSP does not block it.
        page.evaluate(AXE.read_text())
    result = page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    problems = [f"{v['id']}: {v['help']} ({[n['target'] for n in v['nodes']]})" for v in result["violations"]]
    assert problems == [], f"{page.url}: {problems}"


def login(page, server, email=ADMIN_EMAIL, password=ADMIN_PASSWORD) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
