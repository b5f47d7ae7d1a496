"""An admin at the Outbox and Storage pages, in Chromium, against a server whose mail server is
down: a mail fails for real, the mail server comes back, the admin clicks Retry now and the mail
arrives; then the Storage page shows the data folder's disk."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import expect

from relais import audit, i18n, mail
from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, check_accessibility, login
from tests.serving import Server, free_port
from tests.test_mail import Inbox

SHOTS = Path("/tmp/shots")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This module's own server (the shared one writes mail to files, which never fails), sending
    to an SMTP port where nothing listens yet."""
    data_dir = tmp_path_factory.mktemp("relais-ops") / "data"
    srv = Server(data_dir)
    srv.smtp_port = free_port()
    srv.env.update(RELAIS_SMTP_HOST="127.0.0.1", RELAIS_SMTP_PORT=str(srv.smtp_port), RELAIS_SMTP_TLS="none")
    srv.command("create-admin", "--email", ADMIN_EMAIL, "--name", "Ada Admin", "--password-stdin", stdin=ADMIN_PASSWORD)
    srv.start()
    yield srv
    srv.stop()


def queue_and_wait_for_failure(server) -> int:
    """A mail queued behind the server's back, once its sender has failed to hand it over."""
    database = server.database()
    try:
        outbox_id = database.write(lambda db: mail.queue(
            db, audit.SYSTEM, to="dr.peeters@hospital.example", to_name="Dr. An Peeters", subject="Files for you",
            text="Hello.", html="<p>Hello.</p>", kind="share", object="share:browser"))
        deadline = time.monotonic() + 20
        while database.scalar("SELECT attempts FROM outbox WHERE id = ?", [outbox_id]) == 0:
            assert time.monotonic() < deadline, "the server's sender never tried the mail"
            time.sleep(0.2)
        return outbox_id
    finally:
        database.close()


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"ops-{name}.png"), full_page=True)


def test_an_admin_retries_a_failed_mail_from_the_outbox_and_sees_the_storage(page, server):
    outbox_id = queue_and_wait_for_failure(server)
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, server)
    page.get_by_role("navigation", name="Admin console").get_by_role("link", name="Outbox").click()
    expect(page.get_by_role("heading", name="1 e-mail failed, to be retried")).to_be_visible()
    failed = page.locator("#outbox-failed tbody tr").filter(has_text="dr.peeters@hospital.example")
    expect(failed).to_contain_text("Files for you")
    expect(failed).to_contain_text("ConnectionRefusedError")
    expect(failed.locator("td").nth(3)).to_have_text("1")  # attempts
    check_accessibility(page)
    shoot(page, "outbox-failed")

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=server.smtp_port)  # the mail server is back
    controller.start()
    try:
        failed.get_by_role("button", name="Retry now").click()
        expect(page.get_by_role("status")).to_contain_text(f"E-mail no. {outbox_id} is being sent again now.")
        deadline = time.monotonic() + 10  # well before the back-off's minute is over: the click woke the sender
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        controller.stop()
    assert [m["To"] for m in inbox.messages] == ['"Dr. An Peeters" <dr.peeters@hospital.example>']
    page.reload()
    expect(page.get_by_role("heading", name="0 e-mails failed, to be retried")).to_be_visible()
    expect(page.locator("#outbox-sent tbody tr").filter(has_text="dr.peeters@hospital.example")).to_contain_text("Files for you")
    shoot(page, "outbox-sent")

    page.get_by_role("navigation", name="Admin console").get_by_role("link", name="Storage").click()
    expect(page.get_by_role("heading", name="Storage", exact=True)).to_be_visible()
    data_dir = server.env["RELAIS_DATA_DIR"]
    expect(page.locator("#disk-total")).to_have_text(i18n.human_size("en", shutil.disk_usage(data_dir).total))
    expect(page.locator("#disk-free")).to_contain_text("%")
    expect(page.locator("#held-files")).to_contain_text("Stored files")
    expect(page.locator("#held-database")).to_contain_text("Database")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    check_accessibility(page)
    shoot(page, "storage")
    if os.environ.get("RELAIS_SCREENSHOTS"):
        page.screenshot(path=f"{os.environ['RELAIS_SCREENSHOTS']}/storage.png")


def test_the_storage_page_warns_once_free_space_is_below_the_threshold(page, server):
    total, _, free = shutil.disk_usage(server.env["RELAIS_DATA_DIR"])
    threshold = min(90, int(free * 100 / total) + 5)  # above what is free now: the disk is "low"
    if free * 100 >= threshold * total:
        pytest.skip("the test machine's disk is more than 85% free: no threshold (at most 90%) is above it")
    database = server.database()
    try:
        database.write(lambda db: db.execute(
            "INSERT INTO settings (name, value, updated_at) VALUES ('storage_warning_free_percent', ?, '')"
            " ON CONFLICT(name) DO UPDATE SET value = excluded.value", [str(threshold)]))
    finally:
        database.close()
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, server)
    page.goto(server.url + "/admin/storage")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Free space is below the warning threshold.")
    expect(alert).to_contain_text(f"the threshold is {threshold}%")
    expect(page.locator("#disk-state")).to_have_text("Below the threshold")
    check_accessibility(page)
    shoot(page, "storage-low")
