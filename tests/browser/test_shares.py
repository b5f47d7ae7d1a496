"""Send files in Chromium: staff in English send to a recipient who reads French, end to end."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import Outbox, check_accessibility, login
from tests.browser.test_files import DROP


def test_send_files_and_download_them_as_the_recipient(page, browser, server, tmp_path):
    report = "patient;code\n" + "".join(f"{i};C{i % 97:02d}\n" for i in range(50_000))
    notes = "remarque,valeur\nété,1\n"
    outbox = Outbox(server)

    # Staff, in English: upload two files, choose them, address the mail in French, send.
    login(page, server)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Shares").click()
    page.get_by_role("link", name="Send files").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Send files")
    check_accessibility(page)
    refreshes = []
    page.on("request", lambda r: "/shares/new/files" in r.url and refreshes.append(r.url))
    page.get_by_label("Message (in the e-mail)").fill("Voici les données demandées.")
    page.get_by_label("Your own password (optional)").fill("typed then cleared")
    page.evaluate(DROP, [[["rapport 2026.csv", report], ["notes.csv", notes]]])
    for name in ("rapport 2026.csv", "notes.csv"):
        page.get_by_role("checkbox", name=re.compile(re.escape(name))).check(timeout=30_000)
    # The list refreshes after each upload; the form's other fields never travel in its URL.
    assert refreshes and not any("message" in url or "password" in url or "csrf" in url for url in refreshes)
    page.get_by_label("Your own password (optional)").fill("")
    page.get_by_label("Recipients' e-mail addresses").fill("dr.dupont@hopital.example")
    page.get_by_label("Language of the e-mail").select_option("fr")
    page.get_by_label("Also make a one-time link").check()
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Files sent")
    password = page.locator("#share-password").inner_text()
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", password)
    check_accessibility(page)

    [message] = outbox.wait("dr.dupont@hopital.example")
    assert message["Subject"] == "Ada Admin a partagé des fichiers avec vous"
    link = re.search(r"http://127\.0\.0\.1:\d+/s/[A-Za-z0-9_-]+", message.get_body(("plain",)).get_content()).group(0)

    # The recipient, in a fresh French browser: password, Access, files, downloads.
    context = browser.new_context(locale="fr-BE", accept_downloads=True)
    guest = context.new_page()
    try:
        guest.goto(link)
        expect(guest.locator("html")).to_have_attribute("lang", "fr")
        check_accessibility(guest)
        guest.get_by_label("Mot de passe").fill("pas-le-bon-mot-de-passe")
        guest.get_by_role("button", name="Accéder").click()
        expect(guest.get_by_role("alert")).to_be_visible()
        guest.get_by_label("Mot de passe").fill(password)
        guest.get_by_role("button", name="Accéder").click()
        expect(guest.get_by_role("cell", name="rapport 2026.csv", exact=True)).to_be_visible()
        expect(guest.get_by_text(hashlib.sha256(report.encode()).hexdigest())).to_be_visible()
        check_accessibility(guest)
        with guest.expect_download() as download:
            guest.get_by_role("link", name=re.compile("rapport 2026.csv")).click()
        assert Path(download.value.path()).read_bytes() == report.encode()
        with guest.expect_download() as download:
            guest.get_by_role("link", name=re.compile("zip")).click()
        archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
        assert archive.read("notes.csv") == notes.encode() and archive.read("rapport 2026.csv") == report.encode()
    finally:
        context.close()

    # Back to staff: the activity shows it, and a receipt is on its way.
    page.goto(server.url + "/shares")
    page.locator("a[href^='/shares/']").filter(has_text=re.compile(r"\d{2}:\d{2}")).first.click()  # its creation time
    expect(page.get_by_role("cell", name="Downloaded completely").first).to_be_visible()
    expect(page.get_by_role("cell", name="Wrong password")).to_be_visible()
    check_accessibility(page)
    [receipt] = outbox.wait("admin@registry.example", where=lambda text: "rapport 2026.csv" in text)


def send_one_file(page, server, name: str, text: str) -> None:
    """On the send form: upload one file, address it, Send."""
    page.goto(server.url + "/shares/new")
    page.evaluate(DROP, [[[name, text]]])
    page.get_by_role("checkbox", name=re.compile(re.escape(name))).check(timeout=30_000)
    page.get_by_label("Recipients' e-mail addresses").fill("dr.peeters@hospital.example")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Files sent")


def test_send_then_reload_then_revoke_through_the_confirm_page(page, server):
    login(page, server)
    send_one_file(page, server, "to-revoke.csv", "a;b\n1;2\n")
    expect(page.locator("#share-password")).to_be_visible()
    # Refreshing the page after Send neither sends the form again nor shows the password again.
    response = page.reload()
    assert response.status == 200 and response.request.method == "GET"
    expect(page.get_by_role("heading", level=1)).to_have_text("Files sent")
    expect(page.locator("#share-password")).to_have_count(0)
    expect(page.locator("#password-gone")).to_be_visible()

    page.get_by_role("link", name="See this share and who opens it").click()
    page.get_by_role("link", name="Revoke the link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke the link?")
    expect(page.get_by_role("cell", name="to-revoke.csv", exact=True)).to_be_visible()
    expect(page.get_by_text("dr.peeters@hospital.example")).to_be_visible()
    check_accessibility(page)
    page.get_by_role("link", name="Cancel, keep the share").click()
    expect(page.locator(".status")).to_have_text("Active")
    page.get_by_role("link", name="Revoke the link").click()
    page.get_by_role("button", name="Revoke the link and delete the files").click()
    expect(page.get_by_role("status")).to_have_text("The link was revoked and its files deleted.")
    expect(page.locator(".status")).to_have_text("Revoked")
    check_accessibility(page)


def test_remove_on_a_finished_upload_unticks_it(page, server):
    login(page, server)
    page.goto(server.url + "/shares/new")
    page.evaluate(DROP, [[["keep.csv", "k;1\n"], ["drop-me.csv", "d;22\n"]]])
    keep = page.get_by_role("checkbox", name=re.compile("keep.csv"))
    dropped = page.get_by_role("checkbox", name=re.compile("drop-me.csv"))
    expect(keep).to_be_checked(timeout=30_000)
    expect(dropped).to_be_checked(timeout=30_000)
    page.get_by_role("button", name="Remove drop-me.csv").click()
    expect(dropped).not_to_be_checked()
    expect(keep).to_be_checked()
    expect(page.locator("#transfers li")).to_have_count(1)
