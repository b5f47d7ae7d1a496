"""A request's files do not stay: the link's expiry, the reminder and the retrieval deadline, each
across its boundary with the clock frozen, and what deletion leaves (no row, no data file, no key).

Files arrive as a guest's would, through the upload engine into the request's target, and are
sent with Transmit (relais.requests); the whole journey over HTTP is in test_request_journey.py.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from relais import (audit, clock, files, i18n, links, mail, request_retention, request_staff, request_submissions, requests,
                    settings, targets)
from tests import aio
from tests.conftest import BASE_URL, audit_rows

GUEST = audit.Who(actor="guest", ip="192.0.2.44", user_agent="Guest browser")
CSV = b"id,value\n1,2\n"
SECOND = timedelta(seconds=1)


def new_request(app, owner, password_link: bool = False, **options):
    """A request to lab@hospital.example; returns (request, link token, password)."""
    request, token, password, _ = requests.create(
        app.state.db, app.state.hasher, audit.Who(actor=owner.email), owner,
        requests.NewRequest(recipient="lab@hospital.example", **options), BASE_URL, password_link=password_link)
    return request, token, password


def upload(app, request_id: str, name: str = "a.csv", data: bytes = CSV) -> files.StoredFile:
    """A file sent whole into the request's target, as the plain form does."""
    target = targets.Target.request(request_id)
    file_id, writer = app.state.uploads.begin_whole(target, name)
    writer.write(data)
    return app.state.uploads.complete_whole(GUEST, target, file_id, writer)


def transmit(app, request_id: str, reference: str = "") -> request_submissions.Submission:
    request = requests.get(app.state.db, request_id)
    return request_submissions.transmit(app.state.db, GUEST, request, reference, "fr", BASE_URL)


def purge(app) -> int:
    return request_retention.purge(app.state.db, app.state.config)


def remind(app) -> int:
    return request_retention.remind(app.state.db, BASE_URL)


def set_setting(app, name: str, value: int) -> None:
    app.state.db.write(lambda db: settings.set_value(db, audit.SYSTEM, None, name, value))


def data_files(app) -> set[str]:
    return {path.name.split(".")[0] for path in Path(app.state.config.files_dir).iterdir()}


def stored(app, file_ids) -> dict:
    """What is left of these files: their rows, request_files rows and data files."""
    marks = ", ".join("?" for _ in file_ids)
    rows = app.state.db.query(f"SELECT id, storage_name, wrapped_key FROM files WHERE id IN ({marks})", list(file_ids))
    linked = app.state.db.query(f"SELECT file_id FROM request_files WHERE file_id IN ({marks})", list(file_ids))
    return {"rows": rows, "linked": linked}


def database_bytes(app) -> bytes:
    path = Path(app.state.db.path)
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def at(frozen, iso: str, delta: timedelta = timedelta()) -> None:
    frozen.moment = clock.parse(iso) + delta


def submission_row(app, submission_id: str) -> dict:
    return app.state.db.query_one("SELECT * FROM request_submissions WHERE id = ?", [submission_id])


# -- the link's expiry ------------------------------------------------------------------------------

def test_the_link_takes_files_until_the_second_before_it_expires(frozen, app, staff):
    request, token, _ = new_request(app, staff, expires_days=2)
    assert request.expires_at == clock.iso(frozen.moment + timedelta(days=2))

    at(frozen, request.expires_at, -SECOND)
    assert links.find_open(app.state.db, requests.KIND, token) is not None
    kept = upload(app, request.id, "kept.csv")
    target = targets.Target.request(request.id)
    late_id, late_writer = app.state.uploads.begin_whole(target, "late.csv")  # begun in time...
    late_writer.write(CSV)

    at(frozen, request.expires_at)
    assert links.find_open(app.state.db, requests.KIND, token) is None
    with pytest.raises(files.FileRefused) as refused:
        app.state.uploads.begin_whole(target, "new.csv")
    assert refused.value.reason == "request_closed"
    with pytest.raises(files.FileRefused):  # ...and finished too late: refused, nothing kept
        app.state.uploads.complete_whole(GUEST, target, late_id, late_writer)
    assert app.state.db.query("SELECT id FROM files") == [{"id": kept.id}]
    with pytest.raises(requests.RequestRefused) as closed:
        transmit(app, request.id)
    assert closed.value.reason == "closed"
    assert request_staff.state(requests.get(app.state.db, request.id), 0, 0) == "expired"


def test_extending_reopens_the_link_and_keeps_the_files_waiting_for_transmit(frozen, app, staff):
    request, token, _ = new_request(app, staff, expires_days=2)
    pending = upload(app, request.id)
    at(frozen, request.expires_at)
    request_staff.extend(app.state.db, audit.Who(actor=staff.email), requests.get(app.state.db, request.id), 3, False)
    assert purge(app) == 0 and stored(app, [pending.id])["rows"]
    assert links.find_open(app.state.db, requests.KIND, token) is not None
    assert transmit(app, request.id).files == 1


# -- the reminder -------------------------------------------------------------------------------------

def test_one_reminder_from_the_reminder_day_on_in_the_owners_language(frozen, app, staff):
    app.state.db.execute("UPDATE users SET language = 'nl' WHERE id = ?", [staff.id])
    request, _, _ = new_request(app, staff)
    upload(app, request.id, "a.csv")
    upload(app, request.id, "b.csv", b"x,y\n3,4\n")
    submission = transmit(app, request.id)
    assert submission.retrieve_by == clock.iso(frozen.moment + timedelta(days=14))  # request_retrieval_days

    at(frozen, submission.retrieve_by, -timedelta(days=2) - SECOND)
    assert remind(app) == 0
    at(frozen, submission.retrieve_by, -timedelta(days=2))  # request_reminder_days before the deadline
    assert remind(app) == 1
    frozen.advance(days=1)
    assert remind(app) == 0  # once only

    sent = app.state.db.query("SELECT * FROM outbox WHERE kind = 'request_reminder'")
    assert len(sent) == 1 and sent[0]["recipient"] == staff.email and sent[0]["language"] == "nl"
    assert sent[0]["object"] == request.id and "lab@hospital.example" in sent[0]["subject"]
    assert f"{BASE_URL}/requests/{request.id}" in sent[0]["body_text"]
    assert sent[0]["subject"] == i18n.ngettext(
        "nl", "Reminder: %(num)s file from %(sender)s waits to be retrieved",
        "Reminder: %(num)s files from %(sender)s wait to be retrieved", 2, sender="lab@hospital.example")
    assert submission_row(app, submission.id)["reminded_at"] == clock.iso(frozen.moment - timedelta(days=1))
    [row] = audit_rows(app, "request.reminder")
    assert row["object"] == request.id and submission.id in row["detail"]


def test_the_reminder_counts_only_the_files_not_retrieved_yet(frozen, app, staff):
    request, _, _ = new_request(app, staff)
    sent = [upload(app, request.id, "a.csv"), upload(app, request.id, "b.csv", b"x,y\n3,4\n")]
    submission = transmit(app, request.id)
    request_staff.record_retrieval(app.state.db, audit.Who(actor=staff.email), request, sent[:1])
    at(frozen, submission.retrieve_by, -timedelta(days=1))
    assert remind(app) == 1
    [reminder] = app.state.db.query("SELECT subject, body_text FROM outbox WHERE kind = 'request_reminder'")
    assert "1 file from" in reminder["subject"] and "(8\u00a0B)" in reminder["body_text"]


def test_no_reminder_once_retrieved_after_the_deadline_or_with_the_setting_at_zero(frozen, app, staff):
    retrieved, _, _ = new_request(app, staff)
    upload(app, retrieved.id)
    first = transmit(app, retrieved.id)
    request_staff.record_retrieval(app.state.db, audit.Who(actor=staff.email), retrieved,
                              request_staff.received_files(app.state.db, retrieved))
    at(frozen, first.retrieve_by, -timedelta(days=1))
    assert remind(app) == 0

    missed, _, _ = new_request(app, staff)  # the server was down through the reminder's days
    upload(app, missed.id)
    late = transmit(app, missed.id)
    at(frozen, late.retrieve_by)
    assert remind(app) == 0

    set_setting(app, "request_reminder_days", 0)
    none, _, _ = new_request(app, staff)
    upload(app, none.id)
    quiet = transmit(app, none.id)
    at(frozen, quiet.retrieve_by, -SECOND)
    assert remind(app) == 0
    assert app.state.db.query("SELECT id FROM outbox WHERE kind = 'request_reminder'") == []
    assert audit_rows(app, "request.reminder") == []


# -- the deadline -----------------------------------------------------------------------------------

def test_the_deadline_shreds_the_files_and_their_keys(frozen, app, staff):
    request, _, _ = new_request(app, staff)
    sent = [upload(app, request.id, "a.csv"), upload(app, request.id, "b.csv", b"x,y\n3,4\n")]
    submission = transmit(app, request.id)
    before = stored(app, [f.id for f in sent])
    keys = [row["wrapped_key"] for row in before["rows"]]
    names = {row["storage_name"] for row in before["rows"]}
    assert len(keys) == 2 and all(len(key) >= 32 for key in keys)
    assert names <= data_files(app) and all(key in database_bytes(app) for key in keys)

    at(frozen, submission.retrieve_by, -SECOND)
    assert purge(app) == 0 and len(stored(app, [f.id for f in sent])["rows"]) == 2

    at(frozen, submission.retrieve_by)
    assert purge(app) == 1
    assert stored(app, [f.id for f in sent]) == {"rows": [], "linked": []}
    assert not names & data_files(app)
    assert not any(key in database_bytes(app) for key in keys)  # zeroed in the file, gone from the WAL
    row = submission_row(app, submission.id)
    assert row["purged_at"] == clock.iso(frozen.moment) and row["purge_reason"] == "deadline"
    assert request_staff.received_files(app.state.db, request) == []
    [purged] = audit_rows(app, "request.purge")
    assert purged["object"] == request.id and '"deadline"' in purged["detail"]
    assert all(f.sha256 in purged["detail"] for f in sent)
    assert purge(app) == 0 and len(audit_rows(app, "request.purge")) == 1


@pytest.mark.parametrize("at_once", [True, False], ids=["delete when retrieved", "keep until the deadline"])
def test_retrieved_files_go_at_once_or_at_the_deadline(frozen, app, staff, at_once):
    set_setting(app, "request_delete_when_retrieved", int(at_once))
    request, _, _ = new_request(app, staff)
    sent = [upload(app, request.id, "a.csv"), upload(app, request.id, "b.csv", b"x,y\n3,4\n")]
    submission = transmit(app, request.id)
    staff_who = audit.Who(actor=staff.email)

    request_staff.record_retrieval(app.state.db, staff_who, request, sent[:1])  # one of two: not retrieved yet
    assert purge(app) == 0 and len(stored(app, [f.id for f in sent])["rows"]) == 2
    assert request_staff.record_retrieval(app.state.db, staff_who, request, sent[1:]) == [submission.id]
    frozen.advance(seconds=1)
    if at_once:
        assert purge(app) == 1
        assert submission_row(app, submission.id)["purge_reason"] == "retrieved"
    else:
        assert purge(app) == 0 and len(stored(app, [f.id for f in sent])["rows"]) == 2
        at(frozen, submission.retrieve_by, -SECOND)
        assert purge(app) == 0
        at(frozen, submission.retrieve_by)
        assert purge(app) == 1  # retrieved or not, nothing stays past its deadline
        assert submission_row(app, submission.id)["purge_reason"] == "deadline"
    assert stored(app, [f.id for f in sent]) == {"rows": [], "linked": []}
    assert len(audit_rows(app, "request.purge")) == 1
    listed = request_staff.for_staff(app.state.db, staff)
    assert [row["state"] for row in listed] == ["retrieved"]


# -- files never transmitted -------------------------------------------------------------------------

def lock(app, token: str) -> None:
    set_setting(app, "link_failures_before_lock", 1)
    aio.run(links.unlock(app.state.db, app.state.hasher, requests.KIND, GUEST, token, "not the password", BASE_URL))


def test_a_locked_request_warns_its_owner_with_the_requests_own_words(app, staff):
    request, token, _ = new_request(app, staff)
    lock(app, token)
    [warning] = app.state.db.query("SELECT * FROM outbox WHERE kind = 'request_locked'")
    assert warning["recipient"] == staff.email and warning["object"] == request.id
    assert warning["subject"] == "An upload link you sent was locked after wrong passwords"
    assert "lab@hospital.example" in warning["body_text"] and "create a new request" in warning["body_text"]
    assert f"{BASE_URL}/requests/{request.id}" in warning["body_text"]


@pytest.mark.parametrize("how", ["expired", "revoked", "locked"])
def test_files_never_transmitted_go_once_the_link_ends_not_before(frozen, app, staff, how):
    request, token, _ = new_request(app, staff, several=True, expires_days=5)
    sent = upload(app, request.id, "sent.csv")
    submission = transmit(app, request.id)
    pending = upload(app, request.id, "pending.csv")
    removed = upload(app, request.id, "removed.csv")
    assert requests.remove_pending(app.state.db, app.state.config.files_dir, GUEST, request, removed.id)
    assert not stored(app, [removed.id])["rows"]
    [row] = audit_rows(app, "request.file_remove")
    assert row["ip"] == GUEST.ip and "removed.csv" in row["detail"]

    at(frozen, request.expires_at, -SECOND)  # open until the last second: the guest may still transmit
    assert purge(app) == 0 and stored(app, [pending.id])["rows"]

    if how == "expired":
        at(frozen, request.expires_at)
    elif how == "revoked":
        request_staff.revoke(app.state.db, audit.Who(actor=staff.email), request)
    else:
        lock(app, token)
    assert requests.get(app.state.db, request.id).link_state() == how
    assert purge(app) == 1
    assert stored(app, [pending.id]) == {"rows": [], "linked": []}
    assert len(stored(app, [sent.id])["rows"]) == 1  # transmitted: it waits for its deadline
    assert submission_row(app, submission.id)["purged_at"] is None
    [purged] = audit_rows(app, "request.purge")
    assert '"not_transmitted"' in purged["detail"] and pending.sha256 in purged["detail"]
    assert purge(app) == 0 and len(audit_rows(app, "request.purge")) == 1


def test_a_closed_request_keeps_nothing_that_arrives_after_transmit(app, staff):
    request, token, _ = new_request(app, staff)  # one submission
    upload(app, request.id, "first.csv")
    target = targets.Target.request(request.id)
    late_id, writer = app.state.uploads.begin_whole(target, "late.csv")  # a form upload still arriving
    writer.write(CSV)
    transmit(app, request.id)
    assert requests.get(app.state.db, request.id).link_state() == "closed"
    with pytest.raises(files.FileRefused):
        app.state.uploads.complete_whole(GUEST, target, late_id, writer)
    assert app.state.db.query("SELECT id FROM files WHERE id = ?", [late_id]) == []
    assert app.state.db.query("SELECT * FROM request_files WHERE submission_id IS NULL") == []
    assert purge(app) == 0


def test_an_unfinished_upload_into_an_ended_link_goes_at_the_next_purge(frozen, app, staff):
    open_request, _, _ = new_request(app, staff)
    ended, _, _ = new_request(app, staff)
    engine = app.state.uploads
    staying = engine.create(targets.Target.request(open_request.id), "staying.csv", 100, GUEST)
    going = engine.create(targets.Target.request(ended.id), "going.csv", 100, GUEST)
    request_staff.revoke(app.state.db, audit.Who(actor=staff.email), ended)
    assert request_retention.end_uploads(app.state.db, engine) == 1
    assert engine.find(going.id, targets.Target.request(ended.id)) is None
    assert app.state.db.query("SELECT id FROM files WHERE id = ?", [going.file_id]) == []
    assert engine.find(staying.id, targets.Target.request(open_request.id)) is not None
    assert request_retention.end_uploads(app.state.db, engine) == 0
    assert [row["object"] for row in audit_rows(app, "upload.terminate")] == [going.file_id]


# -- delete -------------------------------------------------------------------------------------------

def test_delete_shreds_everything_and_forgets_the_invitation(app, config, staff):
    request, token, password = new_request(app, staff, several=True, password_link=True)
    assert mail.send_due(app.state.db, mail.Transport(config)) == 1  # no SMTP: the invitation is an .eml
    invitation = app.state.db.query_one("SELECT id FROM outbox WHERE kind = 'request'")["id"]
    assert mail.eml_path(config, invitation).exists()
    unlocked = aio.run(links.unlock(app.state.db, app.state.hasher, requests.KIND, GUEST, token, password, BASE_URL))
    assert unlocked.outcome is links.Unlock.OK
    sent = [upload(app, request.id, "sent.csv")]
    transmit(app, request.id)
    sent.append(upload(app, request.id, "pending.csv"))
    names = {row["storage_name"] for row in stored(app, [f.id for f in sent])["rows"]}

    request_retention.delete(app.state.db, config, audit.Who(actor=staff.email), request)
    assert stored(app, [f.id for f in sent]) == {"rows": [], "linked": []}
    assert not names & data_files(app)
    assert not mail.eml_path(config, invitation).exists()
    assert app.state.db.query_one("SELECT body_text, body_html FROM outbox WHERE id = ?", [invitation]) \
        == {"body_text": "", "body_html": ""}
    # The sender's receipt and the owner's notice are records of what happened; they stay.
    assert {r["kind"] for r in app.state.db.query("SELECT kind FROM outbox WHERE body_text != ''")} \
        == {"request_receipt", "request_received"}
    row = app.state.db.query_one("SELECT * FROM requests WHERE id = ?", [request.id])
    assert row["deleted_at"] and row["password_hash"] == "" and row["message"] == "" and row["recipient"] == ""
    for table in ("link_sessions", "password_links"):
        assert app.state.db.query(f"SELECT * FROM {table} WHERE object_id = ?", [request.id]) == []
    assert links.find_open(app.state.db, requests.KIND, token) is None
    assert {r["purge_reason"] for r in app.state.db.query("SELECT purge_reason FROM request_submissions")} == {"deleted"}
    [deleted] = audit_rows(app, "request.delete")
    assert all(f.sha256 in deleted["detail"] for f in sent)
    assert purge(app) == 0 and audit_rows(app, "request.purge") == []
    assert request_staff.state(requests.get(app.state.db, request.id), 0, 0) == "deleted"


# -- purging twice, and at once ------------------------------------------------------------------------

def due_for_purge(frozen, app, staff) -> set[str]:
    """A submission past its deadline and a pending file of an expired link; returns their file ids."""
    late, _, _ = new_request(app, staff, expires_days=30)
    sent = upload(app, late.id, "late.csv")
    submission = transmit(app, late.id)
    ended, _, _ = new_request(app, staff, expires_days=1)
    pending = upload(app, ended.id, "pending.csv")
    at(frozen, submission.retrieve_by)
    return {sent.id, pending.id}


def test_purge_run_twice_deletes_and_audits_once(frozen, app, staff):
    doomed = due_for_purge(frozen, app, staff)
    assert purge(app) == 2
    assert purge(app) == 0
    assert stored(app, doomed)["rows"] == []
    assert sorted(json_reason(r) for r in audit_rows(app, "request.purge")) == ["deadline", "not_transmitted"]


def test_purges_running_at_once_delete_and_audit_once(frozen, app, staff):
    doomed = due_for_purge(frozen, app, staff)
    start, counts, errors = threading.Barrier(3), [], []

    def run():
        start.wait()
        try:
            counts.append(purge(app))
        except Exception as exc:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sum(counts) == 2
    assert stored(app, doomed)["rows"] == []
    assert sorted(json_reason(r) for r in audit_rows(app, "request.purge")) == ["deadline", "not_transmitted"]


def json_reason(row: dict) -> str:
    import json

    return json.loads(row["detail"])["reason"]
