"""In Chromium: an upload cut halfway whose session then ended is refused with a clear message,
and after a new login in another tab the same file continues it (journey 4 after a long pause)."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timedelta, timezone

from playwright.sync_api import expect

from tests.browser.conftest import login

MAKE_FILE = """() => new File(["p;q\\n".repeat(600000)], "after-login.csv", {type: "text/csv", lastModified: 1700000000000})"""
DROP = f"""() => {{
  const transfer = new DataTransfer();
  transfer.items.add(({MAKE_FILE})());
  document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {{dataTransfer: transfer, bubbles: true, cancelable: true}}));
}}"""


def end_latest_session(server) -> None:
    """The line stayed down past the idle timeout: the newest session's last activity two hours back."""
    with sqlite3.connect(server.env["RELAIS_DATA_DIR"] + "/relais.db", timeout=30) as conn:
        conn.execute("UPDATE sessions SET last_seen_at = ? WHERE id_hash = (SELECT id_hash FROM sessions"
                     " ORDER BY created_at DESC LIMIT 1)",
                     [(datetime.now(timezone.utc) - timedelta(hours=2)).isoformat(timespec="microseconds")])


def test_after_the_session_ended_a_new_login_in_another_tab_continues_the_upload(page, server):
    login(page, server)
    page.goto(server.url + "/files")
    size = page.evaluate(f"() => ({MAKE_FILE})().size")
    half = size // 2
    # The first half arrives, then the line drops (tus-js-client remembers the upload, as the uploader does).
    page.evaluate(f"""() => new Promise((done, failed) => {{
      const upload = new tus.Upload(({MAKE_FILE})(), {{
        endpoint: "/tus/", chunkSize: {half}, metadata: {{filename: "after-login.csv", filetype: "text/csv"}},
        headers: {{"x-csrftoken": document.getElementById("uploader").dataset.csrf}},
        onChunkComplete: () => {{ upload.abort().then(done); }}, onError: failed}});
      upload.start();
    }})""")
    end_latest_session(server)

    seen = []
    page.context.on("request", lambda r: "/tus/" in r.url and seen.append((r.method, r.headers.get("upload-offset"))))
    page.evaluate(DROP)  # the same file again, in the tab whose session has ended
    item = page.locator("#transfers li").filter(has_text="after-login.csv")
    expect(item.locator(".status")).to_contain_text("Your session has ended. Log in again", timeout=15_000)
    assert ("HEAD", None) in seen and not any(method == "PATCH" for method, _ in seen)

    other = page.context.new_page()  # a new tab, a new login
    login(other, server)
    other.goto(server.url + "/files")
    other.evaluate(DROP)
    expect(other.locator("#transfers li .status")).to_have_text("Uploaded", timeout=30_000)
    assert [offset for method, offset in seen if method == "PATCH"] == [str(half)]  # continued, not begun again
    assert not any(method == "POST" for method, _ in seen)
    content = ("p;q\n" * 600000).encode()
    expect(other.locator("#file-list").get_by_text(hashlib.sha256(content).hexdigest())).to_be_visible()
    other.close()
