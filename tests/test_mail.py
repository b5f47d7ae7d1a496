"""The outbox: mails queued with the change they report, sent through a real SMTP server."""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from relais import audit, mail
from tests.serving import free_port


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


def use_smtp(app, port, **extra):
    object.__setattr__(app.state.config, "smtp_host", "127.0.0.1")
    object.__setattr__(app.state.config, "smtp_port", port)
    object.__setattr__(app.state.config, "smtp_tls", extra.pop("tls", "none"))
    for name, value in extra.items():
        object.__setattr__(app.state.config, name, value)
    return mail.Transport(app.state.config)


def enqueue(app, to="dr.peeters@hospital.example", subject="Files for you", name=""):
    return app.state.db.write(
        lambda db: mail.queue(db, audit.SYSTEM, to=to, to_name=name, subject=subject, text="Hello.\nThe link: https://x",
                              html="<p>Hello.</p>", kind="test", object="share:1", language="nl")
    )


def test_a_queued_mail_arrives_once_as_text_and_html(app, smtp):
    transport = use_smtp(app, smtp.port)
    enqueue(app, name="Dr. An Peeters")
    assert mail.send_due(app.state.db, transport) == 1
    assert mail.send_due(app.state.db, transport) == 0
    [message] = smtp.messages
    assert message["To"] == "\"Dr. An Peeters\" <dr.peeters@hospital.example>"
    assert message["Subject"] == "Files for you" and message["Content-Language"] == "nl"
    assert message.get_body(("plain",)).get_content().startswith("Hello.")
    assert message.get_body(("html",)).get_content().strip() == "<p>Hello.</p>"
    row = app.state.db.query_one("SELECT * FROM outbox")
    assert row["status"] == "sent" and row["message_id"] == message["Message-ID"]
    actions = [r["action"] for r in app.state.db.query("SELECT action FROM audit_log")]
    assert actions == ["mail.queued", "mail.sent"]


def test_smtp_down_delays_the_mail_and_it_arrives_once_when_up(app, frozen):
    port = free_port()  # nothing listens here yet
    transport = use_smtp(app, port)
    enqueue(app)
    assert mail.send_due(app.state.db, transport) == 0
    row = app.state.db.query_one("SELECT * FROM outbox")
    assert row["status"] == "pending" and row["attempts"] == 1 and "ConnectionRefused" in row["last_error"]
    assert mail.send_due(app.state.db, transport) == 0  # not due again before the back-off
    assert app.state.db.scalar("SELECT attempts FROM outbox") == 1

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        frozen.advance(seconds=61)
        assert mail.send_due(app.state.db, transport) == 1
        frozen.advance(hours=2)
        assert mail.send_due(app.state.db, transport) == 0
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    assert app.state.db.query_one("SELECT status, attempts FROM outbox") == {"status": "sent", "attempts": 2}


def test_backoff_grows_and_is_capped(app, frozen):
    transport = use_smtp(app, free_port())
    enqueue(app)
    delays = []
    for _ in range(9):
        before = frozen.moment
        mail.send_due(app.state.db, transport)
        due = datetime.datetime.fromisoformat(app.state.db.scalar("SELECT next_attempt_at FROM outbox"))
        delays.append(int((due - before).total_seconds()))
        frozen.moment = due
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert len([r for r in app.state.db.query("SELECT * FROM audit_log WHERE action = 'mail.deferred'")]) == 1


def test_without_smtp_mail_goes_to_eml_files(app, config, capsys):
    transport = mail.Transport(app.state.config)
    enqueue(app)
    assert mail.send_due(app.state.db, transport) == 1
    [eml] = list(config.outbox_dir.glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "dr.peeters@hospital.example"
    assert str(eml) in capsys.readouterr().out


@pytest.mark.parametrize(
    "to, name, subject",
    [
        ("victim@hospital.example\r\nBcc: everyone@evil.example", "", "Files"),
        ("victim@hospital.example", "Dr. X\r\nBcc: everyone@evil.example", "Files"),
        ("victim@hospital.example", "", "Files\nBcc: everyone@evil.example"),
        ("victim@hospital.example, other@evil.example", "", "Files"),
        ("not an address", "", "Files"),
    ],
)
def test_nothing_a_user_typed_can_add_a_header(app, to, name, subject):
    with pytest.raises(mail.MailError):
        enqueue(app, to=to, name=name, subject=subject)
    assert app.state.db.scalar("SELECT count(*) FROM outbox") == 0
    assert app.state.db.scalar("SELECT count(*) FROM audit_log WHERE action = 'mail.queued'") == 0


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_starttls_and_login(app, tmp_path):
    cert_file, key_file = _self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.login == b"relais" and auth_data.password == b"s3cret-smtp")

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=server_context,
                            require_starttls=True, authenticator=authenticator, auth_require_tls=True)
    controller.start()
    try:
        transport = use_smtp(app, controller.port, tls="starttls", smtp_user="relais", smtp_password="s3cret-smtp",
                             smtp_ca_file=str(cert_file))
        enqueue(app)
        assert mail.send_due(app.state.db, transport) == 1
    finally:
        controller.stop()
    assert logins == [(b"relais", b"s3cret-smtp")] and len(inbox.messages) == 1


def test_the_sender_thread_sends_when_woken(app, smtp):
    transport = use_smtp(app, smtp.port)
    sender = mail.Sender(app.state.db, transport, interval=60)
    sender.start()
    try:
        enqueue(app)
        sender.wake()
        for _ in range(100):
            if smtp.messages:
                break
            import time

            time.sleep(0.05)
    finally:
        sender.stop()
    assert len(smtp.messages) == 1


# -- what the outbox keeps: only what must be kept, without the link ---------------------------

def _share_with_receipt_and_lock_warning(app, auth, staff):
    """A share whose recipient mail, receipt and lock warning have all been delivered to
    data/outbox/ (no SMTP server); returns (share id, link token, {kind: outbox id})."""
    from litestar.testing import TestClient

    from relais import settings
    from tests.conftest import BASE_URL
    from tests.test_shares import CSV, create_share, link_token, share_password, store, unlock

    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    created = create_share(auth, [stored.id])
    token, password = link_token(app), share_password(created.text)
    with TestClient(app, base_url=BASE_URL) as guest:
        unlock(guest, f"/s/{token}", password)
        assert guest.get(f"/s/{token}/files/{stored.id}").content == CSV  # the receipt
    share_id = app.state.db.scalar("SELECT id FROM shares")
    # A lock warning about the same share (as after wrong passwords), queued like links._lock does.
    app.state.db.write(lambda db: mail.queue(db, audit.SYSTEM, to=staff.email, subject="Locked", text="locked",
                                            html="", kind="share_locked", object=share_id))
    # And a mail about something else altogether.
    enqueue(app)
    assert settings.get(app.state.db.conn, "link_failures_before_lock") > 1
    assert mail.send_due(app.state.db, mail.Transport(app.state.config)) == 4
    ids = {r["kind"]: r["id"] for r in app.state.db.query("SELECT id, kind FROM outbox")}
    return share_id, token, ids


@pytest.mark.parametrize("how", ["revoke", "delete"])
def test_revoking_removes_only_the_mails_with_the_link(app, config, auth, staff, how):
    from relais import shares

    share_id, token, ids = _share_with_receipt_and_lock_warning(app, auth, staff)
    assert {p.name for p in config.outbox_dir.glob("*.eml")} == {mail.eml_path(config, i).name for i in ids.values()}
    share = shares.get(app.state.db.conn, share_id)
    getattr(shares, how)(app.state.db, config, audit.Who(actor=staff.email), share)
    left = {p.name for p in config.outbox_dir.glob("*.eml")}
    # The recipient's mail (the link, the message) is gone; the owner's receipt and lock warning
    # and the unrelated mail stay, on disk and in the table, bodies and all.
    assert left == {mail.eml_path(config, ids[k]).name for k in ("receipt", "share_locked", "test")}
    rows = {r["kind"]: r for r in app.state.db.query("SELECT * FROM outbox")}
    assert set(rows) == {"share", "receipt", "share_locked", "test"}
    assert rows["share"]["body_text"] == "" and rows["share"]["subject"]  # the record: to whom, when, what
    assert "registry.csv" in rows["receipt"]["body_text"] and rows["share_locked"]["body_text"] == "locked"


def test_an_unsent_share_mail_goes_with_its_share_and_an_unsent_warning_stays(app, config, auth, staff):
    from relais import shares
    from tests.test_shares import CSV, create_share, store

    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    create_share(auth, [stored.id])
    share_id = app.state.db.scalar("SELECT id FROM shares")
    app.state.db.write(lambda db: mail.queue(db, audit.SYSTEM, to=staff.email, subject="Locked", text="locked",
                                            html="", kind="share_locked", object=share_id))
    shares.delete(app.state.db, config, audit.SYSTEM, shares.get(app.state.db.conn, share_id))
    assert [r["kind"] for r in app.state.db.query("SELECT kind FROM outbox WHERE status = 'pending'")] == ["share_locked"]
    assert mail.send_due(app.state.db, mail.Transport(app.state.config)) == 1  # the warning still goes out


def test_a_sent_mail_keeps_no_link_token_in_the_database_nor_in_backups(app, config, auth, staff, smtp, tmp_path):
    from relais import cli
    from tests.test_shares import CSV, create_share, link_token, store

    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    created = create_share(auth, [stored.id], password_link="on")
    token = link_token(app)
    # Unsent, the mail must keep its link: it is what will be sent (and resent after a failure).
    assert token in app.state.db.scalar("SELECT body_text FROM outbox WHERE kind = 'share'")
    transport = use_smtp(app, smtp.port)
    assert mail.send_due(app.state.db, transport) == 1
    [message] = smtp.messages
    assert f"/s/{token}" in message.get_body(("plain",)).get_content()  # the recipient got the link
    assert f"/s/{token}" in message.get_body(("html",)).get_content()
    row = app.state.db.query_one("SELECT * FROM outbox WHERE kind = 'share'")
    assert row["status"] == "sent" and token not in row["body_text"] + row["body_html"]
    assert f"{config.base_url}/s/{mail.REDACTED}" in row["body_text"] and "registry.csv" in row["body_text"]
    assert row["subject"] == message["Subject"] and row["recipient"] == message["To"]
    raw = b"".join(p.read_bytes() for p in config.data_dir.glob("relais.db*"))
    assert token.encode() not in raw  # not in the database file nor in its write-ahead log
    assert cli.backup(app.state, tmp_path / "backup") == 0
    assert token.encode() not in (tmp_path / "backup" / "relais.db").read_bytes()
    assert "/p/" in created.text  # the password link is shown to the owner, never mailed


@pytest.mark.parametrize("body, expected", [
    ("https://relais.test/s/" + "A" * 43 + "\n", "https://relais.test/s/[removed once sent]\n"),
    ('<a href="https://r.example/s/abc_DEF-123abc_DEF-123abc">x</a>', '<a href="https://r.example/s/[removed once sent]">x</a>'),
    ("https://relais.test/p/" + "b" * 43, "https://relais.test/p/[removed once sent]"),
    ("https://relais.test/login/link/" + "c" * 43, "https://relais.test/login/link/[removed once sent]"),
    ("https://relais.test/shares/" + "d" * 32, "https://relais.test/shares/" + "d" * 32),  # the owner's page, no secret
])
def test_redact_cuts_link_tokens_only(body, expected):
    assert mail.redact(body) == expected


def test_without_smtp_the_eml_is_the_delivered_mail_with_its_link(app, config, auth, staff):
    from tests.test_shares import CSV, create_share, link_token, store

    auth.login()
    stored = store(app, staff, "registry.csv", CSV)
    create_share(auth, [stored.id])
    token = link_token(app)
    assert mail.send_due(app.state.db, mail.Transport(app.state.config)) == 1
    [eml] = config.outbox_dir.glob("*.eml")
    delivered = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert f"/s/{token}" in delivered.get_body(("plain",)).get_content()  # the recipient's mail: it carries the link
    assert token not in app.state.db.scalar("SELECT body_text FROM outbox")


def test_mails_sent_before_the_redaction_lose_their_link_tokens_at_the_upgrade(app, config):
    """Rows sent by a version that kept the body as sent: migration 0007 cuts their tokens out,
    leaves unsent mail (which still has to work) alone, and leaves the tokens neither in relais.db
    nor in relais.db-wal."""
    import sqlite3

    from app import create_app

    token, pending_token = "A" * 43, "B" * 43
    app.state.db.close()
    raw = sqlite3.connect(config.db_path)
    for status, secret in (("sent", token), ("pending", pending_token)):
        raw.execute(
            "INSERT INTO outbox (created_at, kind, recipient, subject, body_text, body_html, language, message_id,"
            " status, next_attempt_at) VALUES ('2026-01-01', 'share', 'a@registry.example', 'Files', ?, ?, 'en', ?, ?,"
            " '2026-01-01')",
            [f"Open https://x/s/{secret} now", f'<a href="https://x/s/{secret}">open</a>', f"<{status}@x>", status])
    raw.execute("DELETE FROM _sqlite_migrations WHERE name = '0007_redact_sent_mail'")
    raw.commit()

    # Another connection stays open (a command run while the server runs), so closing the
    # migration's own does not checkpoint: the start must.
    upgraded = create_app(config)
    try:
        rows = {r["status"]: r for r in upgraded.state.db.query("SELECT * FROM outbox")}
        assert rows["sent"]["body_text"] == f"Open https://x/s/{mail.REDACTED} now"
        assert rows["sent"]["body_html"] == f'<a href="https://x/s/{mail.REDACTED}">open</a>'
        assert pending_token in rows["pending"]["body_text"] and pending_token in rows["pending"]["body_html"]
        wal = config.db_path.with_name("relais.db-wal")
        on_disk = config.db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert token.encode() not in on_disk and pending_token.encode() in on_disk
    finally:
        upgraded.state.db.close()
        raw.close()
