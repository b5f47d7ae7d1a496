"""Browser tests: a real server process and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import email
import email.policy
import os
import time
from collections.abc import Callable
from email.message import EmailMessage
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


def new_staff_account(page, server, email: str, name: str) -> str:
    """An admin logs in and makes a staff account on the Accounts page; returns its one-time link."""
    login(page, server)
    page.get_by_role("navigation", name="Admin console").get_by_role("link", name="Accounts").click()
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Full name").fill(name)
    page.get_by_role("button", name="Create account").click()
    return page.locator("#login-link").inner_text()


def choose_password(page, link: str, password: str) -> None:
    """Open a one-time link and choose the account's password with it, as its person would."""
    page.goto(link)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("New password", exact=True).fill(password)
    page.get_by_label("New password again").fill(password)
    page.get_by_role("button", name="Save password").click()


class Outbox:
    """The server's outbox from a point on: the browser tests share one server, and a mail an
    earlier test set off may still land after this one began, so mails are picked by who they are
    for and what they say, never counted."""

    def __init__(self, server) -> None:
        self.folder = Path(server.env["RELAIS_DATA_DIR"]) / "outbox"
        self.seen = set(self.folder.glob("*.eml")) if self.folder.exists() else set()

    def wait(self, to: str, count: int = 1, where: Callable[[str], bool] = lambda text: True,
             timeout: float = 20) -> list[EmailMessage]:
        """The mails to ``to`` that arrived since, whose plain text ``where`` accepts, once there
        are ``count`` of them (in the order they were written)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in map(read_mail, sorted(set(self.folder.glob("*.eml")) - self.seen))
                     if m["To"].addresses[0].addr_spec == to and where(plain(m))]  # "Name <to>" too
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"{count} mails to {to} expected in {self.folder}, found {len(found)}"
                return found
            time.sleep(0.2)


def read_mail(path: Path) -> EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def plain(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()
