"""Uploads from a real browser: Chromium (Debian's, driven by Playwright) uploads a file with
Relais's own uploader on My files, and, as the baseline, sends the same File in one XHR PUT to
the bare ASGI app. Used by ``bench/transfer.py`` when Playwright and Chromium are installed.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--ignore-certificate-errors"]  # Caddy's certificate is its own (tls internal)

PUT = """(name) => new Promise((done, failed) => {
  const file = document.getElementById("file").files[0], xhr = new XMLHttpRequest();
  xhr.open("PUT", "/" + name);
  xhr.onload = () => xhr.status < 300 ? done() : failed(new Error("status " + xhr.status));
  xhr.onerror = () => failed(new Error("network error"));
  xhr.send(file);
})"""


def available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return CHROMIUM.exists()


class Browser:
    def __init__(self):
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        self._pages = {}

    def open(self, base: str, login: tuple[str, str] | None = None):
        """The page for ``base``, logged in the first time. Call it before timing an upload: a login
        verifies an argon2id hash, which takes its 64 MiB of memory and a fair share of a second."""
        if base not in self._pages:
            page = self._pages[base] = self._browser.new_context(ignore_https_errors=True).new_page()
            if login:
                page.goto(base + "/login")
                page.fill("#email", login[0])
                page.fill("#password", login[1])
                page.locator("form button[type=submit]").first.click()
                page.wait_for_url(base + "/")
        return self._pages[base]

    def relais_upload(self, base: str, login: tuple[str, str], source: Path) -> None:
        """Add ``source`` on My files and wait until the uploader says it is stored."""
        page = self.open(base, login)
        page.goto(base + "/files")
        page.set_input_files("#uploader-input", str(source))
        page.wait_for_function("() => { const s = document.querySelector('#transfers li .status');"
                               " return s && /Uploaded|failed/i.test(s.textContent); }", polling=20, timeout=0)
        status = page.locator("#transfers li .status").text_content()
        if status != "Uploaded":
            raise RuntimeError(f"browser upload: {status}")

    def bare_upload(self, base: str, source: Path) -> None:
        """Send ``source`` as one XHR PUT of the File to the bare app (which stores any PUT)."""
        page = self.open(base)
        page.goto(base + "/")
        page.set_content('<input type="file" id="file">')
        page.set_input_files("#file", str(source))
        page.evaluate(PUT, "browser.bin")

    def close(self) -> None:
        self._browser.close()
        self._playwright.stop()
