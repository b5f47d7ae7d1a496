"""The admin's Storage page and the free-space warning, on a real small disk (a tmpfs) filled with
a real file: the figures are those ``shutil.disk_usage`` gives, and crossing the threshold mails
every active admin once (to an aiosmtpd server), re-arms after recovery, and survives a restart."""

from __future__ import annotations

import re
import shutil

import pytest
from babel.numbers import format_decimal

from app import create_app
from relais import audit, capacity, i18n, mail, settings, users
from tests.conftest import BASE_URL, audit_rows, csrf_token
from tests.test_disk_full import config, small_disk  # noqa: F401  (the data folder on a small tmpfs)
from tests.test_mail import smtp, use_smtp  # noqa: F401  (smtp: the aiosmtpd fixture)

ADMIN = "admin@registry.example"
MIB = 1024 * 1024

def fill_to(path, data_dir, free_percent: float) -> None:
    """Grow or shrink the real file ``path`` until ``free_percent`` of the disk is free."""
    total, _, free = shutil.disk_usage(data_dir)
    change = free - int(total * free_percent / 100)
    size = path.stat().st_size if path.exists() else 0
    if change > 0:
        with open(path, "ab") as f:
            f.write(b"\x01" * change)
    else:
        with open(path, "r+b") as f:
            f.truncate(max(0, size + change))  # tmpfs gives truncated pages back at once
    assert abs(shutil.disk_usage(data_dir).free * 100 / total - free_percent) < 0.2


def test_the_storage_page_shows_the_disk_as_disk_usage_sees_it(app, client, auth, admin, config):
    auth.login(email=ADMIN)
    boundary = "storage-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"_csrf_token\"\r\n\r\n{csrf_token(client)}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"register.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode() + b"a,b\n" * (MIB // 4) + f"\r\n--{boundary}--\r\n".encode()
    upload = client.post("/files/upload", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                         follow_redirects=False)
    assert upload.status_code == 303
    (config.tmp_dir / "spool-left-by-a-crash").write_bytes(b"x" * 1000)
    page = client.get("/admin/storage")
    total, used, free = shutil.disk_usage(config.data_dir)
    assert page.status_code == 200
    for name, value in (("total", total), ("used", used), ("free", free)):
        shown = re.search(rf'id="disk-{name}">([^<(]+)', page.text).group(1).strip()
        assert shown == i18n.human_size("en", value), name
    assert f"({format_decimal(round(free * 100 / total, 1), locale='en')}%)" in page.text
    assert cells(page, "held-files") == ["Stored files", "1", i18n.human_size("en", MIB)]
    assert cells(page, "held-temporary") == ["Temporary files", "1", i18n.human_size("en", 1000)]
    assert cells(page, "held-uploads") == ["Uploads in progress (received so far)", "0", i18n.human_size("en", 0)]
    database = sum(p.stat().st_size for p in config.data_dir.glob("relais.db*") if not p.name.endswith("-shm"))
    assert cells(page, "held-database") == ["Database", "", i18n.human_size("en", database)]
    assert str(config.data_dir.resolve()) in page.text
    assert "Free space is below the warning threshold" not in page.text and "Enough free space" in page.text


def cells(page, row_id: str) -> list[str]:
    """The texts of a row of the "What Relais holds" table."""
    row = re.search(rf'<tr id="{row_id}">(.*?)</tr>', page.text, re.S).group(1)
    return [cell.strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]


def set_threshold(app, percent: int) -> None:
    app.state.db.write(settings.set_value, audit.SYSTEM, None, "storage_warning_free_percent", percent)


def test_the_warning_mails_each_active_admin_once_re_arms_after_recovery_and_survives_a_restart(
        app, client, auth, admin, make_user, config, smtp, frozen):
    transport = use_smtp(app, smtp.port)
    french = make_user(email="admin.fr@registry.example", role="admin", name="Amélie Admin")
    app.state.db.write(lambda db: db.execute("UPDATE users SET language = 'fr' WHERE id = ?", [french.id]))
    gone = make_user(email="former.admin@registry.example", role="admin", name="Former Admin")
    users.set_active(app.state.db, audit.SYSTEM, gone.id, False)
    make_user(email="staff@registry.example", role="staff")
    set_threshold(app, 50)
    filler = config.data_dir / "filler"

    assert capacity.check(app.state.db, config) is None  # the disk is empty enough
    fill_to(filler, config.data_dir, 40)
    assert capacity.check(app.state.db, config) == "low"
    assert capacity.check(app.state.db, config) is None  # still low: no second mail
    assert mail.send_due(app.state.db, transport) == 2
    recipients = sorted(m["To"].addresses[0].addr_spec for m in smtp.messages)
    assert recipients == ["admin.fr@registry.example", ADMIN]
    languages = {m["To"].addresses[0].addr_spec: m["Content-Language"] for m in smtp.messages}
    assert languages == {ADMIN: "en", "admin.fr@registry.example": "fr"}
    english = next(m for m in smtp.messages if m["To"].addresses[0].addr_spec == ADMIN)
    body = english.get_body(("plain",)).get_content()
    assert english["Subject"].startswith("Relais: free space is running low")
    assert "the threshold is 50%" in body and f"{BASE_URL}/admin/storage" in body
    measured = app.state.db.query_one("SELECT free_bytes, total_bytes FROM storage_warnings")  # when it was measured
    sizes = i18n.human_size("en", measured["free_bytes"]), i18n.human_size("en", measured["total_bytes"])
    assert "%s of %s is free (40" % sizes in body
    [low] = audit_rows(app, "storage.low")
    assert '"threshold": 50' in low["detail"] and '"admins": 2' in low["detail"]

    # The page says so, prominently.
    auth.login(email=ADMIN)
    page = client.get("/admin/storage")
    assert 'class="warning" role="alert"' in page.text and "Free space is below the warning threshold." in page.text
    assert "The admins were e-mailed on" in page.text
    # And the trail says it in words, the free space as a size (a label with a bare % would break the page).
    trail = client.get("/admin/audit?action=storage.low")
    assert trail.status_code == 200 and "Free space below the warning threshold: admins warned" in trail.text
    assert "Warning threshold (percent free):" in trail.text
    assert i18n.human_size("en", measured["free_bytes"]) in trail.text

    # A restart remembers the warning: no mail again.
    app.state.db.close()
    restarted = create_app(config)
    try:
        assert capacity.check(restarted.state.db, config) is None
        # Just above the threshold, within the margin: the warning stays open.
        fill_to(filler, config.data_dir, 50 + capacity.RECOVERY_MARGIN / 2)
        assert capacity.check(restarted.state.db, config) is None
        # Back above it: re-armed, no mail.
        fill_to(filler, config.data_dir, 60)
        assert capacity.check(restarted.state.db, config) == "recovered"
        assert len(audit_rows(restarted, "storage.recovered")) == 1
        assert restarted.state.db.scalar("SELECT count(*) FROM outbox WHERE kind = 'storage_low'") == 2
        # A later fall, a day after the last mail, mails again, through the watch thread's step,
        # which wakes the sender.
        frozen.advance(hours=25)
        fill_to(filler, config.data_dir, 30)
        capacity.Watch(restarted.state).step()
        assert mail.send_due(restarted.state.db, mail.Transport(restarted.state.config)) == 2
        assert len(smtp.messages) == 4 and len(audit_rows(restarted, "storage.low")) == 2
        warnings = restarted.state.db.query("SELECT * FROM storage_warnings ORDER BY id")
        assert [w["recovered_at"] is None for w in warnings] == [False, True]
        assert warnings[0]["threshold_percent"] == 50 and warnings[0]["admins_mailed"] == 2
    finally:
        restarted.state.db.close()


def test_a_disk_wobbling_across_the_threshold_mails_the_admins_at_most_once_a_day(
        app, admin, config, frozen):
    """A guest's big upload, cancelled, again and again: each crossing is recorded and audited,
    but the admins get one mail in MAIL_INTERVAL; the first crossing after it mails again."""
    set_threshold(app, 50)
    filler = config.data_dir / "filler"
    mailed = lambda: app.state.db.scalar("SELECT count(*) FROM outbox WHERE kind = 'storage_low'")  # noqa: E731
    for hour in range(3):
        fill_to(filler, config.data_dir, 49.5)
        assert capacity.check(app.state.db, config) == "low"
        fill_to(filler, config.data_dir, 50 + capacity.RECOVERY_MARGIN + 0.5)
        assert capacity.check(app.state.db, config) == "recovered"
        frozen.advance(hours=1)
    assert mailed() == 1
    lows = audit_rows(app, "storage.low")
    assert len(lows) == 3 and '"admins": 1' in lows[0]["detail"]
    assert all('"admins": 0' in row["detail"] and '"since"' in row["detail"] for row in lows[1:])
    assert [w["admins_mailed"] for w in app.state.db.query("SELECT * FROM storage_warnings ORDER BY id")] == [1, 0, 0]
    # Just inside the day since the mailed warning: still quiet; just past it: mailed.
    frozen.advance(hours=20, minutes=59)  # 23 h 59 min after the first
    fill_to(filler, config.data_dir, 49.5)
    assert capacity.check(app.state.db, config) == "low" and mailed() == 1
    fill_to(filler, config.data_dir, 52)
    assert capacity.check(app.state.db, config) == "recovered"
    frozen.advance(minutes=2)
    fill_to(filler, config.data_dir, 49.5)
    assert capacity.check(app.state.db, config) == "low" and mailed() == 2


def test_an_admin_whose_address_mail_refuses_is_skipped_and_the_others_are_mailed(
        app, admin, make_user, config, frozen):
    broken = make_user(email="broken.admin@registry.example", role="admin", name="Broken Admin")
    # An address stored before today's checks (or edited in the database): mail.address refuses it.
    app.state.db.write(lambda db: db.execute("UPDATE users SET email = 'no-at-sign' WHERE id = ?", [broken.id]))
    later = make_user(email="later.admin@registry.example", role="admin", name="Later Admin")
    set_threshold(app, 50)
    fill_to(config.data_dir / "filler", config.data_dir, 40)
    assert capacity.check(app.state.db, config) == "low"
    recipients = [row["recipient"] for row in app.state.db.query(
        "SELECT recipient FROM outbox WHERE kind = 'storage_low' ORDER BY id")]
    assert recipients == [f"Ada Admin <{ADMIN}>", f"Later Admin <{later.email}>"]
    [skipped] = audit_rows(app, "storage.unmailed")
    assert skipped["object"] == "no-at-sign" and "storage_warning:" in skipped["detail"]
    [low] = audit_rows(app, "storage.low")
    assert '"admins": 2' in low["detail"]
    assert app.state.db.scalar("SELECT admins_mailed FROM storage_warnings") == 2
    assert capacity.check(app.state.db, config) is None  # the warning is open: no retry every minute


def test_the_files_folder_on_another_disk_is_measured_too(app, admin, config, frozen, tmp_path):
    """data/files on a second real tmpfs, nearly full while the data folder's disk is empty: the
    warning (and the Storage page) follow the fuller one."""
    import subprocess

    files_dir = config.files_dir
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(files_dir)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a second tmpfs cannot be mounted: {mounted.stderr.strip()}")
    try:
        set_threshold(app, 50)
        fill_to(files_dir / "filler", files_dir, 30)
        assert capacity.usage(config.data_dir).free_percent > 90
        measured = capacity.fullest(config)
        assert measured == capacity.usage(files_dir) and measured.total == 8 * MIB
        assert capacity.check(app.state.db, config) == "low"
        assert app.state.db.scalar("SELECT total_bytes FROM storage_warnings") == 8 * MIB
    finally:
        subprocess.run(["umount", "--lazy", str(files_dir)], check=True)
