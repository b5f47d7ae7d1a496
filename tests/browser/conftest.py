"""Browser tests: a real server process and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"
CHROMIUM = "/usr/bin/chromium"
ADMIN_EMAIL = "admin@registry.example"
ADMIN_PASSWORD = "violet tugboat marmalade"
# Without the background-networking flags Chromium tries to reach Google at every start.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python app.py serve` on a free port over its own data folder."""

    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RELAIS_DATA_DIR": str(data_dir), "RELAIS_PORT": str(self.port),
                    "RELAIS_BASE_URL": self.url, "RELAIS_MASTER_KEY_FILE": str(data_dir.parent / "master.key")}
        self.log = open(data_dir.parent / "server.log", "w")
        self.process = None

    def command(self, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=60, check=True)

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "app.py", "serve"], cwd=ROOT, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start: " + Path(self.log.name).read_text())

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.log.close()


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
