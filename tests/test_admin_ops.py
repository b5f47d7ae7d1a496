"""The admin's Outbox page: who may see it and retry, failed mail listed with what went wrong,
Retry now delivering it, paging. Mail fails for real (an SMTP port nothing listens on) and is then
delivered to an aiosmtpd server. The Storage page and the free-space warning are in
tests/test_admin_storage.py (on a small disk of their own)."""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller

from relais import clock, mail, times
from tests.conftest import AuthActions, audit_rows, csrf_token
from tests.serving import free_port
from tests.test_mail import Inbox, enqueue, smtp, use_smtp  # noqa: F401  (smtp: the aiosmtpd fixture)
from tests.test_partners import PARTNER_EMAIL, activate, make_partner

ADMIN = "admin@registry.example"
PAGES = ("/admin/outbox", "/admin/storage")


def failed_mail(app, **extra) -> tuple[int, mail.Transport, int]:
    """A mail that a real SMTP client could not hand over (nothing listens on the port):
    (its outbox id, the transport, the port)."""
    port = free_port()
    transport = use_smtp(app, port)
    outbox_id = enqueue(app, **extra)
    assert mail.send_due(app.state.db, transport) == 0
    return outbox_id, transport, port


def row(app, outbox_id: int) -> dict:
    return app.state.db.query_one("SELECT * FROM outbox WHERE id = ?", [outbox_id])


def text(response) -> str:
    """The page's text as a reader sees it: tags out, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.text)).split())


# -- who may -----------------------------------------------------------------------------------

def test_anonymous_visitors_are_sent_to_log_in(app, client):
    outbox_id = enqueue(app)
    for path in PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path
    before = row(app, outbox_id)
    for path in (f"/admin/outbox/{outbox_id}/retry", "/admin/outbox/retry"):
        response = client.post(path, data={"_csrf_token": csrf_token(client)}, follow_redirects=False)
        assert response.status_code == 401, path  # a form's POST is not sent on to the login page
    assert row(app, outbox_id) == before and audit_rows(app, "mail.retry") == []


def test_staff_are_refused(app, client, auth, staff):
    outbox_id, _, _ = failed_mail(app)
    before = row(app, outbox_id)
    auth.login()
    for path in PAGES:
        assert client.get(path).status_code == 403, path
    assert auth.post(f"/admin/outbox/{outbox_id}/retry").status_code == 403
    assert auth.post("/admin/outbox/retry").status_code == 403
    assert row(app, outbox_id) == before and audit_rows(app, "mail.retry") == []


def test_partners_are_refused_and_each_try_is_audited(app, client, staff, frozen):
    outbox_id, _, _ = failed_mail(app)
    before = row(app, outbox_id)
    activate(app, client, make_partner(app, staff))
    auth = AuthActions(client)
    for path in PAGES:
        assert client.get(path).status_code == 403, path
    assert auth.post(f"/admin/outbox/{outbox_id}/retry").status_code == 403
    assert row(app, outbox_id) == before
    refused = [(r["object"], r["actor"]) for r in audit_rows(app, "partner.refused")]
    assert refused == [("/admin/outbox", PARTNER_EMAIL), ("/admin/storage", PARTNER_EMAIL),
                       (f"/admin/outbox/{outbox_id}/retry", PARTNER_EMAIL)]


def test_a_retry_without_the_csrf_token_changes_nothing(app, client, auth, admin, frozen):
    outbox_id, _, _ = failed_mail(app)
    before = row(app, outbox_id)
    auth.login(email=ADMIN)
    frozen.advance(seconds=5)
    for path in (f"/admin/outbox/{outbox_id}/retry", "/admin/outbox/retry"):
        response = client.post(path, data={}, follow_redirects=False)
        assert response.status_code == 403 and "Form expired" in response.text, path
    assert row(app, outbox_id) == before and audit_rows(app, "mail.retry") == audit_rows(app, "mail.retry_all") == []


# -- the outbox ------------------------------------------------------------------------------

def test_a_failed_mail_is_listed_with_its_attempts_error_and_next_try_but_no_body(app, client, auth, admin, frozen):
    outbox_id, _, _ = failed_mail(app, subject="Files for you from the registry")
    failed = row(app, outbox_id)
    assert failed["attempts"] == 1 and "ConnectionRefused" in failed["last_error"]
    auth.login(email=ADMIN)
    page = client.get("/admin/outbox")
    assert page.status_code == 200
    shown = text(page)
    assert "1 e-mail failed, to be retried" in shown and "0 e-mails waiting to be sent" in shown
    table = page.text.split('id="outbox-failed"', 1)[1].split("</table>", 1)[0]
    assert "dr.peeters@hospital.example" in table and "Files for you from the registry" in table
    assert html.escape(failed["last_error"], quote=False) in table
    assert failed["next_attempt_at"] == clock.iso(frozen.moment + timedelta(minutes=1))  # the first back-off
    assert times.show(failed["next_attempt_at"], "en") in html.unescape(table)
    assert "<td>1</td>" in table  # its attempts
    assert f'action="/admin/outbox/{outbox_id}/retry"' in table
    assert "Hello." not in page.text and "The link" not in page.text  # a body holds the link until sent


def test_retry_now_makes_the_mail_due_wakes_the_sender_and_it_arrives(app, client, auth, admin, frozen):
    outbox_id, _, port = failed_mail(app)
    assert row(app, outbox_id)["next_attempt_at"] > clock.now_iso()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)  # the mail server is back
    controller.start()
    sender = app.state.mail_sender
    sender.interval = 3600  # it would not look again for an hour: only the wake-up sends the mail
    sender.start()
    try:
        time.sleep(0.5)  # its first look: nothing due yet
        assert inbox.messages == []
        auth.login(email=ADMIN)
        frozen.advance(seconds=10)
        response = auth.post(f"/admin/outbox/{outbox_id}/retry")
        assert response.status_code == 303 and response.headers["location"] == f"/admin/outbox?retried={outbox_id}"
        [retried] = audit_rows(app, "mail.retry")
        assert retried["actor"] == ADMIN and retried["object"] == "share:1"
        assert '"to": "dr.peeters@hospital.example"' in retried["detail"] and f'"outbox_id": {outbox_id}' in retried["detail"]
        deadline = time.monotonic() + 10
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sender.stop()
        controller.stop()
    [message] = inbox.messages
    assert message["Message-ID"] == row(app, outbox_id)["message_id"]
    assert row(app, outbox_id)["status"] == "sent" and row(app, outbox_id)["attempts"] == 2
    page = client.get(response.headers["location"])
    assert f"E-mail no. {outbox_id} is being sent again now." in text(page)
    assert "0 e-mails failed, to be retried" in text(page) and "1 e-mail sent" in text(page)


def test_retry_sets_the_next_try_to_now(app, client, auth, admin, frozen):
    outbox_id, transport, _ = failed_mail(app)
    auth.login(email=ADMIN)
    frozen.advance(seconds=20)
    assert auth.post(f"/admin/outbox/{outbox_id}/retry").status_code == 303
    assert row(app, outbox_id)["next_attempt_at"] == clock.now_iso()
    assert row(app, outbox_id)["attempts"] == 1  # counted when tried, not when asked for
    assert mail.send_due(app.state.db, transport) == 0 and row(app, outbox_id)["attempts"] == 2  # due: tried again


def test_a_retry_of_a_sent_or_unknown_mail_says_so_and_changes_nothing(app, client, auth, admin, smtp):
    transport = use_smtp(app, smtp.port)
    sent_id = enqueue(app)
    assert mail.send_due(app.state.db, transport) == 1
    before = row(app, sent_id)
    auth.login(email=ADMIN)
    response = auth.post(f"/admin/outbox/{sent_id}/retry")
    assert response.status_code == 409
    assert "This e-mail was already sent: there is nothing to retry." in text(response)
    response = auth.post("/admin/outbox/999999/retry")
    assert response.status_code == 404 and "This e-mail is not in the outbox." in text(response)
    assert row(app, sent_id) == before and len(smtp.messages) == 1
    assert audit_rows(app, "mail.retry") == []


def test_retry_all_failed(app, client, auth, admin, frozen):
    first, transport, _ = failed_mail(app)
    second = enqueue(app, to="an.peeters@azsintjan.example")
    assert mail.send_due(app.state.db, transport) == 0
    sent_id = enqueue(app, to="someone@elsewhere.example")
    auth.login(email=ADMIN)
    frozen.advance(seconds=30)
    response = auth.post("/admin/outbox/retry")
    assert response.status_code == 303 and response.headers["location"] == "/admin/outbox?retried_all=2"
    assert {row(app, i)["next_attempt_at"] for i in (first, second)} == {clock.now_iso()}
    assert row(app, sent_id)["attempts"] == 0  # not failed: untouched
    [retried] = audit_rows(app, "mail.retry_all")
    assert retried["detail"] == '{"mails": 2}' and retried["actor"] == ADMIN
    assert "2 e-mails that failed are being sent again now." in text(client.get(response.headers["location"]))
    again = auth.post("/admin/outbox/retry")  # both are due already: nothing to retry, nothing recorded
    assert again.headers["location"] == "/admin/outbox?retried_all=0" and len(audit_rows(app, "mail.retry_all")) == 1
    assert "No e-mail that failed was waiting for its next try." in text(client.get(again.headers["location"]))


def test_each_list_is_paged(app, client, auth, admin, frozen):
    for n in range(53):
        enqueue(app, subject=f"Waiting mail {n:02}")
    for n in range(51):
        frozen.advance(seconds=1)
        sent_id = enqueue(app, subject=f"Sent mail {n:02}")
        # As the sender marks it (no server needed to page a list), a second apart.
        app.state.db.write(mail._sent, row(app, sent_id))
    auth.login(email=ADMIN)
    first = client.get("/admin/outbox")
    assert "53 e-mails waiting to be sent" in text(first) and "Page 1 of 2" in text(first)
    assert "Waiting mail 00" in first.text and "Waiting mail 49" in first.text and "Waiting mail 50" not in first.text
    assert 'href="/admin/outbox?waiting=2"' in first.text
    assert "51 e-mails sent" in text(first) and "Sent mail 50" in first.text and "Sent mail 00" not in first.text
    second = client.get("/admin/outbox?waiting=2&sent=2")
    assert "Waiting mail 50" in second.text and "Waiting mail 52" in second.text and "Waiting mail 49" not in second.text
    assert "Sent mail 00" in second.text and "Sent mail 01" not in second.text  # the most recent first
    assert text(second).count("Page 2 of 2") == 2
    # Each pager keeps the other list on its page.
    assert 'href="/admin/outbox?sent=2&amp;waiting=1"' in second.text
    assert 'href="/admin/outbox?waiting=2&amp;sent=1"' in second.text


def test_without_a_mail_server_the_outbox_says_where_mails_go(app, client, auth, admin, smtp):
    """With RELAIS_SMTP_HOST empty, "sent" means written to the outbox folder: the page says so, and
    says nothing of a mail server; with one set, it does not."""
    auth.login(email=admin.email)
    page = text(client.get("/admin/outbox"))
    assert "No mail server is set" in page and str(app.state.config.outbox_dir) in page
    assert "accepted by the mail server" not in page
    use_smtp(app, smtp.port)
    page = text(client.get("/admin/outbox"))
    assert "No mail server is set" not in page and "accepted by the mail server" in page
